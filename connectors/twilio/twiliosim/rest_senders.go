package twiliosim

import (
	"encoding/json"
	"io"
	"net/http"
)

// The Senders API (messaging.twilio.com/v2/Channels/Senders) lists an
// account's WhatsApp and RCS senders; it is how a login flow finds the
// WhatsApp senders next to the account's phone numbers, since neither
// IncomingPhoneNumbers nor a Messaging Service lists a WhatsApp sender that
// is in no service. It is not in the OpenAPI files of shared/twilio (they
// hold Messaging v1 only), so its shape follows twilio-go's generated
// models (rest/messaging/v2, MessagingV2ChannelsSenderResponse), which the
// conformance test checks the JSON against. Served: list (Channel, paged),
// fetch, and update of the webhook (JSON body, as Twilio takes it).

func (s *Server) senderRoutes() []route {
	exempt := "Senders API v2 is not in shared/twilio; checked against twilio-go's messaging/v2 models instead"
	return []route{
		{api: apiSenders, method: http.MethodGet, pattern: "/v2/Channels/Senders", specExempt: exempt,
			queryParams: []string{"Channel", "PageSize", "Page", "PageToken"}, handle: s.handleListSenders},
		{api: apiSenders, method: http.MethodGet, pattern: "/v2/Channels/Senders/{Sid}", specExempt: exempt, handle: s.handleFetchSender},
		{api: apiSenders, method: http.MethodPost, pattern: "/v2/Channels/Senders/{Sid}", specExempt: exempt, handle: s.handleUpdateSender},
	}
}

type senderWebhookJSON struct {
	CallbackURL          *string `json:"callback_url"`
	CallbackMethod       string  `json:"callback_method"`
	FallbackURL          *string `json:"fallback_url"`
	FallbackMethod       string  `json:"fallback_method"`
	StatusCallbackURL    *string `json:"status_callback_url"`
	StatusCallbackMethod string  `json:"status_callback_method"`
}

type senderJSON struct {
	SID            string            `json:"sid"`
	Status         string            `json:"status"`
	SenderID       string            `json:"sender_id"`
	FriendlyName   *string           `json:"friendly_name"`
	Configuration  map[string]any    `json:"configuration"`
	Webhook        senderWebhookJSON `json:"webhook"`
	Profile        map[string]any    `json:"profile"`
	Properties     map[string]any    `json:"properties"`
	OfflineReasons []any             `json:"offline_reasons"`
	Compliance     any               `json:"compliance"`
	URL            string            `json:"url"`
}

func renderSender(base string, cs *channelSender) senderJSON {
	return senderJSON{
		SID: cs.sid, Status: "ONLINE", SenderID: cs.address, FriendlyName: optString(cs.profileName),
		Configuration: map[string]any{"waba_id": nil, "verification_method": nil, "verification_code": nil, "voice_application_sid": nil},
		Webhook: senderWebhookJSON{
			CallbackURL: optString(cs.webhookURL), CallbackMethod: cs.webhookMethod, FallbackMethod: "POST",
			StatusCallbackURL: optString(cs.statusCallback), StatusCallbackMethod: "POST",
		},
		Profile:    map[string]any{"name": cs.profileName},
		Properties: map[string]any{"quality_rating": "HIGH", "messaging_limit": "1K"},
		URL:        base + "/v2/Channels/Senders/" + cs.sid,
	}
}

// handleListSenders serves GET /v2/Channels/Senders?Channel=whatsapp|rcs.
func (s *Server) handleListSenders(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	channel := r.URL.Query().Get("Channel")
	if channel != ChannelWhatsApp && channel != ChannelRCS {
		writeAPIError(w, errBadParam("Channel must be %q or %q, not %q", ChannelWhatsApp, ChannelRCS, channel))
		return
	}
	listResources(s, w, r, "senders", []queryParam{{"Channel", channel}}, func() (out []senderJSON, _ bool) {
		for _, cs := range s.accounts[rc.accountSID].senders {
			if cs.channel == channel {
				out = append(out, renderSender(s.baseURL, cs))
			}
		}
		return out, true
	}, func(v senderJSON) string { return v.SID })
}

// handleFetchSender serves GET /v2/Channels/Senders/{Sid}.
func (s *Server) handleFetchSender(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := s.accounts[rc.accountSID].senderBySID(rc.params["Sid"])
	if cs == nil {
		writeAPIError(w, errNotFound(r.URL.Path))
		return
	}
	writeJSON(w, http.StatusOK, renderSender(s.baseURL, cs))
}

// senderUpdate is the part of MessagingV2Update the simulator applies.
type senderUpdate struct {
	FriendlyName *string `json:"friendly_name"`
	Webhook      *struct {
		CallbackURL       *string `json:"callback_url"`
		CallbackMethod    *string `json:"callback_method"`
		StatusCallbackURL *string `json:"status_callback_url"`
	} `json:"webhook"`
}

// handleUpdateSender serves POST /v2/Channels/Senders/{Sid} with a JSON
// body: the friendly name and the webhook URLs.
func (s *Server) handleUpdateSender(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxFormBytes))
	var upd senderUpdate
	if err == nil {
		err = json.Unmarshal(raw, &upd)
	}
	if err != nil {
		writeAPIError(w, errBadParam("Unable to parse request body as JSON: %v", err))
		return
	}
	if upd.Webhook != nil {
		for _, u := range []*string{upd.Webhook.CallbackURL, upd.Webhook.StatusCallbackURL} {
			if u != nil && *u != "" && !isHTTPURL(*u) {
				writeAPIError(w, errBadParam("webhook URL %q is not a valid http or https URL", *u))
				return
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := s.accounts[rc.accountSID].senderBySID(rc.params["Sid"])
	if cs == nil {
		writeAPIError(w, errNotFound(r.URL.Path))
		return
	}
	if upd.FriendlyName != nil {
		cs.profileName = *upd.FriendlyName
	}
	if wh := upd.Webhook; wh != nil {
		for _, f := range []struct {
			src *string
			dst *string
		}{{wh.CallbackURL, &cs.webhookURL}, {wh.CallbackMethod, &cs.webhookMethod}, {wh.StatusCallbackURL, &cs.statusCallback}} {
			if f.src != nil {
				*f.dst = *f.src
			}
		}
	}
	cs.updated = s.nowLocked()
	s.notifyLocked()
	writeJSON(w, http.StatusOK, renderSender(s.baseURL, cs))
}
