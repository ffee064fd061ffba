package bridgev2_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"maunium.net/go/mautrix/event"

	"github.com/trestle-bridge/trestle/bridgev2"
	"github.com/trestle-bridge/trestle/bridgev2/bridgetest"
	"github.com/trestle-bridge/trestle/bridgev2/bridgetest/testnet"
	"github.com/trestle-bridge/trestle/bridgev2/database"
)

// Dendrite names a transaction after its first event's position in its
// queue. When the bridge stored a transaction but died before answering,
// Dendrite retries that event batched with newer ones under the same
// transaction ID. The newer events must not be taken for a replay.
func TestARetriedTransactionIDWithMoreEventsStillBridgesTheNewOnes(t *testing.T) {
	setup(t, func(t *testing.T, h *bridgetest.Harness, remote *testnet.Remote, login *bridgev2.UserLogin) {
		_, room := chatWithBob(t, h, remote, login)
		var raws []json.RawMessage
		for _, body := range []string{"first", "second", "third"} {
			evt, err := h.Matrix.AddUserEvent(room, alice, event.EventMessage, &event.MessageEventContent{MsgType: event.MsgText, Body: body})
			if err != nil {
				t.Fatal(err)
			}
			raws = append(raws, json.RawMessage(fmt.Sprintf(`{"event_id":%q,"room_id":%q,"sender":%q,"type":"m.room.message","origin_server_ts":1,"content":{"msgtype":"m.text","body":%q}}`, evt.ID, room, alice, body)))
		}
		if err := h.Bridge().HandleTransaction(h.Ctx(), "1795660086998146926", raws[:1], nil); err != nil {
			t.Fatal(err)
		}
		if err := h.Bridge().HandleTransaction(h.Ctx(), "1795660086998146926", raws, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := remote.WaitForCall(h.Ctx(), func(c testnet.Call) bool { return c.Text == "third" }); err != nil {
			t.Fatalf("the events batched with the retried one were dropped: %v", err)
		}
		sent := map[string]int{}
		for _, c := range remote.Calls() {
			sent[c.Text]++
		}
		if sent["first"] != 1 || sent["second"] != 1 || sent["third"] != 1 {
			t.Fatalf("sends per text: %v, want each once", sent)
		}
	})
}

// Every event the bridge sends comes back in a transaction of its own. Those
// echoes are ignored; recording them would cost a commit (an fsync on
// SQLite) per bridged message for nothing.
func TestATransactionOfOnlyTheBridgesOwnEchoesIsNotWritten(t *testing.T) {
	setup(t, func(t *testing.T, h *bridgetest.Harness, remote *testnet.Remote, login *bridgev2.UserLogin) {
		_, room := chatWithBob(t, h, remote, login)
		echo := h.WaitForText(room, "", "hi")
		raw, err := json.Marshal(echo)
		if err != nil {
			t.Fatal(err)
		}
		if err := h.Bridge().HandleTransaction(h.Ctx(), "echo-only", []json.RawMessage{raw}, nil); err != nil {
			t.Fatal(err)
		}
		var recorded bool
		err = h.Bridge().DB.Write(h.Ctx(), func(ctx context.Context, tx database.Execer) error {
			isNew, err := h.Bridge().DB.Txns.Insert(ctx, tx, "echo-only")
			recorded = !isNew
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if recorded {
			t.Fatal("a transaction holding only the bridge's own echo was written to the database")
		}
	})
}
