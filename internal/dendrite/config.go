package dendrite

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"
)

// configParams are the settings that writeConfig puts into dendrite.yaml.
type configParams struct {
	generateConfig string // path of the generate-config command
	dataDir        string
	configPath     string
	privateKeyPath string
	serverName     string
	sharedSecret   string
	appServices    []string
	maxUploadBytes int64
	logLevel       string
	edit           func(cfg map[string]any)
}

// writeSigningKey creates the server's ed25519 signing key unless the data
// directory already has one, so a reused data directory keeps its identity.
func writeSigningKey(ctx context.Context, generateKeys, keyPath string) error {
	if _, err := os.Stat(keyPath); err == nil {
		return nil
	}
	out, err := exec.CommandContext(ctx, generateKeys, "-private-key", keyPath).CombinedOutput()
	if err != nil {
		return fmt.Errorf("generating the Dendrite signing key with generate-keys: %w\n%s", err, tail(out, 20))
	}
	return nil
}

// writeConfig asks generate-config for Dendrite's own defaults and adjusts
// them for a throwaway test server. Editing the generated YAML as a generic
// map, instead of templating a file by hand, keeps every option this Dendrite
// version knows about at its default unless we change it on purpose.
func writeConfig(ctx context.Context, p configParams) error {
	cmd := exec.CommandContext(ctx, p.generateConfig, "-dir", p.dataDir, "-server", p.serverName)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("generating the Dendrite config with generate-config: %w\n%s", err, tail(stderr.Bytes(), 20))
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(out, &cfg); err != nil {
		return fmt.Errorf("parsing the config from generate-config: %w", err)
	}

	appServices := make([]any, 0, len(p.appServices))
	for _, reg := range p.appServices {
		abs, err := filepath.Abs(reg)
		if err != nil {
			return fmt.Errorf("resolving the appservice registration path %s: %w", reg, err)
		}
		if _, err := os.Stat(abs); err != nil {
			return fmt.Errorf("reading the appservice registration: %w", err)
		}
		appServices = append(appServices, abs)
	}

	settings := []struct {
		path  string
		value any
	}{
		{"global.private_key", p.privateKeyPath},
		{"global.disable_federation", true},
		// Nothing outside this machine is reachable or wanted.
		{"global.trusted_third_party_id_servers", []any{}},
		{"global.report_stats.enabled", false},
		{"federation_api.key_perspectives", []any{}},
		{"client_api.registration_disabled", true},
		{"client_api.guests_disabled", true},
		{"client_api.registration_shared_secret", p.sharedSecret},
		// The bridge and the benchmarks send far more than 5 requests a
		// second; Dendrite's limiter would answer M_LIMIT_EXCEEDED.
		{"client_api.rate_limiting.enabled", false},
		{"app_service_api.config_files", appServices},
		// Appservices listen on http:// on loopback, where TLS settings
		// do not apply; the spec paths and the Authorization header are
		// what mautrix's appservice expects, so no legacy modes.
		{"app_service_api.disable_tls_validation", true},
		{"app_service_api.legacy_auth", false},
		{"app_service_api.legacy_paths", false},
		{"media_api.max_file_size_bytes", p.maxUploadBytes},
		// The cheapest cost bcrypt allows: tests create and log in many
		// users and never need real password hashing strength.
		{"user_api.bcrypt_cost", 4},
		// Log to stderr, which Server captures into its log file, instead
		// of Dendrite's own rotating files.
		{"logging", []any{map[string]any{"type": "std", "level": p.logLevel}}},
	}
	for _, s := range settings {
		if err := setPath(cfg, s.path, s.value); err != nil {
			return err
		}
	}
	if p.edit != nil {
		p.edit(cfg)
	}

	data, err := yaml.Marshal(cfg)
	if err != nil {
		return fmt.Errorf("encoding the Dendrite config: %w", err)
	}
	if err := os.WriteFile(p.configPath, data, 0o600); err != nil {
		return fmt.Errorf("writing the Dendrite config: %w", err)
	}
	return nil
}

// setPath sets a dotted path such as "client_api.rate_limiting.enabled" in a
// config parsed into nested maps, creating missing maps along the way.
func setPath(cfg map[string]any, path string, value any) error {
	keys := strings.Split(path, ".")
	m := cfg
	for i, k := range keys[:len(keys)-1] {
		next, ok := m[k]
		if !ok || next == nil {
			child := map[string]any{}
			m[k] = child
			m = child
			continue
		}
		child, ok := next.(map[string]any)
		if !ok {
			return fmt.Errorf("setting %s in the Dendrite config: %s is a %T, not a section", path, strings.Join(keys[:i+1], "."), next)
		}
		m = child
	}
	m[keys[len(keys)-1]] = value
	return nil
}
