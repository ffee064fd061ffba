package bridgemain_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	trestle "github.com/trestle-bridge/trestle"
	"github.com/trestle-bridge/trestle/bridgev2/bridgeconfig"
	"github.com/trestle-bridge/trestle/bridgev2/bridgemain"
	"github.com/trestle-bridge/trestle/bridgev2/bridgetest/testnet"
)

func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := bridgemain.Run(args, testnet.NewRemote().Connector(), trestle.ExampleConfig, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestWithoutAConfigTheExampleIsWrittenAndTheBridgeExits(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.yaml")
	code, _, stderr := run(t, "-c", path)
	if code == 0 {
		t.Fatal("exit code 0 although the bridge cannot run yet")
	}
	data, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(data, trestle.ExampleConfig) {
		t.Fatalf("example config not written (%v)", err)
	}
	for _, key := range []string{"homeserver.address", "appservice.public_address", "-g"} {
		if !strings.Contains(stderr, key) {
			t.Errorf("the message does not mention %s:\n%s", key, stderr)
		}
	}
}

func TestGenerateRegistrationStoresFreshTokensInBothFiles(t *testing.T) {
	dir := t.TempDir()
	cfgPath, regPath := filepath.Join(dir, "config.yaml"), filepath.Join(dir, "registration.yaml")
	if err := os.WriteFile(cfgPath, trestle.ExampleConfig, 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := run(t, "-c", cfgPath, "-g", "-r", regPath); code != 0 {
		t.Fatalf("-g failed: %s", stderr)
	}
	var reg bridgemain.Registration
	data, _ := os.ReadFile(regPath)
	if err := yaml.Unmarshal(data, &reg); err != nil {
		t.Fatal(err)
	}
	cfgData, _ := os.ReadFile(cfgPath)
	cfg, err := bridgeconfig.Parse(cfgData)
	if err != nil {
		t.Fatal(err)
	}
	if reg.ASToken == "" || reg.ASToken != cfg.AppService.ASToken || reg.HSToken != cfg.AppService.HSToken || reg.ASToken == reg.HSToken {
		t.Fatalf("tokens differ between registration and config, or are not fresh")
	}
	if err := cfg.CheckTokens(); err != nil {
		t.Fatalf("generated tokens are refused: %v", err)
	}
	if reg.SenderLocalpart != "twiliobot" || len(reg.Namespaces.Users) != 2 || !strings.Contains(reg.Namespaces.Users[1].Regex, "twilio_") {
		t.Fatalf("registration namespaces: %+v", reg)
	}
	if !strings.Contains(string(cfgData), "# Tokens shared with the homeserver") {
		t.Error("the config's comments were lost when the tokens were stored")
	}
	// A second -g makes new tokens: the old registration must be replaced.
	run(t, "-c", cfgPath, "-g", "-r", regPath)
	var again bridgemain.Registration
	data, _ = os.ReadFile(regPath)
	_ = yaml.Unmarshal(data, &again)
	if again.ASToken == reg.ASToken {
		t.Error("-g reused the old token")
	}
}

func TestPlaceholderTokensAndBadConfigsAreRefusedWithTheKeyNamed(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfgPath, trestle.ExampleConfig, 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := run(t, "-c", cfgPath)
	if code == 0 || !strings.Contains(stderr, "appservice.as_token") {
		t.Fatalf("placeholder tokens: code %d, message %q", code, stderr)
	}
	bad, _ := bridgeconfig.EditYAML(trestle.ExampleConfig, map[string]any{"database.type": "mysql"})
	if err := os.WriteFile(cfgPath, bad, 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := run(t, "-c", cfgPath); code == 0 || !strings.Contains(stderr, "database.type") {
		t.Fatalf("bad database type: code %d, message %q", code, stderr)
	}
}

func TestVersionFlag(t *testing.T) {
	code, stdout, _ := run(t, "--version")
	if code != 0 || !strings.Contains(stdout, "trestle-testnet") || !strings.Contains(stdout, "commit") {
		t.Fatalf("--version: %d %q", code, stdout)
	}
}
