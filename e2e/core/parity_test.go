package core_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/bridgev2"
	"github.com/trestle-bridge/trestle/bridgev2/bridgetest/testnet"
	"github.com/trestle-bridge/trestle/bridgev2/networkid"
	"github.com/trestle-bridge/trestle/internal/matrixtest"
)

func TestInvitingAGhostFromElementOpensTheChat(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, b *bridge) {
		alice, _ := newUser(t, "alice")
		login(t, b, alice, "alice5")
		ghost := b.ghostID("dave")
		// What Element does when alice types dave's Matrix ID into "Start
		// chat": a trusted private room, dave's ghost invited.
		room := alice.DM(ghost)
		alice.WaitForMembership(room, b.botID(), event.MembershipJoin)
		alice.Send(room, "hi dave")
		c := waitCall(t, b, func(c testnet.Call) bool { return c.Text == "hi dave" })
		if c.Portal.ID != "dave" || c.Login != "alice5" {
			t.Errorf("the text went to %+v", c)
		}
		receive(t, b, &bridgev2.RemoteEvent{Kind: bridgev2.RemoteMessage, ID: "d1", Portal: c.Portal,
			Sender: bridgev2.EventSender{Sender: "dave"}, Parts: []bridgev2.MessagePart{{Text: "hi alice"}}})
		alice.WaitForMessage(room, ghost, "hi alice")
		// The room says what the network supports, set by the ghost: only
		// it and alice have the power to in a room she made.
		alice.WaitForEvent(room, func(e *event.Event) bool {
			return e.Type == event.StateBeeperRoomFeatures && e.Sender == ghost
		})
	})
}

func TestPortalRoomsCarryTheNetworksFeatures(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, b *bridge) {
		alice, _ := newUser(t, "alice")
		login(t, b, alice, "alice7")
		receive(t, b, &bridgev2.RemoteEvent{Kind: bridgev2.RemoteMessage, ID: "f1", Portal: networkid.PortalKey{ID: "gina", Receiver: "alice7"},
			Sender: bridgev2.EventSender{Sender: "gina"}, Parts: []bridgev2.MessagePart{{Text: "hi"}}})
		invite := alice.WaitForInvite(func(inv *matrixtest.Invite) bool { return inv.Sender == b.ghostID("gina") })
		st := alice.WaitForEvent(invite.RoomID, func(e *event.Event) bool { return e.Type == event.StateBeeperRoomFeatures })
		var f event.RoomFeatures
		if err := json.Unmarshal(st.Content.VeryRaw, &f); err != nil {
			t.Fatal(err)
		}
		if f.Edit != event.CapLevelFullySupported || f.Reaction != event.CapLevelFullySupported {
			t.Errorf("a testnet portal's features: %s", st.Content.VeryRaw)
		}
	})
}

func TestInvitingTwoGhostsFromElementStartsAGroup(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, b *bridge) {
		alice, _ := newUser(t, "alice")
		login(t, b, alice, "alice6")
		erin, frank := b.ghostID("erin"), b.ghostID("frank")
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		resp, err := alice.Client.Matrix.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Invite: []id.UserID{erin, frank}})
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range []id.UserID{erin, frank, b.botID()} {
			alice.WaitForMembership(resp.RoomID, g, event.MembershipJoin)
		}
		alice.Send(resp.RoomID, "hello group")
		c := waitCall(t, b, func(c testnet.Call) bool { return c.Text == "hello group" })
		if c.Portal.ID != testnet.GroupID("erin", "frank") {
			t.Errorf("the text went to %+v, want the group of erin and frank", c)
		}
	})
}

var adminOnce sync.Once

// adminUser logs in @admin:localhost, the bridge admin of every bridge
// here, creating the account the first time.
func adminUser(t *testing.T) *matrixtest.T {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var createErr error
	adminOnce.Do(func() { createErr = homeserver.CreateUser(ctx, "admin", "password-admin", false) })
	if createErr != nil {
		t.Fatal(createErr)
	}
	cli, err := homeserver.Login(ctx, "admin", "password-admin")
	if err != nil {
		t.Fatal(err)
	}
	return matrixtest.StartForTest(t, cli, matrixtest.Options{AutoJoin: true})
}

func TestAnAdminFindsAndDeletesAUsersPortal(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, b *bridge) {
		alice, aliceID := newUser(t, "alice")
		login(t, b, alice, "alice8")
		receive(t, b, &bridgev2.RemoteEvent{Kind: bridgev2.RemoteMessage, ID: "h1", Portal: networkid.PortalKey{ID: "hank", Receiver: "alice8"},
			Sender: bridgev2.EventSender{Sender: "hank"}, Parts: []bridgev2.MessagePart{{Text: "hi"}}})
		invite := alice.WaitForInvite(func(inv *matrixtest.Invite) bool { return inv.Sender == b.ghostID("hank") })
		room := invite.RoomID
		alice.WaitForMessage(room, b.ghostID("hank"), "hi")

		admin := adminUser(t)
		bot := b.botID()
		mgmt := admin.DM(bot)
		admin.WaitForMessage(mgmt, bot, "management room")
		ask := admin.Send(mgmt, "list-user "+string(aliceID))
		list := admin.WaitForMessageAfter(mgmt, ask, bot, "Logins of")
		if body := list.Content.AsMessage().Body; !strings.Contains(body, "alice8") || !strings.Contains(body, string(room)) {
			t.Errorf("list-user does not show alice's login and chat:\n%s", body)
		}

		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := alice.Client.Matrix.InviteUser(ctx, room, &mautrix.ReqInviteUser{UserID: admin.Client.UserID}); err != nil {
			t.Fatal(err)
		}
		alice.WaitForMembership(room, admin.Client.UserID, event.MembershipJoin)
		admin.Send(room, "!tw delete-portal")
		alice.WaitForMessage(room, bot, "no longer bridged")
		alice.WaitForMembership(room, aliceID, event.MembershipLeave)
	})
}

func TestWithLoginMatrixTheUsersOwnTextsAreTheirsOnDendrite(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, b *bridge) {
		alice, aliceID := newUser(t, "alice")
		mgmt := login(t, b, alice, "alice9")
		ask := alice.Send(mgmt, "login-matrix "+alice.Client.Matrix.AccessToken)
		alice.WaitForMessageAfter(mgmt, ask, b.botID(), "now appear as your Matrix account")

		key := networkid.PortalKey{ID: "ivy", Receiver: "alice9"}
		receive(t, b, &bridgev2.RemoteEvent{Kind: bridgev2.RemoteMessage, ID: "i1", Portal: key,
			Sender: bridgev2.EventSender{Sender: "ivy"}, Parts: []bridgev2.MessagePart{{Text: "hi alice"}}})
		invite := alice.WaitForInvite(func(inv *matrixtest.Invite) bool { return inv.Sender == b.ghostID("ivy") })
		room := invite.RoomID
		alice.WaitForMessage(room, b.ghostID("ivy"), "hi alice")
		receive(t, b, &bridgev2.RemoteEvent{Kind: bridgev2.RemoteMessage, ID: "i2", Portal: key,
			Sender: bridgev2.EventSender{IsFromMe: true, Sender: "alice9"}, Parts: []bridgev2.MessagePart{{Text: "sent from my phone"}}})
		alice.WaitForMessage(room, aliceID, "sent from my phone")

		// Dendrite pushes that event back to the bridge; it must not go
		// out again. The next text from Matrix is in the same lane.
		alice.Send(room, "typed in Element")
		waitCall(t, b, func(c testnet.Call) bool { return c.Text == "typed in Element" })
		for _, c := range b.remote.Calls() {
			if c.Text == "sent from my phone" {
				t.Errorf("the double-puppeted text was bridged back out: %+v", c)
			}
		}
	})
}

func TestWithSpacesOnEachLoginsChatsAreInItsSpace(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, b *bridge) {
		if err := b.files.Edit(map[string]any{"bridge.personal_filtering_spaces": true}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := b.files.Edit(map[string]any{"bridge.personal_filtering_spaces": false}); err != nil {
				t.Error(err)
			}
		})
		b.restart()
		alice, _ := newUser(t, "alice")
		login(t, b, alice, "alice10")
		receive(t, b, &bridgev2.RemoteEvent{Kind: bridgev2.RemoteMessage, ID: "j1", Portal: networkid.PortalKey{ID: "jay", Receiver: "alice10"},
			Sender: bridgev2.EventSender{Sender: "jay"}, Parts: []bridgev2.MessagePart{{Text: "hi"}}})
		portal := alice.WaitForInvite(func(inv *matrixtest.Invite) bool { return inv.Sender == b.ghostID("jay") })
		space := alice.WaitForInvite(func(inv *matrixtest.Invite) bool {
			return inv.Sender == b.botID() && inv.RoomID != portal.RoomID && !inv.IsDirect
		})
		alice.WaitForMembership(space.RoomID, alice.Client.UserID, event.MembershipJoin)
		alice.WaitForEvent(space.RoomID, func(e *event.Event) bool {
			return e.Type == event.StateSpaceChild && e.GetStateKey() == string(portal.RoomID)
		})
		if create := alice.State(space.RoomID, event.StateCreate, ""); create == nil || create.Content.Raw["type"] != "m.space" {
			t.Errorf("the room holding the chat is not a space: %+v", create)
		}
	})
}
