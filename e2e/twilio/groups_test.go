package twilio_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/connectors/twilio/twiliosim"
	"github.com/trestle-bridge/trestle/internal/matrixtest"
)

// groupText has a phone text a group that includes the person's number,
// creating it on Twilio as a phone's first group text does.
func (p *person) groupText(from string, others []string, body string, media ...twiliosim.MediaFile) {
	p.t.Helper()
	res, err := env.Sim.SendGroupText(ctx(p.t), twiliosim.GroupText{From: from, To: p.Number, Others: others, Body: body, Media: media})
	if err != nil {
		p.t.Fatal(err)
	}
	for _, ev := range res.Events {
		if ev.Err != "" || ev.Response.StatusCode != http.StatusOK {
			p.t.Fatalf("the bridge answered %s with %d %s", ev.EventType, ev.Response.StatusCode, ev.Err)
		}
	}
}

// groupRoom waits for the bot's invite to a group room (each test's
// person has one) and for the person to have joined it.
func (p *person) groupRoom() id.RoomID {
	p.t.Helper()
	inv := p.WaitForInvite(func(inv *matrixtest.Invite) bool { return !inv.IsDirect && inv.Sender == bot() })
	p.WaitForMembership(inv.RoomID, p.ID, event.MembershipJoin)
	return inv.RoomID
}

// groupMessage waits until the group of phones has a message by the
// person's number that every phone got, and returns it.
func (p *person) groupMessage(phones []string, pred func(twiliosim.ConversationMessage) bool) twiliosim.ConversationMessage {
	p.t.Helper()
	var found twiliosim.ConversationMessage
	_, err := p.Account.WaitConversations(ctx(p.t), func(cs []twiliosim.Conversation) bool {
		g, ok := p.Account.FindGroup(p.Number, phones...)
		if !ok {
			return false
		}
		for _, m := range g.Messages {
			if m.Author == p.Number && m.Done && len(m.Deliveries) == len(phones) && pred(m) {
				found = m
				return true
			}
		}
		return false
	})
	if err != nil {
		p.t.Fatalf("no group message reached every phone of %v: %v", phones, err)
	}
	return found
}

func TestPhonesTextingAGroupGetOneRoomAndEveryPhoneGetsTheReply(t *testing.T) {
	alice := newPerson(t)
	alice.login("")
	bob, carol := uniqueNumber(), uniqueNumber()

	alice.groupText(bob, []string{carol}, "Who is up for pizza tonight?")
	room := alice.groupRoom()
	alice.WaitForMessage(room, ghost(bob), "Who is up for pizza tonight?")
	alice.WaitForMembership(room, ghost(carol), event.MembershipJoin)

	alice.groupText(carol, []string{bob}, "me!", twiliosim.MediaFile{ContentType: "image/png", Data: testPNG(t, 8, 8)})
	alice.WaitForMessage(room, ghost(carol), "me!")
	alice.WaitForEvent(room, func(e *event.Event) bool {
		return e.Sender == ghost(carol) && e.Type == event.EventMessage && e.Content.AsMessage().MsgType == event.MsgImage
	})

	alice.Send(room, "Count me in")
	m := alice.groupMessage([]string{bob, carol}, func(m twiliosim.ConversationMessage) bool { return m.Body == "Count me in" })
	for _, d := range m.Deliveries {
		if d.From != alice.Number {
			t.Errorf("the copy to %s came from %s, want %s", d.To, d.From, alice.Number)
		}
	}
	if len(outboundTo(bob)) != 0 || len(outboundTo(carol)) != 0 {
		t.Error("a group reply also went out as one-to-one texts")
	}

	// Bob texting alice alone is a DM, apart from the group.
	alice.textFrom(bob, "psst, just you")
	dm := alice.portalFor(bob)
	if dm == room {
		t.Fatal("bob's DM is the group room")
	}
	alice.WaitForMessage(dm, ghost(bob), "psst, just you")
	if got := alice.bodiesFrom(room, ghost(bob)); !slices.Equal(got, []string{"Who is up for pizza tonight?"}) {
		t.Errorf("the group shows bob's %q", got)
	}
}

func TestStartChatWithSeveralNumbersMakesAGroupWhoseMembersChangeFromEitherSide(t *testing.T) {
	alice := newPerson(t)
	alice.login("")
	bob, carol, dave := uniqueNumber(), uniqueNumber(), uniqueNumber()

	alice.command("start-chat "+national(bob)+", "+national(carol), "Opened a group chat")
	room := alice.groupRoom()
	alice.WaitForMembership(room, ghost(carol), event.MembershipJoin)
	group, ok := alice.Account.FindGroup(alice.Number, bob, carol)
	if !ok {
		t.Fatalf("Twilio has no group of %s and %s: %+v", bob, carol, alice.Account.Conversations())
	}
	alice.Send(room, "Hello group")
	alice.groupMessage([]string{bob, carol}, func(m twiliosim.ConversationMessage) bool { return m.Body == "Hello group" })

	// Alice adds dave from Matrix.
	c := ctx(t)
	if _, err := alice.Matrix.InviteUser(c, room, &mautrix.ReqInviteUser{UserID: ghost(dave)}); err != nil {
		t.Fatal(err)
	}
	alice.WaitForMembership(room, ghost(dave), event.MembershipJoin)
	if _, ok := alice.Account.FindGroup(alice.Number, bob, carol, dave); !ok {
		t.Fatal("inviting dave's ghost did not add dave to the group")
	}
	// Carol leaves on Twilio's side.
	g, _ := alice.Account.FindGroup(alice.Number, bob, carol, dave)
	for _, p := range g.Participants {
		if p.Address == carol {
			if _, err := alice.Account.RemoveParticipant(c, group.SID, p.SID); err != nil {
				t.Fatal(err)
			}
		}
	}
	alice.WaitForMembership(room, ghost(carol), event.MembershipLeave)
	// Alice removes bob from Matrix.
	if _, err := alice.Matrix.KickUser(c, room, &mautrix.ReqKickUser{UserID: ghost(bob)}); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Account.WaitConversations(c, func([]twiliosim.Conversation) bool {
		_, ok := alice.Account.FindGroup(alice.Number, dave)
		return ok
	}); err != nil {
		t.Fatalf("kicking bob's ghost did not remove bob: %+v", alice.Account.Conversations())
	}
}

func TestTwilioGroupLimitsReachTheUserAsSentences(t *testing.T) {
	alice := newPerson(t)
	alice.login("")
	reply := alice.command("start-chat "+national(uniqueNumber())+", +33 1 42 68 53 00", "US and Canadian").Content.AsMessage().Body
	if !strings.Contains(reply, "+33 1 42 68 53 00") {
		t.Errorf("the refusal %q does not name the foreign number", reply)
	}
	many := make([]string, 10)
	for i := range many {
		many[i] = uniqueNumber()
	}
	alice.command("start-chat "+strings.Join(many, ", "), "at most 10 people")
	if n := len(alice.Account.Conversations()); n != 0 {
		t.Errorf("refused groups left %d conversations on Twilio", n)
	}
}
