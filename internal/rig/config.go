// Package rig assembles the end-to-end test rig and the sandbox: bridge
// configs written from example-config.yaml, registrations generated the way
// an admin would (-g), the bridge binary built and run as a user would run
// it, and free loopback ports.
package rig

import (
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"

	"gopkg.in/yaml.v3"

	trestle "github.com/trestle-bridge/trestle"
	"github.com/trestle-bridge/trestle/bridgev2/bridgeconfig"
	"github.com/trestle-bridge/trestle/bridgev2/bridgemain"
)

// BridgeFiles are a bridge's config and registration.
type BridgeFiles struct {
	Dir          string
	Config       string
	Registration string
}

// WriteBridgeConfig writes config.yaml into dir from the root
// example-config.yaml with edits applied (dotted keys), then generates the
// registration with fresh tokens exactly as `-g` does.
func WriteBridgeConfig(dir string, edits map[string]any) (*BridgeFiles, error) {
	// A kept directory's database holds keys sealed or pickled with the
	// config's keys: new ones would make them unreadable.
	for key, value := range keptKeys(filepath.Join(dir, "config.yaml")) {
		if edits[key] == nil {
			edits = maps.Clone(edits)
			if edits == nil {
				edits = map[string]any{}
			}
			edits[key] = value
		}
	}
	data, err := bridgeconfig.EditYAML(trestle.ExampleConfig, edits)
	if err != nil {
		return nil, err
	}
	files := &BridgeFiles{Dir: dir, Config: filepath.Join(dir, "config.yaml"), Registration: filepath.Join(dir, "registration.yaml")}
	if err := os.WriteFile(files.Config, data, 0o600); err != nil {
		return nil, err
	}
	if err := bridgemain.GenerateRegistration(files.Config, files.Registration); err != nil {
		return nil, fmt.Errorf("generate registration: %w", err)
	}
	return files, nil
}

// keptKeys are the pickle key and the secret key of an existing config
// file, by dotted key, where they are not placeholders.
func keptKeys(path string) map[string]string {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var cfg struct {
		Encryption struct {
			PickleKey string `yaml:"pickle_key"`
		} `yaml:"encryption"`
		Database struct {
			SecretKey string `yaml:"secret_key"`
		} `yaml:"database"`
	}
	if yaml.Unmarshal(data, &cfg) != nil {
		return nil
	}
	kept := map[string]string{}
	for key, value := range map[string]string{"encryption.pickle_key": cfg.Encryption.PickleKey, "database.secret_key": cfg.Database.SecretKey} {
		if !bridgeconfig.IsPlaceholderToken(value) {
			kept[key] = value
		}
	}
	return kept
}

// LoadConfig parses a config file written by WriteBridgeConfig.
func (f *BridgeFiles) LoadConfig() (*bridgeconfig.Config, error) {
	data, err := os.ReadFile(f.Config)
	if err != nil {
		return nil, err
	}
	return bridgeconfig.Parse(data)
}

// Edit changes keys of the written config (tokens stay).
func (f *BridgeFiles) Edit(edits map[string]any) error {
	data, err := os.ReadFile(f.Config)
	if err != nil {
		return err
	}
	data, err = bridgeconfig.EditYAML(data, edits)
	if err != nil {
		return err
	}
	return os.WriteFile(f.Config, data, 0o600)
}

// Copy writes a copy of the config, with the same tokens and registration,
// under name in the same directory, with edits applied: another process of
// the same bridge.
func (f *BridgeFiles) Copy(name string, edits map[string]any) (*BridgeFiles, error) {
	data, err := os.ReadFile(f.Config)
	if err != nil {
		return nil, err
	}
	if data, err = bridgeconfig.EditYAML(data, edits); err != nil {
		return nil, err
	}
	c := &BridgeFiles{Dir: f.Dir, Config: filepath.Join(f.Dir, name), Registration: f.Registration}
	return c, os.WriteFile(c.Config, data, 0o600)
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
