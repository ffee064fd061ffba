package twilio

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode"

	"github.com/rs/zerolog"

	"github.com/trestle-bridge/trestle/bridgev2/networkid"
)

// SID shapes, as Twilio issues them: a two-letter type prefix and 32 hex
// digits.
var (
	accountSIDPattern = regexp.MustCompile(`^AC[0-9a-fA-F]{32}$`)
	apiKeySIDPattern  = regexp.MustCompile(`^SK[0-9a-fA-F]{32}$`)
	serviceSIDPattern = regexp.MustCompile(`^MG[0-9a-fA-F]{32}$`)
	messageSIDPattern = regexp.MustCompile(`^(SM|MM)[0-9a-fA-F]{32}$`)
	numberSIDPattern  = regexp.MustCompile(`^PN[0-9a-fA-F]{32}$`)
)

// LoginMetadata is what the bridge stores for one logged-in number. It holds
// secrets: it must never be logged (String redacts them).
type LoginMetadata struct {
	AccountSID string `json:"account_sid"`
	// AuthToken validates webhook signatures, and authenticates REST calls
	// when no API key is set.
	AuthToken    string `json:"auth_token"`
	APIKeySID    string `json:"api_key_sid,omitempty"`
	APIKeySecret string `json:"api_key_secret,omitempty"`
	// PhoneNumberSID and PhoneNumber (E.164) are the logged-in number.
	PhoneNumberSID string `json:"phone_number_sid"`
	PhoneNumber    string `json:"phone_number"`
	// WhatsAppNumber (E.164), if set, is the number of the account's
	// WhatsApp sender ("whatsapp:+E164") this login also bridges.
	WhatsAppNumber string `json:"whatsapp_number,omitempty"`
	// WhatsAppOnly marks a login of a WhatsApp sender whose number is not
	// an SMS number of the account: PhoneNumber is the sender's number and
	// there is no PhoneNumberSID.
	WhatsAppOnly bool `json:"whatsapp_only,omitempty"`
	// MessagingServiceSID, if set, sends instead of From.
	MessagingServiceSID string `json:"messaging_service_sid,omitempty"`
	// WebhookURL is the SmsUrl the bridge set on the number, empty when
	// network.manage_webhooks was off; logout removes only this URL.
	WebhookURL string `json:"webhook_url,omitempty"`
	// CatchUpSince is the catch-up watermark: inbound messages sent before
	// it are known to be journalled.
	CatchUpSince time.Time `json:"catch_up_since"`
}

// String describes the login without its secrets, so that an accidental
// %v in a log line leaks nothing.
func (m *LoginMetadata) String() string {
	if m == nil {
		return "<nil>"
	}
	return fmt.Sprintf("twilio login %s (account %s, number %s)", m.PhoneNumber, m.AccountSID, m.PhoneNumberSID)
}

// MarshalZerologObject logs the login without its secrets, should it ever
// be passed to a zerolog event.
func (m *LoginMetadata) MarshalZerologObject(e *zerolog.Event) {
	e.Str("account_sid", m.AccountSID).Str("phone_number", m.PhoneNumber).Str("phone_number_sid", m.PhoneNumberSID).
		Bool("api_key", m.APIKeySID != "").Str("messaging_service_sid", m.MessagingServiceSID)
}

// check verifies a stored login is usable before a client is built on it.
func (m *LoginMetadata) check() error {
	switch {
	case !accountSIDPattern.MatchString(m.AccountSID):
		return errors.New("stored twilio login has no valid account SID")
	case m.AuthToken == "":
		return errors.New("stored twilio login has no auth token")
	case !e164Pattern.MatchString(m.PhoneNumber):
		return errors.New("stored twilio login has no valid phone number")
	case m.WhatsAppOnly && m.WhatsAppNumber != m.PhoneNumber:
		return errors.New("stored twilio WhatsApp login has no WhatsApp sender")
	case m.PhoneNumberSID == "" && !m.WhatsAppOnly:
		return errors.New("stored twilio login has no phone number SID")
	case m.WhatsAppNumber != "" && !e164Pattern.MatchString(m.WhatsAppNumber):
		return errors.New("stored twilio login has an invalid WhatsApp sender")
	}
	return nil
}

// restCreds picks the credentials for REST calls: the API key if there is
// one, else the auth token.
func (m *LoginMetadata) restCreds() restCreds {
	if m.APIKeySID != "" && m.APIKeySecret != "" {
		return restCreds{AccountSID: m.AccountSID, User: m.APIKeySID, Pass: m.APIKeySecret}
	}
	return m.tokenCreds()
}

// tokenCreds are the account SID and auth token as REST credentials.
func (m *LoginMetadata) tokenCreds() restCreds {
	return restCreds{AccountSID: m.AccountSID, User: m.AccountSID, Pass: m.AuthToken}
}

// MessageMetadata is stored with each bridged message part.
type MessageMetadata struct {
	// Snippet is the start of the text (or a description of the media),
	// quoted in replies, edits and reaction texts that refer to it.
	Snippet string `json:"snippet,omitempty"`
}

// snippetRunes bounds snippets: long enough to recognise a message, short
// enough to keep quotes within one SMS segment's worth of text.
const snippetRunes = 60

// snippet makes a one-line excerpt of text for quotes.
func snippet(text string) string {
	text = strings.Join(strings.FieldsFunc(text, unicode.IsSpace), " ")
	r := []rune(text)
	if len(r) <= snippetRunes {
		return text
	}
	return strings.TrimSpace(string(r[:snippetRunes-1])) + "…"
}

// networkIDLogin types a login ID string.
func networkIDLogin(id string) networkid.UserLoginID { return networkid.UserLoginID(id) }
