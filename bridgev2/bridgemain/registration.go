package bridgemain

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"regexp"

	"gopkg.in/yaml.v3"

	"github.com/trestle-bridge/trestle/bridgev2/bridgeconfig"
)

// Registration is an appservice registration file, as Synapse, Dendrite and
// Conduit read it.
type Registration struct {
	ID              string     `yaml:"id"`
	URL             string     `yaml:"url"`
	ASToken         string     `yaml:"as_token"`
	HSToken         string     `yaml:"hs_token"`
	SenderLocalpart string     `yaml:"sender_localpart"`
	RateLimited     bool       `yaml:"rate_limited"`
	Namespaces      Namespaces `yaml:"namespaces"`
	// ReceiveEphemeral asks for read receipts and typing (MSC2409); not
	// every homeserver honours it.
	ReceiveEphemeral bool `yaml:"de.sorunome.msc2409.push_ephemeral"`
}

// Namespaces are the IDs the appservice claims.
type Namespaces struct {
	Users []Namespace `yaml:"users"`
}

// Namespace is one claimed ID pattern.
type Namespace struct {
	Regex     string `yaml:"regex"`
	Exclusive bool   `yaml:"exclusive"`
}

// GenerateRegistration writes a registration with fresh random tokens and
// stores the same tokens in the config file, editing the YAML node tree so
// the file's comments survive.
func GenerateRegistration(configPath, registrationPath string) error {
	data, err := os.ReadFile(configPath)
	if err != nil {
		return err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("config is not valid YAML: %w", err)
	}
	asToken, hsToken := randomToken(), randomToken()
	if err := setKey(&doc, asToken, "appservice", "as_token"); err != nil {
		return err
	}
	if err := setKey(&doc, hsToken, "appservice", "hs_token"); err != nil {
		return err
	}
	updated, err := yaml.Marshal(&doc)
	if err != nil {
		return err
	}
	cfg, err := bridgeconfig.Parse(updated)
	if err != nil {
		return fmt.Errorf("fix the config first: %w", err)
	}
	reg := Registration{
		ID:              cfg.AppService.ID,
		URL:             cfg.AppService.Address,
		ASToken:         asToken,
		HSToken:         hsToken,
		SenderLocalpart: cfg.AppService.Bot.Username,
		Namespaces: Namespaces{Users: []Namespace{
			{Regex: "^@" + regexp.QuoteMeta(cfg.AppService.Bot.Username) + ":" + regexp.QuoteMeta(cfg.Homeserver.Domain) + "$", Exclusive: true},
			{Regex: cfg.GhostRegex(), Exclusive: true},
		}},
		ReceiveEphemeral: true,
	}
	regData, err := yaml.Marshal(&reg)
	if err != nil {
		return err
	}
	if err := os.WriteFile(registrationPath, regData, 0o600); err != nil {
		return err
	}
	return os.WriteFile(configPath, updated, 0o600)
}

func randomToken() string {
	buf := make([]byte, 48)
	_, _ = rand.Read(buf)
	return base64.RawURLEncoding.EncodeToString(buf)
}

// setKey sets a scalar at a key path in a YAML document.
func setKey(doc *yaml.Node, value string, path ...string) error {
	node := doc
	if node.Kind == yaml.DocumentNode && len(node.Content) > 0 {
		node = node.Content[0]
	}
	for i, key := range path {
		if node.Kind != yaml.MappingNode {
			return fmt.Errorf("config key %s is not a section", key)
		}
		var next *yaml.Node
		for j := 0; j+1 < len(node.Content); j += 2 {
			if node.Content[j].Value == key {
				next = node.Content[j+1]
			}
		}
		if next == nil {
			return fmt.Errorf("config key %s is missing", key)
		}
		if i == len(path)-1 {
			next.Kind, next.Tag, next.Value, next.Style = yaml.ScalarNode, "!!str", value, yaml.DoubleQuotedStyle
			return nil
		}
		node = next
	}
	return nil
}
