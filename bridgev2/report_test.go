package bridgev2_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/bridgev2"
	"github.com/trestle-bridge/trestle/bridgev2/bridgeconfig"
	"github.com/trestle-bridge/trestle/bridgev2/bridgetest"
	"github.com/trestle-bridge/trestle/bridgev2/bridgetest/testnet"
	"github.com/trestle-bridge/trestle/bridgev2/database"
	"github.com/trestle-bridge/trestle/bridgev2/database/dbtest"
	"github.com/trestle-bridge/trestle/bridgev2/networkid"
)

// What the sender sees of their messages with the shipped defaults: a read
// receipt from the bridge bot for a delivered message, a notice for a
// failed one, and no status events.

// setupDefaults is setup with the example config's outcome settings.
func setupDefaults(t *testing.T, fn func(t *testing.T, h *bridgetest.Harness, remote *testnet.Remote, login *bridgev2.UserLogin)) {
	for _, dialect := range dbtest.Dialects() {
		t.Run(string(dialect), func(t *testing.T) {
			remote := testnet.NewRemote()
			h := bridgetest.New(t, remote.Connector, bridgetest.Options{Dialect: dialect, Configure: func(c *bridgeconfig.Config) {
				c.Bridge.MessageStatusEvents, c.Bridge.DeliveryReceipts, c.Bridge.FailureNotices = false, true, true
			}})
			login := h.Login(alice, map[string]string{"username": "alice1", "token": "secret"})
			fn(t, h, remote, login)
		})
	}
}

// botReceipts lists the events the bridge bot sent read receipts for.
func botReceipts(h *bridgetest.Harness, room id.RoomID) []id.EventID {
	var out []id.EventID
	for _, e := range h.Matrix.Events(room) {
		if e.Type != event.EphemeralEventReceipt || e.Sender != h.Matrix.BotUserID() {
			continue
		}
		for eventID := range *e.Content.Parsed.(*event.ReceiptEventContent) {
			out = append(out, eventID)
		}
	}
	return out
}

func waitReceipt(t *testing.T, h *bridgetest.Harness, room id.RoomID, eventID id.EventID) {
	t.Helper()
	if _, err := h.Matrix.WaitForEvent(h.Ctx(), room, "the bot's receipt on "+string(eventID), func(e *event.Event) bool {
		c, ok := e.Content.Parsed.(*event.ReceiptEventContent)
		if !ok || e.Sender != h.Matrix.BotUserID() {
			return false
		}
		_, ok = (*c)[eventID]
		return ok
	}); err != nil {
		t.Fatal(err)
	}
}

// waitMapped waits until a sent Matrix event's n remote parts are recorded:
// with the default outcome settings nothing in the room marks that moment,
// and a delivery report before it would find no message.
func waitMapped(t *testing.T, h *bridgetest.Harness, eventID id.EventID, n int) {
	t.Helper()
	ctx := h.Ctx()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		if parts, err := h.Bridge().DB.Messages.GetAllByMXID(ctx, eventID); err == nil && len(parts) == n {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the send of %s was never recorded", eventID)
		case <-tick.C:
		}
	}
}

func statusEvents(h *bridgetest.Harness, room id.RoomID) int {
	n := 0
	for _, e := range h.Matrix.Events(room) {
		if e.Type == event.BeeperMessageStatus {
			n++
		}
	}
	return n
}

// deliverReport hands the network's delivery report for a sent message.
func deliverReport(t *testing.T, h *bridgetest.Harness, remote *testnet.Remote, key networkid.PortalKey, target networkid.MessageID, state database.Delivery) {
	t.Helper()
	receive(t, h, remote, &bridgev2.RemoteEvent{Kind: bridgev2.RemoteDeliveryStatus, Portal: key, Target: target,
		Status: &bridgev2.DeliveryStatus{State: state, Message: "The phone is unreachable."}})
}

func TestByDefaultASuccessIsAReceiptAndOnlyAFailureIsARoomEvent(t *testing.T) {
	setupDefaults(t, func(t *testing.T, h *bridgetest.Harness, remote *testnet.Remote, login *bridgev2.UserLogin) {
		key, room := chatWithBob(t, h, remote, login)
		// A network without delivery reports: the receipt follows the send.
		sent := h.SendText(alice, room, "plain")
		waitReceipt(t, h, room, sent)

		// With delivery reports, the receipt waits for "delivered".
		remote.SplitMessages(2)
		long := h.SendText(alice, room, "long")
		call, err := remote.WaitForCall(h.Ctx(), func(c testnet.Call) bool { return c.Text == "long" })
		if err != nil {
			t.Fatal(err)
		}
		waitMapped(t, h, long, 2)
		deliverReport(t, h, remote, key, call.MessageID+".0", database.DeliveryDelivered)
		deliverReport(t, h, remote, key, call.MessageID+".1", database.DeliveryDelivered)
		waitReceipt(t, h, room, long)

		failing := h.SendText(alice, room, "doomed")
		call, err = remote.WaitForCall(h.Ctx(), func(c testnet.Call) bool { return c.Text == "doomed" })
		if err != nil {
			t.Fatal(err)
		}
		waitMapped(t, h, failing, 2)
		deliverReport(t, h, remote, key, call.MessageID+".0", database.DeliveryFailed)
		notice := h.WaitForText(room, h.Matrix.BotUserID(), "was not delivered: The phone is unreachable.")
		if notice.Content.AsMessage().RelatesTo.GetReplyTo() != failing {
			t.Errorf("the failure notice replies to %s, want the failed message", notice.Content.AsMessage().RelatesTo.GetReplyTo())
		}
		if n := statusEvents(h, room); n != 0 {
			t.Errorf("%d status events with message_status_events off", n)
		}
		for _, r := range botReceipts(h, room) {
			if r == failing {
				t.Error("the failed message got a delivery receipt")
			}
		}
	})
}

func TestReceiptsOfABurstAreSentAsOneOnTheNewestMessage(t *testing.T) {
	setupDefaults(t, func(t *testing.T, h *bridgetest.Harness, remote *testnet.Remote, login *bridgev2.UserLogin) {
		_, room := chatWithBob(t, h, remote, login)
		// The homeserver refuses receipts while the burst is sent.
		var refuse atomic.Bool
		refuse.Store(true)
		var refused atomic.Int32
		h.Matrix.SetFailure(func(method string) error {
			if method == "MarkRead" && refuse.Load() {
				refused.Add(1)
				return bridgetest.Unavailable
			}
			return nil
		})
		var last id.EventID
		for i := range 5 {
			last = h.SendText(alice, room, fmt.Sprintf("burst %d", i))
			if _, err := remote.WaitForCall(h.Ctx(), func(c testnet.Call) bool { return c.Text == fmt.Sprintf("burst %d", i) }); err != nil {
				t.Fatal(err)
			}
		}
		if err := h.Matrix.WaitFor(h.Ctx(), "a refused receipt", func() bool { return refused.Load() > 0 }); err != nil {
			t.Fatal(err)
		}
		refuse.Store(false)
		waitReceipt(t, h, room, last)
		if got := botReceipts(h, room); len(got) != 1 || got[0] != last {
			t.Fatalf("receipts %v, want one, on the newest message %s", got, last)
		}
	})
}

func TestAnOutcomeDecidedBeforeACrashIsShownAfterTheRestart(t *testing.T) {
	setupDefaults(t, func(t *testing.T, h *bridgetest.Harness, remote *testnet.Remote, login *bridgev2.UserLogin) {
		key, room := chatWithBob(t, h, remote, login)
		remote.SplitMessages(2)
		var down atomic.Bool
		h.Matrix.SetFailure(func(method string) error {
			if down.Load() && (method == "MarkRead" || method == "SendMessage") {
				return bridgetest.Unavailable
			}
			return nil
		})
		delivered := h.SendText(alice, room, "delivered while down")
		failed := h.SendText(alice, room, "failed while down")
		calls := map[string]testnet.Call{}
		for _, text := range []string{"delivered while down", "failed while down"} {
			c, err := remote.WaitForCall(h.Ctx(), func(c testnet.Call) bool { return c.Text == text })
			if err != nil {
				t.Fatal(err)
			}
			calls[text] = c
		}
		waitMapped(t, h, delivered, 2)
		waitMapped(t, h, failed, 2)
		down.Store(true)
		// The reports are journalled and applied; showing them fails, and
		// the bridge stops before it can try again.
		for _, part := range []string{".0", ".1"} {
			deliverReport(t, h, remote, key, calls["delivered while down"].MessageID+networkid.MessageID(part), database.DeliveryDelivered)
		}
		deliverReport(t, h, remote, key, calls["failed while down"].MessageID+".0", database.DeliveryFailed)
		h.Restart()
		down.Store(false)
		waitReceipt(t, h, room, delivered)
		h.WaitForText(room, h.Matrix.BotUserID(), "was not delivered")
	})
}
