package reliability_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/connectors/twilio/twiliosim"
)

// createPath matches Twilio's message-create requests.
const createPath = "/2010-04-01/Accounts/*/Messages.json"

// TestAHomeserverOutageDelaysInboundTextsButLosesAndReordersNone takes the
// homeserver down (15 s, or 60 s in the long run) while phones keep
// texting. The bridge stays up and acknowledges every webhook (the texts
// are journalled), the other direction keeps flowing (texts the user sent
// before the outage still reach Twilio during it), and once the
// homeserver is back every text is in its room once, in order.
func TestAHomeserverOutageDelaysInboundTextsButLosesAndReordersNone(t *testing.T) {
	down := pick(15*time.Second, 60*time.Second)
	w := newWorld(t, nil)
	alice := w.newPerson("alice")
	alice.login()
	remotes := []string{w.number(), w.number(), w.number()}
	rooms := make([]id.RoomID, len(remotes))
	for i, r := range remotes {
		rooms[i] = alice.openPortal(r, fmt.Sprintf("hello %d", i))
	}

	// The user's last texts before the outage (one per portal) are held
	// up by Twilio, after the bridge journalled them.
	busy := w.env.Sim.InjectFault(twiliosim.Fault{Kind: twiliosim.FaultUnavailable, Method: http.MethodPost, Path: createPath})
	var before []string
	var held []string
	for i := range rooms {
		before = append(before, fmt.Sprintf("sent before the outage %d", i))
		held = append(held, "'"+string(alice.Send(rooms[i], before[i]))+"'")
	}
	db := w.db()
	if err := waitFor(w.ctx(), "the bridge to journal the held texts", func() bool {
		return w.count(db, "SELECT COUNT(*) FROM outbound_event WHERE event_id IN ("+strings.Join(held, ",")+")") == len(held)
	}); err != nil {
		t.Fatal(err)
	}
	w.env.Dendrite.Kill()
	outage := time.Now()
	busy.Remove()
	// Twilio recovers while the homeserver is still down: those texts go
	// out now, without waiting for Matrix.
	if _, err := w.env.Sim.WaitOutbound(w.ctx(), func(all []twiliosim.OutboundMessage) bool {
		return countBodies(all, before...) == len(before)
	}); err != nil {
		t.Fatalf("texts already handed to the bridge did not reach Twilio during the homeserver outage: %v", err)
	}
	if time.Since(outage) >= down {
		t.Fatal("the outbound texts took longer than the outage")
	}

	var want [][]string
	for i, r := range remotes {
		var texts []string
		for k := range 5 {
			text := fmt.Sprintf("during the outage %d.%d", i, k)
			res := alice.textFrom(r, text)
			if res.Response.StatusCode != http.StatusOK {
				t.Fatalf("webhook during the homeserver outage answered %d: %s", res.Response.StatusCode, res.Response.Body)
			}
			texts = append(texts, text)
		}
		want = append(want, texts)
	}
	pause(t.Context(), time.Until(outage.Add(down)))
	if !w.env.Bridge.Running() {
		t.Fatal("the bridge exited during the homeserver outage")
	}
	if err := w.env.Dendrite.StartAgain(w.ctx()); err != nil {
		t.Fatal(err)
	}

	// A send the restarting Dendrite accepted but never answered costs the
	// bridge its one-minute wait for response headers before it retries:
	// the journal keeps the texts meanwhile, so they come, only later.
	alice.Timeout = 2 * time.Minute
	for i, r := range remotes {
		alice.WaitForMessage(rooms[i], ghost(r), want[i][len(want[i])-1])
		tl, err := timeline(w.ctx(), alice.Matrix, rooms[i])
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range tl {
			if e.Sender == ghost(r) && strings.HasPrefix(body(e), "during the outage") {
				got = append(got, body(e))
			}
		}
		if !slices.Equal(got, want[i]) {
			t.Errorf("portal %d has %q, want each text once in order %q", i, got, want[i])
		}
	}
	if n := countBodies(w.env.Sim.Outbound(), before...); n != len(before) {
		t.Errorf("%d creates for %d texts", n, len(before))
	}
	w.assertHealthy()
}

// countBodies counts the outbound messages with one of the bodies.
func countBodies(all []twiliosim.OutboundMessage, bodies ...string) int {
	n := 0
	for _, m := range all {
		if slices.Contains(bodies, m.Body) {
			n++
		}
	}
	return n
}

// TestTwilioTroubleShowsARetryingStatusThenSendsEachTextOnce sends a text
// while Twilio answers 500, one while it rate-limits with Retry-After, and
// one while it hangs. Each time the sender sees a "retrying" status
// (FAIL_RETRIABLE) with a sentence naming the trouble, while nothing was
// created at Twilio; then, once Twilio is back, a success status, and the
// text was created exactly once.
func TestTwilioTroubleShowsARetryingStatusThenSendsEachTextOnce(t *testing.T) {
	w := newWorld(t, map[string]any{
		// One in-process retry, so the trouble reaches the core quickly.
		"network.request_timeout": "3s",
	})
	alice := w.newPerson("alice")
	alice.login()
	bob := w.number()
	room := alice.openPortal(bob, "hi")

	for _, tc := range []struct {
		name  string
		fault twiliosim.Fault
		says  string
	}{
		{"500", twiliosim.Fault{Kind: twiliosim.FaultServerError}, "Twilio is having trouble (HTTP 500)"},
		{"429", twiliosim.Fault{Kind: twiliosim.FaultRateLimit, RetryAfter: 2 * time.Second}, "Twilio is rate-limiting requests"},
		{"hang", twiliosim.Fault{Kind: twiliosim.FaultHang}, "Twilio could not be reached"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.fault.Method, tc.fault.Path = http.MethodPost, createPath
			fault := w.env.Sim.InjectFault(tc.fault)
			defer fault.Remove()
			text := "sent while Twilio answers " + tc.name
			evt := alice.Send(room, text)
			st := alice.waitStatus(room, evt, func(c *event.BeeperMessageStatusEventContent) bool {
				return c.Status == event.MessageStatusRetriable
			})
			if !strings.Contains(st.Message, tc.says) || !strings.Contains(st.Message, "Retrying") {
				t.Errorf("retrying status says %q, want it to name the trouble (%q) and say it retries", st.Message, tc.says)
			}
			if n := countBodies(w.env.Sim.Outbound(), text); n != 0 {
				t.Fatalf("the status says retrying, but Twilio already has the text %d times", n)
			}
			fault.Remove()
			alice.waitStatus(room, evt, func(c *event.BeeperMessageStatusEventContent) bool {
				return c.Status == event.MessageStatusSuccess
			})
			if n := countBodies(w.env.Sim.Outbound(), text); n != 1 {
				t.Errorf("Twilio created the text %d times, want once", n)
			}
			for _, c := range alice.statuses(room, evt) {
				if c.Status == event.MessageStatusFail {
					t.Errorf("the sender was told the text failed: %q", c.Message)
				}
			}
		})
	}
	w.assertHealthy()
}

// TestAPostgresOutageIsRiddenOut runs on PostgreSQL only
// (TRESTLE_TEST_POSTGRES). The bridge's connections are cut while texts
// flow both ways (and, with TRESTLE_RELIABILITY_PG_RESTART=1, the whole
// local server is restarted, which disturbs anyone else using it): the
// bridge stays up, and every text still arrives exactly once.
func TestAPostgresOutageIsRiddenOut(t *testing.T) {
	if os.Getenv("TRESTLE_TEST_POSTGRES") == "" {
		t.Skip("TRESTLE_TEST_POSTGRES is not set")
	}
	w := newWorld(t, nil)
	alice := w.newPerson("alice")
	alice.login()
	bob := w.number()
	room := alice.openPortal(bob, "hi")
	db := w.db()

	var inbound, outbound []string
	disrupt := []struct {
		name string
		do   func() error
	}{{"connections terminated", func() error {
		_, err := db.ExecContext(w.ctx(), `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid()
			AND application_name = $1`, w.pgApp)
		return err
	}}}
	if os.Getenv("TRESTLE_RELIABILITY_PG_RESTART") == "1" {
		disrupt = append(disrupt, struct {
			name string
			do   func() error
		}{"server restarted", func() error {
			versions, err := os.ReadDir("/etc/postgresql")
			if err != nil || len(versions) == 0 {
				return fmt.Errorf("no local PostgreSQL cluster: %v", err)
			}
			out, err := exec.Command("pg_ctlcluster", "--skip-systemctl-redirect", versions[0].Name(), "main", "restart").CombinedOutput()
			if err != nil {
				return fmt.Errorf("%v: %s", err, out)
			}
			return nil
		}})
	}
	for _, d := range disrupt {
		for k := range 5 {
			in, out := fmt.Sprintf("in, %s %d", d.name, k), fmt.Sprintf("out, %s %d", d.name, k)
			inbound, outbound = append(inbound, in), append(outbound, out)
			_, _ = w.env.Sim.SendInbound(w.ctx(), twiliosim.InboundMessage{From: bob, To: alice.Number, Body: in})
			alice.Send(room, out)
			if k == 2 {
				if err := d.do(); err != nil {
					t.Fatalf("%s: %v", d.name, err)
				}
			}
		}
	}
	// A webhook refused while the database was away is recovered by the
	// catch-up the next webhook runs first.
	inbound = append(inbound, "after the outage")
	alice.textFrom(bob, "after the outage")
	alice.WaitForMessage(room, ghost(bob), "after the outage")
	if _, err := w.env.Sim.WaitOutbound(w.ctx(), func(all []twiliosim.OutboundMessage) bool {
		return countBodies(all, outbound...) >= len(outbound)
	}); err != nil {
		t.Fatal(err)
	}
	tl, err := timeline(w.ctx(), alice.Matrix, room)
	if err != nil {
		t.Fatal(err)
	}
	for _, text := range inbound {
		n := 0
		for _, e := range tl {
			if e.Sender == ghost(bob) && body(e) == text {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%q is in the room %d times, want once", text, n)
		}
	}
	for _, text := range outbound {
		if n := countBodies(w.env.Sim.Outbound(), text); n != 1 {
			t.Errorf("%q reached Twilio %d times, want once", text, n)
		}
	}
	if err := w.waitJournalsDrained(w.ctx(), db); err != nil {
		t.Error(err)
	}
	w.assertHealthy()
}

// waitFor polls cond every 100 ms until it holds or ctx ends.
func waitFor(ctx context.Context, what string, cond func() bool) error {
	for !cond() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil
}
