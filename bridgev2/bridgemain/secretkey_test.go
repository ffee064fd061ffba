package bridgemain_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	trestle "github.com/trestle-bridge/trestle"
	"github.com/trestle-bridge/trestle/bridgev2/bridgeconfig"
)

func loadConfig(t *testing.T, path string) *bridgeconfig.Config {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := bridgeconfig.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestGenerateRegistrationMakesASecretKeyOnceAndKeepsIt(t *testing.T) {
	dir := t.TempDir()
	cfgPath, regPath := filepath.Join(dir, "config.yaml"), filepath.Join(dir, "registration.yaml")
	if err := os.WriteFile(cfgPath, trestle.ExampleConfig, 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := run(t, "-c", cfgPath, "-g", "-r", regPath); code != 0 {
		t.Fatalf("-g failed: %s", stderr)
	}
	first := loadConfig(t, cfgPath).Database.SecretKey
	if bridgeconfig.IsPlaceholderToken(first) || len(first) < 32 {
		t.Fatalf("-g left database.secret_key %q", first)
	}
	// The stored credentials are encrypted with this key: a new
	// registration must not replace it.
	if code, _, stderr := run(t, "-c", cfgPath, "-g", "-r", regPath); code != 0 {
		t.Fatalf("second -g failed: %s", stderr)
	}
	if again := loadConfig(t, cfgPath).Database.SecretKey; again != first {
		t.Fatal("a second -g replaced database.secret_key")
	}
}

func TestThePlaceholderSecretKeyIsRefused(t *testing.T) {
	dir := t.TempDir()
	cfgPath, regPath := filepath.Join(dir, "config.yaml"), filepath.Join(dir, "registration.yaml")
	if err := os.WriteFile(cfgPath, trestle.ExampleConfig, 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := run(t, "-c", cfgPath, "-g", "-r", regPath); code != 0 {
		t.Fatalf("-g failed: %s", stderr)
	}
	data, _ := os.ReadFile(cfgPath)
	data, err := bridgeconfig.EditYAML(data, map[string]any{"database.secret_key": "generate", "database.uri": filepath.Join(dir, "t.db")})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgPath, data, 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := run(t, "-c", cfgPath)
	if code == 0 || !strings.Contains(stderr, "database.secret_key") {
		t.Fatalf("placeholder secret key: code %d, message %q", code, stderr)
	}
}
