package bridgeconfig

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"strings"
	"text/template"
	"time"

	"gopkg.in/yaml.v3"
	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/bridgev2/networkid"
)

// requiredKeys must be present in every config file: admins and tooling rely
// on them, so a missing one is an error rather than a silent default.
var requiredKeys = []string{
	"homeserver.address", "homeserver.domain",
	"appservice.address", "appservice.hostname", "appservice.port", "appservice.id",
	"appservice.bot.username", "appservice.bot.displayname", "appservice.public_address",
	"appservice.username_template", "appservice.as_token", "appservice.hs_token",
	"database.type", "database.uri",
	"bridge.permissions", "bridge.command_prefix",
	"logging", "network",
}

// Parse decodes a config file, applies defaults and validates it. Errors name
// the offending key.
func Parse(data []byte) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("config is not valid YAML: %w", err)
	}
	for _, key := range requiredKeys {
		if lookup(&root, key) == nil {
			return nil, fmt.Errorf("config key %s is missing", key)
		}
	}
	var cfg Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	cfg.ApplyDefaults()
	if lookup(&root, "bridge.delivery_receipts") == nil {
		// A bool cannot tell "false" from "left out".
		cfg.Bridge.DeliveryReceipts = true
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// lookup finds a dotted key path in a YAML document.
func lookup(node *yaml.Node, path string) *yaml.Node {
	if node.Kind == yaml.DocumentNode && len(node.Content) > 0 {
		node = node.Content[0]
	}
	for _, part := range strings.Split(path, ".") {
		if node.Kind != yaml.MappingNode {
			return nil
		}
		var next *yaml.Node
		for i := 0; i+1 < len(node.Content); i += 2 {
			if node.Content[i].Value == part {
				next = node.Content[i+1]
				break
			}
		}
		if next == nil {
			return nil
		}
		node = next
	}
	return node
}

// ApplyDefaults fills in defaults for keys left out; Parse calls it.
func (c *Config) ApplyDefaults() {
	if c.Database.TakeoverTimeout == 0 {
		c.Database.TakeoverTimeout = 10 * time.Second
	}
	b := &c.Bridge
	if b.DeliveryRetryFor == 0 {
		b.DeliveryRetryFor = 24 * time.Hour
	}
	if b.MaxMediaSize == 0 {
		b.MaxMediaSize = 50 << 20
	}
	if b.MediaURLLifetime == 0 {
		b.MediaURLLifetime = 24 * time.Hour
	}
	if b.JournalRetention == 0 {
		b.JournalRetention = 7 * 24 * time.Hour
	}
	if b.ShutdownTimeout == 0 {
		b.ShutdownTimeout = 20 * time.Second
	}
	if b.PortalIdleTimeout == 0 {
		b.PortalIdleTimeout = 10 * time.Minute
	}
	if b.BridgeStatusNotices == "" {
		b.BridgeStatusNotices = "errors"
	}
	if b.Relay.MessageFormat == "" {
		b.Relay.MessageFormat = "{{ .DisplayName }}: {{ .Message }}"
	}
	e := &c.Encryption
	for _, level := range []*string{&e.VerificationLevels.Receive, &e.VerificationLevels.Send} {
		if *level == "" {
			*level = "unverified"
		}
	}
	if e.VerificationLevels.Share == "" {
		e.VerificationLevels.Share = "cross-signed-tofu"
	}
	if e.Rotation.Milliseconds == 0 {
		e.Rotation.Milliseconds = 7 * 24 * 60 * 60 * 1000
	}
	if e.Rotation.Messages == 0 {
		e.Rotation.Messages = 100
	}
	if c.Logging.Level == "" {
		c.Logging.Level = "info"
	}
	if c.Logging.Format == "" {
		c.Logging.Format = "pretty"
	}
}

// placeholderToken matches the obviously fake tokens of the example files.
var placeholderToken = regexp.MustCompile(`(?i)^(|generate|changeme|change_me.*|placeholder.*|.*example.*)$`)

// IsPlaceholderToken reports whether a token is empty or one of the example
// files' placeholders, which the bridge refuses to run with.
func IsPlaceholderToken(token string) bool {
	return placeholderToken.MatchString(strings.TrimSpace(token))
}

// Validate checks values, naming the key of the first bad one.
func (c *Config) Validate() error {
	if err := checkURL("homeserver.address", c.Homeserver.Address); err != nil {
		return err
	}
	if c.Homeserver.Domain == "" {
		return errors.New("config key homeserver.domain is empty")
	}
	if err := checkURL("appservice.address", c.AppService.Address); err != nil {
		return err
	}
	if err := checkURL("appservice.public_address", c.AppService.PublicAddress); err != nil {
		return err
	}
	if c.AppService.Port <= 0 || c.AppService.Port > 65535 {
		return fmt.Errorf("config key appservice.port must be between 1 and 65535, not %d", c.AppService.Port)
	}
	if c.AppService.ID == "" {
		return errors.New("config key appservice.id is empty")
	}
	if err := checkLocalpart("appservice.bot.username", c.AppService.Bot.Username); err != nil {
		return err
	}
	if _, _, err := c.AppService.templateParts(); err != nil {
		return err
	}
	switch c.Database.Type {
	case "sqlite", "postgres":
	default:
		return fmt.Errorf("config key database.type must be \"sqlite\" or \"postgres\", not %q", c.Database.Type)
	}
	if c.Database.URI == "" {
		return errors.New("config key database.uri is empty")
	}
	if c.Database.TakeoverTimeout < time.Second {
		return fmt.Errorf("config key database.takeover_timeout must be at least 1s, not %s", c.Database.TakeoverTimeout)
	}
	for key, level := range c.Bridge.Permissions {
		if _, err := ParseLevel(level); err != nil {
			return fmt.Errorf("config key bridge.permissions.%s: %w", key, err)
		}
	}
	if strings.TrimSpace(c.Bridge.CommandPrefix) == "" {
		return errors.New("config key bridge.command_prefix is empty")
	}
	switch c.Bridge.BridgeStatusNotices {
	case "none", "errors", "all":
	default:
		return fmt.Errorf("config key bridge.bridge_status_notices must be none, errors or all, not %q", c.Bridge.BridgeStatusNotices)
	}
	if _, err := template.New("relay").Parse(c.Bridge.Relay.MessageFormat); err != nil {
		return fmt.Errorf("config key bridge.relay.message_format: %w", err)
	}
	switch c.Logging.Format {
	case "pretty", "json":
	default:
		return fmt.Errorf("config key logging.format must be \"pretty\" or \"json\", not %q", c.Logging.Format)
	}
	if c.Provisioning.Enabled && IsPlaceholderToken(c.Provisioning.SharedSecret) {
		return errors.New("config key provisioning.shared_secret must be set to a long random string when provisioning is enabled")
	}
	return c.Encryption.validate()
}

// validate checks the encryption section: the settings that need a device
// need allow, and a device needs a real pickle key.
func (e *Encryption) validate() error {
	if !e.Allow {
		switch {
		case e.Default:
			return errors.New("config key encryption.default needs encryption.allow: true")
		case e.Require:
			return errors.New("config key encryption.require needs encryption.allow: true")
		}
		return nil
	}
	if IsPlaceholderToken(e.PickleKey) {
		return errors.New("config key encryption.pickle_key is empty or a placeholder: set a long random string (it encrypts the bridge's keys in the database; changing it later loses them)")
	}
	for key, level := range map[string]string{
		"receive": e.VerificationLevels.Receive, "send": e.VerificationLevels.Send, "share": e.VerificationLevels.Share,
	} {
		switch id.ParseTrustState(level) {
		case id.TrustStateUnset, id.TrustStateCrossSignedUntrusted, id.TrustStateCrossSignedTOFU, id.TrustStateCrossSignedVerified:
		default:
			return fmt.Errorf("config key encryption.verification_levels.%s must be unverified, cross-signed-untrusted, cross-signed-tofu or cross-signed-verified, not %q", key, level)
		}
	}
	if e.Rotation.Milliseconds < 0 || e.Rotation.Messages < 0 {
		return errors.New("config keys encryption.rotation.milliseconds and encryption.rotation.messages must not be negative")
	}
	return nil
}

// CheckTokens refuses empty or placeholder appservice tokens; run it before
// starting, after registration generation had its chance to fill them in.
func (c *Config) CheckTokens() error {
	if IsPlaceholderToken(c.AppService.ASToken) {
		return errors.New("config key appservice.as_token is empty or a placeholder: generate a registration with -g and register it with your homeserver")
	}
	if IsPlaceholderToken(c.AppService.HSToken) {
		return errors.New("config key appservice.hs_token is empty or a placeholder: generate a registration with -g and register it with your homeserver")
	}
	return nil
}

func checkURL(key, value string) error {
	u, err := url.Parse(value)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("config key %s must be an http(s) URL, not %q", key, value)
	}
	return nil
}

var localpartRegex = regexp.MustCompile(`^[a-z0-9._=/+-]+$`)

func checkLocalpart(key, value string) error {
	if !localpartRegex.MatchString(value) {
		return fmt.Errorf("config key %s must be a valid Matrix localpart (lowercase letters, digits, ._=-/), not %q", key, value)
	}
	return nil
}

// templateParts splits username_template around its single {{.}}.
func (a *AppService) templateParts() (prefix, suffix string, err error) {
	prefix, suffix, ok := strings.Cut(a.UsernameTemplate, "{{.}}")
	if !ok || strings.Contains(suffix, "{{.}}") {
		return "", "", fmt.Errorf("config key appservice.username_template must contain {{.}} exactly once, not %q", a.UsernameTemplate)
	}
	if err := checkLocalpart("appservice.username_template", prefix+"x"+suffix); err != nil {
		return "", "", err
	}
	return prefix, suffix, nil
}

// GhostLocalpart formats the localpart of a remote user's ghost, escaping the
// remote ID into the characters Matrix allows.
func (a *AppService) GhostLocalpart(remoteID string) string {
	prefix, suffix, _ := a.templateParts()
	return prefix + id.EncodeUserLocalpart(remoteID) + suffix
}

// ParseGhostLocalpart reverses GhostLocalpart.
func (a *AppService) ParseGhostLocalpart(localpart string) (string, bool) {
	prefix, suffix, err := a.templateParts()
	if err != nil || !strings.HasPrefix(localpart, prefix) || !strings.HasSuffix(localpart, suffix) ||
		len(localpart) <= len(prefix)+len(suffix) {
		return "", false
	}
	decoded, err := id.DecodeUserLocalpart(localpart[len(prefix) : len(localpart)-len(suffix)])
	if err != nil {
		return "", false
	}
	return decoded, true
}

// BotUserID is the bridge bot's Matrix ID.
func (c *Config) BotUserID() id.UserID {
	return id.NewUserID(c.AppService.Bot.Username, c.Homeserver.Domain)
}

// GhostUserID is the Matrix ID of a remote user's ghost.
func (c *Config) GhostUserID(remote networkid.UserID) id.UserID {
	return id.NewUserID(c.AppService.GhostLocalpart(string(remote)), c.Homeserver.Domain)
}

// ParseGhostUserID reverses GhostUserID; ok is false for IDs outside the
// ghost namespace (other servers, the bot, ordinary users). The real Matrix
// side and the test kit's fake homeserver share it, so both agree on who is
// a ghost.
func (c *Config) ParseGhostUserID(userID id.UserID) (remote networkid.UserID, ok bool) {
	localpart, server, err := userID.Parse()
	if err != nil || server != c.Homeserver.Domain || userID == c.BotUserID() {
		return "", false
	}
	decoded, ok := c.AppService.ParseGhostLocalpart(localpart)
	return networkid.UserID(decoded), ok
}

// GhostRegex matches every ghost user ID of this bridge, for the
// registration's user namespace.
func (c *Config) GhostRegex() string {
	prefix, suffix, _ := c.AppService.templateParts()
	return "^@" + regexp.QuoteMeta(prefix) + ".+" + regexp.QuoteMeta(suffix) + ":" + regexp.QuoteMeta(c.Homeserver.Domain) + "$"
}

// DecodeNetwork decodes the network section into the connector's config,
// refusing unknown keys, so a typo fails at start-up instead of silently
// leaving a default in place. target should hold the defaults already.
func DecodeNetwork(section yaml.Node, target any) error {
	if section.Kind == 0 {
		return nil
	}
	data, err := yaml.Marshal(&section)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(target); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("config section network: %w", err)
	}
	return nil
}
