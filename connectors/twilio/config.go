package twilio

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"text/template"
	"time"

	"github.com/nyaruka/phonenumbers"
)

// Values of Config.LongMessage.
const (
	// LongMessageSplit sends a text over the body limit as several SMS.
	LongMessageSplit = "split"
	// LongMessageRefuse fails a text over the body limit with a clear error.
	LongMessageRefuse = "refuse"
)

// Values of Config.UnsupportedActions.
const (
	// ActionsFallback sends edits and reactions as readable texts.
	ActionsFallback = "fallback"
	// ActionsRefuse fails edits and reactions as unsupported.
	ActionsRefuse = "refuse"
)

// Config is the connector's "network:" section of the bridge config.
type Config struct {
	// APIURL replaces https://api.twilio.com (a Twilio-compatible gateway, or
	// the simulator in tests). Empty means Twilio itself.
	APIURL string `yaml:"api_url"`
	// Edge and Region pick a Twilio edge location and processing region;
	// they are set together or not at all.
	Edge   string `yaml:"edge"`
	Region string `yaml:"region"`
	// ManageWebhooks makes the bridge point each logged-in number's incoming
	// webhook, and the account's Conversations webhook, at itself (and
	// remove them on logout).
	ManageWebhooks bool `yaml:"manage_webhooks"`
	// DefaultRegion is the ISO country assumed for numbers typed without a
	// country code.
	DefaultRegion string `yaml:"default_region"`
	// MaxSendRate is messages per second per login; 0 means unlimited.
	MaxSendRate float64 `yaml:"max_send_rate"`
	// LongMessage is LongMessageSplit or LongMessageRefuse.
	LongMessage string `yaml:"long_message"`
	// UnsupportedActions is ActionsFallback or ActionsRefuse.
	UnsupportedActions string `yaml:"unsupported_actions"`
	// BackfillLimit is how many messages are imported into a new room; 0
	// disables backfill.
	BackfillLimit int `yaml:"backfill_limit"`
	// DisplaynameTemplate is a text/template for ghost names, with the
	// fields of NumberNames.
	DisplaynameTemplate string `yaml:"displayname_template"`
	// RequestTimeout bounds each Twilio REST call.
	RequestTimeout time.Duration `yaml:"request_timeout"`
	// MaxWebhookBody is the largest webhook body accepted, in bytes.
	MaxWebhookBody int64 `yaml:"max_webhook_body"`
	// ReconcileInterval is how often each login lists Twilio's message log
	// for texts whose webhook never reached the bridge.
	ReconcileInterval time.Duration `yaml:"reconcile_interval"`
	// CallerNameLookup names contacts after Twilio Lookup's caller name
	// (CNAM, US numbers) and lets start-chat warn before texting a
	// landline. Each lookup is billed by Twilio, so it is off by default.
	CallerNameLookup bool `yaml:"caller_name_lookup"`
	// LookupRefresh is how long a Lookup answer is kept before the number
	// is looked up again.
	LookupRefresh time.Duration `yaml:"lookup_refresh"`

	// displayname is DisplaynameTemplate, parsed by Validate.
	displayname *template.Template
	// apiBase is APIURL, parsed by Validate; nil for Twilio itself.
	apiBase *url.URL
}

// DefaultConfig returns the defaults, which are also what ExampleConfig
// documents. Connector.Config hands the core a Config pre-filled with them,
// so keys left out of the file keep their default.
func DefaultConfig() Config {
	return Config{
		ManageWebhooks:      true,
		DefaultRegion:       "US",
		MaxSendRate:         1,
		LongMessage:         LongMessageSplit,
		UnsupportedActions:  ActionsFallback,
		BackfillLimit:       20,
		DisplaynameTemplate: "{{.International}}",
		RequestTimeout:      15 * time.Second,
		MaxWebhookBody:      64 << 10,
		ReconcileInterval:   5 * time.Minute,
		LookupRefresh:       30 * 24 * time.Hour,
	}
}

// ExampleConfig is the documented "network:" section, for the root
// example-config.yaml. TestExampleConfig checks it decodes to DefaultConfig.
const ExampleConfig = `network:
    # Base URL of the Twilio REST API; empty means Twilio itself. Set it for Twilio-compatible
    # gateways and for the test simulator. Media is only downloaded from Twilio's API hosts and
    # from this URL's host.
    api_url: ""
    # Twilio edge location and region (set both or neither), e.g. edge: dublin, region: ie1.
    edge: ""
    region: ""
    # Point each logged-in number's incoming webhook, and the account's Conversations webhook
    # (group texts), at this bridge (and remove them on logout).
    # With false, the bridge tells you the URLs to set in the Twilio console yourself.
    manage_webhooks: true
    # Region for numbers typed without a country code, e.g. "(415) 555-0100" with US.
    default_region: US
    # Messages per second per sending number (a long code sends about 1/s); 0 = unlimited.
    max_send_rate: 1
    # Texts over 1600 characters (UTF-16 code units): split (several SMS, cut between words)
    # or refuse.
    long_message: split
    # Edits and reactions have no SMS equivalent: fallback (send "Edit: ..." and
    # "Reacted ... to ..." texts) or refuse. Deleting a sent SMS is never possible.
    unsupported_actions: fallback
    # Messages imported from Twilio's log when a chat's room is created; 0 disables.
    backfill_limit: 20
    # Ghost displayname; .International (+1 415-555-0100), .National and .E164 are available.
    displayname_template: "{{.International}}"
    # Deadline of each Twilio API request. Failed sends are retried by the bridge from its
    # journal (bridge.delivery_retry_for), honouring Twilio's Retry-After.
    request_timeout: 15s
    # Largest webhook body accepted, in bytes.
    max_webhook_body: 65536
    # How often each login lists Twilio's message log for texts whose webhook never reached the
    # bridge (a proxy, DNS or TLS failure, a timeout); they arrive at the latest this much later.
    reconcile_interval: 5m
    # Name contacts after their caller name from Twilio Lookup (US numbers only), and warn on
    # start-chat when a number is a landline. Twilio bills each lookup; a number is looked up
    # at most once per lookup_refresh (after a failure, once a day), in the background, never
    # delaying a text. A name you give a contact always wins.
    caller_name_lookup: false
    # How long a Lookup answer is kept (in the database, across restarts) before the number is
    # looked up again.
    lookup_refresh: 720h
`

// Validate checks every key and prepares the parsed forms. Errors name the
// key, as "network.<key> ...".
func (c *Config) Validate() error {
	if c.APIURL != "" {
		u, err := url.Parse(c.APIURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return fmt.Errorf("network.api_url must be an absolute http(s) URL without query, got %q", c.APIURL)
		}
		u.Path = strings.TrimRight(u.Path, "/")
		c.apiBase = u
	} else {
		c.apiBase = nil
	}
	if (c.Edge == "") != (c.Region == "") {
		return errors.New("network.edge and network.region must be set together")
	}
	for key, v := range map[string]string{"edge": c.Edge, "region": c.Region} {
		if v != "" && !isDNSLabel(v) {
			return fmt.Errorf("network.%s must be a single lowercase DNS label like \"dublin\" or \"ie1\", got %q", key, v)
		}
	}
	c.DefaultRegion = strings.ToUpper(strings.TrimSpace(c.DefaultRegion))
	if phonenumbers.GetCountryCodeForRegion(c.DefaultRegion) == 0 {
		return fmt.Errorf("network.default_region must be an ISO 3166 country code like \"US\", got %q", c.DefaultRegion)
	}
	if c.MaxSendRate < 0 {
		return errors.New("network.max_send_rate must be >= 0")
	}
	if c.LongMessage != LongMessageSplit && c.LongMessage != LongMessageRefuse {
		return fmt.Errorf("network.long_message must be %q or %q, got %q", LongMessageSplit, LongMessageRefuse, c.LongMessage)
	}
	if c.UnsupportedActions != ActionsFallback && c.UnsupportedActions != ActionsRefuse {
		return fmt.Errorf("network.unsupported_actions must be %q or %q, got %q", ActionsFallback, ActionsRefuse, c.UnsupportedActions)
	}
	if c.BackfillLimit < 0 || c.BackfillLimit > 1000 {
		return errors.New("network.backfill_limit must be between 0 and 1000")
	}
	tmpl, err := template.New("displayname").Option("missingkey=error").Parse(c.DisplaynameTemplate)
	if err != nil {
		return fmt.Errorf("network.displayname_template is not a valid template: %w", err)
	}
	var sb strings.Builder
	if err := tmpl.Execute(&sb, NumberNames{E164: "+14155550100", International: "+1 415-555-0100", National: "(415) 555-0100"}); err != nil {
		return fmt.Errorf("network.displayname_template cannot be applied: %w", err)
	}
	if strings.TrimSpace(sb.String()) == "" {
		return errors.New("network.displayname_template must not produce an empty name")
	}
	c.displayname = tmpl
	if c.RequestTimeout <= 0 {
		return errors.New("network.request_timeout must be > 0")
	}
	if c.ReconcileInterval < 100*time.Millisecond || c.ReconcileInterval > 24*time.Hour {
		return errors.New("network.reconcile_interval must be between 100ms and 24h")
	}
	if c.LookupRefresh < time.Hour || c.LookupRefresh > 366*24*time.Hour {
		return errors.New("network.lookup_refresh must be between 1h and 8784h (366 days)")
	}
	if c.MaxWebhookBody < 4096 || c.MaxWebhookBody > 16<<20 {
		return errors.New("network.max_webhook_body must be between 4096 and 16777216 bytes")
	}
	return nil
}

// isDNSLabel reports whether s is a lowercase hostname label, so edge and
// region can only ever produce a *.twilio.com host.
func isDNSLabel(s string) bool {
	if len(s) == 0 || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}
