// Package core_test proves the bridge core against a real homeserver: a
// throwaway Dendrite, a real Matrix client acting as the user, and the
// in-memory test network instead of Twilio. Each scenario runs on SQLite
// and, when TRESTLE_TEST_POSTGRES is set, on PostgreSQL.
package core_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/trestle-bridge/trestle/bridgev2/database/dbtest"
	"github.com/trestle-bridge/trestle/internal/dendrite"
	"github.com/trestle-bridge/trestle/internal/rig"
)

var (
	homeserver *dendrite.Server
	// bridgeFiles holds one bridge config and registration per database
	// dialect; all registrations are known to Dendrite from its start.
	bridgeFiles = map[string]*rig.BridgeFiles{}
)

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
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "trestle-e2e-core-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	hsPort, err := rig.FreePort()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var registrations []string
	for _, dialect := range dbtest.Dialects() {
		name := string(dialect)
		port, err := rig.FreePort()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		bridgeDir := filepath.Join(dir, name)
		if err := os.MkdirAll(bridgeDir, 0o700); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		files, err := rig.WriteBridgeConfig(bridgeDir, map[string]any{
			"homeserver.address":           fmt.Sprintf("http://127.0.0.1:%d", hsPort),
			"homeserver.domain":            "localhost",
			"appservice.address":           fmt.Sprintf("http://127.0.0.1:%d", port),
			"appservice.port":              port,
			"appservice.public_address":    fmt.Sprintf("http://127.0.0.1:%d", port),
			"appservice.id":                "test-" + name,
			"appservice.bot.username":      name + "bot",
			"appservice.username_template": name + "_{{.}}",
			"bridge.permissions":           map[string]string{"localhost": "user", "@admin:localhost": "admin"},
			"bridge.relay.enabled":         true,
			"bridge.relay.admin_only":      false,
			"bridge.delivery_retry_for":    "10m",
			"bridge.shutdown_timeout":      "5s",
			"logging.level":                "debug",
			"logging.format":               "json",
			// The test network has no settings; the example's are Twilio's.
			"network": map[string]any{},
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		bridgeFiles[name] = files
		registrations = append(registrations, files.Registration)
	}
	homeserver, err = dendrite.Start(ctx, dendrite.Options{
		DataDir: filepath.Join(dir, "dendrite"), Port: hsPort, ServerName: "localhost",
		AppServiceRegistrations: registrations,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting Dendrite:", err)
		return 1
	}
	defer homeserver.Stop()
	code := m.Run()
	if code != 0 {
		fmt.Fprintf(os.Stderr, "Dendrite log (%s), last lines:\n%s\n", homeserver.LogPath, homeserver.LogTail(60))
	}
	return code
}
