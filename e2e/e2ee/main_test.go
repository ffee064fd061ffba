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
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

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
	return rig.RunShared(m, rig.SharedEnv{
		Name:    "e2ee",
		Timeout: 15 * time.Minute,
		ConfigEdits: map[string]any{
			"network.max_send_rate":        0,
			"bridge.shutdown_timeout":      "5s",
			"bridge.message_status_events": true,
			"encryption.allow":             true,
			"encryption.default":           true,
		},
		Started:  func(e *rig.Env) { env = e },
		Finished: encryptionChecks,
	})
}

// encryptionChecks are the run's last checks: -g generated a pickle key,
// the log never shows it, and the bridge's device came up.
func encryptionChecks(env *rig.Env) bool {
	ok := true
	cfg, err := env.Files.LoadConfig()
	if err != nil || len(cfg.Encryption.PickleKey) < 16 {
		fmt.Fprintln(os.Stderr, "--- FAIL: -g did not generate a pickle key:", err)
		ok = false
	} else if env.LogContains(cfg.Encryption.PickleKey) {
		fmt.Fprintln(os.Stderr, "--- FAIL: the bridge log contains the pickle key")
		ok = false
	}
	if !strings.Contains(readLog(), "Bridge encryption device ready") {
		fmt.Fprintln(os.Stderr, "--- FAIL: the bridge never reported its encryption device ready")
		ok = false
	}
	return ok
}

func readLog() string {
	data, _ := os.ReadFile(env.Bridge.LogPath)
	return string(data)
}
