package twiliosim

import (
	"net/http"
	"strings"
)

// Messaging Services (messaging.twilio.com/v1): list and fetch services,
// update the settings a bridge manages (inbound URL, status callback,
// sticky sender), and list a service's phone numbers and channel senders
// (WhatsApp, RCS). Shapes follow messaging.v1.service,
// messaging.v1.service.phone_number and messaging.v1.service.channel_sender.

// serviceUpdateFields are the update fields the simulator applies; Twilio
// ignores parameters it does not know, and so does the simulator with the
// spec's others.
var serviceUpdateFields = []string{
	"FriendlyName", "InboundRequestUrl", "InboundMethod", "FallbackUrl", "FallbackMethod",
	"StatusCallback", "StickySender", "UseInboundWebhookOnNumber",
}

func (s *Server) messagingRoutes() []route {
	page := []string{"PageSize", "Page", "PageToken"}
	return []route{
		{api: apiMessaging, method: http.MethodGet, pattern: "/v1/Services", queryParams: page, handle: s.handleListServices},
		{api: apiMessaging, method: http.MethodGet, pattern: "/v1/Services/{Sid}", handle: s.handleFetchService},
		{api: apiMessaging, method: http.MethodPost, pattern: "/v1/Services/{Sid}", formFields: serviceUpdateFields, handle: s.handleUpdateService},
		{api: apiMessaging, method: http.MethodGet, pattern: "/v1/Services/{ServiceSid}/PhoneNumbers", queryParams: page, handle: s.handleListServiceNumbers},
		{api: apiMessaging, method: http.MethodGet, pattern: "/v1/Services/{MessagingServiceSid}/ChannelSenders", queryParams: page, handle: s.handleListChannelSenders},
		{api: apiMessaging, method: http.MethodGet, pattern: "/v1/Services/{MessagingServiceSid}/ChannelSenders/{Sid}", handle: s.handleFetchChannelSender},
	}
}

type serviceJSON struct {
	SID                       string            `json:"sid"`
	AccountSID                string            `json:"account_sid"`
	FriendlyName              string            `json:"friendly_name"`
	DateCreated               string            `json:"date_created"`
	DateUpdated               string            `json:"date_updated"`
	InboundRequestURL         *string           `json:"inbound_request_url"`
	InboundMethod             string            `json:"inbound_method"`
	FallbackURL               *string           `json:"fallback_url"`
	FallbackMethod            string            `json:"fallback_method"`
	StatusCallback            *string           `json:"status_callback"`
	StickySender              bool              `json:"sticky_sender"`
	MMSConverter              bool              `json:"mms_converter"`
	SmartEncoding             bool              `json:"smart_encoding"`
	ScanMessageContent        string            `json:"scan_message_content"`
	FallbackToLongCode        bool              `json:"fallback_to_long_code"`
	AreaCodeGeomatch          bool              `json:"area_code_geomatch"`
	SynchronousValidation     bool              `json:"synchronous_validation"`
	ValidityPeriod            int               `json:"validity_period"`
	URL                       string            `json:"url"`
	Links                     map[string]string `json:"links"`
	Usecase                   string            `json:"usecase"`
	USAppToPersonRegistered   bool              `json:"us_app_to_person_registered"`
	UseInboundWebhookOnNumber bool              `json:"use_inbound_webhook_on_number"`
}

func renderService(base string, svc *messagingService) serviceJSON {
	url := base + "/v1/Services/" + svc.sid
	links := map[string]string{
		"us_app_to_person":          url + "/Compliance/Usa2p",
		"us_app_to_person_usecases": url + "/Compliance/Usa2p/Usecases",
	}
	for _, sub := range []string{"PhoneNumbers", "ShortCodes", "AlphaSenders", "Messages", "ChannelSenders", "DestinationAlphaSenders"} {
		links[snake(sub)] = url + "/" + sub
	}
	return serviceJSON{
		SID: svc.sid, AccountSID: svc.accountSID, FriendlyName: svc.friendlyName,
		DateCreated: formatISO(svc.created), DateUpdated: formatISO(svc.updated),
		InboundRequestURL: optString(svc.inboundURL), InboundMethod: svc.inboundMethod,
		FallbackURL: optString(svc.fallbackURL), FallbackMethod: svc.fallbackMethod,
		StatusCallback: optString(svc.statusCallback), StickySender: svc.stickySender,
		MMSConverter: true, SmartEncoding: true, ScanMessageContent: "inherit", FallbackToLongCode: true,
		AreaCodeGeomatch: true, ValidityPeriod: 14400, URL: url, Links: links, Usecase: "undeclared",
		UseInboundWebhookOnNumber: svc.useNumberWebhook,
	}
}

// snake turns "PhoneNumbers" into "phone_numbers", as Twilio names links.
func snake(s string) string {
	var b strings.Builder
	for i, r := range s {
		if 'A' <= r && r <= 'Z' {
			if i > 0 {
				b.WriteByte('_')
			}
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

type servicePhoneNumberJSON struct {
	SID          string   `json:"sid"`
	AccountSID   string   `json:"account_sid"`
	ServiceSID   string   `json:"service_sid"`
	DateCreated  string   `json:"date_created"`
	DateUpdated  string   `json:"date_updated"`
	PhoneNumber  string   `json:"phone_number"`
	CountryCode  string   `json:"country_code"`
	Capabilities []string `json:"capabilities"`
	URL          string   `json:"url"`
}

type channelSenderJSON struct {
	AccountSID          string  `json:"account_sid"`
	MessagingServiceSID string  `json:"messaging_service_sid"`
	SID                 string  `json:"sid"`
	Sender              string  `json:"sender"`
	SenderType          string  `json:"sender_type"`
	CountryCode         *string `json:"country_code"`
	DateCreated         string  `json:"date_created"`
	DateUpdated         string  `json:"date_updated"`
	URL                 string  `json:"url"`
}

// senderTypes are the sender_type values of channel senders.
var senderTypes = map[string]string{ChannelWhatsApp: "WhatsApp", ChannelRCS: "RCS"}

func renderChannelSender(base string, cs *channelSender) channelSenderJSON {
	out := channelSenderJSON{
		AccountSID: cs.accountSID, MessagingServiceSID: cs.serviceSID, SID: cs.sid,
		Sender: cs.address, SenderType: senderTypes[cs.channel],
		DateCreated: formatISO(cs.created), DateUpdated: formatISO(cs.updated),
		URL: base + "/v1/Services/" + cs.serviceSID + "/ChannelSenders/" + cs.sid,
	}
	if _, bare := splitAddress(cs.address); cs.channel == ChannelWhatsApp {
		out.CountryCode = optString(countryOf(bare))
	}
	return out
}

// lookupService returns the account's service named by the path parameter,
// or writes a 404 and returns nil. Called with mu held.
func lookupService(w http.ResponseWriter, r *http.Request, acct *account, sid string) *messagingService {
	svc := acct.services[sid]
	if svc == nil {
		writeAPIError(w, errNotFound(r.URL.Path))
	}
	return svc
}

// handleListServices serves GET /v1/Services.
func (s *Server) handleListServices(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	listResources(s, w, r, "services", nil, func() (out []serviceJSON, _ bool) {
		for _, svc := range s.accounts[rc.accountSID].sortedServices() {
			out = append(out, renderService(s.baseURL, svc))
		}
		return out, true
	}, func(v serviceJSON) string { return v.SID })
}

// handleFetchService serves GET /v1/Services/{Sid}.
func (s *Server) handleFetchService(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if svc := lookupService(w, r, s.accounts[rc.accountSID], rc.params["Sid"]); svc != nil {
		writeJSON(w, http.StatusOK, renderService(s.baseURL, svc))
	}
}

// handleUpdateService serves POST /v1/Services/{Sid}.
func (s *Server) handleUpdateService(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	form, apiErr := readForm(w, r)
	if apiErr != nil {
		writeAPIError(w, apiErr)
		return
	}
	if apiErr := checkUpdateForm(form, []string{"InboundMethod", "FallbackMethod"},
		[]string{"InboundRequestUrl", "FallbackUrl", "StatusCallback"},
		[]string{"StickySender", "UseInboundWebhookOnNumber"}); apiErr != nil {
		writeAPIError(w, apiErr)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	svc := lookupService(w, r, s.accounts[rc.accountSID], rc.params["Sid"])
	if svc == nil {
		return
	}
	set := func(field string, dst *string) {
		if form.Has(field) {
			*dst = form.Get(field)
		}
	}
	set("FriendlyName", &svc.friendlyName)
	set("InboundRequestUrl", &svc.inboundURL)
	set("InboundMethod", &svc.inboundMethod)
	set("FallbackUrl", &svc.fallbackURL)
	set("FallbackMethod", &svc.fallbackMethod)
	set("StatusCallback", &svc.statusCallback)
	if form.Has("StickySender") {
		svc.stickySender = form.Get("StickySender") == "true"
	}
	if form.Has("UseInboundWebhookOnNumber") {
		svc.useNumberWebhook = form.Get("UseInboundWebhookOnNumber") == "true"
	}
	svc.updated = s.nowLocked()
	s.notifyLocked()
	writeJSON(w, http.StatusOK, renderService(s.baseURL, svc))
}

// handleListServiceNumbers serves GET /v1/Services/{ServiceSid}/PhoneNumbers.
func (s *Server) handleListServiceNumbers(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	listResources(s, w, r, "phone_numbers", nil, func() ([]servicePhoneNumberJSON, bool) {
		acct := s.accounts[rc.accountSID]
		svc := acct.services[rc.params["ServiceSid"]]
		if svc == nil {
			return nil, false
		}
		var out []servicePhoneNumberJSON
		for _, e164 := range svc.numbers {
			out = append(out, renderServiceNumber(s.baseURL, svc, acct.numberByE164(e164)))
		}
		return out, true
	}, func(v servicePhoneNumberJSON) string { return v.SID })
}

func renderServiceNumber(base string, svc *messagingService, n *phoneNumber) servicePhoneNumberJSON {
	caps := []string{}
	for _, c := range []struct {
		on   bool
		name string
	}{{n.caps.SMS, "SMS"}, {n.caps.MMS, "MMS"}, {n.caps.Voice, "Voice"}, {n.caps.Fax, "Fax"}} {
		if c.on {
			caps = append(caps, c.name)
		}
	}
	return servicePhoneNumberJSON{
		SID: n.sid, AccountSID: n.accountSID, ServiceSID: svc.sid,
		DateCreated: formatISO(n.created), DateUpdated: formatISO(n.updated),
		PhoneNumber: n.e164, CountryCode: countryOf(n.e164), Capabilities: caps,
		URL: base + "/v1/Services/" + svc.sid + "/PhoneNumbers/" + n.sid,
	}
}

// handleListChannelSenders serves GET /v1/Services/{MessagingServiceSid}/ChannelSenders.
func (s *Server) handleListChannelSenders(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	listResources(s, w, r, "senders", nil, func() ([]channelSenderJSON, bool) {
		acct := s.accounts[rc.accountSID]
		svc := acct.services[rc.params["MessagingServiceSid"]]
		if svc == nil {
			return nil, false
		}
		var out []channelSenderJSON
		for _, cs := range acct.senders {
			if cs.serviceSID == svc.sid {
				out = append(out, renderChannelSender(s.baseURL, cs))
			}
		}
		return out, true
	}, func(v channelSenderJSON) string { return v.SID })
}

// handleFetchChannelSender serves GET /v1/Services/{MessagingServiceSid}/ChannelSenders/{Sid}.
func (s *Server) handleFetchChannelSender(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := s.accounts[rc.accountSID].senderBySID(rc.params["Sid"])
	if cs == nil || cs.serviceSID != rc.params["MessagingServiceSid"] {
		writeAPIError(w, errNotFound(r.URL.Path))
		return
	}
	writeJSON(w, http.StatusOK, renderChannelSender(s.baseURL, cs))
}
