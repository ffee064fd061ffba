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
	// MSC3202 asks for to-device events, device lists and key counts in
	// transactions, for encryption.appservice.
	MSC3202 bool `yaml:"org.matrix.msc3202,omitempty"`
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
	asToken, hsToken := randomToken(), randomToken()
	edits := map[string]any{"appservice.as_token": asToken, "appservice.hs_token": hsToken}
	var current struct {
		Encryption struct {
			PickleKey string `yaml:"pickle_key"`
		} `yaml:"encryption"`
	}
	// Read loosely: with encryption.allow on, the placeholder makes the
	// config invalid until this very edit.
	if yaml.Unmarshal(data, &current) == nil && bridgeconfig.IsPlaceholderToken(current.Encryption.PickleKey) {
		// Generated with the tokens, so turning encryption on later takes
		// no extra step; it is unused while encryption.allow is off.
		edits["encryption.pickle_key"] = randomToken()
	}
	updated, err := bridgeconfig.EditYAML(data, edits)
	if err != nil {
		return fmt.Errorf("config: %w", err)
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
		MSC3202:          cfg.Encryption.Appservice,
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
