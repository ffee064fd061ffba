package bridgev2_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/bridgev2"
	"github.com/trestle-bridge/trestle/bridgev2/bridgetest"
	"github.com/trestle-bridge/trestle/bridgev2/bridgetest/testnet"
	"github.com/trestle-bridge/trestle/bridgev2/database"
	"github.com/trestle-bridge/trestle/bridgev2/database/dbtest"
	"github.com/trestle-bridge/trestle/bridgev2/networkid"
)

const alice = id.UserID("@alice:example.com")

// setup starts a bridge with the test network on every configured database
// and logs alice in as "alice1".
func setup(t *testing.T, fn func(t *testing.T, h *bridgetest.Harness, remote *testnet.Remote, login *bridgev2.UserLogin)) {
	for _, dialect := range dbtest.Dialects() {
		t.Run(string(dialect), func(t *testing.T) {
			remote := testnet.NewRemote()
			h := bridgetest.New(t, remote.Connector, bridgetest.Options{Dialect: dialect})
			login := h.Login(alice, map[string]string{"username": "alice1", "token": "secret"})
			fn(t, h, remote, login)
		})
	}
}

func remoteText(login *bridgev2.UserLogin, chat, msgID, text string) *bridgev2.RemoteEvent {
	return &bridgev2.RemoteEvent{
		Kind: bridgev2.RemoteMessage, ID: networkid.MessageID(msgID),
		Portal: networkid.PortalKey{ID: networkid.PortalID(chat), Receiver: login.ID},
		Sender: bridgev2.EventSender{Sender: networkid.UserID(chat)}, Timestamp: time.Now(),
		Parts: []bridgev2.MessagePart{{Text: text}},
	}
}

// chatWithBob opens the portal with "bob" by receiving a text from him, and
// returns its key and room once the text is in it.
func chatWithBob(t *testing.T, h *bridgetest.Harness, remote *testnet.Remote, login *bridgev2.UserLogin) (networkid.PortalKey, id.RoomID) {
	t.Helper()
	key := networkid.PortalKey{ID: "bob", Receiver: login.ID}
	receive(t, h, remote, remoteText(login, "bob", "m0", "hi"))
	room := h.WaitForPortal(key, alice)
	h.WaitForText(room, "", "hi")
	return key, room
}

func receive(t *testing.T, h *bridgetest.Harness, remote *testnet.Remote, evt *bridgev2.RemoteEvent) bridgev2.IngestResult {
	t.Helper()
	res, err := remote.Receive(h.Ctx(), evt)
	if err != nil {
		t.Fatalf("ingest %s: %v", evt.ID, err)
	}
	return res
}

func TestRemoteMessageCreatesADirectPortalRoomAndArrivesFromTheGhost(t *testing.T) {
	setup(t, func(t *testing.T, h *bridgetest.Harness, remote *testnet.Remote, login *bridgev2.UserLogin) {
		receive(t, h, remote, remoteText(login, "bob", "m1", "hello from bob"))
		key := networkid.PortalKey{ID: "bob", Receiver: login.ID}
		room := h.WaitForPortal(key, alice)
		ghost := h.Matrix.GhostUserID("bob")
		h.WaitForText(room, ghost, "hello from bob")

		var created *bridgetest.FakeRoom
		for _, r := range h.Matrix.Rooms() {
			if r.ID == room {
				created = r
			}
		}
		if !created.Request.IsDirect || created.Creator != ghost {
			t.Errorf("portal should be a DM created by the contact's ghost; is_direct=%v creator=%s", created.Request.IsDirect, created.Creator)
		}
		if got := h.Matrix.Membership(room, h.Matrix.BotUserID()); got != "join" {
			t.Errorf("bridge bot membership = %q, want join", got)
		}
		if p := h.Matrix.Profile(ghost); p == nil || p.DisplayName != "Test user bob" {
			t.Errorf("ghost profile = %+v, want the contact's name", p)
		}
		if _, ok := created.State["uk.half-shot.bridge|net.trestle://testnet/alice1/bob"]; !ok {
			t.Errorf("portal lacks uk.half-shot.bridge state; state keys: %v", keys(created.State))
		}
	})
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestReplayedRemoteEventProducesOneMatrixEvent(t *testing.T) {
	setup(t, func(t *testing.T, h *bridgetest.Harness, remote *testnet.Remote, login *bridgev2.UserLogin) {
		evt := remoteText(login, "bob", "m1", "only once")
		if res := receive(t, h, remote, evt); res != bridgev2.Journalled {
			t.Fatalf("first delivery: %v", res)
		}
		if res := receive(t, h, remote, evt); res != bridgev2.Duplicate {
			t.Fatalf("second delivery of the same event: got %v, want Duplicate", res)
		}
		room := h.WaitForPortal(networkid.PortalKey{ID: "bob", Receiver: login.ID}, alice)
		receive(t, h, remote, remoteText(login, "bob", "m2", "marker"))
		h.WaitForText(room, "", "marker")
		if n := countTexts(h, room, "only once"); n != 1 {
			t.Fatalf("the message appears %d times, want 1", n)
		}
	})
}

func countTexts(h *bridgetest.Harness, room id.RoomID, body string) int {
	n := 0
	for _, evt := range h.Matrix.Events(room) {
		if evt.Type == event.EventMessage && evt.Content.AsMessage().Body == body {
			n++
		}
	}
	return n
}

func TestMatrixMessagesReachTheNetworkWithReplyTargetAndSuccessStatus(t *testing.T) {
	setup(t, func(t *testing.T, h *bridgetest.Harness, remote *testnet.Remote, login *bridgev2.UserLogin) {
		receive(t, h, remote, remoteText(login, "bob", "m1", "question?"))
		room := h.WaitForPortal(networkid.PortalKey{ID: "bob", Receiver: login.ID}, alice)
		question := h.WaitForText(room, "", "question?")

		reply := &event.MessageEventContent{MsgType: event.MsgText, Body: "answer!"}
		reply.RelatesTo = (&event.RelatesTo{}).SetReplyTo(question.ID)
		evtID := h.SendMatrix(alice, room, event.EventMessage, reply)

		call, err := remote.WaitForCall(h.Ctx(), func(c testnet.Call) bool { return c.Kind == "message" })
		if err != nil {
			t.Fatal(err)
		}
		if call.Text != "answer!" || call.Target != "m1" || call.Portal.ID != "bob" {
			t.Fatalf("network got %+v, want the answer replying to m1 in bob's chat", call)
		}
		h.WaitForStatus(room, evtID, event.MessageStatusSuccess)
	})
}

func TestEditsReactionsAndDeletionsFindTheirTargetsBothWays(t *testing.T) {
	setup(t, func(t *testing.T, h *bridgetest.Harness, remote *testnet.Remote, login *bridgev2.UserLogin) {
		ctx := h.Ctx()
		portal := networkid.PortalKey{ID: "bob", Receiver: login.ID}
		receive(t, h, remote, remoteText(login, "bob", "m1", "original"))
		room := h.WaitForPortal(portal, alice)
		original := h.WaitForText(room, "", "original")
		ghost := h.Matrix.GhostUserID("bob")

		// Remote edit, reaction, deletion land on the bridged event.
		edit := &bridgev2.RemoteEvent{Kind: bridgev2.RemoteEdit, ID: "e1", Portal: portal, Sender: bridgev2.EventSender{Sender: "bob"},
			Target: "m1", Parts: []bridgev2.MessagePart{{Text: "edited"}}}
		receive(t, h, remote, edit)
		editEvt := h.WaitForText(room, ghost, "* edited")
		if got := editEvt.Content.AsMessage().RelatesTo.GetReplaceID(); got != original.ID {
			t.Fatalf("edit replaces %s, want %s", got, original.ID)
		}
		receive(t, h, remote, &bridgev2.RemoteEvent{Kind: bridgev2.RemoteReaction, ID: "r1", Portal: portal,
			Sender: bridgev2.EventSender{Sender: "bob"}, Target: "m1", Emoji: "👍"})
		reaction, err := h.Matrix.WaitForEvent(ctx, room, "reaction", func(e *event.Event) bool { return e.Type == event.EventReaction })
		if err != nil {
			t.Fatal(err)
		}
		if rel := reaction.Content.AsReaction().RelatesTo; rel.EventID != original.ID || rel.Key != "👍" {
			t.Fatalf("reaction relates to %+v", rel)
		}
		receive(t, h, remote, &bridgev2.RemoteEvent{Kind: bridgev2.RemoteReactionRemove, ID: "rr1", Portal: portal,
			Sender: bridgev2.EventSender{Sender: "bob"}, Target: "m1", Emoji: "👍"})
		if _, err := h.Matrix.WaitForEvent(ctx, room, "reaction redaction", func(e *event.Event) bool {
			return e.Type == event.EventRedaction && e.Content.AsRedaction().Redacts == reaction.ID
		}); err != nil {
			t.Fatal(err)
		}
		receive(t, h, remote, &bridgev2.RemoteEvent{Kind: bridgev2.RemoteDelete, ID: "d1", Portal: portal,
			Sender: bridgev2.EventSender{Sender: "bob"}, Target: "m1"})
		if _, err := h.Matrix.WaitForEvent(ctx, room, "message redaction", func(e *event.Event) bool {
			return e.Type == event.EventRedaction && e.Content.AsRedaction().Redacts == original.ID
		}); err != nil {
			t.Fatal(err)
		}

		// Matrix edit, reaction, reaction removal and redaction reach the
		// network with the remote ID of their target.
		mine := h.SendText(alice, room, "from matrix")
		sent, err := remote.WaitForCall(ctx, func(c testnet.Call) bool { return c.Kind == "message" && c.Text == "from matrix" })
		if err != nil {
			t.Fatal(err)
		}
		h.WaitForStatus(room, mine, event.MessageStatusSuccess)
		editContent := &event.MessageEventContent{MsgType: event.MsgText, Body: "* fixed",
			NewContent: &event.MessageEventContent{MsgType: event.MsgText, Body: "fixed"}}
		editContent.RelatesTo = (&event.RelatesTo{}).SetReplace(mine)
		h.SendMatrix(alice, room, event.EventMessage, editContent)
		reactID := h.SendMatrix(alice, room, event.EventReaction, &event.ReactionEventContent{RelatesTo: event.RelatesTo{
			Type: event.RelAnnotation, EventID: mine, Key: "🎉"}})
		h.SendMatrix(alice, room, event.EventRedaction, &event.RedactionEventContent{Redacts: reactID})
		h.SendMatrix(alice, room, event.EventRedaction, &event.RedactionEventContent{Redacts: mine})
		for _, want := range []testnet.Call{
			{Kind: "edit", Text: "fixed"}, {Kind: "reaction", Emoji: "🎉"}, {Kind: "reaction_remove", Emoji: "🎉"}, {Kind: "redaction"},
		} {
			got, err := remote.WaitForCall(ctx, func(c testnet.Call) bool { return c.Kind == want.Kind })
			if err != nil {
				t.Fatal(err)
			}
			if got.Target != sent.MessageID || got.Text != want.Text || got.Emoji != want.Emoji {
				t.Errorf("%s call = %+v, want target %s text %q emoji %q", want.Kind, got, sent.MessageID, want.Text, want.Emoji)
			}
		}
	})
}

func TestHomeserverOutageDelaysMessagesButKeepsThemInOrder(t *testing.T) {
	setup(t, func(t *testing.T, h *bridgetest.Harness, remote *testnet.Remote, login *bridgev2.UserLogin) {
		receive(t, h, remote, remoteText(login, "bob", "m0", "before outage"))
		room := h.WaitForPortal(networkid.PortalKey{ID: "bob", Receiver: login.ID}, alice)
		h.WaitForText(room, "", "before outage")

		failures := 0
		h.Matrix.SetFailure(func(method string) error {
			if method == "SendMessage" && failures < 3 {
				failures++
				return bridgetest.Unavailable
			}
			return nil
		})
		for i := 1; i <= 5; i++ {
			receive(t, h, remote, remoteText(login, "bob", fmt.Sprint("m", i), fmt.Sprint("during outage ", i)))
		}
		h.WaitForText(room, "", "during outage 5")
		var order []string
		for _, evt := range h.Matrix.Events(room) {
			if body := evt.Content.AsMessage().Body; strings.HasPrefix(body, "during outage") {
				order = append(order, body)
			}
		}
		want := []string{"during outage 1", "during outage 2", "during outage 3", "during outage 4", "during outage 5"}
		if fmt.Sprint(order) != fmt.Sprint(want) {
			t.Fatalf("messages arrived as %v, want each once in order %v", order, want)
		}
	})
}

func TestUndeliveredRemoteMessagesSurviveARestart(t *testing.T) {
	setup(t, func(t *testing.T, h *bridgetest.Harness, remote *testnet.Remote, login *bridgev2.UserLogin) {
		receive(t, h, remote, remoteText(login, "bob", "m0", "first"))
		room := h.WaitForPortal(networkid.PortalKey{ID: "bob", Receiver: login.ID}, alice)
		h.WaitForText(room, "", "first")

		// The homeserver goes down; a text is acknowledged (journalled) but
		// cannot be delivered before the bridge stops.
		h.Matrix.SetFailure(func(method string) error {
			if method == "SendMessage" {
				return bridgetest.Unavailable
			}
			return nil
		})
		receive(t, h, remote, remoteText(login, "bob", "m1", "sent while the homeserver was down"))
		h.Restart()
		h.Matrix.SetFailure(nil)
		h.WaitForText(room, "", "sent while the homeserver was down")
		if n := countTexts(h, room, "first"); n != 1 {
			t.Fatalf("the earlier message was replayed: it appears %d times", n)
		}
	})
}

func TestRetriedTransactionIsBridgedOnce(t *testing.T) {
	setup(t, func(t *testing.T, h *bridgetest.Harness, remote *testnet.Remote, login *bridgev2.UserLogin) {
		receive(t, h, remote, remoteText(login, "bob", "m0", "hi"))
		room := h.WaitForPortal(networkid.PortalKey{ID: "bob", Receiver: login.ID}, alice)
		evt, err := h.Matrix.AddUserEvent(room, alice, event.EventMessage, &event.MessageEventContent{MsgType: event.MsgText, Body: "once"})
		if err != nil {
			t.Fatal(err)
		}
		raw := json.RawMessage(fmt.Sprintf(`{"event_id":%q,"room_id":%q,"sender":%q,"type":"m.room.message","origin_server_ts":1,"content":{"msgtype":"m.text","body":"once"}}`, evt.ID, room, alice))
		// The homeserver retries the transaction, then (as some do) resends
		// the same event inside a new transaction.
		for _, txnID := range []string{"txn-a", "txn-a", "txn-a", "txn-b"} {
			if err := h.Bridge().HandleTransaction(h.Ctx(), txnID, []json.RawMessage{raw}, nil); err != nil {
				t.Fatal(err)
			}
		}
		h.SendText(alice, room, "marker")
		if _, err := remote.WaitForCall(h.Ctx(), func(c testnet.Call) bool { return c.Text == "marker" }); err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, c := range remote.Calls() {
			if c.Text == "once" {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("the message was sent %d times, want 1", n)
		}
	})
}

func TestFailedSendsAreReportedToTheSender(t *testing.T) {
	setup(t, func(t *testing.T, h *bridgetest.Harness, remote *testnet.Remote, login *bridgev2.UserLogin) {
		receive(t, h, remote, remoteText(login, "bob", "m0", "hi"))
		room := h.WaitForPortal(networkid.PortalKey{ID: "bob", Receiver: login.ID}, alice)

		remote.FailNext(bridgev2.NewError("The network refused the message: recipient blocked you.", errors.New("blocked")))
		failed := h.SendText(alice, room, "will fail")
		status := h.WaitForStatus(room, failed, event.MessageStatusFail)
		if !strings.Contains(status.Message, "recipient blocked you") {
			t.Errorf("failure status says %q, want the network's sentence", status.Message)
		}
		h.WaitForText(room, h.Matrix.BotUserID(), "recipient blocked you")

		remote.FailNext(bridgev2.RetriableError("The network is busy.", errors.New("503")))
		retried := h.SendText(alice, room, "will be retried")
		h.WaitForStatus(room, retried, event.MessageStatusRetriable)
		h.WaitForStatus(room, retried, event.MessageStatusSuccess)
		if _, err := remote.WaitForCall(h.Ctx(), func(c testnet.Call) bool { return c.Text == "will be retried" }); err != nil {
			t.Fatal(err)
		}
	})
}

func TestMessagesInOnePortalKeepOrderWhileOthersFlow(t *testing.T) {
	setup(t, func(t *testing.T, h *bridgetest.Harness, remote *testnet.Remote, login *bridgev2.UserLogin) {
		const n = 60
		for i := 0; i < n; i++ {
			receive(t, h, remote, remoteText(login, "flood", fmt.Sprint("f", i), fmt.Sprint("flood ", i)))
		}
		receive(t, h, remote, remoteText(login, "quiet", "q1", "quiet one"))
		quiet := h.WaitForPortal(networkid.PortalKey{ID: "quiet", Receiver: login.ID}, alice)
		h.WaitForText(quiet, "", "quiet one")
		flood := h.WaitForPortal(networkid.PortalKey{ID: "flood", Receiver: login.ID}, alice)
		h.WaitForText(flood, "", fmt.Sprint("flood ", n-1))
		i := 0
		for _, evt := range h.Matrix.Events(flood) {
			if body := evt.Content.AsMessage().Body; strings.HasPrefix(body, "flood ") {
				if body != fmt.Sprint("flood ", i) {
					t.Fatalf("message %d arrived as %q", i, body)
				}
				i++
			}
		}
		if i != n {
			t.Fatalf("%d flood messages arrived, want %d", i, n)
		}
	})
}

func TestMappingsSurviveRestart(t *testing.T) {
	setup(t, func(t *testing.T, h *bridgetest.Harness, remote *testnet.Remote, login *bridgev2.UserLogin) {
		receive(t, h, remote, remoteText(login, "bob", "m1", "before restart"))
		room := h.WaitForPortal(networkid.PortalKey{ID: "bob", Receiver: login.ID}, alice)
		original := h.WaitForText(room, "", "before restart")
		h.Restart()
		login2 := h.Bridge().GetLogin(login.ID)
		if login2 == nil {
			t.Fatal("login was not reloaded")
		}
		receive(t, h, remote, &bridgev2.RemoteEvent{Kind: bridgev2.RemoteReaction, ID: "r1",
			Portal: networkid.PortalKey{ID: "bob", Receiver: login.ID}, Sender: bridgev2.EventSender{Sender: "bob"}, Target: "m1", Emoji: "❤️"})
		reaction, err := h.Matrix.WaitForEvent(h.Ctx(), room, "reaction after restart", func(e *event.Event) bool { return e.Type == event.EventReaction })
		if err != nil {
			t.Fatal(err)
		}
		if reaction.Content.AsReaction().RelatesTo.EventID != original.ID {
			t.Fatal("reaction after restart did not find the message bridged before it")
		}
		mine := h.SendText(alice, room, "after restart")
		h.WaitForStatus(room, mine, event.MessageStatusSuccess)
	})
}

func TestLoggingOutUnbridgesTheLoginsPortals(t *testing.T) {
	setup(t, func(t *testing.T, h *bridgetest.Harness, remote *testnet.Remote, login *bridgev2.UserLogin) {
		receive(t, h, remote, remoteText(login, "bob", "m1", "hi"))
		room := h.WaitForPortal(networkid.PortalKey{ID: "bob", Receiver: login.ID}, alice)
		h.WaitForText(room, "", "hi")
		if err := login.Logout(h.Ctx()); err != nil {
			t.Fatal(err)
		}
		if h.Bridge().GetLogin(login.ID) != nil {
			t.Fatal("login still loaded after logout")
		}
		if got := h.Matrix.Membership(room, h.Matrix.BotUserID()); got != "leave" {
			t.Errorf("bot membership after logout = %q, want leave", got)
		}
		if _, err := h.Bridge().DB.Portals.GetByMXID(context.Background(), room); !errors.Is(err, database.ErrNotFound) {
			t.Errorf("portal row survived logout: %v", err)
		}
	})
}

// A network may report delivery before the send that it reports on has
// returned. The report waits for the send instead of failing, and the
// chat's other incoming texts do not wait for it.
func TestDeliveryReportOvertakingItsSendIsAppliedAfterIt(t *testing.T) {
	setup(t, func(t *testing.T, h *bridgetest.Harness, remote *testnet.Remote, login *bridgev2.UserLogin) {
		portal, room := chatWithBob(t, h, remote, login)

		remote.DuringSend(func(c testnet.Call) {
			receive(t, h, remote, &bridgev2.RemoteEvent{Kind: bridgev2.RemoteDeliveryStatus, Portal: portal, Target: c.MessageID,
				Status: &bridgev2.DeliveryStatus{State: database.DeliveryDelivered, SendToken: c.SendToken}})
			// Received while the send is still in flight: it must not wait
			// behind the report.
			receive(t, h, remote, remoteText(login, "bob", "m1", "meanwhile"))
			h.WaitForText(room, "", "meanwhile")
		})
		sent := h.SendText(alice, room, "how are you?")
		status := h.WaitForStatus(room, sent, event.MessageStatusSuccess)
		if status.DeliveredToUsers == nil {
			status = waitDelivered(t, h, room, sent)
		}
		if len(*status.DeliveredToUsers) == 0 {
			t.Fatalf("the early delivery report never reached the sender: %+v", status)
		}
	})
}

func waitDelivered(t *testing.T, h *bridgetest.Harness, room id.RoomID, eventID id.EventID) *event.BeeperMessageStatusEventContent {
	t.Helper()
	evt, err := h.Matrix.WaitForEvent(h.Ctx(), room, "delivered status", func(e *event.Event) bool {
		c, ok := e.Content.Parsed.(*event.BeeperMessageStatusEventContent)
		return e.Type == event.BeeperMessageStatus && ok && c.RelatesTo.EventID == eventID &&
			c.DeliveredToUsers != nil && len(*c.DeliveredToUsers) > 0
	})
	if err != nil {
		t.Fatal(err)
	}
	return evt.Content.Parsed.(*event.BeeperMessageStatusEventContent)
}

// A Matrix message sent as several remote messages is reported delivered
// once, when every part is, and failed as soon as one part fails.
func TestSplitMessageIsDeliveredWhenEveryPartIs(t *testing.T) {
	setup(t, func(t *testing.T, h *bridgetest.Harness, remote *testnet.Remote, login *bridgev2.UserLogin) {
		portal := networkid.PortalKey{ID: "bob", Receiver: login.ID}
		receive(t, h, remote, remoteText(login, "bob", "m0", "hi"))
		room := h.WaitForPortal(portal, alice)
		remote.SplitMessages(2)
		report := func(target networkid.MessageID, state database.Delivery) {
			receive(t, h, remote, &bridgev2.RemoteEvent{Kind: bridgev2.RemoteDeliveryStatus, Portal: portal, Target: target,
				Status: &bridgev2.DeliveryStatus{State: state, Message: "The phone is unreachable."}})
		}
		countStatuses := func(eventID id.EventID) (delivered, failed int) {
			for _, e := range h.Matrix.Events(room) {
				if c, ok := e.Content.Parsed.(*event.BeeperMessageStatusEventContent); ok && c.RelatesTo.EventID == eventID {
					if c.DeliveredToUsers != nil && len(*c.DeliveredToUsers) > 0 {
						delivered++
					}
					if c.Status == event.MessageStatusFail {
						failed++
					}
				}
			}
			return
		}

		long := h.SendText(alice, room, "a long text")
		call, err := remote.WaitForCall(h.Ctx(), func(c testnet.Call) bool { return c.Text == "a long text" })
		if err != nil {
			t.Fatal(err)
		}
		h.WaitForStatus(room, long, event.MessageStatusSuccess)
		report(call.MessageID+".0", database.DeliveryDelivered)
		report(call.MessageID+".1", database.DeliveryDelivered)
		waitDelivered(t, h, room, long)

		other := h.SendText(alice, room, "another long text")
		call2, err := remote.WaitForCall(h.Ctx(), func(c testnet.Call) bool { return c.Text == "another long text" })
		if err != nil {
			t.Fatal(err)
		}
		// Reports without a send token find their message by its mapping,
		// which is recorded when the send's success is.
		h.WaitForStatus(room, other, event.MessageStatusSuccess)
		report(call2.MessageID+".0", database.DeliveryDelivered)
		report(call2.MessageID+".1", database.DeliveryFailed)
		h.WaitForStatus(room, other, event.MessageStatusFail)
		h.WaitForText(room, h.Matrix.BotUserID(), "was not delivered: The phone is unreachable.")

		if d, f := countStatuses(long); d != 1 || f != 0 {
			t.Errorf("the first message got %d delivered and %d failed statuses, want exactly one delivered", d, f)
		}
		if d, f := countStatuses(other); d != 0 || f != 1 {
			t.Errorf("the half-failed message got %d delivered and %d failed statuses, want one failure only", d, f)
		}
	})
}

// When the homeserver is slow, statuses queue up. A delivery report decided
// while the message's "sent" status still waits replaces it: the sender
// sees the newest state, and the homeserver takes one event, not two.
func TestAStatusStillQueuedIsReplacedByANewerOne(t *testing.T) {
	setup(t, func(t *testing.T, h *bridgetest.Harness, remote *testnet.Remote, login *bridgev2.UserLogin) {
		key, room := chatWithBob(t, h, remote, login)
		portal, err := h.Bridge().GetPortal(h.Ctx(), key)
		if err != nil {
			t.Fatal(err)
		}
		release := portal.HoldStatuses()

		sent := h.SendText(alice, room, "how are you?")
		call, err := remote.WaitForCall(h.Ctx(), func(c testnet.Call) bool { return c.Text == "how are you?" })
		if err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			if _, err := h.Bridge().DB.Messages.GetByMXID(h.Ctx(), sent); err == nil {
				break // recorded as sent: its "sent" status is queued
			} else if time.Now().After(deadline) {
				t.Fatalf("the send was never recorded: %v", err)
			}
		}
		receive(t, h, remote, &bridgev2.RemoteEvent{Kind: bridgev2.RemoteDeliveryStatus, Portal: key, Target: call.MessageID,
			Status: &bridgev2.DeliveryStatus{State: database.DeliveryDelivered, SendToken: call.SendToken}})
		// The chat's inbound events apply in order: once this text is in
		// the room, the delivery report has been applied.
		receive(t, h, remote, remoteText(login, "bob", "m1", "after"))
		h.WaitForText(room, "", "after")
		release()

		waitDelivered(t, h, room, sent)
		var statuses int
		for _, evt := range h.Matrix.Events(room) {
			if c, ok := evt.Content.Parsed.(*event.BeeperMessageStatusEventContent); ok && c.RelatesTo.EventID == sent {
				statuses++
			}
		}
		if statuses != 1 {
			t.Fatalf("the sender got %d statuses for one message, want the delivered one only", statuses)
		}
	})
}

// Networks report "sent" after the send's own answer said as much. Such a
// report changes nothing and is acknowledged without a journal entry; one
// that moves the message on is journalled and applied.
func TestADeliveryReportThatChangesNothingIsNotJournalled(t *testing.T) {
	setup(t, func(t *testing.T, h *bridgetest.Harness, remote *testnet.Remote, login *bridgev2.UserLogin) {
		key, room := chatWithBob(t, h, remote, login)
		sent := h.SendText(alice, room, "how are you?")
		h.WaitForStatus(room, sent, event.MessageStatusSuccess)
		call, err := remote.WaitForCall(h.Ctx(), func(c testnet.Call) bool { return c.Text == "how are you?" })
		if err != nil {
			t.Fatal(err)
		}
		report := func(state database.Delivery) bridgev2.IngestResult {
			return receive(t, h, remote, &bridgev2.RemoteEvent{Kind: bridgev2.RemoteDeliveryStatus, Portal: key, Target: call.MessageID,
				Status: &bridgev2.DeliveryStatus{State: state, SendToken: call.SendToken}})
		}
		if got := report(database.DeliverySent); got != bridgev2.Duplicate {
			t.Errorf("a \"sent\" report for a message recorded as sent was %v, want Duplicate (not journalled)", got)
		}
		if got := report(database.DeliveryDelivered); got != bridgev2.Journalled {
			t.Errorf("a \"delivered\" report was %v, want Journalled", got)
		}
		waitDelivered(t, h, room, sent)
	})
}

// The first part's report of a split message can overtake the send while
// the second part's comes after it: the message is delivered once both
// are, whichever way each report went.
func TestASplitMessageWhoseFirstReportOvertookItsSendIsDelivered(t *testing.T) {
	setup(t, func(t *testing.T, h *bridgetest.Harness, remote *testnet.Remote, login *bridgev2.UserLogin) {
		key, room := chatWithBob(t, h, remote, login)
		remote.SplitMessages(2)
		report := func(c testnet.Call, part string) {
			receive(t, h, remote, &bridgev2.RemoteEvent{Kind: bridgev2.RemoteDeliveryStatus, Portal: key, Target: c.MessageID + networkid.MessageID(part),
				Status: &bridgev2.DeliveryStatus{State: database.DeliveryDelivered, SendToken: c.SendToken}})
		}
		remote.DuringSend(func(c testnet.Call) { report(c, ".0") })
		sent := h.SendText(alice, room, "a long text")
		h.WaitForStatus(room, sent, event.MessageStatusSuccess)
		call, err := remote.WaitForCall(h.Ctx(), func(c testnet.Call) bool { return c.Text == "a long text" })
		if err != nil {
			t.Fatal(err)
		}
		report(call, ".1")
		waitDelivered(t, h, room, sent)
	})
}
