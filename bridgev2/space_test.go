package bridgev2_test

import (
	"testing"

	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/bridgev2"
	"github.com/trestle-bridge/trestle/bridgev2/bridgeconfig"
	"github.com/trestle-bridge/trestle/bridgev2/bridgetest"
	"github.com/trestle-bridge/trestle/bridgev2/bridgetest/testnet"
	"github.com/trestle-bridge/trestle/bridgev2/networkid"
)

// spaceChildren returns the rooms a space lists as children.
func spaceChildren(h *bridgetest.Harness, space id.RoomID) []id.RoomID {
	var out []id.RoomID
	for _, r := range h.Matrix.Rooms() {
		if r.ID != space {
			continue
		}
		for _, st := range r.State {
			if st.Type.Type == "m.space.child" && len(st.Content.VeryRaw) > 2 {
				out = append(out, id.RoomID(st.GetStateKey()))
			}
		}
	}
	return out
}

func TestEachLoginHasASpaceWithEveryOneOfItsChats(t *testing.T) {
	for _, enabled := range []bool{true, false} {
		remote := testnet.NewRemote()
		h := bridgetest.New(t, remote.Connector, bridgetest.Options{Configure: func(c *bridgeconfig.Config) {
			c.Bridge.PersonalFilteringSpaces = enabled
		}})
		one := h.Login(alice, map[string]string{"username": "alice1", "token": "secret"})
		two := h.Login(alice, map[string]string{"username": "alice2", "token": "secret"})
		receive(t, h, remote, remoteText(one, "bob", "b1", "hi from bob"))
		bobRoom := h.WaitForPortal(networkid.PortalKey{ID: "bob", Receiver: one.ID}, alice)
		receive(t, h, remote, remoteText(two, "carol", "c1", "hi from carol"))
		carolRoom := h.WaitForPortal(networkid.PortalKey{ID: "carol", Receiver: two.ID}, alice)

		spaces := func() int {
			n := 0
			for _, r := range h.Matrix.Rooms() {
				if r.Request != nil && r.Request.CreationContent["type"] == "m.space" {
					n++
				}
			}
			return n
		}
		if !enabled {
			if n := spaces(); n != 0 {
				t.Errorf("spaces are off, yet the bridge made %d", n)
			}
			continue
		}
		for _, tc := range []struct {
			login *bridgev2.UserLogin
			room  id.RoomID
		}{{one, bobRoom}, {two, carolRoom}} {
			// The portal joins its space just after its room is made.
			if _, err := h.Matrix.WaitForRoom(h.Ctx(), "a space holding "+string(tc.room), func(r *bridgetest.FakeRoom) bool {
				for _, st := range r.State {
					if st.Type.Type == "m.space.child" && st.GetStateKey() == string(tc.room) && len(st.Content.VeryRaw) > 2 {
						return true
					}
				}
				return false
			}); err != nil {
				t.Fatal(err)
			}
			space, err := tc.login.Space(h.Ctx())
			if err != nil || space == "" {
				t.Fatalf("login %s has no space (%v)", tc.login.ID, err)
			}
			if got := spaceChildren(h, space); len(got) != 1 || got[0] != tc.room {
				t.Errorf("the space of %s holds %v, want only %s", tc.login.ID, got, tc.room)
			}
			if m := h.Matrix.Membership(space, alice); m != "invite" {
				t.Errorf("alice's membership of the space of %s: %q", tc.login.ID, m)
			}
		}
		// Counted once both portals are in their spaces.
		if n := spaces(); n != 2 {
			t.Errorf("%d spaces for two logins", n)
		}
	}
}
