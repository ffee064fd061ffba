package twilio

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/trestle-bridge/trestle/bridgev2"
)

// The login flow and its steps.
const (
	// FlowAuthToken logs in with an Account SID and auth token: the two
	// questions most users need to answer.
	FlowAuthToken = "auth-token"
	// FlowAdvanced also takes an API key for REST calls and a Messaging
	// Service to send through, both optional, for accounts that use them.
	FlowAdvanced = "advanced"

	stepCredentials = "net.trestle.twilio.credentials"
	stepChooseNum   = "net.trestle.twilio.choose_number"
	stepComplete    = "net.trestle.twilio.complete"
)

// alphanumeric is what twilio-go accepts as basic-auth user and password.
var alphanumeric = regexp.MustCompile(`^[0-9A-Za-z]+$`)

// LoginFlows offers the plain login first, so that `login` asks only for
// the Account SID and auth token; `login advanced` asks for the rest too.
func (c *Connector) LoginFlows() []bridgev2.LoginFlow {
	return []bridgev2.LoginFlow{{
		ID:          FlowAuthToken,
		Name:        "Account SID + auth token",
		Description: "Log in with your Twilio Account SID and auth token, then pick the phone number to bridge.",
	}, {
		ID:          FlowAdvanced,
		Name:        "with an API key or Messaging Service",
		Description: "Like auth-token, and optionally an API key for REST calls and a Messaging Service to send through.",
	}}
}

// CreateLogin starts a login for user.
func (c *Connector) CreateLogin(ctx context.Context, user *bridgev2.User, flowID string) (bridgev2.LoginProcess, error) {
	switch flowID {
	case FlowAuthToken, FlowAdvanced:
		return &loginProcess{conn: c, user: user, advanced: flowID == FlowAdvanced}, nil
	}
	return nil, bridgev2.NewError(fmt.Sprintf("Unknown login flow %q; use %q or %q.", flowID, FlowAuthToken, FlowAdvanced), nil)
}

// loginProcess is one user's login in progress.
type loginProcess struct {
	conn *Connector
	user *bridgev2.User
	// advanced is the advanced flow, which takes the optional fields.
	advanced bool

	mu        sync.Mutex
	cancelled bool
	meta      LoginMetadata // credentials, once verified
	rest      *restClient
	numbers   []numberInfo
	// whatsapp are the numbers of the account's WhatsApp senders.
	whatsapp []string
}

// Start asks for the credentials.
func (p *loginProcess) Start(ctx context.Context) (*bridgev2.LoginStep, error) {
	fields := []bridgev2.LoginInputField{
		{Type: bridgev2.LoginInputUsername, ID: "account_sid", Name: "Account SID", Description: "starts with AC", Pattern: accountSIDPattern.String()},
		{Type: bridgev2.LoginInputPassword, ID: "auth_token", Name: "auth token", Description: "also used to check that webhooks come from Twilio", Pattern: alphanumeric.String()},
	}
	if p.advanced {
		fields = append(fields,
			bridgev2.LoginInputField{Type: bridgev2.LoginInputUsername, ID: "api_key_sid", Name: "API key SID", Description: "optional, starts with SK; REST calls then use the key instead of the auth token", Pattern: apiKeySIDPattern.String(), Optional: true},
			bridgev2.LoginInputField{Type: bridgev2.LoginInputPassword, ID: "api_key_secret", Name: "API key secret", Description: "only with an API key SID", Pattern: alphanumeric.String(), Optional: true},
			bridgev2.LoginInputField{Type: bridgev2.LoginInputUsername, ID: "messaging_service_sid", Name: "Messaging Service SID", Description: "optional, starts with MG; messages are then sent through the service, from this number", Pattern: serviceSIDPattern.String(), Optional: true},
		)
	}
	return &bridgev2.LoginStep{
		Type:         bridgev2.LoginStepUserInput,
		StepID:       stepCredentials,
		Instructions: "Find the Account SID and auth token on the front page of the Twilio console (console.twilio.com).",
		UserInput:    &bridgev2.LoginUserInputParams{Fields: fields},
	}, nil
}

// Cancel abandons the login.
func (p *loginProcess) Cancel() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cancelled = true
}

// SubmitUserInput answers the current step.
func (p *loginProcess) SubmitUserInput(ctx context.Context, input map[string]string) (*bridgev2.LoginStep, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cancelled {
		return nil, bridgev2.NewError("This login was cancelled.", nil)
	}
	if p.rest == nil {
		return p.submitCredentials(ctx, input)
	}
	return p.submitNumber(ctx, input)
}

// submitCredentials verifies the credentials and lists the numbers.
func (p *loginProcess) submitCredentials(ctx context.Context, input map[string]string) (*bridgev2.LoginStep, error) {
	field := func(id string) string { return strings.TrimSpace(input[id]) }
	meta := LoginMetadata{AccountSID: field("account_sid"), AuthToken: field("auth_token")}
	if p.advanced {
		// Only the flow that asked for them reads them, so what a login
		// uses is always what its user was asked.
		meta.APIKeySID, meta.APIKeySecret = field("api_key_sid"), field("api_key_secret")
		meta.MessagingServiceSID = field("messaging_service_sid")
	}
	switch {
	case !accountSIDPattern.MatchString(meta.AccountSID):
		return nil, bridgev2.NewError("The Account SID is AC followed by 32 hexadecimal digits.", nil)
	case !alphanumeric.MatchString(meta.AuthToken):
		return nil, bridgev2.NewError("The auth token is a string of letters and digits.", nil)
	case (meta.APIKeySID == "") != (meta.APIKeySecret == ""):
		return nil, bridgev2.NewError("Give both the API key SID and its secret, or neither.", nil)
	case meta.APIKeySID != "" && !apiKeySIDPattern.MatchString(meta.APIKeySID):
		return nil, bridgev2.NewError("The API key SID is SK followed by 32 hexadecimal digits.", nil)
	case meta.APIKeySecret != "" && !alphanumeric.MatchString(meta.APIKeySecret):
		return nil, bridgev2.NewError("The API key secret is a string of letters and digits.", nil)
	case meta.MessagingServiceSID != "" && !serviceSIDPattern.MatchString(meta.MessagingServiceSID):
		return nil, bridgev2.NewError("The Messaging Service SID is MG followed by 32 hexadecimal digits.", nil)
	}
	log := p.conn.log.With().Str("account_sid", meta.AccountSID).Stringer("user_id", p.user.MXID).Logger()
	tokenRest := &restClient{conn: p.conn, creds: meta.tokenCreds(), log: log}
	acct, err := tokenRest.fetchAccount(ctx)
	if isAuthFailure(err) {
		return nil, bridgev2.NewError("Twilio rejected the Account SID or auth token.", err)
	} else if err != nil {
		return nil, err
	}
	if st := deref(acct.Status); st != "" && st != "active" {
		return nil, bridgev2.NewError(fmt.Sprintf("The Twilio account is %s.", st), nil)
	}
	rest := &restClient{conn: p.conn, creds: meta.restCreds(), log: log}
	numbers, err := rest.listSMSNumbers(ctx)
	if isAuthFailure(err) && meta.APIKeySID != "" {
		return nil, bridgev2.NewError("Twilio rejected the API key SID or secret.", err)
	} else if err != nil {
		return nil, err
	}
	p.meta, p.rest = meta, rest
	p.whatsapp = p.listWhatsApp(ctx)
	numbers = append(numbers, whatsappOnlySenders(numbers, p.whatsapp)...)
	p.numbers = numbers
	if len(numbers) == 0 {
		return nil, bridgev2.NewError("This Twilio account has no phone number that can send SMS and no WhatsApp sender; buy or port a number in the Twilio console, then log in again.", nil)
	}
	if len(numbers) == 1 {
		return p.finish(ctx, numbers[0])
	}
	options := make([]string, len(numbers))
	for i, n := range numbers {
		options[i] = n.choice()
	}
	return &bridgev2.LoginStep{
		Type:         bridgev2.LoginStepUserInput,
		StepID:       stepChooseNum,
		Instructions: "The account has several SMS numbers. Each number is a separate login; you can log in again for another one." + p.whatsappNote(),
		UserInput: &bridgev2.LoginUserInputParams{Fields: []bridgev2.LoginInputField{{
			Type: bridgev2.LoginInputSelect, ID: "phone_number", Name: "phone number", Description: "the number to bridge", Options: options,
		}}},
	}, nil
}

// submitNumber accepts the chosen number in any common format.
func (p *loginProcess) submitNumber(ctx context.Context, input map[string]string) (*bridgev2.LoginStep, error) {
	answer := strings.TrimSpace(input["phone_number"])
	typed, whatsapp := strings.CutPrefix(answer, whatsappPrefix)
	e164, err := parseUserNumber(typed, p.conn.cfg.DefaultRegion, false)
	if err == nil {
		for _, n := range p.numbers {
			// A WhatsApp-only sender may be chosen with or without its
			// prefix; a number's SMS login only without.
			if n.E164 == e164 && (!whatsapp || n.SID == "") {
				return p.finish(ctx, n)
			}
		}
	}
	names := make([]string, len(p.numbers))
	for i, n := range p.numbers {
		names[i] = n.choice()
	}
	return nil, bridgev2.NewError(fmt.Sprintf("%q is not one of the account's numbers (%s).", answer, strings.Join(names, ", ")), nil)
}

// finish points the webhook at the bridge and stores the login.
func (p *loginProcess) finish(ctx context.Context, num numberInfo) (*bridgev2.LoginStep, error) {
	b := p.conn.bridge
	loginID := idFromAddr(num.E164)
	meta := p.meta
	meta.PhoneNumber, meta.PhoneNumberSID = num.E164, num.SID
	meta.WhatsAppOnly = num.SID == ""
	meta.CatchUpSince = p.conn.now().UTC()
	if slices.Contains(p.whatsapp, num.E164) {
		meta.WhatsAppNumber = num.E164
	}
	old := b.GetLogin(networkIDLogin(loginID))
	if old != nil && old.UserMXID != p.user.MXID {
		return nil, bridgev2.NewError(formatNumber(num.E164)+" is already logged in by another Matrix user.", nil)
	}
	if old != nil {
		// Logging the same number in again (say, after the token was
		// rotated) keeps its catch-up watermark, so texts missed meanwhile
		// are recovered; the old client must not save its stale row after
		// this.
		if oc, ok := old.Client.(*Client); ok {
			if wm := oc.retire(); !wm.IsZero() && wm.Before(meta.CatchUpSince) {
				meta.CatchUpSince = wm
			}
		}
	}
	webhook := b.NetworkPublicURL("/" + loginID + "/incoming")
	var instructions string
	if meta.WhatsAppOnly {
		instructions = "WhatsApp messages to " + formatNumber(num.E164) + " come to this bridge once its WhatsApp sender's webhook URL for incoming messages is " + webhook +
			" (HTTP POST, in the Twilio console's WhatsApp senders). It has no SMS number: every chat of this login is a WhatsApp chat."
	} else if p.conn.cfg.ManageWebhooks {
		if err := p.rest.setSMSURL(ctx, num.SID, webhook); err != nil {
			return nil, fmt.Errorf("set the webhook of %s: %w", num.E164, err)
		}
		meta.WebhookURL = webhook
		instructions = "Texts to " + formatNumber(num.E164) + " now come to this bridge."
		// Group texts arrive through the account's one Conversations
		// webhook; without it, 1:1 texts still work.
		if err := p.rest.setConversationsWebhook(ctx, b.NetworkPublicURL("/"+loginID+"/conversations")); err != nil {
			p.conn.log.Warn().Err(err).Msg("Could not set the account's Conversations webhook; group texts will not arrive")
			instructions += " Group texts will not arrive: the account's Conversations webhook could not be set (" + bridgev2.HumanMessage(err) + ")."
		}
		if num.SMSURL != "" && num.SMSURL != webhook {
			instructions += " (Its messaging webhook used to be " + num.SMSURL + ".)"
		}
	} else {
		instructions = fmt.Sprintf("In the Twilio console, set the messaging webhook of %s (\"A message comes in\") to %s with HTTP POST. Until then, texts arrive only when the bridge catches up at its next start.",
			formatNumber(num.E164), webhook)
		instructions += fmt.Sprintf(" For group texts, set the Conversations webhook (Conversations > Configure > Webhooks, post-event URL) to %s with the events onMessageAdded, onParticipantAdded, onParticipantRemoved and onDeliveryUpdated.",
			b.NetworkPublicURL("/"+loginID+"/conversations"))
	}
	if meta.WhatsAppNumber != "" && !meta.WhatsAppOnly {
		instructions += " Its WhatsApp sender is bridged too: WhatsApp chats are rooms of their own, named \"(WhatsApp)\"; the sender's webhook must be " + webhook + " as well."
	}
	if meta.MessagingServiceSID != "" {
		instructions += " Messages are sent through Messaging Service " + meta.MessagingServiceSID + ", from this number; its sender pool must contain it."
	}
	ul, err := p.user.NewLogin(ctx, bridgev2.NewLoginParams{
		ID:         networkIDLogin(loginID),
		RemoteName: loginName(&meta),
		Metadata:   &meta,
	})
	if err != nil {
		return nil, err
	}
	p.cancelled = true // the process is done
	return &bridgev2.LoginStep{
		Type:         bridgev2.LoginStepComplete,
		StepID:       stepComplete,
		Instructions: instructions,
		Complete:     &bridgev2.LoginCompleteParams{UserLoginID: string(ul.ID), UserLogin: ul},
	}, nil
}

// listWhatsApp lists the account's WhatsApp senders. An account that
// cannot list them (no access to the Senders API) simply has none: SMS
// logins must not fail for it.
func (p *loginProcess) listWhatsApp(ctx context.Context) []string {
	senders, err := p.rest.listWhatsAppSenders(ctx)
	if err != nil {
		p.conn.log.Info().Err(err).Msg("Could not list the account's WhatsApp senders; logging in for SMS only")
		return nil
	}
	return senders
}

// loginName is how a login is listed: its number, marked for a WhatsApp
// sender alone.
func loginName(meta *LoginMetadata) string {
	if meta.WhatsAppOnly {
		return formatNumber(meta.PhoneNumber) + " (WhatsApp)"
	}
	return formatNumber(meta.PhoneNumber)
}

// whatsappOnlySenders are the WhatsApp senders whose numbers are not among
// the account's SMS numbers, as login choices without a number SID: they
// can be logged in for WhatsApp alone.
func whatsappOnlySenders(numbers []numberInfo, whatsapp []string) []numberInfo {
	var out []numberInfo
	for _, wa := range whatsapp {
		if !slices.ContainsFunc(numbers, func(n numberInfo) bool { return n.E164 == wa }) {
			out = append(out, numberInfo{E164: wa})
		}
	}
	return out
}

// choice is how a login choice is offered: the number, or for a WhatsApp
// sender alone its WhatsApp address.
func (n numberInfo) choice() string {
	if n.SID == "" {
		return whatsappPrefix + n.E164
	}
	return n.E164
}

// whatsappNote tells, in the choice of numbers, which ones also have a
// WhatsApp sender that the login bridges.
func (p *loginProcess) whatsappNote() string {
	var with []string
	for _, n := range p.numbers {
		if n.SID != "" && slices.Contains(p.whatsapp, n.E164) {
			with = append(with, n.E164)
		}
	}
	if len(with) == 0 {
		return ""
	}
	return " These have a WhatsApp sender, bridged along with the number: " + strings.Join(with, ", ") + "."
}

// isAuthFailure reports whether a REST error means the credentials were
// rejected.
func isAuthFailure(err error) bool {
	re := asRestError(err)
	return re != nil && (re.Status == http.StatusUnauthorized || re.Code == codeAuthenticate)
}

// retire stops a client that is being replaced by a new login of the same
// number from ever saving its (now stale) row again, and returns its
// catch-up watermark. The watermark never passes a webhook that failed, so
// the new login's first catch-up recovers everything the old one missed.
func (c *Client) retire() time.Time {
	c.persistMu.Lock()
	c.retired = true
	c.persistMu.Unlock()
	c.wmMu.Lock()
	defer c.wmMu.Unlock()
	return c.watermark
}
