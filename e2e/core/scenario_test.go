package core_test

import (
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/bridgev2"
	"github.com/trestle-bridge/trestle/bridgev2/bridgetest/testnet"
	"github.com/trestle-bridge/trestle/bridgev2/networkid"
	"github.com/trestle-bridge/trestle/internal/matrixtest"
)

func networkidUser(s string) networkid.UserID { return networkid.UserID(s) }

// login DMs the bot, checks help, and logs in through the test network's
// flow as a person would, by answering the bot's questions.
func login(t *testing.T, b *bridge, alice *matrixtest.T, username string) id.RoomID {
	t.Helper()
	bot := b.botID()
	mgmt := alice.DM(bot)
	alice.WaitForMessage(mgmt, bot, "management room")

	help := alice.Send(mgmt, "help")
	alice.WaitForMessageAfter(mgmt, help, bot, "start-chat")

	start := alice.Send(mgmt, "login")
	alice.WaitForMessageAfter(mgmt, start, bot, "username")
	user := alice.Send(mgmt, username)
	alice.WaitForMessageAfter(mgmt, user, bot, "token")
	secret := alice.Send(mgmt, "secret-token")
	alice.WaitForMessageAfter(mgmt, secret, bot, "Logged in as "+username)
	// The message carrying the token was redacted as soon as it was read.
	alice.WaitForEvent(mgmt, func(e *event.Event) bool {
		return e.Type == event.EventRedaction && (e.Redacts == secret || e.Content.AsRedaction().Redacts == secret)
	})
	return mgmt
}

func TestUserLogsInReceivesTextsAndEverythingMapsBothWays(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, b *bridge) {
		alice, aliceID := newUser(t, "alice")
		login(t, b, alice, "alice1")
		ctx := b.ctx()
		portal := networkid.PortalKey{ID: "bob", Receiver: "alice1"}
		ghost := b.ghostID("bob")

		// A remote message creates a DM portal: alice is invited by the
		// contact's ghost and sees the text.
		if _, err := b.remote.Receive(ctx, &bridgev2.RemoteEvent{Kind: bridgev2.RemoteMessage, ID: "m1", Portal: portal,
			Sender: bridgev2.EventSender{Sender: "bob"}, Timestamp: time.Now(), Parts: []bridgev2.MessagePart{{Text: "hi alice"}}}); err != nil {
			t.Fatal(err)
		}
		invite := alice.WaitForInvite(func(inv *matrixtest.Invite) bool { return inv.Sender == ghost })
		if !invite.IsDirect {
			t.Error("the portal invite is not marked as a direct chat")
		}
		room := invite.RoomID
		hi := alice.WaitForMessage(room, ghost, "hi alice")

		// Replies, edits, reactions and redactions reach the network with
		// the right targets.
		reply := alice.SendReply(room, hi.ID, "hello bob")
		sent := waitCall(t, b, func(c testnet.Call) bool { return c.Kind == "message" && c.Text == "hello bob" })
		if sent.Target != "m1" {
			t.Errorf("reply reached the network replying to %q, want m1", sent.Target)
		}
		// With the default config a success is the bridge bot's read
		// receipt, not a room event.
		alice.WaitForReceipt(room, b.botID(), reply)
		alice.Edit(room, reply, "hello bob!")
		if c := waitCall(t, b, func(c testnet.Call) bool { return c.Kind == "edit" }); c.Target != sent.MessageID || c.Text != "hello bob!" {
			t.Errorf("edit reached the network as %+v", c)
		}
		reaction := alice.React(room, hi.ID, "👍")
		if c := waitCall(t, b, func(c testnet.Call) bool { return c.Kind == "reaction" }); c.Target != "m1" || c.Emoji != "👍" {
			t.Errorf("reaction reached the network as %+v", c)
		}
		alice.Redact(room, reaction, "")
		if c := waitCall(t, b, func(c testnet.Call) bool { return c.Kind == "reaction_remove" }); c.Target != "m1" {
			t.Errorf("reaction removal reached the network as %+v", c)
		}
		alice.Redact(room, reply, "")
		if c := waitCall(t, b, func(c testnet.Call) bool { return c.Kind == "redaction" }); c.Target != sent.MessageID {
			t.Errorf("redaction reached the network as %+v", c)
		}

		// Remote edits, reactions and deletions land on the right events.
		receive(t, b, &bridgev2.RemoteEvent{Kind: bridgev2.RemoteEdit, ID: "e1", Portal: portal, Sender: bridgev2.EventSender{Sender: "bob"},
			Target: "m1", Parts: []bridgev2.MessagePart{{Text: "hi alice, edited"}}})
		edit := alice.WaitForMessage(room, ghost, "hi alice, edited")
		if got := edit.Content.AsMessage().RelatesTo.GetReplaceID(); got != hi.ID {
			t.Errorf("remote edit replaces %s, want %s", got, hi.ID)
		}
		receive(t, b, &bridgev2.RemoteEvent{Kind: bridgev2.RemoteReaction, ID: "r1", Portal: portal, Sender: bridgev2.EventSender{Sender: "bob"},
			Target: "m1", Emoji: "❤️"})
		alice.WaitForEvent(room, func(e *event.Event) bool {
			return e.Type == event.EventReaction && e.Sender == ghost && e.Content.AsReaction().RelatesTo.EventID == hi.ID
		})

		// After a restart every mapping is still there.
		b.restart()
		receive(t, b, &bridgev2.RemoteEvent{Kind: bridgev2.RemoteDelete, ID: "d1", Portal: portal, Sender: bridgev2.EventSender{Sender: "bob"}, Target: "m1"})
		alice.WaitForEvent(room, func(e *event.Event) bool {
			return e.Type == event.EventRedaction && e.Sender == ghost && (e.Redacts == hi.ID || e.Content.AsRedaction().Redacts == hi.ID)
		})
		after := alice.Send(room, "still bridged after a restart")
		waitCall(t, b, func(c testnet.Call) bool { return c.Text == "still bridged after a restart" })
		_ = after
		_ = aliceID
	})
}

func TestUnknownCommandsAndBadInputGetHelpfulReplies(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, b *bridge) {
		alice, _ := newUser(t, "alice")
		bot := b.botID()
		mgmt := alice.DM(bot)
		alice.WaitForMessage(mgmt, bot, "management room")
		ask := alice.Send(mgmt, "frobnicate")
		reply := alice.WaitForMessageAfter(mgmt, ask, bot, "Unknown command")
		if !strings.Contains(reply.Content.AsMessage().Body, "help") {
			t.Errorf("unknown command reply does not point to help: %q", reply.Content.AsMessage().Body)
		}
		ask = alice.Send(mgmt, "start-chat bob")
		alice.WaitForMessageAfter(mgmt, ask, bot, "not logged in")
		ask = alice.Send(mgmt, "logout nobody")
		alice.WaitForMessageAfter(mgmt, ask, bot, "no login called")
	})
}

func TestStartChatOpensAPortalTheUserCanTextFrom(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, b *bridge) {
		alice, aliceID := newUser(t, "alice")
		mgmt := login(t, b, alice, "alice2")
		ask := alice.Send(mgmt, "pm carol")
		alice.WaitForMessageAfter(mgmt, ask, b.botID(), "Opened a chat with Test user carol")
		ghost := b.ghostID("carol")
		invite := alice.WaitForInvite(func(inv *matrixtest.Invite) bool { return inv.Sender == ghost })
		alice.WaitForMembership(invite.RoomID, aliceID, event.MembershipJoin)
		alice.Send(invite.RoomID, "hi carol")
		c := waitCall(t, b, func(c testnet.Call) bool { return c.Text == "hi carol" })
		if c.Portal.ID != "carol" || c.Login != "alice2" {
			t.Errorf("message went to %+v", c)
		}
	})
}

func waitCall(t *testing.T, b *bridge, pred func(testnet.Call) bool) testnet.Call {
	t.Helper()
	c, err := b.remote.WaitForCall(b.ctx(), pred)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func receive(t *testing.T, b *bridge, evt *bridgev2.RemoteEvent) {
	t.Helper()
	if evt.Timestamp.IsZero() {
		evt.Timestamp = time.Now()
	}
	if _, err := b.remote.Receive(b.ctx(), evt); err != nil {
		t.Fatal(err)
	}
}
