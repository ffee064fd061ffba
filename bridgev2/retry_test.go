package bridgev2_test

import (
	"errors"
	"testing"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/bridgev2"
	"github.com/trestle-bridge/trestle/bridgev2/bridgetest"
	"github.com/trestle-bridge/trestle/bridgev2/bridgetest/testnet"
	"github.com/trestle-bridge/trestle/bridgev2/networkid"
)

// The core owns retries: connectors classify a failure and return. These
// tests drive the one retry loop through the test network.

var errOutage = bridgev2.RetriableError("The test network is down.", errors.New("connection refused"))

// partsOf reads the message mapping of a Matrix event.
func partsOf(t *testing.T, h *bridgetest.Harness, eventID id.EventID) []networkid.MessageID {
	t.Helper()
	parts, err := h.Bridge().DB.Messages.GetAllByMXID(h.Ctx(), eventID)
	if err != nil {
		t.Fatal(err)
	}
	var ids []networkid.MessageID
	for _, p := range parts {
		ids = append(ids, p.ID)
	}
	return ids
}

// messageCalls returns the network's calls sending text.
func messageCalls(remote *testnet.Remote, text string) []testnet.Call {
	var out []testnet.Call
	for _, c := range remote.Calls() {
		if c.Kind == "message" && c.Text == text {
			out = append(out, c)
		}
	}
	return out
}

func wantParts(t *testing.T, got []networkid.MessageID, base networkid.MessageID, n int) {
	t.Helper()
	if len(got) != n {
		t.Fatalf("mapped parts %v, want %d", got, n)
	}
	for i, id := range got {
		if want := base + networkid.MessageID("."+string(rune('0'+i))); id != want {
			t.Fatalf("mapped parts %v, want %s.0 to .%d: a part was sent twice or skipped", got, base, n-1)
		}
	}
}

func TestASplitSendThatFailsMidwayResumesAtThePartThatFailed(t *testing.T) {
	setup(t, func(t *testing.T, h *bridgetest.Harness, remote *testnet.Remote, login *bridgev2.UserLogin) {
		_, room := chatWithBob(t, h, remote, login)
		remote.SplitMessages(3)
		remote.FailPart(1, errOutage)
		sent := h.SendText(alice, room, "a long text")
		h.WaitForStatus(room, sent, event.MessageStatusSuccess)

		calls := messageCalls(remote, "a long text")
		if len(calls) != 2 || calls[0].Resumed || !calls[1].Resumed || calls[1].MessageID != calls[0].MessageID {
			t.Fatalf("calls %+v: want a first attempt and one resumed attempt of the same message", calls)
		}
		wantParts(t, partsOf(t, h, sent), calls[0].MessageID, 3)
		if n := remote.FindSentCalls(); n != 0 {
			t.Errorf("asked the network %d times whether a send went through, after a failure that proved it did not", n)
		}
	})
}

func TestASplitSendInterruptedByARestartResumesFromTheJournal(t *testing.T) {
	setup(t, func(t *testing.T, h *bridgetest.Harness, remote *testnet.Remote, login *bridgev2.UserLogin) {
		_, room := chatWithBob(t, h, remote, login)
		remote.SplitMessages(3)
		remote.FailPart(1, errOutage)
		sent := h.SendText(alice, room, "a long text")
		first, err := remote.WaitForCall(h.Ctx(), func(c testnet.Call) bool { return c.Text == "a long text" })
		if err != nil {
			t.Fatal(err)
		}
		// The core waits to retry part 1; the bridge stops meanwhile. Only
		// the journal knows that part 0 went out.
		h.Restart()
		h.WaitForStatus(room, sent, event.MessageStatusSuccess)
		wantParts(t, partsOf(t, h, sent), first.MessageID, 3)
		if calls := messageCalls(remote, "a long text"); len(calls) != 2 || !calls[1].Resumed {
			t.Fatalf("calls %+v: want the restarted bridge to resume the send once", calls)
		}
		// The restarted bridge checks whether part 1 was in flight, but it
		// knew part 0 from its journal before asking.
		if known := remote.KnownBeforeFindSent(); len(known) != 1 || known[0] != 1 {
			t.Fatalf("parts the journal listed when the network was asked: %v, want [1]", known)
		}
	})
}

func TestAnUnconfirmedSendIsReconciledNotRepeated(t *testing.T) {
	setup(t, func(t *testing.T, h *bridgetest.Harness, remote *testnet.Remote, login *bridgev2.UserLogin) {
		_, room := chatWithBob(t, h, remote, login)
		byToken := func(kind string) map[string]int {
			n := map[string]int{}
			for _, c := range remote.Calls() {
				if c.Kind == kind {
					n[c.SendToken]++
				}
			}
			return n
		}
		once := func(kind string) {
			t.Helper()
			for token, n := range byToken(kind) {
				if token == "" || n != 1 {
					t.Errorf("%s calls by send token %v: want each once, with a token", kind, byToken(kind))
					return
				}
			}
		}

		remote.LoseAnswers(1)
		msg := h.SendText(alice, room, "answer lost")
		h.WaitForStatus(room, msg, event.MessageStatusSuccess)
		once("message")
		if parts := partsOf(t, h, msg); len(parts) != 1 {
			t.Fatalf("mapped parts %v", parts)
		}

		remote.LoseAnswers(1)
		edit := &event.MessageEventContent{MsgType: event.MsgText, Body: "* fixed", NewContent: &event.MessageEventContent{MsgType: event.MsgText, Body: "fixed"}}
		edit.RelatesTo = (&event.RelatesTo{}).SetReplace(msg)
		editID := h.SendMatrix(alice, room, event.EventMessage, edit)
		h.WaitForStatus(room, editID, event.MessageStatusSuccess)
		once("edit")

		remote.LoseAnswers(1)
		react := h.SendMatrix(alice, room, event.EventReaction, &event.ReactionEventContent{RelatesTo: event.RelatesTo{
			Type: event.RelAnnotation, EventID: msg, Key: "🎉"}})
		h.WaitForStatus(room, react, event.MessageStatusSuccess)
		once("reaction")

		remote.LoseAnswers(1)
		unreact := h.SendMatrix(alice, room, event.EventRedaction, &event.RedactionEventContent{Redacts: react})
		h.WaitForStatus(room, unreact, event.MessageStatusSuccess)
		once("reaction_remove")

		remote.LoseAnswers(1)
		del := h.SendMatrix(alice, room, event.EventRedaction, &event.RedactionEventContent{Redacts: msg})
		h.WaitForStatus(room, del, event.MessageStatusSuccess)
		once("redaction")

		if n := remote.FindSentCalls(); n < 5 {
			t.Errorf("the network was asked %d times, want at least once per unconfirmed send", n)
		}
		tokens := map[string]bool{}
		for _, c := range remote.Calls() {
			if c.SendToken == "" || tokens[c.SendToken] {
				t.Errorf("call %+v has no token of its own", c)
			}
			tokens[c.SendToken] = true
		}
	})
}

func TestARateLimitIsWaitedOutForAsLongAsTheNetworkAsked(t *testing.T) {
	setup(t, func(t *testing.T, h *bridgetest.Harness, remote *testnet.Remote, login *bridgev2.UserLogin) {
		_, room := chatWithBob(t, h, remote, login)
		const wait = 2500 * time.Millisecond // beyond the first backoff (at most 1 s)
		remote.FailNext(bridgev2.RateLimitedError("The test network is rate-limiting.", wait, errors.New("429")))
		start := time.Now()
		sent := h.SendText(alice, room, "patience")
		retrying := h.WaitForStatus(room, sent, event.MessageStatusRetriable)
		if retrying.Message != "The test network is rate-limiting. Retrying." {
			t.Errorf("retrying status says %q", retrying.Message)
		}
		h.WaitForStatus(room, sent, event.MessageStatusSuccess)
		if took := time.Since(start); took < wait {
			t.Fatalf("sent again after %v, before the %v the network asked for", took, wait)
		}
	})
}
