package rig

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/trestle-bridge/trestle/bridgev2/database/dbtest"
)

// SharedEnv describes the environment an end-to-end test package shares
// across its tests.
type SharedEnv struct {
	// Name names the temporary directory ("trestle-e2e-<Name>-").
	Name string
	// Timeout bounds the whole package run.
	Timeout time.Duration
	// ConfigEdits are the bridge config's edits (dotted keys).
	ConfigEdits map[string]any
	// Started receives the environment before the tests run.
	Started func(*Env)
	// Finished runs after the tests, once the bridge has stopped (its log is
	// complete), and reports whether its own checks passed.
	Finished func(*Env) bool
}

// RunShared is the body of an end-to-end package's TestMain: it starts the
// environment (on PostgreSQL in a fresh schema when TRESTLE_TEST_POSTGRES
// is set, else SQLite), runs the tests, prints the bridge log's tail if they
// failed, stops the bridge and runs the package's final checks. It returns
// the exit code. TRESTLE_E2E_KEEP_LOG names a file to copy the whole bridge
// log to.
func RunShared(m *testing.M, s SharedEnv) int {
	ctx, cancel := context.WithTimeout(context.Background(), s.Timeout)
	defer cancel()
	dir, err := os.MkdirTemp("", "trestle-e2e-"+s.Name+"-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	defer CleanupBinary()
	opts := EnvOptions{Dir: dir, ConfigEdits: s.ConfigEdits}
	if base := os.Getenv(dbtest.PostgresEnv); base != "" {
		uri, drop, err := dbtest.FreshPostgresSchema(base)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer drop()
		opts.DatabaseType, opts.DatabaseURI = "postgres", uri
	}
	env, err := StartEnv(ctx, opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting the environment:", err)
		return 1
	}
	defer env.Close()
	if s.Started != nil {
		s.Started(env)
	}
	code := m.Run()
	if code != 0 {
		fmt.Fprintf(os.Stderr, "bridge log, last lines:\n%s\n", env.Bridge.LogTail(80))
	}
	// The log is complete once the bridge has stopped.
	if err := env.Bridge.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "--- FAIL: stopping the bridge at the end of the run:", err)
		code = 1
	}
	if s.Finished != nil && !s.Finished(env) {
		code = 1
	}
	if keep := os.Getenv("TRESTLE_E2E_KEEP_LOG"); keep != "" {
		// For reading the whole log of a run: the environment's directory
		// is removed at the end.
		if data, err := os.ReadFile(env.Bridge.LogPath); err == nil {
			_ = os.WriteFile(keep, data, 0o600)
		}
	}
	return code
}
