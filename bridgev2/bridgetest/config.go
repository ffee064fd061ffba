// Package bridgetest is the connector test kit: an in-memory homeserver
// (FakeMatrix) and a Harness that runs the real bridge core with a
// connector on a throwaway database, so a connector's own tests can drive
// it end to end in a few lines: hand the core a remote event and wait for
// the Matrix event, or send a Matrix event and assert the connector call.
package bridgetest

import (
	"github.com/trestle-bridge/trestle/bridgev2/bridgeconfig"
)

// Config returns a valid config for tests: users on example.com may log in,
// @admin:example.com is an admin, failure notices and status events are on.
func Config() *bridgeconfig.Config {
	cfg := &bridgeconfig.Config{
		Homeserver: bridgeconfig.Homeserver{Address: "http://127.0.0.1:1", Domain: "example.com"},
		AppService: bridgeconfig.AppService{
			Address: "http://127.0.0.1:1", Hostname: "127.0.0.1", Port: 1,
			PublicAddress: "https://bridge.example.com", ID: "test",
			Bot:              bridgeconfig.Bot{Username: "bridgebot", Displayname: "Bridge bot"},
			UsernameTemplate: "test_{{.}}",
			ASToken:          "as-token-for-tests-only-0123456789",
			HSToken:          "hs-token-for-tests-only-0123456789",
		},
		Database: bridgeconfig.Database{Type: "sqlite", URI: ":memory:", SecretKey: "secret-key-for-tests-only-0123456789"},
		Bridge: bridgeconfig.Bridge{
			CommandPrefix: "!test",
			Permissions: map[string]string{
				"example.com": "user", "@admin:example.com": "admin", "relay.example.com": "relay",
			},
			MessageStatusEvents: true,
			FailureNotices:      true,
		},
		Logging: bridgeconfig.Logging{Level: "debug", Format: "json"},
	}
	cfg.ApplyDefaults()
	return cfg
}
