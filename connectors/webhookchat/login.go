package webhookchat

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"github.com/trestle-bridge/trestle/bridgev2"
	"github.com/trestle-bridge/trestle/bridgev2/networkid"
)

// loginNamePattern keeps login names usable in URLs and ghost IDs; no dot,
// which separates the login from the user in ghostID.
var loginNamePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)

// LoginFlows implements bridgev2.NetworkConnector.
func (n *Network) LoginFlows() []bridgev2.LoginFlow {
	return []bridgev2.LoginFlow{{ID: "webhook", Name: "Webhook",
		Description: "Connect a service that speaks the webhook chat protocol."}}
}

// CreateLogin implements bridgev2.NetworkConnector: one form asking for
// the service's name, send URL and secret, checked with a ping.
func (n *Network) CreateLogin(_ context.Context, user *bridgev2.User, flowID string) (bridgev2.LoginProcess, error) {
	if flowID != "webhook" {
		return nil, fmt.Errorf("unknown login flow %q", flowID)
	}
	return &bridgev2.FormLogin{User: user, Submit: n.login,
		Instructions: "Connect a service that speaks the webhook chat protocol.",
		Fields: []bridgev2.LoginInputField{
			{Type: bridgev2.LoginInputUsername, ID: "name", Name: "login name",
				Description: "a short name for the service, also part of its webhook URL: lowercase letters, digits, _ and -",
				Pattern:     loginNamePattern.String()},
			{Type: bridgev2.LoginInputURL, ID: "send_url", Name: "send URL",
				Description: "the http(s) URL the bridge POSTs Matrix messages to", Pattern: `^https?://`},
			{Type: bridgev2.LoginInputPassword, ID: "secret", Name: "shared secret",
				Description: "the secret both sides sign webhook bodies with"},
		}}, nil
}

// login checks the form's answers and pings the service.
func (n *Network) login(ctx context.Context, input map[string]string) (bridgev2.NewLoginParams, string, error) {
	name, sendURL, secret := strings.TrimSpace(input["name"]), strings.TrimSpace(input["send_url"]), input["secret"]
	switch {
	case !loginNamePattern.MatchString(name):
		return bridgev2.NewLoginParams{}, "", bridgev2.NewError("The login name must be 1 to 32 lowercase letters, digits, _ or -, starting with a letter or digit.", nil)
	case !isHTTP(sendURL):
		return bridgev2.NewLoginParams{}, "", bridgev2.NewError("The send URL must be an http:// or https:// URL.", nil)
	case secret == "":
		return bridgev2.NewLoginParams{}, "", bridgev2.NewError("The shared secret must not be empty.", nil)
	}
	if _, err := n.post(ctx, sendURL, secret, &Event{Type: "ping"}); err != nil {
		return bridgev2.NewLoginParams{}, "", bridgev2.NewError("The service did not answer the ping at "+sendURL+": "+bridgev2.HumanMessage(err), err)
	}
	next := fmt.Sprintf("Configure your service to POST its events to %s, signed with the header "+
		"`%s: sha256=<hex HMAC-SHA256 of the body with the shared secret>`.", n.bridge.NetworkPublicURL("/"+name+"/events"), SignatureHeader)
	return bridgev2.NewLoginParams{ID: networkid.UserLoginID(name), RemoteName: name,
		Metadata: &LoginMetadata{SendURL: sendURL, Secret: secret}}, next, nil
}
