// Package webhookchat is a Trestle connector for "webhook chat", a generic
// HTTP chat protocol: any service can chat with Matrix users by exchanging
// signed JSON over two webhooks.
//
// Inbound, the service POSTs an [Event] to the bridge at
// <public_address>/_trestle/webhookchat/<login>/events. Outbound, the bridge
// POSTs an [Event] to the login's send URL and, for messages, expects
// {"id": "<remote message ID>"} back. Both directions sign the raw body:
// header X-Webhookchat-Signature: sha256=<hex HMAC-SHA256 with the login's
// secret>. Errors are answered as {"error": "<a sentence for the user>"}.
//
// Remote user and chat IDs are the service's own, so they are only unique
// within one login: ghosts are keyed "<login>.<user>" (see ghostID), and
// portals by chat ID with the login as receiver. A chat whose ID is the
// sender's ID is a DM with that sender; any other chat is a group.
//
// After a crash in the middle of a send the bridge sends again: the
// protocol has no way to ask whether a message arrived (the connector
// implements no SendReconciler). Each outbound event carries an
// idempotency_key, the same on every retry, so a service that remembers
// the keys it has seen acts on each event once.
package webhookchat

import (
	"bytes"
	"cmp"
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/trestle-bridge/trestle/bridgev2"
	"github.com/trestle-bridge/trestle/bridgev2/database"
	"github.com/trestle-bridge/trestle/bridgev2/networkid"
	"github.com/trestle-bridge/trestle/bridgev2/safehttp"
)

// ExampleConfig is the documented network section of the config file; the
// embedded example config file ends with it.
const ExampleConfig = `# The webhook chat connector.
network:
    # Largest inbound webhook body accepted, in bytes; larger requests get 413.
    max_body: 1048576
    # Deadline of each request to a service: sends, the login ping and attachment downloads.
    request_timeout: 30s
    # Let logins use services on loopback, private or link-local addresses. Off, a user who
    # may log in cannot make the bridge reach internal hosts (cloud metadata, admin ports)
    # through their send URL or attachment URLs. Turn on only for services you run yourself.
    allow_private_networks: false
`

// ExampleConfigFile is the full example config file of a webhook chat
// bridge, for bridgemain.Main: the core's sections, then ExampleConfig.
//
//go:embed example-config.yaml
var ExampleConfigFile []byte

// Config is the network section of the config file.
type Config struct {
	MaxBody              int64         `yaml:"max_body"`
	RequestTimeout       time.Duration `yaml:"request_timeout"`
	AllowPrivateNetworks bool          `yaml:"allow_private_networks"`
}

// Network is the webhook chat connector.
type Network struct {
	config Config
	bridge *bridgev2.Bridge
	http   *http.Client
}

var (
	_ bridgev2.ConfigValidator     = (*Network)(nil)
	_ bridgev2.MetaTypesProvider   = (*Network)(nil)
	_ bridgev2.HTTPHandlerProvider = (*Network)(nil)
)

// New returns a connector with the defaults of ExampleConfig, which keys
// left out of the config file keep.
func New() *Network {
	return &Network{config: Config{MaxBody: 1 << 20, RequestTimeout: 30 * time.Second}}
}

// LoginMetadata is what a login stores: where and how to reach its service.
type LoginMetadata struct {
	SendURL string `json:"send_url"`
	Secret  string `json:"secret"`
}

// Info implements bridgev2.NetworkConnector.
func (n *Network) Info() bridgev2.NetworkInfo {
	return bridgev2.NetworkInfo{
		DisplayName: "Webhook chat", ID: "webhookchat",
		URL:                     "https://github.com/trestle-bridge/trestle/tree/main/connectors/webhookchat",
		DefaultUsernameTemplate: "webhookchat_{{.}}",
	}
}

// Config implements bridgev2.ConfigProvider.
func (n *Network) Config() any { return &n.config }

// ValidateConfig implements bridgev2.ConfigValidator.
func (n *Network) ValidateConfig() error {
	if n.config.MaxBody <= 0 {
		return fmt.Errorf("config key network.max_body must be positive, not %d", n.config.MaxBody)
	}
	if n.config.RequestTimeout <= 0 {
		return fmt.Errorf("config key network.request_timeout must be positive, not %s", n.config.RequestTimeout)
	}
	return nil
}

// DBMetaTypes implements bridgev2.MetaTypesProvider.
func (n *Network) DBMetaTypes() database.MetaTypes {
	return database.MetaTypes{Login: func() any { return &LoginMetadata{} }}
}

// Init implements bridgev2.NetworkConnector.
func (n *Network) Init(b *bridgev2.Bridge) error {
	n.bridge = b
	n.http = safehttp.Client(n.config.RequestTimeout, n.config.AllowPrivateNetworks)
	return nil
}

// LoadLogin implements bridgev2.NetworkConnector. The client keeps a copy
// of the metadata: it never changes, since logging in again replaces the
// whole client.
func (n *Network) LoadLogin(_ context.Context, login *bridgev2.UserLogin) (bridgev2.NetworkClient, error) {
	meta, ok := login.Metadata.(*LoginMetadata)
	if !ok {
		return nil, fmt.Errorf("login %s has metadata of type %T", login.ID, login.Metadata)
	}
	return &Client{network: n, login: login, meta: *meta}, nil
}

// HTTPHandler implements bridgev2.HTTPHandlerProvider.
func (n *Network) HTTPHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+n.bridge.NetworkPathPrefix()+"{login}/events", n.serveEvents)
	return mux
}

// ghostID namespaces a service's user ID by login: two services may both
// have a user "1", and one service must not rename the other's ghosts.
// Login IDs cannot contain '.', so the first dot separates the two.
func ghostID(login networkid.UserLoginID, user string) networkid.UserID {
	return networkid.UserID(string(login) + "." + user)
}

// post sends a signed JSON payload to a service and returns its answer,
// classifying failures for the core: outages and rate limits are
// retriable (the service may have acted on a 5xx or a lost answer), other
// refusals permanent, with the {"error": ...} sentence of the answer.
func (n *Network) post(ctx context.Context, url, secret string, payload any) ([]byte, error) {
	body, err := json.Marshal(payload)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, bridgev2.NewError("The service's send URL is invalid.", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(SignatureHeader, Sign(secret, body))
	resp, err := n.do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, bridgev2.UnconfirmedError("The service's answer was cut off.", err)
	}
	return answer, nil
}

// do sends a request; see post for how failures are classified.
func (n *Network) do(req *http.Request) (*http.Response, error) {
	resp, err := n.http.Do(req)
	if err != nil {
		return nil, bridgev2.UnconfirmedError("The service could not be reached.", err)
	}
	if resp.StatusCode < 300 {
		return resp, nil
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	cause := fmt.Errorf("HTTP %d from %s: %s", resp.StatusCode, req.URL.Host, answer)
	if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests {
		return nil, bridgev2.UnconfirmedError(fmt.Sprintf("The service is unavailable (HTTP %d).", resp.StatusCode), cause)
	}
	var refusal struct {
		Error string `json:"error"`
	}
	_ = json.Unmarshal(answer, &refusal)
	return nil, bridgev2.NewError(cmp.Or(refusal.Error, fmt.Sprintf("The service refused the request (HTTP %d).", resp.StatusCode)), cause)
}
