// Package e2ee_test proves end-to-bridge encryption end to end: the
// trestle-twilio binary with encryption allowed and on by default, a
// throwaway Dendrite, Matrix users with their own encryption (a mautrix Olm
// machine per device, as Element runs one), and the Twilio simulator.
//
// Dendrite v0.13.8 offers no MSC2409/MSC3202 to appservices, so this is the
// path that runs here: the bot's device is made by m.login.application_service
// and gets to-device events and device lists through its own /sync.
package e2ee_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/trestle-bridge/trestle/bridgev2/database/dbtest"
	"github.com/trestle-bridge/trestle/internal/rig"
)

var env *rig.Env

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		fmt.Println("skipping the end-to-end tests: -short leaves out everything that needs Dendrite")
		os.Exit(0)
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "trestle-e2e-e2ee-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	defer rig.CleanupBinary()
	opts := rig.EnvOptions{Dir: dir, ConfigEdits: map[string]any{
		"network.max_send_rate":        0,
		"bridge.shutdown_timeout":      "5s",
		"bridge.message_status_events": true,
		"encryption.allow":             true,
		"encryption.default":           true,
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
		fmt.Fprintf(os.Stderr, "bridge log, last lines:\n%s\n", env.Bridge.LogTail(80))
	}
	if err := env.Bridge.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "--- FAIL: stopping the bridge at the end of the run:", err)
		code = 1
	}
	// The pickle key -g generated must never reach the log.
	cfg, err := env.Files.LoadConfig()
	if err != nil || len(cfg.Encryption.PickleKey) < 16 {
		fmt.Fprintln(os.Stderr, "--- FAIL: -g did not generate a pickle key:", err)
		code = 1
	} else if env.LogContains(cfg.Encryption.PickleKey) {
		fmt.Fprintln(os.Stderr, "--- FAIL: the bridge log contains the pickle key")
		code = 1
	}
	if keep := os.Getenv("TRESTLE_E2E_KEEP_LOG"); keep != "" {
		if data, err := os.ReadFile(env.Bridge.LogPath); err == nil {
			_ = os.WriteFile(keep, data, 0o600)
		}
	}
	if !strings.Contains(readLog(), "Bridge encryption device ready") {
		fmt.Fprintln(os.Stderr, "--- FAIL: the bridge never reported its encryption device ready")
		code = 1
	}
	return code
}

func readLog() string {
	data, _ := os.ReadFile(env.Bridge.LogPath)
	return string(data)
}
