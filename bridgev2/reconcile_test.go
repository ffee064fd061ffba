package bridgev2_test

import (
	"encoding/json"
	"errors"
	"sync"
	"testing"

	"github.com/trestle-bridge/trestle/bridgev2"
	"github.com/trestle-bridge/trestle/bridgev2/bridgetest"
	"github.com/trestle-bridge/trestle/bridgev2/bridgetest/testnet"
	"github.com/trestle-bridge/trestle/bridgev2/networkid"
)

// errAnswerLost is the homeserver's answer going missing after the event
// was stored: the bridge sees a failure, the room has the message.
var errAnswerLost = bridgev2.RetriableError("The homeserver is unreachable; retrying.", errors.New("connection reset after the request was sent"))

func TestAMessageWhoseSendAnswerWasLostIsFoundInTheRoomInsteadOfSentAgain(t *testing.T) {
	setup(t, func(t *testing.T, h *bridgetest.Harness, remote *testnet.Remote, login *bridgev2.UserLogin) {
		receive(t, h, remote, remoteText(login, "bob", "m0", "opens the room"))
		room := h.WaitForPortal(networkid.PortalKey{ID: "bob", Receiver: login.ID}, alice)
		h.WaitForText(room, "", "opens the room")

		var once sync.Once
		h.Matrix.SetFailure(func(method string) error {
			var err error
			if method == "SendMessage.answer" {
				once.Do(func() { err = errAnswerLost })
			}
			return err
		})
		receive(t, h, remote, remoteText(login, "bob", "m1", "answer lost"))
		receive(t, h, remote, remoteText(login, "bob", "m2", "next"))
		h.WaitForText(room, "", "next")
		if n := countTexts(h, room, "answer lost"); n != 1 {
			t.Fatalf("the message whose answer was lost is in the room %d times, want once", n)
		}
	})
}

func TestAMessageInterruptedByAStopIsFoundInTheRoomAfterTheRestart(t *testing.T) {
	setup(t, func(t *testing.T, h *bridgetest.Harness, remote *testnet.Remote, login *bridgev2.UserLogin) {
		receive(t, h, remote, remoteText(login, "bob", "m0", "opens the room"))
		room := h.WaitForPortal(networkid.PortalKey{ID: "bob", Receiver: login.ID}, alice)
		h.WaitForText(room, "", "opens the room")

		// The message reaches the room, but the bridge never learns it,
		// and cannot find out before it stops: its journal entry stays
		// pending, as after a crash mid-request.
		var mu sync.Mutex
		stored := false
		h.Matrix.SetFailure(func(method string) error {
			mu.Lock()
			defer mu.Unlock()
			switch {
			case method == "SendMessage.answer" && !stored:
				stored = true
				return errAnswerLost
			case stored && (method == "SendMessage" || method == "FindSent"):
				return bridgetest.Unavailable
			}
			return nil
		})
		receive(t, h, remote, remoteText(login, "bob", "m1", "interrupted"))
		h.WaitForText(room, "", "interrupted")
		h.Restart()
		h.Matrix.SetFailure(nil)
		receive(t, h, remote, remoteText(login, "bob", "m2", "after the restart"))
		h.WaitForText(room, "", "after the restart")
		if n := countTexts(h, room, "interrupted"); n != 1 {
			t.Fatalf("the interrupted message is in the room %d times, want once", n)
		}
	})
}

func TestBridgedMessagesCarryTheirTransactionMarker(t *testing.T) {
	setup(t, func(t *testing.T, h *bridgetest.Harness, remote *testnet.Remote, login *bridgev2.UserLogin) {
		receive(t, h, remote, remoteText(login, "bob", "m0", "marked"))
		room := h.WaitForPortal(networkid.PortalKey{ID: "bob", Receiver: login.ID}, alice)
		evt := h.WaitForText(room, "", "marked")
		var content map[string]any
		if err := json.Unmarshal(evt.Content.VeryRaw, &content); err != nil {
			t.Fatal(err)
		}
		if marker, _ := content[bridgev2.TxnMarkerKey].(string); marker == "" {
			t.Fatalf("bridged message has no %s: %s", bridgev2.TxnMarkerKey, evt.Content.VeryRaw)
		}
	})
}
