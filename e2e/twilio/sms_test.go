package twilio_test

import (
	"slices"
	"testing"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/connectors/twilio/twiliosim"
	"github.com/trestle-bridge/trestle/internal/matrixtest"
)

func TestATextFromAPhoneOpensAPortalAndTheReplyIsDelivered(t *testing.T) {
	alice := newPerson(t)
	alice.login("")
	bob := uniqueNumber()

	alice.textFrom(bob, "Hi Alice, it's Bob")
	room := alice.portalFor(bob)
	alice.WaitForMessage(room, ghost(bob), "Hi Alice, it's Bob")

	reply := alice.Send(room, "Hi Bob!")
	out := waitOutbound(t, func(m twiliosim.OutboundMessage) bool { return m.Body == "Hi Bob!" })
	if out.To != bob || out.From != alice.Number {
		t.Fatalf("reply went from %s to %s, want %s to %s", out.From, out.To, alice.Number, bob)
	}
	alice.waitStatus(room, reply, func(c *event.BeeperMessageStatusEventContent) bool {
		return c.Status == event.MessageStatusSuccess && c.DeliveredToUsers != nil && len(*c.DeliveredToUsers) > 0
	})
}

func TestThePortalIsADirectChatWithAGhostNamedAfterTheNumber(t *testing.T) {
	alice := newPerson(t)
	alice.login("")
	bob := uniqueNumber()

	alice.textFrom(bob, "Who am I?")
	inv := alice.WaitForInvite(func(inv *matrixtest.Invite) bool { return inv.Sender == ghost(bob) })
	if !inv.IsDirect {
		t.Errorf("the invite to the portal is not marked is_direct")
	}
	room := inv.RoomID
	alice.WaitForMessage(room, ghost(bob), "Who am I?")

	// The ghost's profile and its name in the room read like a phone number.
	want := international(bob)
	profile, err := alice.Matrix.GetDisplayName(ctx(t), ghost(bob))
	if err != nil {
		t.Fatal(err)
	}
	if profile.DisplayName != want {
		t.Errorf("the ghost's displayname is %q, want %q", profile.DisplayName, want)
	}
	if m := alice.State(room, event.StateMember, ghost(bob).String()); m == nil || m.Content.AsMember().Displayname != want {
		t.Errorf("the ghost's member event in the portal is %v, want displayname %q", m, want)
	}

	// A DM: the person, the contact and the bridge bot, nobody else.
	members, err := alice.Matrix.JoinedMembers(ctx(t), room)
	if err != nil {
		t.Fatal(err)
	}
	var joined []id.UserID
	for u := range members.Joined {
		joined = append(joined, u)
	}
	slices.Sort(joined)
	wantMembers := []id.UserID{alice.ID, bot(), ghost(bob)}
	slices.Sort(wantMembers)
	if !slices.Equal(joined, wantMembers) {
		t.Errorf("the portal's members are %v, want %v", joined, wantMembers)
	}
}
