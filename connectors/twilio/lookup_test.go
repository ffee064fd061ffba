package twilio

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/connectors/twilio/twiliosim"
)

// lookupOn is the network config that turns Lookup on.
const lookupOn = "caller_name_lookup: true\n"

// lookupEndpoint is the simulator's call-count name of Lookup; it counts
// faulted requests too, unlike LookupCount.
const lookupEndpoint = "GET lookups.twilio.com/v2/PhoneNumbers/{PhoneNumber}"

// displayName is a Matrix user's current displayname on the fake homeserver.
func (e *env) displayName(user id.UserID) string {
	if p := e.h.Matrix.Profile(user); p != nil {
		return p.DisplayName
	}
	return ""
}

// lookupsIdle waits until no background lookup is pending. A text's
// lookup is claimed before the text reaches Matrix (by the webhook, or when
// its ghost is first seen), so after a text arrived this waits for its
// lookup too.
func (e *env) lookupsIdle() {
	e.t.Helper()
	q := e.conn().lookups
	e.eventually("background lookups", func() bool {
		q.mu.Lock()
		defer q.mu.Unlock()
		return len(q.pending) == 0
	})
}

// text sends a text from theirNumber and waits until it is in its room.
func (e *env) text(body string) id.RoomID {
	e.t.Helper()
	e.inbound(theirNumber, body)
	room := e.portalRoom(theirNumber)
	e.h.WaitForText(room, e.ghost(theirNumber), body)
	return room
}

func TestLookupNamesTheContactOnceAcrossTextsAndRestarts(t *testing.T) {
	e := newEnv(t, envOptions{network: lookupOn})
	e.sim.SetLookup(theirNumber, twiliosim.LookupInfo{CallerName: "Ada Lovelace"})
	e.login()
	ghost := e.ghost(theirNumber)

	room := e.text("first")
	e.eventually("the caller name", func() bool { return e.displayName(ghost) == "Ada Lovelace" })
	if n := e.sim.LookupCount(theirNumber); n != 1 {
		t.Fatalf("the first text made %d lookups, want 1", n)
	}
	// The room opened before the answer came, named after the number; it
	// follows the contact's new name.
	e.eventually("the room named after the caller name", func() bool { return e.roomName(room) == "Ada Lovelace" })

	e.text("second")
	e.lookupsIdle()
	if n := e.sim.LookupCount(theirNumber); n != 1 {
		t.Fatalf("after a second text %d lookups were made, want still 1", n)
	}
	if got := e.roomName(room); got != "Ada Lovelace" {
		t.Fatalf("after a second text the room is called %q", got)
	}

	// The answer is stored, not only remembered: a restarted bridge names
	// the contact from it without asking Twilio again.
	e.h.Restart()
	e.waitCaughtUp(e.h.Bridge().GetLogin(ourLoginID), 1)
	e.text("after the restart")
	e.lookupsIdle()
	if n := e.sim.LookupCount(theirNumber); n != 1 {
		t.Fatalf("after a restart %d lookups were made, want still 1", n)
	}
	if got := e.displayName(ghost); got != "Ada Lovelace" {
		t.Fatalf("after a restart the contact is called %q", got)
	}
	if got := e.roomName(room); got != "Ada Lovelace" {
		t.Fatalf("after a restart the room is called %q", got)
	}
}

func TestLookupIsRepeatedOnceTheRefreshPeriodPassed(t *testing.T) {
	clock := twiliosim.NewManualClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	e := newEnv(t, envOptions{network: lookupOn + "lookup_refresh: 48h\n", clock: clock})
	e.sim.SetLookup(theirNumber, twiliosim.LookupInfo{CallerName: "Ada Lovelace"})
	e.login()
	ghost := e.ghost(theirNumber)
	e.text("first")
	e.eventually("the caller name", func() bool { return e.displayName(ghost) == "Ada Lovelace" })

	e.sim.SetLookup(theirNumber, twiliosim.LookupInfo{CallerName: "Ada King"})
	clock.Advance(47 * time.Hour)
	e.text("within the period")
	e.lookupsIdle()
	if n := e.sim.LookupCount(theirNumber); n != 1 {
		t.Fatalf("within lookup_refresh %d lookups were made, want 1", n)
	}

	clock.Advance(2 * time.Hour)
	e.text("after the period")
	e.eventually("the new caller name", func() bool { return e.displayName(ghost) == "Ada King" })
	if n := e.sim.LookupCount(theirNumber); n != 2 {
		t.Fatalf("after lookup_refresh %d lookups were made, want 2", n)
	}
}

func TestTheNameTheUserGaveWinsOverTheCallerName(t *testing.T) {
	e := newEnv(t, envOptions{network: lookupOn})
	e.sim.SetLookup(theirNumber, twiliosim.LookupInfo{CallerName: "Ada Lovelace"})
	room := e.chat()
	ghost := e.ghost(theirNumber)
	e.eventually("the caller name", func() bool { return e.displayName(ghost) == "Ada Lovelace" })

	e.h.SendText(alice, room, "!test set-name Countess")
	e.h.WaitForText(room, e.h.Matrix.BotUserID(), "now called Countess")

	// A new lookup (the period passed) must not undo the user's name.
	e.sim.SetLookup(theirNumber, twiliosim.LookupInfo{CallerName: "Someone Else"})
	if err := e.h.Bridge().DB.KV.Set(e.ctx(), lookupKey(theirNumber), ""); err != nil {
		t.Fatal(err)
	}
	e.h.Restart()
	e.waitCaughtUp(e.h.Bridge().GetLogin(ourLoginID), 1)
	e.text("me again")
	e.lookupsIdle()
	if n := e.sim.LookupCount(theirNumber); n != 2 {
		t.Fatalf("%d lookups were made, want 2 (the stored answer was dropped)", n)
	}
	if got := e.displayName(ghost); got != "Countess" {
		t.Fatalf("after a new lookup the contact is called %q, want the user's name", got)
	}
}

func TestLookupIsOffByDefault(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.sim.SetLookup(theirNumber, twiliosim.LookupInfo{CallerName: "Ada Lovelace", LineType: twiliosim.LineTypeLandline})
	e.login()
	e.text("hello")
	mgmt := e.h.ManagementRoom(alice)
	e.h.SendText(alice, mgmt, "start-chat "+theirNumber2)
	e.h.WaitForText(mgmt, e.h.Matrix.BotUserID(), "Opened a chat")
	e.lookupsIdle()
	if n := e.acct.APICalls()[lookupEndpoint]; n != 0 {
		t.Fatalf("with caller_name_lookup off the bridge made %d lookups", n)
	}
	if got := e.displayName(e.ghost(theirNumber)); got != "+1 415-555-0100" {
		t.Fatalf("the contact is called %q, want the formatted number", got)
	}
}

func TestAFailedLookupNeverHoldsUpATextAndIsNotRepeatedAtOnce(t *testing.T) {
	clock := twiliosim.NewManualClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	e := newEnv(t, envOptions{network: lookupOn, clock: clock})
	e.sim.SetLookup(theirNumber, twiliosim.LookupInfo{CallerName: "Ada Lovelace"})
	e.login()
	// Lookup hangs: the text arrives all the same, while it hangs.
	hang := e.sim.InjectFault(twiliosim.Fault{Kind: twiliosim.FaultHang, Path: "/v2/PhoneNumbers/*"})
	e.text("while Lookup hangs")
	if res, err := e.conn().cachedLookup(e.ctx(), theirNumber); err != nil || res != nil {
		t.Fatalf("the text arrived after the lookup ended (%+v, %v): it waited for Lookup", res, err)
	}
	if err := hang.WaitHits(e.ctx(), 1); err != nil {
		t.Fatal(err)
	}
	hang.Remove()
	ghost := e.ghost(theirNumber)
	if got := e.displayName(ghost); got != "+1 415-555-0100" {
		t.Fatalf("while Lookup hangs the contact is called %q", got)
	}
	// The hung request times out (request_timeout) and is stored as a
	// failure.
	e.eventually("the stored failure", func() bool {
		res, err := e.conn().cachedLookup(e.ctx(), theirNumber)
		return err == nil && res != nil && res.Failed
	})
	e.lookupsIdle()

	// Server errors are failures too; the texts keep arriving, and the
	// failure is not retried on every text.
	e.sim.InjectFault(twiliosim.Fault{Kind: twiliosim.FaultServerError, Path: "/v2/PhoneNumbers/*"})
	e.text("the next text")
	e.lookupsIdle()
	if n := e.acct.APICalls()[lookupEndpoint]; n != 1 {
		t.Fatalf("%d lookups were tried, want 1 (the failure is stored)", n)
	}

	// A day later it is tried again, fails with the 500, and is stored so.
	clock.Advance(lookupFailureRetry + time.Minute)
	e.text("a day later")
	e.lookupsIdle()
	if n := e.acct.APICalls()[lookupEndpoint]; n != 2 {
		t.Fatalf("a day later %d lookups were tried, want 2", n)
	}
	if got := e.displayName(ghost); got != "+1 415-555-0100" {
		t.Fatalf("after failed lookups the contact is called %q", got)
	}
	if msgs := e.messagesFrom(e.portalRoom(theirNumber), ghost); len(msgs) != 3 {
		t.Fatalf("the room has %d texts from the contact, want 3: %q", len(msgs), msgs)
	}
}

func TestLookupAnswersWithoutANameAreStoredAsFailures(t *testing.T) {
	const uk = "+442079460958"
	e := newEnv(t, envOptions{network: lookupOn})
	e.sim.SetLookup(uk, twiliosim.LookupInfo{CallerName: "Never Shown", LineType: twiliosim.LineTypeLandline})
	e.sim.SetLookup(theirNumber2, twiliosim.LookupInfo{CallerName: "Never Shown", Invalid: true})
	e.login()
	mgmt := e.h.ManagementRoom(alice)
	bot := e.h.Matrix.BotUserID()
	e.h.SendText(alice, mgmt, "start-chat "+uk)
	e.h.WaitForText(mgmt, bot, "looks like a landline")
	res, err := e.conn().cachedLookup(e.ctx(), uk)
	if err != nil || res == nil || !res.Failed || res.LineType != twiliosim.LineTypeLandline || res.CallerName != "" {
		t.Fatalf("stored answer for a UK number = %+v, %v; want a failure (60600) with the line type", res, err)
	}

	e.h.SendText(alice, mgmt, "start-chat "+theirNumber2)
	e.h.WaitForText(mgmt, bot, "Opened a chat with +1 415-555-0101")
	res, err = e.conn().cachedLookup(e.ctx(), theirNumber2)
	if err != nil || res == nil || !res.Failed || res.CallerName != "" {
		t.Fatalf("stored answer for an invalid number = %+v, %v; want a failure", res, err)
	}
}

func TestAStoredFailureIsDueAfterADayOrTheRefreshPeriod(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	ok, failed := &lookupResult{At: at}, &lookupResult{At: at, Failed: true}
	for _, c := range []struct {
		res     *lookupResult
		refresh time.Duration
		due     time.Time
	}{
		{ok, 720 * time.Hour, at.Add(720 * time.Hour)},
		{failed, 720 * time.Hour, at.Add(24 * time.Hour)},
		{failed, 2 * time.Hour, at.Add(2 * time.Hour)},
	} {
		if got := c.res.due(c.refresh); !got.Equal(c.due) {
			t.Errorf("failed=%v refresh=%s: due %s, want %s", c.res.Failed, c.refresh, got, c.due)
		}
		if !c.res.fresh(c.due.Add(-time.Second), c.refresh) || c.res.fresh(c.due, c.refresh) {
			t.Errorf("failed=%v refresh=%s: fresh does not end at %s", c.res.Failed, c.refresh, c.due)
		}
	}
}

func TestStartChatWarnsAboutALandlineAndOpensTheChat(t *testing.T) {
	e := newEnv(t, envOptions{network: lookupOn})
	e.sim.SetLookup(theirNumber, twiliosim.LookupInfo{CallerName: "City Hall", LineType: twiliosim.LineTypeLandline})
	e.sim.SetLookup(theirNumber2, twiliosim.LookupInfo{LineType: twiliosim.LineTypeMobile})
	e.login()
	mgmt := e.h.ManagementRoom(alice)
	bot := e.h.Matrix.BotUserID()

	e.h.SendText(alice, mgmt, "start-chat "+theirNumber)
	e.h.WaitForText(mgmt, bot, "Opened a chat with City Hall")
	e.h.WaitForText(mgmt, bot, "+1 415-555-0100 looks like a landline; texts to it will probably not arrive.")
	e.portalRoom(theirNumber)

	// The answer was stored: the ghost's first text needs no new lookup.
	e.text("hello from the landline")
	e.lookupsIdle()
	if n := e.sim.LookupCount(theirNumber); n != 1 {
		t.Fatalf("%d lookups of the landline, want 1", n)
	}

	e.h.SendText(alice, mgmt, "start-chat "+theirNumber2)
	e.h.WaitForText(mgmt, bot, "Opened a chat with +1 415-555-0101")
	for _, evt := range e.h.Matrix.Events(mgmt) {
		if evt.Type == event.EventMessage && strings.Contains(evt.Content.AsMessage().Body, "0101 looks like a landline") {
			t.Fatal("start-chat warned about a mobile number")
		}
	}
}

func TestBackgroundLookupsRunAtMostFourAtATime(t *testing.T) {
	// Without backfill, new rooms make no REST calls of their own: the
	// lookups are all the simulator serves.
	e := newEnv(t, envOptions{network: lookupOn + "backfill_limit: 0\n"})
	e.login()
	e.sim.ResetAPICalls()
	// Each lookup takes a second, so those the bridge runs at once overlap.
	e.sim.InjectFault(twiliosim.Fault{Kind: twiliosim.FaultDelay, Delay: time.Second, Path: "/v2/PhoneNumbers/*"})
	var phones []string
	for i := range 8 {
		phone := fmt.Sprintf("+1415555%04d", 110+i)
		phones = append(phones, phone)
		e.inbound(phone, "hello from "+phone)
	}
	e.eventually("every lookup", func() bool { return e.acct.APICalls()[lookupEndpoint] == len(phones) })
	e.lookupsIdle()
	// docs/names.md says 4.
	if peak := e.sim.PeakConcurrentCalls(); peak > 4 || peak < 2 {
		t.Fatalf("at most %d REST calls ran at once, want between 2 and 4", peak)
	}
}

func TestShortCodesAndSenderIDsAreNeverLookedUp(t *testing.T) {
	e := newEnv(t, envOptions{network: lookupOn})
	e.login()
	for _, sender := range []string{"12345", "GOOGLE"} {
		e.inbound(sender, "code 482913 from "+sender)
		e.h.WaitForText(e.senderRoom(sender), e.h.Matrix.GhostUserID(userIDFromAddr(sender)), "from "+sender)
	}
	e.lookupsIdle()
	if n := e.acct.APICalls()[lookupEndpoint]; n != 0 {
		t.Fatalf("%d lookups of senders that are not phone numbers", n)
	}
}
