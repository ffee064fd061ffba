package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/trestle-bridge/trestle/internal/rig"
)

// LoginsOptions size a many-logins start-up measurement.
type LoginsOptions struct {
	Options
	// Logins is how many logged-in numbers the store holds.
	Logins int
	// Latency is the null Twilio's answer delay.
	Latency time.Duration
}

// LoginsReport is what RunLogins measured.
type LoginsReport struct {
	Logins         int
	Latency        time.Duration
	StartupToReady time.Duration
	// AllCaughtUp is from the start until every login had listed its
	// messages (the last of its start-up calls).
	AllCaughtUp time.Duration
	RSS         int64
	Goroutines  float64
	Calls       map[string]int
	PeakCalls   int
}

// Text formats the report.
func (r *LoginsReport) Text() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "logins: %d (null Twilio answering after %s)\n", r.Logins, r.Latency)
	fmt.Fprintf(&sb, "start-up to ready: %s\nall logins connected and caught up: %s\n", r.StartupToReady.Round(time.Millisecond), r.AllCaughtUp.Round(time.Millisecond))
	fmt.Fprintf(&sb, "RSS after start-up: %.1f MB\ngoroutines: %.0f\n", float64(r.RSS)/(1<<20), r.Goroutines)
	total := 0
	endpoints := make([]string, 0, len(r.Calls))
	for e, n := range r.Calls {
		endpoints = append(endpoints, e)
		total += n
	}
	sort.Strings(endpoints)
	fmt.Fprintf(&sb, "Twilio calls at start-up: %d, at most %d at once\n", total, r.PeakCalls)
	for _, e := range endpoints {
		fmt.Fprintf(&sb, "  %6d %s\n", r.Calls[e], e)
	}
	return strings.TrimRight(sb.String(), "\n")
}

// RunLogins stores many logins of one account (each its own number), then
// measures the bridge's start-up with them: time to ready, time until every
// login connected and caught up, memory, goroutines, and the Twilio calls
// made, by endpoint and at most at once.
func RunLogins(ctx context.Context, opts LoginsOptions) (*LoginsReport, error) {
	metricsPort, err := rig.FreePort()
	if err != nil {
		return nil, err
	}
	metricsURL := fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort)
	opts.ConfigEdits = map[string]any{"metrics.enabled": true, "metrics.listen": fmt.Sprintf("127.0.0.1:%d", metricsPort)}
	opts.Numbers = 1
	r, _, cleanup, err := startNull(ctx, opts.Options)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	if err := r.bridge.Stop(); err != nil {
		return nil, err
	}
	opts.progress("storing %d logins", opts.Logins)
	if err := fillLogins(ctx, r.dbType, r.dbURI, opts.Logins); err != nil {
		return nil, err
	}
	r.twilio.Latency, r.twilio.MoreNumbers = opts.Latency, opts.Logins
	r.twilio.ResetCalls()
	report := &LoginsReport{Logins: opts.Logins + 1, Latency: opts.Latency}
	start := time.Now()
	if err := r.bridge.StartAgain(ctx, r.binary); err != nil {
		return nil, err
	}
	report.StartupToReady = time.Since(start)
	opts.progress("ready after %s; waiting for every login's catch-up", report.StartupToReady.Round(time.Millisecond))
	listing := "GET /2010-04-01/Accounts/{Sid}/Messages.json"
	for {
		calls, _ := r.twilio.Calls()
		if calls[listing] >= report.Logins {
			report.AllCaughtUp = time.Since(start)
			break
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	waitQuiet(ctx, r.bridge.PID())
	st, err := ReadProcStats(r.bridge.PID())
	if err != nil {
		return nil, err
	}
	report.RSS = st.RSS
	if report.Goroutines, err = scrapeCounter(ctx, metricsURL, "go_goroutines"); err != nil {
		return nil, err
	}
	report.Calls, report.PeakCalls = r.twilio.Calls()
	return report, nil
}

// loginNumber is the number SID and number of the i-th stored login.
func loginNumber(i int) (sid, e164 string) {
	return fmt.Sprintf("PN%032x", i+1), fmt.Sprintf("+1415%07d", 1_000_000+i)
}

// fillLogins stores n more logins of the bench user on the bench account,
// shaped like the Twilio connector's own rows.
func fillLogins(ctx context.Context, dbType, uri string, n int) error {
	db, err := openStore(dbType, uri)
	if err != nil {
		return err
	}
	defer db.Close()
	now := time.Now()
	return insertRows(ctx, db, "user_login (id, user_mxid, remote_name, metadata, created_at)", 5, n, func(i int) []any {
		sid, number := loginNumber(i)
		meta, _ := json.Marshal(map[string]any{
			"account_sid": benchAccount, "auth_token": benchToken,
			"phone_number_sid": sid, "phone_number": number,
			"catch_up_since": now,
		})
		return []any{strings.TrimPrefix(number, "+"), benchUser, number, string(meta), now.UnixMilli()}
	})
}
