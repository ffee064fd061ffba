package bridgeconfig_test

import (
	"strings"
	"testing"

	trestle "github.com/trestle-bridge/trestle"
	"github.com/trestle-bridge/trestle/bridgev2/bridgeconfig"
	"maunium.net/go/mautrix/id"
)

func TestExampleConfigParsesAndDocumentsEveryKey(t *testing.T) {
	cfg, err := bridgeconfig.Parse(trestle.ExampleConfig)
	if err != nil {
		t.Fatalf("example-config.yaml does not parse: %v", err)
	}
	if cfg.CheckTokens() == nil {
		t.Error("the example's placeholder tokens are accepted")
	}
}

func TestEachRequiredKeyIsNamedWhenMissingOrBad(t *testing.T) {
	for _, tc := range []struct {
		edit map[string]any
		want string
	}{
		{map[string]any{"homeserver.address": "not a url"}, "homeserver.address"},
		{map[string]any{"appservice.port": 0}, "appservice.port"},
		{map[string]any{"appservice.username_template": "twilio_"}, "appservice.username_template"},
		{map[string]any{"appservice.bot.username": "Bad Bot"}, "appservice.bot.username"},
		{map[string]any{"database.type": "oracle"}, "database.type"},
		{map[string]any{"bridge.permissions": map[string]string{"*": "superuser"}}, "bridge.permissions"},
		{map[string]any{"logging.format": "xml"}, "logging.format"},
		{map[string]any{"appservice.typo_key": true}, "typo_key"},
		{map[string]any{"provisioning.enabled": true}, "provisioning.shared_secret"},
	} {
		data, err := bridgeconfig.EditYAML(trestle.ExampleConfig, tc.edit)
		if err != nil {
			t.Fatal(err)
		}
		_, err = bridgeconfig.Parse(data)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("edit %v: error %v, want one naming %s", tc.edit, err, tc.want)
		}
	}
	// A whole required key missing.
	stripped := strings.Replace(string(trestle.ExampleConfig), "    public_address: https://bridge.example.com\n", "", 1)
	if _, err := bridgeconfig.Parse([]byte(stripped)); err == nil || !strings.Contains(err.Error(), "appservice.public_address") {
		t.Errorf("missing public_address: %v", err)
	}
}

func TestPermissionsPreferTheMostSpecificEntry(t *testing.T) {
	b := bridgeconfig.Bridge{Permissions: map[string]string{"*": "relay", "example.com": "user", "@boss:example.com": "admin"}}
	for user, want := range map[id.UserID]bridgeconfig.Level{
		"@boss:example.com": bridgeconfig.LevelAdmin, "@alice:example.com": bridgeconfig.LevelUser,
		"@mallory:evil.org": bridgeconfig.LevelRelay,
	} {
		if got := b.PermissionLevel(user); got != want {
			t.Errorf("%s: %s, want %s", user, got, want)
		}
	}
	if got := (&bridgeconfig.Bridge{}).PermissionLevel("@x:y"); got != bridgeconfig.LevelNone {
		t.Errorf("no permissions configured: %s", got)
	}
}

func TestGhostLocalpartsRoundTrip(t *testing.T) {
	as := bridgeconfig.AppService{UsernameTemplate: "twilio_{{.}}"}
	for _, remote := range []string{"14155550100", "Alice_Ünïcode", "a/b=c"} {
		local := as.GhostLocalpart(remote)
		back, ok := as.ParseGhostLocalpart(local)
		if !ok || back != remote {
			t.Errorf("%q -> %q -> %q (%v)", remote, local, back, ok)
		}
	}
	if _, ok := as.ParseGhostLocalpart("alice"); ok {
		t.Error("a normal user parsed as a ghost")
	}
}

func TestEncryptionSettingsAreChecked(t *testing.T) {
	for _, tc := range []struct {
		edit map[string]any
		want string
	}{
		{map[string]any{"encryption.allow": true}, "encryption.pickle_key"},
		{map[string]any{"encryption.default": true}, "encryption.allow"},
		{map[string]any{"encryption.require": true}, "encryption.allow"},
		{map[string]any{"encryption.allow": true, "encryption.pickle_key": "a-long-random-key-4711",
			"encryption.verification_levels.send": "trusted-ish"}, "encryption.verification_levels.send"},
	} {
		data, err := bridgeconfig.EditYAML(trestle.ExampleConfig, tc.edit)
		if err != nil {
			t.Fatal(err)
		}
		_, err = bridgeconfig.Parse(data)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("edit %v: error %v, want one naming %s", tc.edit, err, tc.want)
		}
	}
	data, err := bridgeconfig.EditYAML(trestle.ExampleConfig, map[string]any{
		"encryption.allow": true, "encryption.default": true, "encryption.pickle_key": "a-long-random-key-4711"})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := bridgeconfig.Parse(data)
	if err != nil {
		t.Fatalf("a real pickle key is refused: %v", err)
	}
	if !cfg.Encryption.Allow || !cfg.Encryption.Default || cfg.Encryption.VerificationLevels.Share != "cross-signed-tofu" {
		t.Errorf("encryption section not read: %+v", cfg.Encryption)
	}
}
