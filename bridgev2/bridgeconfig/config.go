// Package bridgeconfig holds the bridge's YAML configuration: its shape,
// defaults and validation. The network connector's own section stays a raw
// YAML node here and is decoded by the connector.
package bridgeconfig

import (
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the whole config file.
type Config struct {
	Homeserver   Homeserver   `yaml:"homeserver"`
	AppService   AppService   `yaml:"appservice"`
	Database     Database     `yaml:"database"`
	Bridge       Bridge       `yaml:"bridge"`
	Encryption   Encryption   `yaml:"encryption"`
	Provisioning Provisioning `yaml:"provisioning"`
	Metrics      Metrics      `yaml:"metrics"`
	Logging      Logging      `yaml:"logging"`
	// Network is the connector's section, decoded by the connector.
	Network yaml.Node `yaml:"network"`
}

// Homeserver says where the homeserver is.
type Homeserver struct {
	// Address is the client-server API base URL the bridge calls.
	Address string `yaml:"address"`
	// Domain is the server name in Matrix IDs.
	Domain string `yaml:"domain"`
	// StatusEndpoint, if set, receives com.beeper.bridge_state pushes.
	StatusEndpoint string `yaml:"status_endpoint"`
	// SyncRedactions makes the bot also /sync for redactions, for
	// homeservers that never push them to appservices (Dendrite).
	SyncRedactions bool `yaml:"sync_redactions"`
}

// AppService configures the bridge's side of the appservice API.
type AppService struct {
	// Address is how the homeserver reaches the bridge.
	Address string `yaml:"address"`
	// Hostname and Port are where the bridge listens.
	Hostname string `yaml:"hostname"`
	Port     int    `yaml:"port"`
	// PublicAddress is how remote services (Twilio's webhooks, MMS media
	// fetches) reach the bridge from the internet. Webhook signatures are
	// checked against URLs built from it, never from request headers.
	PublicAddress string `yaml:"public_address"`
	ID            string `yaml:"id"`
	Bot           Bot    `yaml:"bot"`
	// UsernameTemplate makes ghost localparts; {{.}} is the remote user ID.
	UsernameTemplate string `yaml:"username_template"`
	ASToken          string `yaml:"as_token"`
	HSToken          string `yaml:"hs_token"`
}

// Bot is the bridge bot's profile.
type Bot struct {
	Username    string `yaml:"username"`
	Displayname string `yaml:"displayname"`
	Avatar      string `yaml:"avatar"`
}

// Database selects the store.
type Database struct {
	// Type is "sqlite" or "postgres".
	Type string `yaml:"type"`
	// URI is a file path for SQLite, a connection URL for PostgreSQL.
	URI          string `yaml:"uri"`
	MaxOpenConns int    `yaml:"max_open_conns"`
	// TakeoverTimeout is, with PostgreSQL, how soon after the leader
	// stopped a standby process sharing the database takes over.
	TakeoverTimeout time.Duration `yaml:"takeover_timeout"`
}

// Bridge holds the core's behaviour settings.
type Bridge struct {
	// CommandPrefix starts commands outside the management room.
	CommandPrefix string `yaml:"command_prefix"`
	// Permissions maps "*", a domain or a user ID to a level: relay, user
	// (or its alias commands), admin.
	Permissions map[string]string `yaml:"permissions"`
	Relay       Relay             `yaml:"relay"`
	// MessageStatusEvents sends a com.beeper.message_send_status event for
	// every state of every message (sent, delivered, retrying, failed);
	// each is one more room event for the homeserver.
	MessageStatusEvents bool `yaml:"message_status_events"`
	// DeliveryReceipts makes the bridge bot send a read receipt on a
	// message once the network reports it delivered (or, for networks
	// without delivery reports, sent). On unless set to false.
	DeliveryReceipts bool `yaml:"delivery_receipts"`
	// FailureNotices also posts a short notice in the room when a message
	// could not be bridged.
	FailureNotices bool `yaml:"failure_notices"`
	// BridgeStatusNotices says which login state changes are announced in
	// the management room: "none", "errors" or "all".
	BridgeStatusNotices string `yaml:"bridge_status_notices"`
	// DeliveryRetryFor bounds how long an event keeps being retried while
	// its destination (the homeserver, the remote network) is unavailable
	// before it is reported as failed.
	DeliveryRetryFor time.Duration `yaml:"delivery_retry_for"`
	// MaxMediaSize is the largest media file bridged in either direction.
	MaxMediaSize int64 `yaml:"max_media_size"`
	// MediaURLLifetime is how long public media URLs handed to the remote
	// network stay valid.
	MediaURLLifetime time.Duration `yaml:"media_url_lifetime"`
	// JournalRetention is how long finished journal rows are kept for
	// deduplication.
	JournalRetention time.Duration `yaml:"journal_retention"`
	// ShutdownTimeout bounds how long a SIGTERM waits for in-flight work.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// PortalIdleTimeout is how long an idle portal stays in memory.
	PortalIdleTimeout time.Duration `yaml:"portal_idle_timeout"`
}

// Encryption configures end-to-bridge encryption. The key names are
// mautrix's, so a config written for a mautrix bridge carries over.
type Encryption struct {
	// Allow lets the bridge bot have a device and take part in encrypted
	// rooms; without it encrypted events are refused with a notice.
	Allow bool `yaml:"allow"`
	// Default creates new portals with encryption turned on.
	Default bool `yaml:"default"`
	// Require refuses to bridge messages in rooms without encryption.
	Require bool `yaml:"require"`
	// Appservice takes to-device events and device-list changes from
	// appservice transactions (MSC2409/MSC3202) instead of the bot's /sync.
	Appservice bool `yaml:"appservice"`
	// MSC4190 creates the bot's device through the appservice device API,
	// for homeservers (behind Matrix Authentication Service) that have no
	// m.login.application_service.
	MSC4190 bool `yaml:"msc4190"`
	// PickleKey encrypts the Olm and Megolm state at rest in the database.
	PickleKey string `yaml:"pickle_key"`
	// VerificationLevels are the least trust a device needs.
	VerificationLevels VerificationLevels `yaml:"verification_levels"`
	// Rotation sets when outbound Megolm sessions are replaced.
	Rotation Rotation `yaml:"rotation"`
}

// VerificationLevels name, as mautrix does (unverified,
// cross-signed-untrusted, cross-signed-tofu, cross-signed-verified), the
// trust a device needs for each direction.
type VerificationLevels struct {
	// Receive is the least trust of a device whose messages are bridged.
	Receive string `yaml:"receive"`
	// Send is the least trust of devices in a room before the bridge
	// encrypts to it.
	Send string `yaml:"send"`
	// Share is the least trust of a device the bridge shares room keys with
	// on request.
	Share string `yaml:"share"`
}

// Rotation configures outbound Megolm session rotation.
type Rotation struct {
	// EnableCustom uses Milliseconds and Messages instead of the room's
	// m.room.encryption settings.
	EnableCustom bool `yaml:"enable_custom"`
	// Milliseconds is the longest a session is used.
	Milliseconds int64 `yaml:"milliseconds"`
	// Messages is the most messages one session encrypts.
	Messages int `yaml:"messages"`
	// DisableDeviceChangeKeyRotation keeps a session when a member's devices
	// change instead of starting a new one.
	DisableDeviceChangeKeyRotation bool `yaml:"disable_device_change_key_rotation"`
}

// Relay configures relay mode.
type Relay struct {
	Enabled   bool `yaml:"enabled"`
	AdminOnly bool `yaml:"admin_only"`
	// MessageFormat is a Go template for relayed text; fields .DisplayName,
	// .UserID and .Message.
	MessageFormat string `yaml:"message_format"`
}

// Provisioning configures the provisioning HTTP API.
type Provisioning struct {
	Enabled bool `yaml:"enabled"`
	// SharedSecret authorises integration managers; "generate" creates one.
	SharedSecret string `yaml:"shared_secret"`
}

// Metrics configures the Prometheus listener.
type Metrics struct {
	Enabled bool   `yaml:"enabled"`
	Listen  string `yaml:"listen"`
}

// Logging configures zerolog.
type Logging struct {
	// Level is trace, debug, info, warn or error.
	Level string `yaml:"level"`
	// Format is "pretty" (console) or "json".
	Format string `yaml:"format"`
}
