package matrixtest_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/trestle-bridge/trestle/internal/dendrite"
	"github.com/trestle-bridge/trestle/internal/matrixtest"
	"maunium.net/go/mautrix/event"
)

// login creates a user on srv and starts a test client for it.
func login(t *testing.T, srv *dendrite.Server, localpart string, opts matrixtest.Options) *matrixtest.T {
	t.Helper()
	password := localpart + "-password"
	if err := srv.CreateUser(t.Context(), localpart, password, false); err != nil {
		t.Fatal(err)
	}
	cli, err := srv.Login(t.Context(), localpart, password)
	if err != nil {
		t.Fatal(err)
	}
	return matrixtest.StartForTest(t, cli, opts)
}

// TestTwoUsersOnDendrite plays both sides of a conversation between real
// users, the shape of every bridge end-to-end test: bob stands in for the
// bridge bot and auto-joins like it does.
func TestTwoUsersOnDendrite(t *testing.T) {
	srv := dendrite.StartForTest(t, dendrite.Options{})
	alice := login(t, srv, "alice", matrixtest.Options{})
	bob := login(t, srv, "bob", matrixtest.Options{AutoJoin: true})

	room := alice.DM(bob.UserID)
	inv := bob.WaitForInvite(func(inv *matrixtest.Invite) bool { return inv.RoomID == room })
	if !inv.IsDirect || inv.Sender != alice.UserID {
		t.Errorf("bob's invite: is_direct=%v from %s, want a direct invite from alice", inv.IsDirect, inv.Sender)
	}

	help := alice.Send(room, "help")
	bob.WaitForMessage(room, alice.UserID, "help")
	bob.SendNotice(room, "Commands: send, status")
	answer := alice.WaitForMessageAfter(room, help, bob.UserID, "Commands:")
	if answer.Content.AsMessage().MsgType != event.MsgNotice {
		t.Errorf("the answer is a %s, want m.notice", answer.Content.AsMessage().MsgType)
	}

	t.Run("formatting, replies and emotes", func(t *testing.T) {
		alice.SendHTML(room, "bold move", "<b>bold</b> move")
		got := bob.WaitForMessage(room, alice.UserID, "bold move").Content.AsMessage()
		if got.Format != event.FormatHTML || got.FormattedBody != "<b>bold</b> move" {
			t.Errorf("bob got format %q body %q", got.Format, got.FormattedBody)
		}
		reply := bob.SendReply(room, help, "you asked for help")
		evt := alice.WaitForEvent(room, func(e *event.Event) bool { return e.ID == reply })
		if to := evt.Content.AsMessage().RelatesTo.GetReplyTo(); to != help {
			t.Errorf("reply points to %s, want %s", to, help)
		}
		alice.SendEmote(room, "waves")
		if bob.WaitForMessage(room, alice.UserID, "waves").Content.AsMessage().MsgType != event.MsgEmote {
			t.Error("the emote did not arrive as m.emote")
		}
	})

	t.Run("edits, reactions and redactions", func(t *testing.T) {
		typo := alice.Send(room, "helo")
		edit := alice.Edit(room, typo, "hello")
		got := bob.WaitForEvent(room, func(e *event.Event) bool { return e.ID == edit }).Content.AsMessage()
		if got.NewContent == nil || got.NewContent.Body != "hello" || got.RelatesTo.GetReplaceID() != typo {
			t.Errorf("bob got edit %+v", got)
		}
		like := bob.React(room, typo, "👍")
		reaction := alice.WaitForEvent(room, func(e *event.Event) bool { return e.ID == like })
		if rel := reaction.Content.AsReaction().RelatesTo; rel.Key != "👍" || rel.EventID != typo {
			t.Errorf("alice got reaction %+v", rel)
		}
		redaction := bob.Redact(room, like, "changed my mind")
		alice.WaitForEvent(room, func(e *event.Event) bool {
			return e.Type == event.EventRedaction && e.ID == redaction && e.Redacts == like
		})
	})

	t.Run("media", func(t *testing.T) {
		png := bytes.Repeat([]byte{0x89, 'P', 'N', 'G'}, 1024)
		sent := alice.SendImage(room, png, "image/png", "cat.png")
		msg := bob.WaitForEvent(room, func(e *event.Event) bool { return e.ID == sent }).Content.AsMessage()
		if msg.MsgType != event.MsgImage || msg.Info == nil || msg.Info.Size != len(png) || msg.Info.MimeType != "image/png" {
			t.Fatalf("bob got %+v", msg)
		}
		uri, err := msg.URL.Parse()
		if err != nil {
			t.Fatal(err)
		}
		data, err := bob.Matrix.DownloadBytes(t.Context(), uri)
		if err != nil || !bytes.Equal(data, png) {
			t.Errorf("downloading %s: %d bytes, err %v; want the %d uploaded", uri, len(data), err, len(png))
		}
	})

	t.Run("receipts and typing", func(t *testing.T) {
		last := alice.Send(room, "read me")
		bob.WaitForMessage(room, alice.UserID, "read me")
		bob.MarkRead(room, last)
		alice.WaitForReceipt(room, bob.UserID, last)
		bob.SetTyping(room, true)
		alice.WaitForEphemeral(room, func(e *event.Event) bool {
			return e.Type == event.EphemeralEventTyping && len(e.Content.AsTyping().UserIDs) == 1
		})
	})

	t.Run("the sync loop rides out a homeserver outage", func(t *testing.T) {
		srv.Kill()
		// While the server is down, waits time out with the sync error.
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		_, err := alice.Client.WaitForMessage(ctx, room, bob.UserID, "never sent")
		cancel()
		if err == nil || !strings.Contains(err.Error(), "the last /sync failed") {
			t.Errorf("a wait during the outage should mention the failing sync, got: %v", err)
		}
		if err := srv.StartAgain(t.Context()); err != nil {
			t.Fatal(err)
		}
		bob.Send(room, "back after the outage")
		alice.WaitForMessage(room, bob.UserID, "back after the outage")
	})

	t.Run("failures explain themselves", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		defer cancel()
		_, err := alice.Client.WaitForMessage(ctx, room, bob.UserID, "a message bob never sent")
		if err == nil {
			t.Fatal("waiting for a message nobody sent succeeded")
		}
		t.Logf("a failed wait reads:\n%v", err)
		if !strings.Contains(err.Error(), "back after the outage") {
			t.Errorf("the failure does not list the last events seen")
		}
	})
}
