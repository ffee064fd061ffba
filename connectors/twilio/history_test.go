package twilio

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"maunium.net/go/mautrix/event"

	"github.com/trestle-bridge/trestle/connectors/twilio/twiliosim"
)

func TestCatchUpAfterRestart(t *testing.T) {
	e := newEnv(t, envOptions{})
	// History from before the login is never imported by catch-up.
	if _, err := e.acct.AddHistory(twiliosim.Message{From: theirNumber2, To: ourNumber, Body: "ancient",
		DateCreated: time.Now().Add(-48 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	e.login()
	e.inbound(theirNumber, "live one")
	room := e.portalRoom(theirNumber)
	e.h.WaitForText(room, e.ghost(theirNumber), "live one")

	// The bridge is down; two texts arrive and their webhooks fail.
	e.h.Stop()
	for _, body := range []string{"while down 1", "while down 2"} {
		if _, err := e.sim.SendInbound(e.ctx(), twiliosim.InboundMessage{From: theirNumber, To: ourNumber, Body: body}); err == nil {
			// The harness answers 503 while stopped; either way the
			// message is only in Twilio's log now.
			t.Logf("webhook for %q was answered", body)
		}
	}
	e.h.Restart()
	e.h.WaitForText(room, e.ghost(theirNumber), "while down 2")
	got := e.messagesFrom(room, e.ghost(theirNumber))
	if !slices.Equal(got, []string{"live one", "while down 1", "while down 2"}) {
		t.Fatalf("room has %q", got)
	}
	ul := e.h.Bridge().GetLogin(ourLoginID)
	e.waitCaughtUp(ul, 1)
	if meta := ul.Metadata.(*LoginMetadata); meta.CatchUpSince.Before(time.Now().Add(-time.Minute)) {
		t.Fatalf("watermark not advanced: %v", meta.CatchUpSince)
	}
	for _, r := range e.h.Matrix.Rooms() {
		for _, evt := range e.h.Matrix.Events(r.ID) {
			if evt.Type == event.EventMessage && evt.Content.AsMessage().Body == "ancient" {
				t.Fatal("history from before the login was imported")
			}
		}
	}
}

func TestBackfill(t *testing.T) {
	e := newEnv(t, envOptions{network: "backfill_limit: 3\n"})
	base := time.Now().Add(-time.Hour)
	history := []twiliosim.Message{
		{From: theirNumber, To: ourNumber, Body: "old 1", DateCreated: base},
		{From: theirNumber, To: ourNumber, Body: "old 2", DateCreated: base.Add(time.Minute)},
		{From: ourNumber, To: theirNumber, Body: "my answer", Direction: twiliosim.DirectionOutboundAPI, DateCreated: base.Add(2 * time.Minute)},
		{From: theirNumber, To: ourNumber, Body: "", DateCreated: base.Add(3 * time.Minute),
			Media: []twiliosim.MediaFile{{ContentType: "image/png", Data: pngBytes}}},
		{From: theirNumber2, To: ourNumber, Body: "someone else", DateCreated: base.Add(4 * time.Minute)},
		{From: ourNumber, To: theirNumber, Body: "never sent", Direction: twiliosim.DirectionOutboundAPI, Status: "failed", DateCreated: base.Add(5 * time.Minute)},
	}
	for _, m := range history {
		if _, err := e.acct.AddHistory(m); err != nil {
			t.Fatal(err)
		}
	}
	e.login()
	e.inbound(theirNumber, "new text")
	room := e.portalRoom(theirNumber)
	e.h.WaitForText(room, e.ghost(theirNumber), "new text")
	var bodies []string
	var senders []string
	for _, evt := range e.h.Matrix.Events(room) {
		if evt.Type == event.EventMessage {
			bodies = append(bodies, evt.Content.AsMessage().Body)
			senders = append(senders, string(evt.Sender))
		}
	}
	want := []string{"old 2", "my answer", "MMS image 1.png", "new text"}
	if !slices.Equal(bodies, want) {
		t.Fatalf("timeline %q, want %q", bodies, want)
	}
	// The user's own text comes from the ghost of the login's ID, their
	// own number, as writing-a-connector.md says.
	if senders[0] != string(e.ghost(theirNumber)) || senders[1] != string(e.ghost(ourNumber)) {
		t.Fatalf("senders %q", senders)
	}
}

// A contact's second text is in Twilio's log while the first one's portal is
// being created (Twilio logs a text before posting its webhook). Backfill
// must stop at the first, live one: the second arrives live, after it.
func TestBackfillStopsAtTheTextThatCreatedTheRoom(t *testing.T) {
	e := newEnv(t, envOptions{})
	if _, err := e.acct.AddHistory(twiliosim.Message{From: theirNumber, To: ourNumber, Body: "last week",
		DateCreated: time.Now().Add(-7 * 24 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	e.login()
	var sids []string
	for _, body := range []string{"first", "second"} {
		res, err := e.sim.SendInbound(e.ctx(), twiliosim.InboundMessage{From: theirNumber, To: ourNumber, Body: body, LogOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		sids = append(sids, res.MessageSID)
	}
	path := "/_trestle/twilio/" + string(ourLoginID) + "/incoming"
	deliver := func(sid, body string) {
		t.Helper()
		form := e.incomingForm(sid)
		form.Set("Body", body)
		if code, _ := e.post(path, form, e.signed(path, form)); code != http.StatusOK {
			t.Fatalf("webhook of %q answered %d", body, code)
		}
	}
	deliver(sids[0], "first")
	room := e.portalRoom(theirNumber)
	e.h.WaitForText(room, e.ghost(theirNumber), "first")
	deliver(sids[1], "second")
	e.h.WaitForText(room, e.ghost(theirNumber), "second")
	if got, want := e.messagesFrom(room, e.ghost(theirNumber)), []string{"last week", "first", "second"}; !slices.Equal(got, want) {
		t.Fatalf("room has %q, want %q", got, want)
	}
}

func TestBackfilledOwnTextsAppearAsTheDoublePuppetedUser(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.h.Matrix.AddAccessToken(alice, "alices-token")
	base := time.Now().Add(-time.Hour)
	for _, m := range []twiliosim.Message{
		{From: theirNumber, To: ourNumber, Body: "are you coming?", DateCreated: base},
		{From: ourNumber, To: theirNumber, Body: "on my way", Direction: twiliosim.DirectionOutboundAPI, DateCreated: base.Add(time.Minute)},
	} {
		if _, err := e.acct.AddHistory(m); err != nil {
			t.Fatal(err)
		}
	}
	e.login()
	user, err := e.h.Bridge().GetUser(e.ctx(), alice)
	if err != nil {
		t.Fatal(err)
	}
	if err := user.LoginMatrix(e.ctx(), "alices-token"); err != nil {
		t.Fatal(err)
	}
	e.inbound(theirNumber, "great")
	room := e.portalRoom(theirNumber)
	e.h.WaitForText(room, e.ghost(theirNumber), "great")
	if got := e.messagesFrom(room, alice); !slices.Equal(got, []string{"on my way"}) {
		t.Errorf("alice's own messages in the room: %q, want her backfilled text", got)
	}
}
