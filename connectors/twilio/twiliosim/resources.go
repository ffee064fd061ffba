package twiliosim

import (
	"strconv"
	"time"
)

// The JSON shapes below follow the OpenAPI schemas api.v2010.account,
// api.v2010.account.incoming_phone_number, api.v2010.account.message and
// api.v2010.account.message.media. Every declared property is emitted, with
// null where Twilio has no value (no omitempty), because clients and the
// conformance test rely on the full shape.

// rfc2822 is how Twilio writes timestamps: "Thu, 30 Jul 2015 20:00:00 +0000".
const rfc2822 = time.RFC1123Z

func formatTime(t time.Time) string { return t.UTC().Format(rfc2822) }

// optTime renders a zero time as null.
func optTime(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := formatTime(t)
	return &s
}

// optString renders "" as null.
func optString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func accountURI(sid string) string { return "/2010-04-01/Accounts/" + sid + ".json" }

func messagesURI(accountSID string) string {
	return "/2010-04-01/Accounts/" + accountSID + "/Messages.json"
}

func messageURI(accountSID, sid string) string {
	return "/2010-04-01/Accounts/" + accountSID + "/Messages/" + sid + ".json"
}

func mediaListURI(accountSID, messageSID string) string {
	return "/2010-04-01/Accounts/" + accountSID + "/Messages/" + messageSID + "/Media.json"
}

// mediaContentPath is the media URL without ".json": its content, behind
// basic auth and a redirect to the CDN.
func mediaContentPath(accountSID, messageSID, sid string) string {
	return "/2010-04-01/Accounts/" + accountSID + "/Messages/" + messageSID + "/Media/" + sid
}

func numbersURI(accountSID string) string {
	return "/2010-04-01/Accounts/" + accountSID + "/IncomingPhoneNumbers.json"
}

func numberURI(accountSID, sid string) string {
	return "/2010-04-01/Accounts/" + accountSID + "/IncomingPhoneNumbers/" + sid + ".json"
}

type accountJSON struct {
	AuthToken       string            `json:"auth_token"`
	DateCreated     string            `json:"date_created"`
	DateUpdated     string            `json:"date_updated"`
	FriendlyName    string            `json:"friendly_name"`
	OwnerAccountSID string            `json:"owner_account_sid"`
	SID             string            `json:"sid"`
	Status          string            `json:"status"`
	SubresourceURIs map[string]string `json:"subresource_uris"`
	Type            string            `json:"type"`
	URI             string            `json:"uri"`
}

func renderAccount(a *account) accountJSON {
	return accountJSON{
		AuthToken:       a.authToken,
		DateCreated:     formatTime(a.created),
		DateUpdated:     formatTime(a.created),
		FriendlyName:    a.friendlyName,
		OwnerAccountSID: a.sid,
		SID:             a.sid,
		Status:          "active",
		SubresourceURIs: map[string]string{
			"incoming_phone_numbers": numbersURI(a.sid),
			"messages":               messagesURI(a.sid),
		},
		Type: "Full",
		URI:  accountURI(a.sid),
	}
}

type capabilitiesJSON struct {
	MMS   bool `json:"mms"`
	SMS   bool `json:"sms"`
	Voice bool `json:"voice"`
	Fax   bool `json:"fax"`
}

type numberJSON struct {
	AccountSID             string           `json:"account_sid"`
	AddressSID             *string          `json:"address_sid"`
	AddressRequirements    string           `json:"address_requirements"`
	APIVersion             string           `json:"api_version"`
	Beta                   bool             `json:"beta"`
	Capabilities           capabilitiesJSON `json:"capabilities"`
	DateCreated            string           `json:"date_created"`
	DateUpdated            string           `json:"date_updated"`
	FriendlyName           string           `json:"friendly_name"`
	IdentitySID            *string          `json:"identity_sid"`
	PhoneNumber            string           `json:"phone_number"`
	Origin                 string           `json:"origin"`
	SID                    string           `json:"sid"`
	SMSApplicationSID      string           `json:"sms_application_sid"`
	SMSFallbackMethod      string           `json:"sms_fallback_method"`
	SMSFallbackURL         string           `json:"sms_fallback_url"`
	SMSMethod              string           `json:"sms_method"`
	SMSURL                 string           `json:"sms_url"`
	StatusCallback         string           `json:"status_callback"`
	StatusCallbackMethod   string           `json:"status_callback_method"`
	TrunkSID               *string          `json:"trunk_sid"`
	URI                    string           `json:"uri"`
	VoiceReceiveMode       string           `json:"voice_receive_mode"`
	VoiceApplicationSID    string           `json:"voice_application_sid"`
	VoiceCallerIDLookup    bool             `json:"voice_caller_id_lookup"`
	VoiceFallbackMethod    string           `json:"voice_fallback_method"`
	VoiceFallbackURL       string           `json:"voice_fallback_url"`
	VoiceMethod            string           `json:"voice_method"`
	VoiceURL               string           `json:"voice_url"`
	EmergencyStatus        string           `json:"emergency_status"`
	EmergencyAddressSID    *string          `json:"emergency_address_sid"`
	EmergencyAddressStatus string           `json:"emergency_address_status"`
	BundleSID              *string          `json:"bundle_sid"`
	Status                 string           `json:"status"`
	Type                   string           `json:"type"`
}

func renderNumber(n *phoneNumber) numberJSON {
	return numberJSON{
		AccountSID:          n.accountSID,
		AddressRequirements: "none",
		APIVersion:          apiVersion,
		Capabilities: capabilitiesJSON{
			MMS: n.caps.MMS, SMS: n.caps.SMS, Voice: n.caps.Voice, Fax: n.caps.Fax,
		},
		DateCreated:            formatTime(n.created),
		DateUpdated:            formatTime(n.updated),
		FriendlyName:           n.friendlyName,
		PhoneNumber:            n.e164,
		Origin:                 "twilio",
		SID:                    n.sid,
		SMSFallbackMethod:      n.smsFallbackMethod,
		SMSFallbackURL:         n.smsFallbackURL,
		SMSMethod:              n.smsMethod,
		SMSURL:                 n.smsURL,
		StatusCallback:         n.statusCallback,
		StatusCallbackMethod:   n.statusCallbackMethod,
		URI:                    numberURI(n.accountSID, n.sid),
		VoiceReceiveMode:       "voice",
		VoiceCallerIDLookup:    n.voiceCallerIDLookup,
		VoiceFallbackMethod:    n.voiceFallbackMethod,
		VoiceFallbackURL:       n.voiceFallbackURL,
		VoiceMethod:            n.voiceMethod,
		VoiceURL:               n.voiceURL,
		EmergencyStatus:        "Inactive",
		EmergencyAddressStatus: "unregistered",
		Status:                 "in-use",
		Type:                   "local",
	}
}

type messageJSON struct {
	Body                string            `json:"body"`
	NumSegments         string            `json:"num_segments"`
	Direction           string            `json:"direction"`
	From                *string           `json:"from"`
	To                  string            `json:"to"`
	DateUpdated         string            `json:"date_updated"`
	Price               *string           `json:"price"`
	ErrorMessage        *string           `json:"error_message"`
	URI                 string            `json:"uri"`
	AccountSID          string            `json:"account_sid"`
	NumMedia            string            `json:"num_media"`
	Status              string            `json:"status"`
	MessagingServiceSID *string           `json:"messaging_service_sid"`
	SID                 string            `json:"sid"`
	DateSent            *string           `json:"date_sent"`
	DateCreated         string            `json:"date_created"`
	ErrorCode           *int              `json:"error_code"`
	PriceUnit           string            `json:"price_unit"`
	APIVersion          string            `json:"api_version"`
	SubresourceURIs     map[string]string `json:"subresource_uris"`
}

func renderMessage(m *message) messageJSON {
	var code *int
	if m.errorCode != 0 {
		c := m.errorCode
		code = &c
	}
	return messageJSON{
		Body:                m.body,
		NumSegments:         strconv.Itoa(m.numSegments),
		Direction:           m.direction,
		From:                optString(m.from),
		To:                  m.to,
		DateUpdated:         formatTime(m.updated),
		ErrorMessage:        optString(m.errorMessage),
		URI:                 messageURI(m.accountSID, m.sid),
		AccountSID:          m.accountSID,
		NumMedia:            strconv.Itoa(m.numMedia),
		Status:              m.status,
		MessagingServiceSID: optString(m.serviceSID),
		SID:                 m.sid,
		DateSent:            optTime(m.sent),
		DateCreated:         formatTime(m.created),
		ErrorCode:           code,
		PriceUnit:           "USD",
		APIVersion:          apiVersion,
		SubresourceURIs: map[string]string{
			"media": mediaListURI(m.accountSID, m.sid),
		},
	}
}

type mediaJSON struct {
	AccountSID  string `json:"account_sid"`
	ContentType string `json:"content_type"`
	DateCreated string `json:"date_created"`
	DateUpdated string `json:"date_updated"`
	ParentSID   string `json:"parent_sid"`
	SID         string `json:"sid"`
	URI         string `json:"uri"`
}

func renderMedia(md *media) mediaJSON {
	return mediaJSON{
		AccountSID:  md.accountSID,
		ContentType: md.contentType,
		DateCreated: formatTime(md.created),
		DateUpdated: formatTime(md.created),
		ParentSID:   md.parentSID,
		SID:         md.sid,
		URI:         mediaContentPath(md.accountSID, md.parentSID, md.sid) + ".json",
	}
}
