package reliability_test

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/connectors/twilio/twiliosim"
)

// TestSIGTERMDuringABurstExitsCleanlyAndLosesNothing stops the bridge with
// SIGTERM in the middle of a burst of texts in both directions. It must
// stop taking work, finish or journal what it holds within its shutdown
// timeout, and exit 0 (the rig reports anything else as an error). After a
// restart every text is delivered exactly once: those acknowledged before
// the stop from the journal, those refused during it from Twilio's log
// (catch-up) and the homeserver's retries.
func TestSIGTERMDuringABurstExitsCleanlyAndLosesNothing(t *testing.T) {
	const portals, perPortal = 5, 20
	w := newWorld(t, nil)
	alice := w.newPerson("alice")
	alice.login()
	remotes := make([]string, portals)
	rooms := make([]id.RoomID, portals)
	for i := range remotes {
		remotes[i] = w.number()
		rooms[i] = alice.openPortal(remotes[i], inboundBody(i, 0))
	}

	var (
		mu           sync.Mutex
		acknowledged = map[string]bool{}
		burst        sync.WaitGroup
	)
	for i := range portals {
		burst.Add(2)
		go func() {
			defer burst.Done()
			for k := 1; k <= perPortal; k++ {
				res, _ := w.env.Sim.SendInbound(t.Context(), twiliosim.InboundMessage{From: remotes[i], To: alice.Number, Body: inboundBody(i, k)})
				if res.Response.StatusCode == http.StatusOK {
					mu.Lock()
					acknowledged[inboundBody(i, k)] = true
					mu.Unlock()
				}
			}
		}()
		go func() {
			defer burst.Done()
			for k := range perPortal {
				if _, err := alice.sendText(t.Context(), rooms[i], fmt.Sprintf("term-%d-%d", i, k), outboundBody(i, k)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	// Stop once the burst is well under way.
	if err := waitFor(w.ctx(), "the burst to get going", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acknowledged) >= portals*perPortal/4
	}); err != nil {
		t.Fatal(err)
	}
	stopping := time.Now()
	if err := w.env.Bridge.Stop(); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	stopTook := time.Since(stopping)
	// bridge.shutdown_timeout is 10 s; the HTTP server gets 10 s more to
	// finish the requests it holds.
	if stopTook > 25*time.Second {
		t.Errorf("the bridge took %v to stop", stopTook)
	}
	burst.Wait()
	mu.Lock()
	acked := len(acknowledged)
	mu.Unlock()

	if err := w.env.Bridge.StartAgain(w.ctx(), w.env.Binary); err != nil {
		t.Fatal(err)
	}
	// One more text per phone, which (running the catch-up first) brings
	// in whatever was refused during the stop.
	want := map[string]bool{}
	for i := range portals {
		alice.textFrom(remotes[i], inboundBody(i, perPortal+1))
		for k := 0; k <= perPortal+1; k++ {
			want[inboundBody(i, k)] = true
		}
	}
	if err := waitInbound(w.ctx(), alice, remotes, want); err != nil {
		t.Fatal(err)
	}
	if _, err := w.env.Sim.WaitOutbound(w.ctx(), func(all []twiliosim.OutboundMessage) bool {
		n := 0
		for i := range portals {
			for k := range perPortal {
				if countBodies(all, outboundBody(i, k)) > 0 {
					n++
				}
			}
		}
		return n == portals*perPortal
	}); err != nil {
		t.Fatalf("not every text the user sent reached Twilio: %v", err)
	}
	if err := w.waitJournalsDrained(w.ctx(), w.db()); err != nil {
		t.Fatal(err)
	}

	timelines, _ := alice.allTimelines()
	in := countInbound(timelines, remotes, perPortal+2)
	out := countOutbound(w.env.Sim.Outbound(), alice.Account.Messages(), portals, perPortal)
	for _, b := range in.lost {
		t.Errorf("inbound %q lost (acknowledged before the stop: %v)", b, acknowledged[b])
	}
	for _, d := range in.doubles {
		t.Errorf("inbound %q is in Matrix %d times", d.body, d.times)
	}
	for _, o := range in.disorder {
		t.Errorf("inbound out of order: %s", o)
	}
	for _, b := range out.lost {
		t.Errorf("outbound %q lost", b)
	}
	for _, d := range out.doubles {
		t.Errorf("outbound %q reached Twilio %d times", d.body, d.times)
	}
	if lines := w.logLines("Shutdown timeout reached"); len(lines) > 0 {
		t.Logf("the stop left work journalled for the next start: %s", lines[0])
	}
	w.assertHealthy()
	t.Logf("SIGTERM figures: stop took %v; %d of %d inbound webhooks acknowledged; %d inbound and %d outbound texts, none lost or doubled",
		stopTook.Round(time.Millisecond), acked, portals*perPortal, len(want), portals*perPortal)
}
