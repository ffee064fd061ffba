// Package twilio_test proves the Twilio bridge end to end, as people use it:
// the trestle-twilio binary with its own config and generated registration,
// a throwaway Dendrite, a real Matrix client acting as the user, and the
// Twilio simulator playing Twilio and the phones on the other side. The
// bridge runs on SQLite, or on PostgreSQL when TRESTLE_TEST_POSTGRES is set.
//
// All tests share the one bridge and homeserver; each has its own Matrix
// user, Twilio account and numbers, so they do not see each other. They run
// one at a time: one of them stops and restarts the bridge. After the last
// one, the bridge's log is scanned for every secret the tests handed it.
// Set TRESTLE_E2E_KEEP_LOG to a file path to keep the whole log of a run.
package twilio_test

import (
	"flag"
	"fmt"
	"maps"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/trestle-bridge/trestle/internal/rig"
)

var env *rig.Env

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		// Every test here needs the shared Dendrite, which a cold cache
		// spends minutes building.
		fmt.Println("skipping the end-to-end tests: -short leaves out everything that needs Dendrite")
		os.Exit(0)
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
	return rig.RunShared(m, rig.SharedEnv{
		Name:    "twilio",
		Timeout: 20 * time.Minute,
		ConfigEdits: map[string]any{
			// Tests send bursts; the real default (1/s per number) is tested
			// on its own in the connector's tests.
			"network.max_send_rate":   0,
			"bridge.shutdown_timeout": "5s",
			// Texts whose webhooks were black-holed must arrive within one
			// reconcile period; the tests wait seconds, not minutes.
			"network.reconcile_interval": "2s",
			// Contacts are named after Lookup's caller name where the
			// simulator has one; other numbers have none, so every other
			// test still sees formatted numbers.
			"network.caller_name_lookup": true,
		},
		Started:  func(e *rig.Env) { env = e },
		Finished: func(*rig.Env) bool { return theLogHoldsNoSecret() },
	})
}

// theLogHoldsNoSecret is the last check of the run: the bridge's log, after
// every scenario, must not contain any auth token or API key secret the
// tests handed it (nor their basic-auth form), nor the appservice tokens,
// nor the key that encrypts stored credentials.
// It reports each leak, by name only, as a failure.
func theLogHoldsNoSecret() bool {
	cfg, err := env.Files.LoadConfig()
	if err != nil {
		fmt.Fprintln(os.Stderr, "--- FAIL: log secret scan: reading the bridge config:", err)
		return false
	}
	rememberSecret("appservice as_token", cfg.AppService.ASToken)
	rememberSecret("appservice hs_token", cfg.AppService.HSToken)
	rememberSecret("database secret_key", cfg.Database.SecretKey)
	secrets.Lock()
	defer secrets.Unlock()
	if !env.LogContains(`"level"`) {
		fmt.Fprintln(os.Stderr, "--- FAIL: log secret scan: the bridge log is missing or empty")
		return false
	}
	ok := true
	names := slices.Sorted(maps.Keys(secrets.byName))
	for _, name := range names {
		value := secrets.byName[name]
		if len(value) < 8 {
			fmt.Fprintf(os.Stderr, "--- FAIL: log secret scan: %s is too short to scan for\n", name)
			ok = false
			continue
		}
		if env.LogContains(value) {
			fmt.Fprintf(os.Stderr, "--- FAIL: log secret scan: the bridge log contains the %s\n", name)
			ok = false
		}
	}
	if ok {
		fmt.Fprintf(os.Stderr, "log secret scan: none of %d secrets appears in the bridge log\n", len(names))
	}
	return ok
}
