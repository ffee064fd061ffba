package twilio

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"maunium.net/go/mautrix/event"

	"github.com/trestle-bridge/trestle/bridgev2/bridgeconfig"
	"github.com/trestle-bridge/trestle/bridgev2/bridgetest"
	"github.com/trestle-bridge/trestle/bridgev2/database"
	"github.com/trestle-bridge/trestle/bridgev2/database/dbtest"
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

// A standby that takes a webhook while it is behind catches up first, as the
// leader does: a text whose webhook never reached the bridge arrives, and
// before the later one. (A process restarting after a kill is a standby
// until its old lease runs out, and may be the only one up.)
func TestStandbyCatchesUpBeforeJournallingAWebhook(t *testing.T) {
	for _, dialect := range dbtest.Dialects() {
		if dialect != database.Postgres {
			continue
		}
		t.Run(string(dialect), func(t *testing.T) {
			e := newEnv(t, envOptions{dialect: dialect, configure: func(c *bridgeconfig.Config) {
				c.Database.TakeoverTimeout = 2 * time.Second
			}})
			e.eventually("the first process leading", e.h.Bridge().Leading)
			e.login()
			e.inbound(theirNumber, "first")
			room := e.portalRoom(theirNumber)
			e.h.WaitForText(room, e.ghost(theirNumber), "first")

			standby := bridgetest.New(t, newTestConnector, bridgetest.Options{Peer: e.h})
			e.eventually("the standby loading the login", func() bool { return standby.Bridge().GetLogin(ourLoginID) != nil })
			if standby.Bridge().Leading() {
				t.Fatal("the second process leads too")
			}
			// "second" is in Twilio's log only: its webhook was lost on the way.
			if _, err := e.sim.SendInbound(e.ctx(), twiliosim.InboundMessage{From: theirNumber, To: ourNumber, Body: "second", LogOnly: true}); err != nil {
				t.Fatal(err)
			}
			third, err := e.sim.SendInbound(e.ctx(), twiliosim.InboundMessage{From: theirNumber, To: ourNumber, Body: "third", LogOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			path := "/_trestle/twilio/" + string(ourLoginID) + "/incoming"
			form := e.incomingForm(third.MessageSID)
			form.Set("Body", "third")
			if code, body := e.postTo(standby.URL, path, form, e.signed(path, form)); code != http.StatusOK {
				t.Fatalf("the standby answered the webhook %d: %s", code, body)
			}
			e.h.WaitForText(room, e.ghost(theirNumber), "third")
			if got := e.messagesFrom(room, e.ghost(theirNumber)); !slices.Equal(got, []string{"first", "second", "third"}) {
				t.Fatalf("room has %q", got)
			}
		})
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

// sendLost has a phone text our number while the webhook path is black
// holed: the text is only in Twilio's log.
func (e *env) sendLost(body string) {
	e.t.Helper()
	res, err := e.sim.SendInbound(e.ctx(), twiliosim.InboundMessage{From: theirNumber, To: ourNumber, Body: body})
	if err == nil && res.Response.StatusCode != 0 {
		e.t.Fatalf("the webhook of %q reached the bridge through the black hole", body)
	}
}

func TestTextsWhoseWebhooksNeverArrivedComeInByReconcile(t *testing.T) {
	e := newEnv(t, envOptions{network: "reconcile_interval: 1s\n"})
	e.login()
	e.inbound(theirNumber, "before")
	room := e.portalRoom(theirNumber)
	e.h.WaitForText(room, e.ghost(theirNumber), "before")

	hole := e.sim.BlackHoleWebhooks()
	for _, body := range []string{"lost 1", "lost 2", "lost 3"} {
		e.sendLost(body)
	}
	// Nothing reached the bridge; the periodic reconcile finds them.
	e.h.WaitForText(room, e.ghost(theirNumber), "lost 3")
	hole.Remove()
	e.inbound(theirNumber, "after")
	e.h.WaitForText(room, e.ghost(theirNumber), "after")
	want := []string{"before", "lost 1", "lost 2", "lost 3", "after"}
	if got := e.messagesFrom(room, e.ghost(theirNumber)); !slices.Equal(got, want) {
		t.Fatalf("room has %q, want %q", got, want)
	}
}

func TestTheFirstWebhookAfterASilenceDoesNotOvertakeLostTexts(t *testing.T) {
	// The reconcile is an hour away; the bridge's clock is moved past the
	// quiet gap instead of waiting it out.
	var skew atomic.Int64
	e := newEnv(t, envOptions{network: "reconcile_interval: 1h\n", tweak: func(c *Connector) {
		c.now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	}})
	ul := e.login()
	e.inbound(theirNumber, "before")
	room := e.portalRoom(theirNumber)
	e.h.WaitForText(room, e.ghost(theirNumber), "before")

	hole := e.sim.BlackHoleWebhooks()
	e.sendLost("lost 1")
	e.sendLost("lost 2")
	hole.Remove()
	catchUps := twClient(ul).catchUps.Load()
	skew.Store(int64(2 * time.Minute))
	e.inbound(theirNumber, "after")
	e.h.WaitForText(room, e.ghost(theirNumber), "after")
	want := []string{"before", "lost 1", "lost 2", "after"}
	if got := e.messagesFrom(room, e.ghost(theirNumber)); !slices.Equal(got, want) {
		t.Fatalf("room has %q, want %q", got, want)
	}
	// A webhook right after another costs no listing.
	e.inbound(theirNumber, "next")
	e.h.WaitForText(room, e.ghost(theirNumber), "next")
	if n := twClient(ul).catchUps.Load(); n != catchUps+1 {
		t.Fatalf("%d catch-ups for two webhooks after the silence, want 1", n-catchUps)
	}
}

// countingTransport counts the REST calls the connector makes, by kind.
type countingTransport struct {
	base http.RoundTripper
	mu   sync.Mutex
	n    map[string]int
}

func (t *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	kind := "other"
	switch p := req.URL.Path; {
	case strings.HasSuffix(p, "/Messages.json") && req.Method == http.MethodGet:
		kind = "list messages"
	case p == "/v1/Conversations" && req.Method == http.MethodGet:
		kind = "list conversations" // group MMS catch-up
	case strings.HasSuffix(p, "/Media.json"):
		kind = "list media"
	case strings.Contains(p, "/Media/") || strings.HasPrefix(p, "/cdn/"):
		kind = "download media" // the MMS's own cost, not the reconcile's
	}
	t.mu.Lock()
	t.n[kind]++
	t.mu.Unlock()
	return t.base.RoundTrip(req)
}

func (t *countingTransport) snapshot() map[string]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return maps.Clone(t.n)
}

// TestReconcileAPICalls measures what the periodic reconcile costs, idle
// and busy, in calls per reconcile; docs/reliability.md states the figures
// per hour for the default 5-minute interval.
func TestReconcileAPICalls(t *testing.T) {
	counter := &countingTransport{n: map[string]int{}}
	e := newEnv(t, envOptions{network: "reconcile_interval: 200ms\n", tweak: func(c *Connector) {
		counter.base = c.transport
		c.transport = counter
	}})
	ul := e.login()
	// The chat exists already: creating its room backfills, which lists
	// too.
	e.inbound(theirNumber, "first")
	e.h.WaitForText(e.portalRoom(theirNumber), e.ghost(theirNumber), "first")
	measure := func(reconciles int64, traffic func(stop <-chan struct{})) (map[string]int, int64) {
		before, start := counter.snapshot(), twClient(ul).catchUps.Load()
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() { defer close(done); traffic(stop) }()
		e.eventually("reconciles", func() bool { return twClient(ul).catchUps.Load() >= start+reconciles })
		close(stop)
		<-done
		after, n := counter.snapshot(), twClient(ul).catchUps.Load()-start
		for k, v := range before {
			after[k] -= v
		}
		return after, n
	}
	// A reconcile may start between the two counters being read.
	idle, n := measure(10, func(<-chan struct{}) {})
	oneEach := func(calls int) bool { return calls >= int(n) && calls <= int(n)+1 }
	// A reconcile that follows another within half the interval (the
	// first timer after the start-up catch-up can) shares its list of
	// groups, so there is at most one of those per reconcile.
	atMostOneEach := func(calls int) bool { return calls >= 1 && calls <= int(n)+1 }
	if !oneEach(idle["list messages"]) || !atMostOneEach(idle["list conversations"]) || idle["list media"] != 0 || idle["other"] != 0 {
		t.Fatalf("idle: %v for %d reconciles, want one listing of messages each and at most one of conversations", idle, n)
	}
	t.Logf("API CALLS idle: %d reconciles, %v", n, idle)

	// Busy: a text every 20 ms (under the quiet gap), one in five an MMS,
	// all arriving by webhook.
	texts := 0
	busy, n := measure(10, func(stop <-chan struct{}) {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			var media []twiliosim.MediaFile
			if i%5 == 0 {
				media = []twiliosim.MediaFile{{ContentType: "image/png", Data: []byte("png")}}
			}
			e.inbound(theirNumber, fmt.Sprintf("busy %d", i), media...)
			texts++
		}
	})
	// Each reconcile lists once (a page holds 1,000 texts); what came by
	// webhook is not fetched again. The first webhook after the idle
	// silence ran a catch-up first, which journalled its MMS from the log
	// (one media listing); such catch-ups count among the reconciles. A
	// reconcile may also list an MMS whose webhook is still on its way (a
	// couple more, on a slow machine); one listing per MMS would be 13.
	if !oneEach(busy["list messages"]) || !atMostOneEach(busy["list conversations"]) || busy["list media"] > 3 || busy["other"] != 0 {
		t.Fatalf("busy: %v for %d reconciles and %d texts", busy, n, texts)
	}
	t.Logf("API CALLS busy: %d reconciles, %d texts, %v", n, texts, busy)
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
