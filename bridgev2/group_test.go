package bridgev2_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/bridgev2"
	"github.com/trestle-bridge/trestle/bridgev2/bridgetest"
	"github.com/trestle-bridge/trestle/bridgev2/bridgetest/testnet"
	"github.com/trestle-bridge/trestle/bridgev2/networkid"
)

// startGroup runs start-chat with several names in alice's management
// room and returns the group's portal key and room, once alice is in it.
func startGroup(t *testing.T, h *bridgetest.Harness, login *bridgev2.UserLogin, names ...networkid.UserID) (networkid.PortalKey, id.RoomID) {
	t.Helper()
	mgmt := h.ManagementRoom(alice)
	list := make([]string, len(names))
	for i, n := range names {
		list[i] = string(n)
	}
	h.SendText(alice, mgmt, "start-chat "+strings.Join(list, ", "))
	h.WaitForText(mgmt, h.Matrix.BotUserID(), "Opened a group chat")
	key := networkid.PortalKey{ID: testnet.GroupID(names...), Receiver: login.ID}
	return key, h.WaitForPortal(key, alice)
}

// waitMembership waits until a user's membership of a room is want.
func waitMembership(t *testing.T, h *bridgetest.Harness, room id.RoomID, user id.UserID, want string) {
	t.Helper()
	if err := h.Matrix.WaitForMembership(h.Ctx(), room, user, want); err != nil {
		t.Fatalf("%v (is %q)", err, h.Matrix.Membership(room, user))
	}
}

func TestStartChatWithSeveralNamesOpensAGroupWithAGhostForEach(t *testing.T) {
	setup(t, func(t *testing.T, h *bridgetest.Harness, remote *testnet.Remote, login *bridgev2.UserLogin) {
		key, room := startGroup(t, h, login, "bob", "carol")
		if got := remote.GroupMembers(key.ID); !slices.Equal(got, []networkid.UserID{"bob", "carol"}) {
			t.Fatalf("the network's group has %v", got)
		}
		for _, member := range []networkid.UserID{"bob", "carol"} {
			waitMembership(t, h, room, h.Matrix.GhostUserID(member), "join")
		}
		for _, r := range h.Matrix.Rooms() {
			if r.ID != room {
				continue
			}
			if r.Request.IsDirect || r.Creator != h.Matrix.BotUserID() {
				t.Errorf("a group room is created by the bot and is not a DM: %+v", r.Request)
			}
			if level := r.Request.PowerLevelOverride.Users[alice]; level < 50 {
				t.Errorf("alice has power level %d in her group, too low to kick", level)
			}
		}

		// Texts from members arrive from their ghosts, and a reply goes to the group.
		receive(t, h, remote, &bridgev2.RemoteEvent{Kind: bridgev2.RemoteMessage, ID: "g1", Portal: key,
			Sender: bridgev2.EventSender{Sender: "carol"}, Timestamp: time.Now(), Parts: []bridgev2.MessagePart{{Text: "hi all"}}})
		h.WaitForText(room, h.Matrix.GhostUserID("carol"), "hi all")
		h.SendText(alice, room, "hello group")
		if _, err := remote.WaitForCall(h.Ctx(), func(c testnet.Call) bool { return c.Kind == "message" && c.Portal == key && c.Text == "hello group" }); err != nil {
			t.Fatal(err)
		}
	})
}

func TestAGroupFirstSeenThroughATextGetsARoomWithEveryMember(t *testing.T) {
	setup(t, func(t *testing.T, h *bridgetest.Harness, remote *testnet.Remote, login *bridgev2.UserLogin) {
		// Someone else started the group on the network; the bridge first
		// hears of it through a member's text, and asks who is in it.
		members := []networkid.UserID{"bob", "carol", "dave"}
		key := networkid.PortalKey{ID: testnet.GroupID(members...), Receiver: login.ID}
		remote.AddGroup(key.ID, members...)
		receive(t, h, remote, &bridgev2.RemoteEvent{Kind: bridgev2.RemoteMessage, ID: "first", Portal: key,
			Sender: bridgev2.EventSender{Sender: "dave"}, Timestamp: time.Now(), Parts: []bridgev2.MessagePart{{Text: "who is here?"}}})
		room := h.WaitForPortal(key, alice)
		h.WaitForText(room, h.Matrix.GhostUserID("dave"), "who is here?")
		for _, member := range members {
			waitMembership(t, h, room, h.Matrix.GhostUserID(member), "join")
		}
	})
}

func TestRemoteMemberChangesShowInTheRoom(t *testing.T) {
	setup(t, func(t *testing.T, h *bridgetest.Harness, remote *testnet.Remote, login *bridgev2.UserLogin) {
		key, room := startGroup(t, h, login, "bob", "carol")
		waitMembership(t, h, room, h.Matrix.GhostUserID("carol"), "join")

		// Carol left and dave joined on the network.
		receive(t, h, remote, &bridgev2.RemoteEvent{Kind: bridgev2.RemoteChatInfo, ID: "members-1", Portal: key,
			Timestamp: time.Now(), ChatInfo: &bridgev2.ChatInfo{Members: []networkid.UserID{"bob", "dave"}}})
		waitMembership(t, h, room, h.Matrix.GhostUserID("dave"), "join")
		waitMembership(t, h, room, h.Matrix.GhostUserID("carol"), "leave")
		if got := h.Matrix.Membership(room, h.Matrix.GhostUserID("bob")); got != "join" {
			t.Errorf("bob, still a member, is %q", got)
		}
		if got := h.Matrix.Membership(room, alice); got != "join" {
			t.Errorf("alice is %q after a member change; the user is never touched", got)
		}
	})
}

func TestInvitingAndKickingGhostsChangesTheGroup(t *testing.T) {
	setup(t, func(t *testing.T, h *bridgetest.Harness, remote *testnet.Remote, login *bridgev2.UserLogin) {
		key, room := startGroup(t, h, login, "bob", "carol")
		dave, carol := h.Matrix.GhostUserID("dave"), h.Matrix.GhostUserID("carol")
		waitMembership(t, h, room, carol, "join")

		h.SendMembership(alice, room, dave, event.MembershipInvite)
		waitMembership(t, h, room, dave, "join")
		h.SendMembership(alice, room, carol, event.MembershipLeave)
		if _, err := remote.WaitForCall(h.Ctx(), func(c testnet.Call) bool { return c.Kind == "member_remove" }); err != nil {
			t.Fatal(err)
		}
		if got, want := remote.GroupMembers(key.ID), []networkid.UserID{"bob", "dave"}; !slices.Equal(got, want) {
			t.Fatalf("the network's group is %v, want %v", got, want)
		}
		if got := h.Matrix.Membership(room, carol); got != "leave" {
			t.Errorf("kicked carol is %q", got)
		}
	})
}

func TestARefusedInviteIsDeclinedWithTheNetworksReason(t *testing.T) {
	setup(t, func(t *testing.T, h *bridgetest.Harness, remote *testnet.Remote, login *bridgev2.UserLogin) {
		key, room := startGroup(t, h, login, "bob", "carol")
		dave := h.Matrix.GhostUserID("dave")
		remote.FailNext(bridgev2.NewError("The group is full.", nil))
		h.SendMembership(alice, room, dave, event.MembershipInvite)
		h.WaitForText(room, h.Matrix.BotUserID(), "The group is full.")
		waitMembership(t, h, room, dave, "leave")
		if got := remote.GroupMembers(key.ID); slices.Contains(got, "dave") {
			t.Errorf("dave is in the network's group after a refusal: %v", got)
		}

		// A kick the network refuses is undone: carol comes back.
		carol := h.Matrix.GhostUserID("carol")
		waitMembership(t, h, room, carol, "join")
		remote.FailNext(bridgev2.NewError("Carol cannot be removed.", nil))
		h.SendMembership(alice, room, carol, event.MembershipLeave)
		h.WaitForText(room, h.Matrix.BotUserID(), "Carol cannot be removed.")
		waitMembership(t, h, room, carol, "join")
	})
}

func TestInvitingASecondGhostIntoADMIsRefused(t *testing.T) {
	setup(t, func(t *testing.T, h *bridgetest.Harness, remote *testnet.Remote, login *bridgev2.UserLogin) {
		_, room := chatWithBob(t, h, remote, login)
		carol := h.Matrix.GhostUserID("carol")
		h.SendMembership(alice, room, carol, event.MembershipInvite)
		h.WaitForText(room, h.Matrix.BotUserID(), "one-to-one chat")
		waitMembership(t, h, room, carol, "leave")
		for _, c := range remote.Calls() {
			if c.Kind == "member_add" {
				t.Fatalf("a DM invite reached the network: %+v", c)
			}
		}
	})
}

func TestAnInviteWhoseAnswerWasLostIsReconciledNotRepeated(t *testing.T) {
	setup(t, func(t *testing.T, h *bridgetest.Harness, remote *testnet.Remote, login *bridgev2.UserLogin) {
		_, room := startGroup(t, h, login, "bob", "carol")
		dave := h.Matrix.GhostUserID("dave")
		remote.LoseAnswers(1)
		h.SendMembership(alice, room, dave, event.MembershipInvite)
		waitMembership(t, h, room, dave, "join")
		h.Restart()
		adds := 0
		for _, c := range remote.Calls() {
			if c.Kind == "member_add" {
				adds++
			}
		}
		if adds != 1 {
			t.Fatalf("the network was asked to add dave %d times, want once", adds)
		}
	})
}
