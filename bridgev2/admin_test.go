package bridgev2_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/bridgev2"
	"github.com/trestle-bridge/trestle/bridgev2/bridgetest"
	"github.com/trestle-bridge/trestle/bridgev2/bridgetest/testnet"
	"github.com/trestle-bridge/trestle/bridgev2/database"
	"github.com/trestle-bridge/trestle/bridgev2/networkid"
)

const admin = id.UserID("@admin:example.com")

func TestHelpListsAdminCommandsOnlyToAdmins(t *testing.T) {
	setup(t, func(t *testing.T, h *bridgetest.Harness, remote *testnet.Remote, login *bridgev2.UserLogin) {
		bot := h.Matrix.BotUserID()
		mine := h.ManagementRoom(alice)
		h.SendText(alice, mine, "help")
		help := h.WaitForText(mine, bot, "start-chat")
		if body := help.Content.AsMessage().Body; strings.Contains(body, "list-user") || strings.Contains(body, "delete-portal") {
			t.Errorf("a user's help lists admin commands:\n%s", body)
		}
		h.SendText(alice, mine, "list-user @admin:example.com")
		h.WaitForText(mine, bot, "You don't have permission to use `list-user`")

		theirs := h.ManagementRoom(admin)
		h.SendText(admin, theirs, "help")
		for _, cmd := range []string{"list-user", "logout-user", "resync", "delete-portal", "clean-portals"} {
			h.WaitForText(theirs, bot, "`"+cmd)
		}
	})
}

func TestAnAdminListsAUsersLoginsAndChatsAndLogsThemOut(t *testing.T) {
	setup(t, func(t *testing.T, h *bridgetest.Harness, remote *testnet.Remote, login *bridgev2.UserLogin) {
		_, room := chatWithBob(t, h, remote, login)
		bot := h.Matrix.BotUserID()
		mgmt := h.ManagementRoom(admin)
		h.SendText(admin, mgmt, "list-user @alice:example.com")
		list := h.WaitForText(mgmt, bot, "Logins of @alice:example.com")
		if body := list.Content.AsMessage().Body; !strings.Contains(body, "alice1") || !strings.Contains(body, string(room)) {
			t.Errorf("the list does not name alice's login and her chat with bob:\n%s", body)
		}
		h.SendText(admin, mgmt, "logout-user @alice:example.com alice1")
		h.WaitForText(mgmt, bot, "Logged @alice:example.com out of")
		if h.Bridge().GetLogin(login.ID) != nil {
			t.Error("alice's login is still there")
		}
	})
}

func TestAnAdminResyncsAndDeletesAPortal(t *testing.T) {
	setup(t, func(t *testing.T, h *bridgetest.Harness, remote *testnet.Remote, login *bridgev2.UserLogin) {
		key, room := chatWithBob(t, h, remote, login)
		bot, ghost := h.Matrix.BotUserID(), h.Matrix.GhostUserID("bob")
		h.Matrix.JoinAsUser(room, admin)

		// bob's ghost left (someone kicked it); a resync brings it back
		// and names the room after the chat.
		if err := h.Matrix.LeaveRoom(h.Ctx(), ghost, room); err != nil {
			t.Fatal(err)
		}
		h.SendText(admin, room, "!test resync")
		h.WaitForText(room, bot, "matches the chat again")
		waitMembership(t, h, room, ghost, "join")
		if name := stateOf(h, room, event.StateRoomName); name == nil || name.Content.AsRoomName().Name != "Test user bob" {
			t.Errorf("room name after resync: %+v", name)
		}

		h.SendText(admin, room, "!test delete-portal")
		h.WaitForText(room, bot, "no longer bridged")
		for _, u := range []id.UserID{alice, admin, bot, ghost} {
			waitMembership(t, h, room, u, "leave")
		}
		waitUnbridged(t, h, room)
		// The chat lives on: bob's next text opens a new room.
		receive(t, h, remote, remoteText(login, "bob", "after", "are you there?"))
		if again := h.WaitForPortal(key, alice); again == room {
			t.Error("bob's text went to the deleted room")
		}
	})
}

func TestCleanPortalsDeletesThoseWhoseLoginIsGone(t *testing.T) {
	setup(t, func(t *testing.T, h *bridgetest.Harness, remote *testnet.Remote, login *bridgev2.UserLogin) {
		_, room := chatWithBob(t, h, remote, login)
		// The login row vanished without a logout (deleted by hand, or a
		// crash halfway through one); its portal stayed.
		if err := h.Bridge().DB.Write(h.Ctx(), func(ctx context.Context, tx database.Execer) error {
			return h.Bridge().DB.Logins.Delete(ctx, tx, login.ID)
		}); err != nil {
			t.Fatal(err)
		}
		mgmt := h.ManagementRoom(admin)
		h.SendText(admin, mgmt, "clean-portals")
		h.WaitForText(mgmt, h.Matrix.BotUserID(), "Deleted 1 portals")
		waitMembership(t, h, room, alice, "leave")
		if _, err := h.Bridge().DB.Portals.Get(h.Ctx(), networkid.PortalKey{ID: "bob", Receiver: login.ID}); err == nil {
			t.Error("the orphaned portal is still stored")
		}
	})
}

// stateOf returns a room's state event of a type with an empty key.
func stateOf(h *bridgetest.Harness, room id.RoomID, t event.Type) *event.Event {
	for _, r := range h.Matrix.Rooms() {
		if r.ID == room {
			if st := r.State[t.Type+"|"]; st != nil {
				if st.Content.Parsed == nil {
					_ = st.Content.ParseRaw(t)
				}
				return st
			}
		}
	}
	return nil
}

// waitUnbridged waits until room is no longer a portal.
func waitUnbridged(t *testing.T, h *bridgetest.Harness, room id.RoomID) {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		if p, err := h.Bridge().GetPortalByRoom(h.Ctx(), room); err == nil && p == nil {
			return
		}
		select {
		case <-h.Ctx().Done():
			t.Fatalf("room %s is still a portal", room)
		case <-tick.C:
		}
	}
}
