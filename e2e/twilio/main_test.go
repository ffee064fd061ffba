// Package twilio_test proves the Twilio bridge end to end, as people use it:
// the trestle-twilio binary with its own config and generated registration,
// a throwaway Dendrite, a real Matrix client acting as the user, and the
// Twilio simulator playing Twilio and the phones on the other side. The
// bridge runs on SQLite, or on PostgreSQL when TRESTLE_TEST_POSTGRES is set.
package twilio_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/trestle-bridge/trestle/bridgev2/database/dbtest"
	"github.com/trestle-bridge/trestle/internal/rig"
)

var env *rig.Env

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "trestle-e2e-twilio-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	defer rig.CleanupBinary()
	opts := rig.EnvOptions{Dir: dir, ConfigEdits: map[string]any{
		// Tests send bursts; the real default (1/s per number) is tested on
		// its own in the connector's tests.
		"network.max_send_rate": 0,
		"bridge.shutdown_timeout": "5s",
	}}
	if base := os.Getenv(dbtest.PostgresEnv); base != "" {
		uri, drop, err := dbtest.FreshPostgresSchema(base)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer drop()
		opts.DatabaseType, opts.DatabaseURI = "postgres", uri
	}
	env, err = rig.StartEnv(ctx, opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting the environment:", err)
		return 1
	}
	defer env.Close()
	code := m.Run()
	if code != 0 {
		fmt.Fprintf(os.Stderr, "bridge log, last lines:\n%s\n", env.Bridge.LogTail(60))
	}
	return code
}
