package bridgev2_test

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/bridgev2"
	"github.com/trestle-bridge/trestle/bridgev2/bridgetest"
	"github.com/trestle-bridge/trestle/bridgev2/bridgetest/testnet"
	"github.com/trestle-bridge/trestle/bridgev2/networkid"
)

// waitPortalOf waits until the core has made room a portal, and returns it.
func waitPortalOf(t *testing.T, h *bridgetest.Harness, room id.RoomID) *bridgev2.Portal {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		if p, err := h.Bridge().GetPortalByRoom(h.Ctx(), room); err == nil && p != nil {
			return p
		}
		select {
		case <-h.Ctx().Done():
			t.Fatalf("room %s never became a portal:\n%s", room, describeRoom(h, room))
		case <-tick.C:
		}
	}
}

func describeRoom(h *bridgetest.Harness, room id.RoomID) string {
	var out []byte
	for _, e := range h.Matrix.Events(room) {
		line, _ := json.Marshal(map[string]any{"sender": e.Sender, "type": e.Type.Type, "content": json.RawMessage(e.Content.VeryRaw)})
		out = append(append(out, line...), '\n')
	}
	return string(out)
}

// inviteGhosts creates a room as alice with the ghosts of names invited, as
// Element does when she starts a chat with their Matrix IDs, and delivers
// the invites to the bridge.
func inviteGhosts(h *bridgetest.Harness, names ...networkid.UserID) id.RoomID {
	var ghosts []id.UserID
	for _, n := range names {
		ghosts = append(ghosts, h.Matrix.GhostUserID(n))
	}
	room := h.Matrix.CreateUserRoom(alice, ghosts...)
	for _, g := range ghosts {
		h.SendMembership(alice, room, g, event.MembershipInvite)
	}
	return room
}

func TestInvitingAGhostIntoANewRoomMakesItTheDMWithThatContact(t *testing.T) {
	setup(t, func(t *testing.T, h *bridgetest.Harness, remote *testnet.Remote, login *bridgev2.UserLogin) {
		room := inviteGhosts(h, "bob")
		ghost := h.Matrix.GhostUserID("bob")
		waitMembership(t, h, room, ghost, "join")
		waitMembership(t, h, room, h.Matrix.BotUserID(), "join")
		portal := waitPortalOf(t, h, room)
		if want := (networkid.PortalKey{ID: "bob", Receiver: login.ID}); portal.PortalKey != want || portal.OtherUserID != "bob" {
			t.Fatalf("the room became portal %s with %q, want the DM %s with bob", portal.PortalKey, portal.OtherUserID, want)
		}

		h.SendText(alice, room, "hi bob, from a room I made")
		if _, err := remote.WaitForCall(h.Ctx(), func(c testnet.Call) bool {
			return c.Kind == "message" && c.Portal.ID == "bob" && c.Text == "hi bob, from a room I made"
		}); err != nil {
			t.Fatal(err)
		}
		receive(t, h, remote, remoteText(login, "bob", "answer", "got it"))
		h.WaitForText(room, ghost, "got it")
		if n := len(h.Matrix.Rooms()); n != 1 {
			t.Errorf("there are %d rooms, want only the one alice made", n)
		}

		// After a restart the room is still the portal, and the invite,
		// already handled, changes nothing.
		h.Restart()
		h.SendText(alice, room, "still here")
		if _, err := remote.WaitForCall(h.Ctx(), func(c testnet.Call) bool { return c.Text == "still here" }); err != nil {
			t.Fatal(err)
		}
		if h.Matrix.Membership(room, ghost) != "join" {
			t.Errorf("bob's ghost is %q after the restart", h.Matrix.Membership(room, ghost))
		}
	})
}

func TestInvitingSeveralGhostsIntoANewRoomStartsAGroup(t *testing.T) {
	setup(t, func(t *testing.T, h *bridgetest.Harness, remote *testnet.Remote, login *bridgev2.UserLogin) {
		room := inviteGhosts(h, "bob", "carol")
		for _, m := range []networkid.UserID{"bob", "carol"} {
			waitMembership(t, h, room, h.Matrix.GhostUserID(m), "join")
		}
		portal := waitPortalOf(t, h, room)
		key := networkid.PortalKey{ID: testnet.GroupID("bob", "carol"), Receiver: login.ID}
		if portal.PortalKey != key {
			t.Fatalf("the room became portal %s, want the group %s", portal.PortalKey, key)
		}
		if got := remote.GroupMembers(key.ID); !slices.Equal(got, []networkid.UserID{"bob", "carol"}) {
			t.Errorf("the network's group has %v", got)
		}
		h.SendText(alice, room, "hello both")
		if _, err := remote.WaitForCall(h.Ctx(), func(c testnet.Call) bool { return c.Portal == key && c.Text == "hello both" }); err != nil {
			t.Fatal(err)
		}
		for _, c := range remote.Calls() {
			if c.Kind == "member_add" {
				t.Errorf("the invites of the group's own members were sent as additions: %+v", c)
			}
		}
	})
}

func TestAGhostInviteFromAUserWithoutALoginIsExplainedAndLeft(t *testing.T) {
	setup(t, func(t *testing.T, h *bridgetest.Harness, remote *testnet.Remote, login *bridgev2.UserLogin) {
		bobUser := id.UserID("@bob:example.com")
		ghost := h.Matrix.GhostUserID("carol")
		room := h.Matrix.CreateUserRoom(bobUser, ghost)
		h.SendMembership(bobUser, room, ghost, event.MembershipInvite)
		h.WaitForText(room, ghost, "not logged in")
		waitMembership(t, h, room, ghost, "leave")
		if p, err := h.Bridge().GetPortalByRoom(h.Ctx(), room); err != nil || p != nil {
			t.Errorf("the room became a portal (%v, %v)", p, err)
		}
	})
}

func TestInvitingAGhostWhoseChatHasARoomPointsToThatRoom(t *testing.T) {
	setup(t, func(t *testing.T, h *bridgetest.Harness, remote *testnet.Remote, login *bridgev2.UserLogin) {
		_, existing := chatWithBob(t, h, remote, login)
		room := inviteGhosts(h, "bob")
		ghost := h.Matrix.GhostUserID("bob")
		h.WaitForText(room, ghost, string(existing))
		waitMembership(t, h, room, ghost, "leave")
		if p, _ := h.Bridge().GetPortalByRoom(h.Ctx(), room); p != nil {
			t.Errorf("a second room became the portal of the chat with bob")
		}
	})
}

// roomFeatures returns the com.beeper.room_features state of a room.
func roomFeatures(t *testing.T, h *bridgetest.Harness, room id.RoomID) *event.RoomFeatures {
	t.Helper()
	for _, r := range h.Matrix.Rooms() {
		if r.ID != room {
			continue
		}
		if st := r.State[event.StateBeeperRoomFeatures.Type+"|"]; st != nil {
			if f, ok := st.Content.Parsed.(*event.RoomFeatures); ok {
				return f
			}
			var f event.RoomFeatures
			if err := json.Unmarshal(st.Content.VeryRaw, &f); err != nil {
				t.Fatal(err)
			}
			return &f
		}
	}
	t.Fatalf("room %s has no room features", room)
	return nil
}

func TestPortalRoomsTellClientsWhatTheNetworkSupports(t *testing.T) {
	setup(t, func(t *testing.T, h *bridgetest.Harness, remote *testnet.Remote, login *bridgev2.UserLogin) {
		_, room := chatWithBob(t, h, remote, login)
		f := roomFeatures(t, h, room)
		if f.Edit != event.CapLevelFullySupported || f.Reaction != event.CapLevelFullySupported || f.Delete != event.CapLevelFullySupported {
			t.Errorf("features of a testnet room: %+v", f)
		}
		// A room the user made gets them too.
		made := inviteGhosts(h, "carol")
		waitPortalOf(t, h, made)
		// They come after the room became a portal, as a state event.
		if _, err := h.Matrix.WaitForEvent(h.Ctx(), made, "room features", func(evt *event.Event) bool {
			return evt.Type == event.StateBeeperRoomFeatures
		}); err != nil {
			t.Fatal(err)
		}
		if f := roomFeatures(t, h, made); f.Edit != event.CapLevelFullySupported {
			t.Errorf("features of a room alice made: %+v", f)
		}
	})
}
