package twilio_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix/event"

	"github.com/trestle-bridge/trestle/connectors/twilio/twiliosim"
)

func TestStartChatWithANationalNumberOpensAPortalThatTextsThatNumber(t *testing.T) {
	alice := newPerson(t)
	alice.login("")
	erin := uniqueNumber()

	reply := alice.command("start-chat "+national(erin), "Opened a chat").Content.AsMessage().Body
	if !strings.Contains(reply, international(erin)) {
		t.Errorf("the bot answered %q, want it to name %s", reply, international(erin))
	}
	room := alice.portalFor(erin)
	sent := alice.Send(room, "Hi Erin, I got your number from Bob")
	out := waitOutbound(t, func(m twiliosim.OutboundMessage) bool { return m.Body == "Hi Erin, I got your number from Bob" })
	if out.To != erin || out.From != alice.Number {
		t.Errorf("the text went from %s to %s, want %s to %s", out.From, out.To, alice.Number, erin)
	}
	alice.waitStatus(room, sent, isDeliveredTo(ghost(erin)))

	invalid := alice.command("pm 12345", "12345").Content.AsMessage().Body
	if !strings.Contains(invalid, "not a valid phone number") || !strings.Contains(invalid, "12345") {
		t.Errorf("starting a chat with 12345 got %q, want a reply saying it is not a valid phone number", invalid)
	}
}

func TestANewChatIsBackfilledWithTheLastTwentyMessagesBeforeTheLiveOne(t *testing.T) {
	alice := newPerson(t)
	frank := uniqueNumber()
	// 25 messages of the last hours, both directions, one MMS; all before
	// the login, so catch-up leaves them alone and only backfill imports.
	start := time.Now().Add(-3 * time.Hour).Truncate(time.Second)
	type past struct {
		body     string
		outbound bool
		media    bool
	}
	var history []past
	sentAt := map[string]time.Time{}
	for i := 1; i <= 25; i++ {
		h := past{body: fmt.Sprintf("History %02d", i), outbound: i%3 == 0, media: i == 14}
		m := twiliosim.Message{Direction: twiliosim.DirectionInbound, From: frank, To: alice.Number, Body: h.body,
			DateCreated: start.Add(time.Duration(i) * time.Minute)}
		if h.outbound {
			m.Direction, m.From, m.To = twiliosim.DirectionOutboundAPI, alice.Number, frank
		}
		if h.media {
			m.Media = []twiliosim.MediaFile{{ContentType: "image/png", Data: testPNG(t, 16, 16)}}
		}
		if _, err := alice.Account.AddHistory(m); err != nil {
			t.Fatal(err)
		}
		history = append(history, h)
		sentAt[h.body] = m.DateCreated
	}
	alice.login("")

	alice.textFrom(frank, "Live: are you still there?")
	room := alice.portalFor(frank)
	alice.WaitForMessage(room, ghost(frank), "Live: are you still there?")

	type line struct {
		sender string
		what   string
	}
	var want []line
	for _, h := range history[len(history)-20:] {
		sender := ghost(frank).String()
		if h.outbound {
			// Sent from the person's own number: its ghost speaks for it.
			sender = ghost(alice.Number).String()
		}
		if h.media {
			want = append(want, line{sender, "m.image"})
		}
		want = append(want, line{sender, h.body})
	}
	want = append(want, line{ghost(frank).String(), "Live: are you still there?"})
	var got []line
	for _, evt := range alice.messages(room) {
		c := evt.Content.AsMessage()
		what := c.Body
		if c.MsgType == event.MsgImage {
			what = "m.image"
		}
		got = append(got, line{evt.Sender.String(), what})
	}
	// History keeps its time: the events are dated when the texts were.
	for _, evt := range alice.messages(room) {
		body := evt.Content.AsMessage().Body
		if at, ok := sentAt[body]; ok && !time.UnixMilli(evt.Timestamp).Equal(at) {
			t.Errorf("%q is dated %v, want %v", body, time.UnixMilli(evt.Timestamp).UTC(), at.UTC())
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("the new portal shows (sender, message):\n%v\nwant the last 20 history messages, oldest first, then the live text once:\n%v", got, want)
	}
}

func TestTextsInQuickSuccessionFromANewContactArriveInOrder(t *testing.T) {
	alice := newPerson(t)
	alice.login("")
	gina := uniqueNumber()

	// Gina's first text opens the portal. Her second is already in
	// Twilio's log while the portal is being created, but its webhook is
	// still on its way.
	alice.textFrom(gina, "Hi, it's Gina")
	second, err := env.Sim.SendInbound(ctx(t), twiliosim.InboundMessage{From: gina, To: alice.Number, Body: "from the climbing gym", LogOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	room := alice.portalFor(gina)
	alice.WaitForMessage(room, ghost(gina), "Hi, it's Gina")
	if code := alice.postLoggedWebhook(second.MessageSID); code != 200 {
		t.Fatalf("the bridge answered the second text's webhook with %d", code)
	}
	alice.textFrom(gina, "Want to go on Sunday?")
	alice.WaitForMessage(room, ghost(gina), "Want to go on Sunday?")

	want := []string{"Hi, it's Gina", "from the climbing gym", "Want to go on Sunday?"}
	if got := alice.bodiesFrom(room, ghost(gina)); !slices.Equal(got, want) {
		t.Errorf("the portal shows %q, want Gina's texts once each, in the order she sent them: %q", got, want)
	}
}
