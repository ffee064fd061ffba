// Package reliability_test proves that the Twilio bridge loses nothing and
// doubles nothing when things go wrong: the trestle-twilio binary is killed
// with SIGKILL under load, stopped with SIGTERM during a burst, cut off from
// its homeserver, from Twilio and from its database, and fed hostile input,
// while a real Matrix client and the Twilio simulator count what arrives on
// each side.
//
// The default run is short (a few minutes on 2 cores with -race). The long
// run uses the full figures of the reliability issue:
//
//	TRESTLE_RELIABILITY=long go test -run TestCrash -timeout 60m ./e2e/reliability/
//
// Each test starts its own environment (Dendrite, the simulator and the
// bridge binary), because most of them break it on purpose. The bridge runs
// on SQLite, or on PostgreSQL when TRESTLE_TEST_POSTGRES is set.
package reliability_test

import (
	"os"
	"testing"
	"time"

	"github.com/trestle-bridge/trestle/internal/rig"
)

// long reports whether the long versions were asked for.
func long() bool { return os.Getenv("TRESTLE_RELIABILITY") == "long" }

// pick returns the short or the long figure.
func pick[T any](short, long_ T) T {
	if long() {
		return long_
	}
	return short
}

func TestMain(m *testing.M) {
	code := m.Run()
	rig.CleanupBinary()
	os.Exit(code)
}

// deadline is how long a test may wait for the bridge to settle after the
// trouble it was put through.
func settleTimeout() time.Duration { return pick(4*time.Minute, 15*time.Minute) }
