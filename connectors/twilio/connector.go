// Package twilio is Trestle's network connector for Twilio Programmable
// Messaging: SMS and MMS between Matrix users and phone numbers, through
// phone numbers of the users' own Twilio accounts.
//
// Each login is one Twilio phone number (its E.164 digits are the login
// ID); each chat is a DM with one remote number. Inbound messages arrive by
// signed webhook and are journalled by the core before Twilio gets its 200;
// since Twilio never resends a failed webhook, every (re)connect catches up
// from the account's message log. Outbound messages are REST creates with a
// per-send status callback URL that carries the core's send token.
package twilio

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/rs/zerolog"
	openapi "github.com/twilio/twilio-go/rest/api/v2010"
	conversations "github.com/twilio/twilio-go/rest/conversations/v1"

	"github.com/trestle-bridge/trestle/bridgev2"
	"github.com/trestle-bridge/trestle/bridgev2/database"
)

// Connector is the Twilio bridgev2.NetworkConnector. Create it with New.
type Connector struct {
	// cfg is the "network:" section; the core decodes into it (through
	// Config) before Init.
	cfg Config

	bridge *bridgev2.Bridge
	log    zerolog.Logger
	// transport is shared by every REST call and media download of every
	// login, for connection reuse; tests wrap it to count calls.
	transport http.RoundTripper
	// validated is set once Config passed Validate.
	validated bool

	// Timings, shortened by tests.
	reconnectBase time.Duration // first reconnect delay after a failed connect
	reconnectMax  time.Duration // longest reconnect delay
	now           func() time.Time

	// startup holds the slots of the connection loops' Twilio calls.
	startup chan struct{}
	// accounts are recent account checks, numbers recent listings of the
	// account's numbers, groups of its Conversations and groupHooks of its
	// Conversations webhook, each shared by an account's logins.
	accounts   recentFetches[*openapi.ApiV2010Account]
	numbers    recentFetches[accountNumbers]
	groups     recentFetches[[]conversations.ConversationsV1Conversation]
	groupHooks recentFetches[groupHook]
	// lookups runs the background Twilio Lookups of every login.
	lookups *lookupQueue
}

var (
	_ bridgev2.NetworkConnector    = (*Connector)(nil)
	_ bridgev2.ConfigProvider      = (*Connector)(nil)
	_ bridgev2.ConfigValidator     = (*Connector)(nil)
	_ bridgev2.MetaTypesProvider   = (*Connector)(nil)
	_ bridgev2.HTTPHandlerProvider = (*Connector)(nil)
)

// New returns a connector with the default config.
func New() *Connector {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	// Many portals send at once; with too few idle connections kept, each
	// burst would dial (and TLS-handshake) anew. The cap bounds how many
	// requests Twilio sees from this bridge at a time.
	tr.MaxIdleConns = 256
	tr.MaxIdleConnsPerHost = 256
	tr.MaxConnsPerHost = 256
	tr.ResponseHeaderTimeout = time.Minute
	return &Connector{
		cfg:           DefaultConfig(),
		log:           zerolog.Nop(),
		transport:     tr,
		reconnectBase: 2 * time.Second,
		reconnectMax:  5 * time.Minute,
		now:           time.Now,
		startup:       make(chan struct{}, startupConcurrency),
		lookups:       newLookupQueue(),
	}
}

// Info describes Twilio SMS.
func (c *Connector) Info() bridgev2.NetworkInfo {
	return bridgev2.NetworkInfo{
		DisplayName:             "Twilio SMS",
		ID:                      "twilio",
		URL:                     "https://www.twilio.com/messaging",
		DefaultUsernameTemplate: "twilio_{{.}}",
	}
}

// Config returns the config section to decode into; it starts out holding
// the defaults.
func (c *Connector) Config() any { return &c.cfg }

// ValidateConfig checks the network section; errors name the key.
func (c *Connector) ValidateConfig() error {
	if err := c.cfg.Validate(); err != nil {
		return err
	}
	c.validated = true
	return nil
}

// DBMetaTypes declares the stored metadata: credentials and catch-up state
// per login, a text snippet per message (for reply quotes).
func (c *Connector) DBMetaTypes() database.MetaTypes {
	return database.MetaTypes{
		Login:   func() any { return &LoginMetadata{} },
		Message: func() any { return &MessageMetadata{} },
	}
}

// Init keeps the bridge and validates the config if the caller did not.
func (c *Connector) Init(b *bridgev2.Bridge) error {
	if b == nil {
		return errors.New("twilio connector: nil bridge")
	}
	if !c.validated {
		if err := c.ValidateConfig(); err != nil {
			return err
		}
	}
	c.bridge = b
	c.log = b.Log.With().Str("component", "twilio").Logger()
	return nil
}

// LoadLogin turns a stored login into a client without network I/O.
func (c *Connector) LoadLogin(ctx context.Context, login *bridgev2.UserLogin) (bridgev2.NetworkClient, error) {
	meta, ok := login.Metadata.(*LoginMetadata)
	if !ok || meta == nil {
		return nil, errors.New("twilio login has no Twilio metadata")
	}
	if err := meta.check(); err != nil {
		return nil, err
	}
	return newClient(c, login, meta), nil
}

// client returns the live Twilio client of a login, or nil.
func (c *Connector) client(loginID string) *Client {
	if c.bridge == nil {
		return nil
	}
	login := c.bridge.GetLogin(networkIDLogin(loginID))
	if login == nil {
		return nil
	}
	cl, _ := login.Client.(*Client)
	return cl
}

// reportAPIError counts a failed Twilio call in trestle_api_errors_total.
// Calls made before Init (none in the shipped binary) are not counted.
func (c *Connector) reportAPIError(code string) {
	if c.bridge != nil {
		c.bridge.ReportAPIError(code)
	}
}
