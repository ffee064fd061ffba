package reliability_test

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/connectors/twilio/twiliosim"
)

// crashPlan sizes the crash test.
type crashPlan struct {
	portals  int
	inbound  int // texts from remote phones, in total
	outbound int // texts the Matrix user sends, in total
	kills    int // SIGKILLs of the bridge
	// loadFor is how long the load (and the trouble) is spread over.
	loadFor time.Duration
	// homeserverDown and twilioDown are how long each outage lasts.
	homeserverDown, twilioDown time.Duration
}

func crashPlanFor() crashPlan {
	if long() {
		return crashPlan{portals: 50, inbound: 2000, outbound: 1000, kills: 20,
			loadFor: 5 * time.Minute, homeserverDown: 30 * time.Second, twilioDown: 20 * time.Second}
	}
	return crashPlan{portals: 10, inbound: 300, outbound: 150, kills: 5,
		loadFor: 50 * time.Second, homeserverDown: 6 * time.Second, twilioDown: 6 * time.Second}
}

// Bodies carry the portal and the text's place in its conversation, so
// each side can be checked for loss, doubles and order.
func inboundBody(portal, k int) string  { return fmt.Sprintf("in p%02d #%04d", portal, k) }
func outboundBody(portal, k int) string { return fmt.Sprintf("out p%02d #%04d", portal, k) }

// parseBody reads a body written by inboundBody or outboundBody.
func parseBody(s string) (dir string, portal, k int, ok bool) {
	var n int
	if n, _ = fmt.Sscanf(s, "in p%d #%d", &portal, &k); n == 2 {
		return "in", portal, k, true
	}
	if n, _ = fmt.Sscanf(s, "out p%d #%d", &portal, &k); n == 2 {
		return "out", portal, k, true
	}
	return "", 0, 0, false
}

// trouble records what was done to the bridge and when, so that a double
// can be attributed to the crash that caused it.
type trouble struct {
	mu             sync.Mutex
	kills          []time.Time // when each SIGKILL landed
	homeserverDown [][2]time.Time
	twilioDown     [][2]time.Time
	downtime       time.Duration // bridge not running, summed
}

func (tr *trouble) note(f func()) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	f()
}

// killedBetween reports whether a SIGKILL landed in [from, to].
func (tr *trouble) killedBetween(from, to time.Time) bool {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for _, k := range tr.kills {
		if !k.Before(from) && !k.After(to) {
			return true
		}
	}
	return false
}

// TestCrashesAndOutagesUnderMixedLoadLoseNothingAndDoubleNothing is the
// reliability issue's main proof. Remote phones text the user and the user
// texts back in many portals at once, while the bridge is killed with
// SIGKILL at random moments, the homeserver crashes and comes back, Twilio's
// API refuses connections for a while and answers 500 and 429 for a while,
// and Twilio holds sent messages in "queued". After the trouble ends and the
// bridge has settled:
//
//   - every inbound text is in Matrix exactly once, in the order it was
//     sent, also those whose webhook failed while the bridge was down
//     (recovered by the catch-up from Twilio's message log);
//   - every outbound text reached Twilio exactly once, except within the
//     bound in docs/reliability.md: a text whose create Twilio accepted just
//     as the bridge was killed, and that reconciliation then could not find.
//     Such doubles are counted separately and must each straddle a kill.
//     Likewise an inbound text sent to the homeserver just as the homeserver
//     crashed may appear twice (its transaction cache is in memory); those
//     must straddle a homeserver restart.
func TestCrashesAndOutagesUnderMixedLoadLoseNothingAndDoubleNothing(t *testing.T) {
	crashTest(t, crashPlanFor(), nil)
}

// TestCrashesAndOutagesWithEncryptionLoseNothingAndLeaveNothingUndecryptable
// is the crash test in encrypted portals, kept short: besides nothing lost
// or doubled, every text must decrypt on the user's side, so no Megolm
// state a message went out under was lost to a kill -9.
func TestCrashesAndOutagesWithEncryptionLoseNothingAndLeaveNothingUndecryptable(t *testing.T) {
	plan := crashPlan{portals: 4, inbound: 80, outbound: 40, kills: 3,
		loadFor: 25 * time.Second, homeserverDown: 4 * time.Second, twilioDown: 4 * time.Second}
	crashTest(t, plan, map[string]any{"encryption.allow": true, "encryption.default": true})
}

// crashTest runs the load and the trouble of plan against a bridge with the
// given config edits, then counts.
func crashTest(t *testing.T, plan crashPlan, edits map[string]any) {
	started := time.Now()
	w := newWorld(t, edits)
	alice := w.newPerson("alice")
	alice.login()
	sim, hs, bridge := w.env.Sim, w.env.Dendrite, w.env.Bridge

	// Every remote phone opens its portal with its first text.
	remotes := make([]string, plan.portals)
	rooms := make([]id.RoomID, plan.portals)
	for i := range remotes {
		remotes[i] = w.number()
	}
	var setup sync.WaitGroup
	for i, remote := range remotes {
		setup.Add(1)
		go func() {
			defer setup.Done()
			_, _ = sim.SendInbound(w.ctx(), twiliosim.InboundMessage{From: remote, To: alice.Number, Body: inboundBody(i, 0)})
		}()
	}
	setup.Wait()
	for i, remote := range remotes {
		rooms[i] = alice.portalFor(remote)
		alice.WaitForMessage(rooms[i], ghost(remote), inboundBody(i, 0))
	}
	t.Logf("%d portals open after %v", plan.portals, time.Since(started).Round(time.Millisecond))

	inPerPortal := plan.inbound / plan.portals
	outPerPortal := plan.outbound / plan.portals
	loadCtx, stopLoad := context.WithTimeout(t.Context(), plan.loadFor+settleTimeout())
	defer stopLoad()

	// While the homeserver is down, the user's own client cannot send
	// either: senders wait at this gate, as an app's outbox would.
	var hsGate sync.RWMutex
	var webhooksFailed atomic.Int64
	var sentMu sync.Mutex
	sentEvents := map[id.EventID]string{}
	var loadErrs []error
	var loadMu sync.Mutex
	fail := func(err error) {
		loadMu.Lock()
		loadErrs = append(loadErrs, err)
		loadMu.Unlock()
	}
	var load sync.WaitGroup
	for i := range plan.portals {
		// The phone at the other end texts at its own pace, waiting for
		// Twilio to be done with each text before the next, as a person
		// typing does.
		load.Add(1)
		go func() {
			defer load.Done()
			every := plan.loadFor / time.Duration(inPerPortal)
			for k := 1; k < inPerPortal; k++ {
				if !pause(loadCtx, jitter(every)) {
					return
				}
				res, err := sim.SendInbound(loadCtx, twiliosim.InboundMessage{From: remotes[i], To: alice.Number, Body: inboundBody(i, k)})
				if res.MessageSID == "" {
					fail(fmt.Errorf("inbound %s was not even logged: %v", inboundBody(i, k), err))
					return
				}
				if err != nil || res.Response.StatusCode != http.StatusOK {
					webhooksFailed.Add(1)
				}
			}
		}()
		// And the user answers in the portal.
		load.Add(1)
		go func() {
			defer load.Done()
			every := plan.loadFor / time.Duration(outPerPortal)
			for k := range outPerPortal {
				if !pause(loadCtx, jitter(every)) {
					return
				}
				hsGate.RLock()
				evtID, err := alice.sendText(loadCtx, rooms[i], fmt.Sprintf("rel-%d-%d", i, k), outboundBody(i, k))
				hsGate.RUnlock()
				if err != nil {
					fail(err)
					return
				}
				sentMu.Lock()
				sentEvents[evtID] = outboundBody(i, k)
				sentMu.Unlock()
			}
		}()
	}

	// The trouble: kills at random moments, one homeserver crash in the
	// middle, and Twilio failing in several ways, all overlapping the load.
	tr := &trouble{}
	var chaos sync.WaitGroup
	var chaosErr atomic.Pointer[error]
	chaosFail := func(err error) { chaosErr.CompareAndSwap(nil, &err) }
	hsAt := plan.loadFor / 2
	chaos.Add(1)
	go func() {
		defer chaos.Done()
		begin := time.Now()
		// Kills fall anywhere in the load except while the homeserver is
		// down (a bridge cannot start without its homeserver).
		var at []time.Duration
		for len(at) < plan.kills {
			d := time.Duration(rand.Int64N(int64(plan.loadFor)))
			if d > hsAt-3*time.Second && d < hsAt+plan.homeserverDown+5*time.Second {
				continue
			}
			at = append(at, d)
		}
		at = append(at, hsAt)
		slices.Sort(at)
		hsDone := false
		for _, d := range at {
			if !pause(loadCtx, time.Until(begin.Add(d))) {
				return
			}
			if d == hsAt && !hsDone {
				hsDone = true
				hsGate.Lock()
				hs.Kill()
				down := time.Now()
				pause(loadCtx, plan.homeserverDown)
				err := hs.StartAgain(loadCtx)
				tr.note(func() { tr.homeserverDown = append(tr.homeserverDown, [2]time.Time{down, time.Now()}) })
				hsGate.Unlock()
				if err != nil {
					chaosFail(fmt.Errorf("homeserver did not come back: %w", err))
					return
				}
				continue
			}
			bridge.Kill()
			killed := time.Now()
			tr.note(func() { tr.kills = append(tr.kills, killed) })
			// Down for a moment, sometimes not at all.
			pause(loadCtx, time.Duration(rand.Int64N(int64(700*time.Millisecond))))
			if err := bridge.StartAgain(loadCtx, w.env.Binary); err != nil {
				chaosFail(fmt.Errorf("bridge did not start again after kill %d: %w", len(tr.kills), err))
				return
			}
			tr.note(func() { tr.downtime += time.Since(killed) })
		}
	}()
	var faultHits atomic.Int64
	chaos.Add(1)
	go func() {
		defer chaos.Done()
		begin := time.Now()
		step := func(at float64) bool {
			return pause(loadCtx, time.Until(begin.Add(time.Duration(at*float64(plan.loadFor)))))
		}
		creates := "/2010-04-01/Accounts/*/Messages.json"
		// Twilio's API refuses connections.
		if !step(0.15) {
			return
		}
		down := time.Now()
		_ = sim.SetOutage(twiliosim.OutageRefuse)
		pause(loadCtx, plan.twilioDown)
		_ = sim.SetOutage(twiliosim.OutageNone)
		tr.note(func() { tr.twilioDown = append(tr.twilioDown, [2]time.Time{down, time.Now()}) })
		// Creates fail with 500 for a while (nothing created).
		if !step(0.3) {
			return
		}
		f := sim.InjectFault(twiliosim.Fault{Kind: twiliosim.FaultServerError, Method: http.MethodPost, Path: creates})
		pause(loadCtx, plan.twilioDown/2)
		faultHits.Add(int64(f.Hits()))
		f.Remove()
		// Twilio holds sent messages in "queued".
		if !step(0.4) {
			return
		}
		sim.PauseOutbound()
		pause(loadCtx, plan.twilioDown)
		sim.ResumeOutbound()
		// Then rate-limits creates, asking to retry after 2 s.
		if !step(0.75) {
			return
		}
		f = sim.InjectFault(twiliosim.Fault{Kind: twiliosim.FaultRateLimit, Method: http.MethodPost, Path: creates, RetryAfter: 2 * time.Second})
		pause(loadCtx, plan.twilioDown/2)
		faultHits.Add(int64(f.Hits()))
		f.Remove()
		// And answers everything with 503 for a moment.
		if !step(0.85) {
			return
		}
		_ = sim.SetOutage(twiliosim.OutageUnavailable)
		pause(loadCtx, plan.twilioDown/2)
		_ = sim.SetOutage(twiliosim.OutageNone)
	}()

	load.Wait()
	chaos.Wait()
	loadDone := time.Now()
	for _, err := range loadErrs {
		t.Error(err)
	}
	if p := chaosErr.Load(); p != nil {
		t.Fatal(*p)
	}
	if t.Failed() {
		t.FailNow()
	}

	// Recovery: every fault cleared, everything running.
	sim.ClearFaults()
	_ = sim.SetOutage(twiliosim.OutageNone)
	sim.ResumeOutbound()
	if !bridge.Running() {
		if err := bridge.StartAgain(w.ctx(), w.env.Binary); err != nil {
			t.Fatal(err)
		}
	}

	// Wait until both sides have everything, and the bridge holds no more
	// work that could still add a double.
	wantIn := map[string]bool{}
	for i := range plan.portals {
		for k := range inPerPortal {
			wantIn[inboundBody(i, k)] = true
		}
	}
	wantOut := map[string]bool{}
	for i := range plan.portals {
		for k := range outPerPortal {
			wantOut[outboundBody(i, k)] = true
		}
	}
	settle, cancel := context.WithTimeout(t.Context(), settleTimeout())
	defer cancel()
	_, err := sim.WaitOutbound(settle, func(all []twiliosim.OutboundMessage) bool {
		seen := map[string]bool{}
		for _, m := range all {
			if wantOut[m.Body] {
				seen[m.Body] = true
			}
		}
		return len(seen) == len(wantOut)
	})
	if err != nil {
		t.Errorf("not every outbound text reached Twilio: %v", err)
	}
	if err := waitInbound(settle, alice, remotes, wantIn); err != nil {
		t.Errorf("not every inbound text reached Matrix: %v", err)
	}
	// Every outcome reached the sender too: a text's outcome is journalled
	// in the commit that records its send, so a kill before it was shown
	// only delays it.
	sentMu.Lock()
	for evtID, body := range sentEvents {
		_, portal, _, _ := parseBody(body)
		if _, err := alice.Client.WaitForEvent(settle, rooms[portal], func(e *event.Event) bool {
			c, ok := statusContent(e)
			return ok && c.RelatesTo.EventID == evtID && c.Status != event.MessageStatusRetriable
		}); err != nil {
			t.Errorf("the outcome of %q never reached the sender: %v", body, err)
			break
		}
	}
	sentMu.Unlock()
	db := w.db()
	if err := w.waitJournalsDrained(settle, db); err != nil {
		t.Error(err)
	}
	settled := time.Now()

	// Count, from what the user's client received and the homeserver's
	// own record (/messages), and from the simulator's.
	timelines, onlySync := alice.allTimelines()
	if onlySync > 0 {
		t.Logf("%d events the client received by /sync are missing from /messages (a Dendrite pagination quirk); counted", onlySync)
	}
	in := countInbound(timelines, remotes, inPerPortal)
	undecryptable := 0
	for _, events := range timelines {
		for _, e := range events {
			if e.Type == event.EventEncrypted {
				undecryptable++
			}
		}
	}
	if undecryptable > 0 {
		t.Errorf("%d events stay undecryptable on the user's side", undecryptable)
	}
	out := countOutbound(sim.Outbound(), alice.Account.Messages(), plan.portals, outPerPortal)
	// The bridge promises the order in which the homeserver handed it the
	// user's texts (its journal order); the homeserver itself may hand one
	// over late after it crashed, which is reported apart.
	journal := journalOrder(w, db, sentEvents)
	hsDisorder := 0
	for i := range plan.portals {
		var byArrival []int
		for k := range outPerPortal {
			byArrival = append(byArrival, k)
		}
		slices.SortStableFunc(byArrival, func(a, b int) int {
			return journal[outboundBody(i, a)] - journal[outboundBody(i, b)]
		})
		if !sort.IntsAreSorted(byArrival) {
			hsDisorder++
			t.Logf("the homeserver handed portal %d's texts over in the order %v", i, byArrival)
		}
		out.disorder = append(out.disorder, disorderAgainst(fmt.Sprintf("portal %d", i), out.order[i], byArrival)...)
	}

	// A double of an inbound text is within the bound when its portal had
	// no more doubles than crashes: at most the one send in flight per
	// crash, which the homeserver had not made visible within the
	// bridge's grace period (docs/reliability.md, bound 1). Timestamps
	// cannot tell more: both copies carry the text's own time.
	crashes := len(tr.kills) + len(tr.homeserverDown)
	perPortal := map[int]int{}
	for _, d := range in.doubles {
		_, portal, _, _ := parseBody(d.body)
		perPortal[portal] += d.times - 1
		if perPortal[portal] <= crashes {
			in.boundDoubles++
			t.Logf("inbound text %q is in Matrix %d times (within the bound)", d.body, d.times)
		} else {
			t.Errorf("inbound text %q is in Matrix %d times, more doubles in its portal than crashes", d.body, d.times)
		}
	}
	for _, d := range out.doubles {
		if tr.killedBetween(d.first.Add(-2*time.Second), d.second.Add(2*time.Second)) {
			out.boundDoubles++
		} else {
			t.Errorf("outbound text %q reached Twilio %d times, and no kill explains it", d.body, d.times)
		}
	}
	for _, body := range in.lost {
		t.Errorf("inbound text %q never reached Matrix", body)
	}
	for _, body := range out.lost {
		t.Errorf("outbound text %q never reached Twilio", body)
	}
	// Texts recovered by a catch-up that could not run before newer
	// webhooks (Twilio's API was down at that moment) may arrive after
	// them: bound 3. The bridge says so in its log.
	catchUpFailed := len(w.logLines("Could not catch up before journalling a webhook")) > 0
	for _, o := range in.disorder {
		if catchUpFailed {
			t.Logf("inbound texts out of order after a catch-up failed (within the bound): %s", o)
		} else {
			t.Errorf("inbound texts out of order: %s", o)
		}
	}
	for _, o := range out.disorder {
		t.Errorf("outbound texts reached Twilio out of the order the bridge received them: %s", o)
	}
	// The bound: at most one in-flight text per portal per crash.
	if max := len(tr.kills) * plan.portals; out.boundDoubles > max {
		t.Errorf("%d outbound doubles, more than the bound of one per portal per kill (%d)", out.boundDoubles, max)
	}
	w.assertHealthy()
	w.assertNoSecretsInLog(alice)

	t.Logf("RELIABILITY FIGURES (%s run): portals=%d inbound=%d (webhooks failed and recovered by catch-up: %d) outbound=%d "+
		"kills=%d bridge_downtime=%v homeserver_crashes=%d (down %v) twilio_outages=%d (refused %v, 500/429 faults hit %d times) | "+
		"undecryptable=%d | inbound lost=%d (events seen by /sync but missing from /messages: %d) doubled=%d (within bound: %d) out_of_order=%d (after a failed catch-up: %v) | outbound lost=%d doubled=%d (within bound: %d) out_of_order=%d "+
		"(portals the homeserver handed over out of order after its crash: %d) | "+
		"load=%v settle=%v wall=%v",
		pick("short", "long"), plan.portals, len(wantIn), webhooksFailed.Load(), len(wantOut),
		len(tr.kills), tr.downtime.Round(time.Millisecond), len(tr.homeserverDown), plan.homeserverDown, len(tr.twilioDown), plan.twilioDown, faultHits.Load(),
		undecryptable, len(in.lost), onlySync, len(in.doubles), in.boundDoubles, len(in.disorder), catchUpFailed,
		len(out.lost), len(out.doubles), out.boundDoubles, len(out.disorder), hsDisorder,
		loadDone.Sub(started).Round(time.Second), settled.Sub(loadDone).Round(time.Second), time.Since(started).Round(time.Second))
}

// pause waits d (at once if d <= 0), or reports false if ctx ends first.
// It paces the load and times the trouble; it never stands in for waiting
// on a condition.
func pause(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// jitter spreads d over [d/2, 3d/2).
func jitter(d time.Duration) time.Duration {
	return d/2 + time.Duration(rand.Int64N(int64(d)+1))
}

// waitInbound waits until the person's client has seen every wanted inbound
// text from the remote phones' ghosts.
func waitInbound(ctx context.Context, p *person, remotes []string, want map[string]bool) error {
	ghosts := map[id.UserID]bool{}
	for _, r := range remotes {
		ghosts[ghost(r)] = true
	}
	for {
		seen := map[string]bool{}
		for _, room := range p.Rooms() {
			for _, e := range p.Events(room) {
				if ghosts[e.Sender] && want[body(e)] {
					seen[body(e)] = true
				}
			}
		}
		if len(seen) == len(want) {
			return nil
		}
		// The client's records change as it syncs; a short poll is the
		// cheapest way to look across all its rooms.
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d of %d inbound texts seen: %w", len(seen), len(want), ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// double is a text that arrived more than once.
type double struct {
	body          string
	times         int
	first, second time.Time
}

// tally is what one side received.
type tally struct {
	lost         []string
	doubles      []double
	boundDoubles int
	disorder     []string
	// order is, per portal, the k of each text in the order received.
	order [][]int
}

// countInbound checks the rooms' timelines for the inbound texts: each once,
// and in order per remote phone, whichever room of its portal it is in.
func countInbound(timelines map[id.RoomID][]*event.Event, remotes []string, perPortal int) tally {
	portalOf := map[id.UserID]int{}
	for i, r := range remotes {
		portalOf[ghost(r)] = i
	}
	seen := map[string][]time.Time{}
	order := make([][]int, len(remotes))
	rooms := make([]id.RoomID, 0, len(timelines))
	for room := range timelines {
		rooms = append(rooms, room)
	}
	slices.Sort(rooms)
	for _, room := range rooms {
		for _, e := range timelines[room] {
			i, ok := portalOf[e.Sender]
			if !ok {
				continue
			}
			dir, portal, k, ok := parseBody(body(e))
			if !ok || dir != "in" || portal != i {
				continue
			}
			seen[body(e)] = append(seen[body(e)], time.UnixMilli(e.Timestamp))
			order[i] = append(order[i], k)
		}
	}
	t := tally{order: order}
	for i := range remotes {
		for k := range perPortal {
			t.count(inboundBody(i, k), seen)
		}
		t.disorder = append(t.disorder, disorder(fmt.Sprintf("portal %d", i), order[i])...)
	}
	return t
}

// count files text b as lost or doubled by how often it was seen (and when).
func (t *tally) count(b string, seen map[string][]time.Time) {
	switch n := len(seen[b]); {
	case n == 0:
		t.lost = append(t.lost, b)
	case n > 1:
		t.doubles = append(t.doubles, double{body: b, times: n, first: seen[b][0], second: seen[b][1]})
	}
}

// countOutbound checks what Twilio was asked to send: each text once, and
// in order per recipient.
func countOutbound(all []twiliosim.OutboundMessage, log []twiliosim.Message, portals, perPortal int) tally {
	created := map[string]time.Time{}
	for _, m := range log {
		created[m.SID] = m.DateCreated
	}
	seen := map[string][]time.Time{}
	order := make([][]int, portals)
	for _, m := range all {
		dir, portal, k, ok := parseBody(m.Body)
		if !ok || dir != "out" || portal >= portals {
			continue
		}
		seen[m.Body] = append(seen[m.Body], created[m.SID])
		order[portal] = append(order[portal], k)
	}
	t := tally{order: order}
	for i := range portals {
		for k := range perPortal {
			t.count(outboundBody(i, k), seen)
		}
	}
	return t
}

// journalOrder returns the bridge's outbound journal position of each text
// the user sent: the order in which the homeserver handed them over.
func journalOrder(w *world, db *sql.DB, sent map[id.EventID]string) map[string]int {
	rows, err := db.QueryContext(w.ctx(), "SELECT event_id, seq FROM outbound_event")
	if err != nil {
		w.t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var evtID string
		var seq int
		if err := rows.Scan(&evtID, &seq); err != nil {
			w.t.Fatal(err)
		}
		if b, ok := sent[id.EventID(evtID)]; ok {
			out[b] = seq
		}
	}
	if err := rows.Err(); err != nil {
		w.t.Fatal(err)
	}
	return out
}

// disorderAgainst describes where the first occurrences of ks do not
// follow the wanted order.
func disorderAgainst(what string, ks, want []int) []string {
	var firsts []int
	seen := map[int]bool{}
	for _, k := range ks {
		if !seen[k] {
			seen[k] = true
			firsts = append(firsts, k)
		}
	}
	if slices.Equal(firsts, want) {
		return nil
	}
	return []string{fmt.Sprintf("%s: %v, received %v", what, firsts, want)}
}

// disorder describes where the first occurrences of a conversation's texts
// are not in increasing order.
func disorder(what string, ks []int) []string {
	var firsts []int
	seen := map[int]bool{}
	for _, k := range ks {
		if !seen[k] {
			seen[k] = true
			firsts = append(firsts, k)
		}
	}
	if sort.IntsAreSorted(firsts) {
		return nil
	}
	strs := make([]string, len(firsts))
	for i, k := range firsts {
		strs[i] = strconv.Itoa(k)
	}
	return []string{what + ": " + strings.Join(strs, ",")}
}
