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

// loginProcess is the "webhook" flow: one step asking for the service's
// name, send URL and secret, checked with a ping.
type loginProcess struct {
	network *Network
	user    *bridgev2.User
}

func (p *loginProcess) Start(context.Context) (*bridgev2.LoginStep, error) {
	return &bridgev2.LoginStep{
		Type: bridgev2.LoginStepUserInput, StepID: "service",
		Instructions: "Connect a service that speaks the webhook chat protocol.",
		UserInput: &bridgev2.LoginUserInputParams{Fields: []bridgev2.LoginInputField{
			{Type: bridgev2.LoginInputUsername, ID: "name", Name: "login name",
				Description: "a short name for the service, also part of its webhook URL: lowercase letters, digits, _ and -",
				Pattern:     loginNamePattern.String()},
			{Type: bridgev2.LoginInputURL, ID: "send_url", Name: "send URL",
				Description: "the http(s) URL the bridge POSTs Matrix messages to", Pattern: `^https?://`},
			{Type: bridgev2.LoginInputPassword, ID: "secret", Name: "shared secret",
				Description: "the secret both sides sign webhook bodies with"},
		}},
	}, nil
}

func (p *loginProcess) SubmitUserInput(ctx context.Context, input map[string]string) (*bridgev2.LoginStep, error) {
	name, sendURL, secret := strings.TrimSpace(input["name"]), strings.TrimSpace(input["send_url"]), input["secret"]
	switch {
	case !loginNamePattern.MatchString(name):
		return nil, bridgev2.NewError("The login name must be 1 to 32 lowercase letters, digits, _ or -, starting with a letter or digit.", nil)
	case !isHTTP(sendURL):
		return nil, bridgev2.NewError("The send URL must be an http:// or https:// URL.", nil)
	case secret == "":
		return nil, bridgev2.NewError("The shared secret must not be empty.", nil)
	}
	if _, err := p.network.post(ctx, sendURL, secret, &Event{Type: "ping"}); err != nil {
		return nil, bridgev2.NewError("The service did not answer the ping at "+sendURL+": "+bridgev2.HumanMessage(err), err)
	}
	login, err := p.user.NewLogin(ctx, bridgev2.NewLoginParams{
		ID: networkid.UserLoginID(name), RemoteName: name,
		Metadata: &LoginMetadata{SendURL: sendURL, Secret: secret},
	})
	if err != nil {
		return nil, err
	}
	inbound := p.network.bridge.NetworkPublicURL("/" + name + "/events")
	return &bridgev2.LoginStep{
		Type: bridgev2.LoginStepComplete, StepID: "complete",
		Instructions: fmt.Sprintf("Configure your service to POST its events to %s, signed with the header "+
			"`%s: sha256=<hex HMAC-SHA256 of the body with the shared secret>`.", inbound, SignatureHeader),
		Complete: &bridgev2.LoginCompleteParams{UserLoginID: string(login.ID), UserLogin: login},
	}, nil
}

// Cancel has nothing to undo: nothing is stored before the last step.
func (p *loginProcess) Cancel() {}
