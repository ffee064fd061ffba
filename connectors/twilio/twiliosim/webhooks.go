package twiliosim

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// ErrNoWebhook is returned (wrapped) by SendInbound when the receiving
// sender has no webhook URL: the message is in the log, but nobody was told.
var ErrNoWebhook = errors.New("twiliosim: number has no SMS webhook URL")

// maxTargetResponse bounds how much of a bridge's answer the simulator keeps.
const maxTargetResponse = 1 << 20

// Signature computes Twilio's X-Twilio-Signature for a request to fullURL
// carrying the POST parameters params (nil for GET): base64 of the
// HMAC-SHA1, keyed with the account's auth token, of the URL followed by
// each parameter name immediately followed by its value, sorted by name.
func Signature(authToken, fullURL string, params url.Values) string {
	var b strings.Builder
	b.WriteString(fullURL)
	for _, name := range slices.Sorted(maps.Keys(params)) {
		values := slices.Clone(params[name])
		slices.Sort(values) // repeated names: values sorted too, as Twilio does
		for _, v := range values {
			b.WriteString(name)
			b.WriteString(v)
		}
	}
	mac := hmac.New(sha1.New, []byte(authToken))
	mac.Write([]byte(b.String()))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// WebhookRequest is a request the simulator sent (or will send) to the
// bridge: an incoming-message webhook or a status callback.
type WebhookRequest struct {
	// URL is the full URL requested, query included for GET webhooks.
	URL    string
	Method string // POST, or GET when the number's sms_method says so
	// Form holds the parameters, in the body for POST, in the query for GET.
	Form   url.Values
	Header http.Header // including X-Twilio-Signature
}

// clone returns a deep copy, so callers can keep or change what they were
// handed without touching what the simulator recorded.
func (w *WebhookRequest) clone() *WebhookRequest {
	if w == nil {
		return nil
	}
	c := *w
	c.Form = url.Values{}
	for k, v := range w.Form {
		c.Form[k] = slices.Clone(v)
	}
	c.Header = w.Header.Clone()
	return &c
}

// newWebhook builds a signed request as Twilio would send it to target.
func newWebhook(authToken, target, method string, form url.Values) *WebhookRequest {
	h := http.Header{}
	h.Set("User-Agent", userAgent)
	h.Set("I-Twilio-Idempotency-Token", idempotencyToken())
	h.Set("X-Home-Region", "us1")
	req := &WebhookRequest{URL: target, Method: method, Form: form, Header: h}
	if method == http.MethodGet {
		sep := "?"
		if strings.Contains(target, "?") {
			sep = "&"
		}
		req.URL = target + sep + form.Encode()
		h.Set("X-Twilio-Signature", Signature(authToken, req.URL, nil))
		return req
	}
	req.Method = http.MethodPost
	h.Set("Content-Type", "application/x-www-form-urlencoded")
	h.Set("X-Twilio-Signature", Signature(authToken, target, form))
	return req
}

// idempotencyToken looks like the I-Twilio-Idempotency-Token Twilio sends:
// unique per event, repeated on retries of the same event.
func idempotencyToken() string {
	h := randomHex(16)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// WebhookResponse is what the bridge answered to a webhook or callback.
type WebhookResponse struct {
	StatusCode int         // HTTP status of the answer
	Header     http.Header // its headers
	Body       []byte      // its body (at most 1 MiB kept)
}

// send performs the request with the simulator's loopback-only client.
func (s *Server) send(ctx context.Context, req *WebhookRequest) (WebhookResponse, error) {
	var body io.Reader
	if req.Method == http.MethodPost {
		body = strings.NewReader(req.Form.Encode())
	}
	hr, err := http.NewRequestWithContext(ctx, req.Method, req.URL, body)
	if err != nil {
		return WebhookResponse{}, fmt.Errorf("twiliosim: building request to %s: %w", req.URL, err)
	}
	hr.Header = req.Header.Clone()
	resp, err := s.client.Do(hr)
	if err != nil {
		return WebhookResponse{}, fmt.Errorf("twiliosim: %s %s: %w", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxTargetResponse))
	out := WebhookResponse{StatusCode: resp.StatusCode, Header: resp.Header, Body: data}
	if err != nil {
		return out, fmt.Errorf("twiliosim: reading answer of %s: %w", req.URL, err)
	}
	return out, nil
}

// InboundMessage is a message that a phone sends to one of the simulator's
// senders: a number (SMS or MMS), a WhatsApp sender or an RCS sender.
type InboundMessage struct {
	// From is the sender: an E.164 number, a short code ("12345"), an
	// alphanumeric sender ID ("GOOGLE"), "whatsapp:+E164" to a WhatsApp
	// sender, or "rcs:+E164" to an RCS sender.
	From string
	// To is one of the simulator's senders: a number added with AddNumber,
	// or the address of a WhatsApp or RCS sender.
	To    string
	Body  string      // the text
	Media []MediaFile // up to 10 attachments, making it an MMS
	// WhatsApp holds what a WhatsApp message carries besides text and
	// media; only for whatsapp: addresses.
	WhatsApp *WhatsAppDetails
	// Extra parameters are added to the webhook as they are, for fields
	// Twilio sends that the simulator does not model.
	Extra url.Values
	// LogOnly records the message in the account's log without sending the
	// webhook: a text that arrived while the bridge was down and survives
	// only in the log.
	LogOnly bool
}

// WhatsAppDetails are the parts of an inbound WhatsApp message that become
// webhook parameters of their own.
type WhatsAppDetails struct {
	// ProfileName is the contact's WhatsApp profile name (ProfileName).
	ProfileName string
	// ReplyTo is the SID of the message the contact replied to; the
	// webhook carries it as OriginalRepliedMessageSid, with that message's
	// sender as OriginalRepliedMessageSender.
	ReplyTo string
	// Location is a shared location (Latitude, Longitude, Address, Label).
	Location *Location
	// ButtonText and ButtonPayload are a tapped quick-reply button.
	ButtonText, ButtonPayload string
	// Referral is the click-to-WhatsApp ad the contact came from.
	Referral *Referral
	// Forwarded and FrequentlyForwarded mark forwarded messages.
	Forwarded, FrequentlyForwarded bool
}

// Location is a location a WhatsApp contact shared.
type Location struct {
	Latitude, Longitude float64
	Address, Label      string
}

// Referral is the ad a WhatsApp conversation started from (the Referral*
// webhook parameters).
type Referral struct {
	Body, Headline, SourceID, SourceType, SourceURL, CtwaClid string
}

// InboundResult tells what became of an inbound message.
type InboundResult struct {
	MessageSID string // the logged message's SID
	// Webhook is the request sent, nil when none was (LogOnly, no webhook
	// URL).
	Webhook *WebhookRequest
	// Response is the bridge's answer; zero when no webhook was sent or the
	// request failed.
	Response WebhookResponse
}

// SendInbound delivers an inbound message the way Twilio does: it records it
// in the receiving account's message log (status received, SID SM... or
// MM... with media), applies opt-out keywords, then posts the signed
// webhook and returns the bridge's answer. The webhook goes to the
// sender's own URL: a number's sms_url, or its Messaging Service's inbound
// URL when the service has one; a WhatsApp sender's webhook, else its
// service's, else the sms_url of the number with the same E.164; an RCS
// sender's service. The error reports a webhook that could not be sent or
// answered (a webhook fault included); the message is logged regardless.
func (s *Server) SendInbound(ctx context.Context, in InboundMessage) (InboundResult, error) {
	if in.From == "" {
		return InboundResult{}, errors.New("twiliosim: inbound message needs a From")
	}
	if len(in.Media) > maxMediaURLs {
		return InboundResult{}, fmt.Errorf("twiliosim: inbound message has %d media files, at most %d", len(in.Media), maxMediaURLs)
	}
	for i, f := range in.Media {
		if f.ContentType == "" {
			return InboundResult{}, fmt.Errorf("twiliosim: inbound media %d has no content type", i)
		}
	}

	s.mu.Lock()
	dest, err := s.inboundTargetLocked(in)
	if err != nil {
		s.mu.Unlock()
		return InboundResult{}, err
	}
	if len(in.Media) > 0 && s.baseURL == "" {
		s.mu.Unlock()
		return InboundResult{}, errors.New("twiliosim: inbound media needs the simulator's URL: call Start or set Options.BaseURL")
	}
	acct := dest.acct
	m := s.recordInboundLocked(acct, in)
	kind := ""
	if m.channel == ChannelSMS {
		kind = optOutType(in.Body)
		if kind != "" {
			acct.applyOptOut(kind, in.To, in.From)
		}
		acct.noteSticky(in.To, in.From)
	}
	res := InboundResult{MessageSID: m.sid}
	if in.LogOnly {
		s.mu.Unlock()
		return res, nil
	}
	if dest.url == "" {
		s.mu.Unlock()
		return res, fmt.Errorf("twiliosim: inbound %s to %s: %w", m.sid, in.To, ErrNoWebhook)
	}
	form, err := s.inboundFormLocked(acct, m, in, kind)
	if err != nil {
		s.mu.Unlock()
		return res, err
	}
	req := newWebhook(acct.authToken, dest.url, dest.method, form)
	s.webhooks[m.sid] = req
	s.mu.Unlock()

	res.Webhook = req.clone()
	resp, err := s.deliver(ctx, WebhookIncoming, req)
	res.Response = resp
	return res, err
}

// inboundTarget is where an inbound message goes.
type inboundTarget struct {
	acct        *account
	url, method string
}

// inboundTargetLocked finds the account and webhook of an inbound message.
func (s *Server) inboundTargetLocked(in InboundMessage) (inboundTarget, error) {
	channel, bare := splitAddress(in.To)
	if fromChannel, fromBare := splitAddress(in.From); fromChannel != channel || (channel != ChannelSMS && !e164Pattern.MatchString(fromBare)) {
		return inboundTarget{}, fmt.Errorf("twiliosim: inbound from %q to %q: a %s message comes from a %s address", in.From, in.To, channel, channel)
	}
	if in.WhatsApp != nil && channel != ChannelWhatsApp {
		return inboundTarget{}, fmt.Errorf("twiliosim: WhatsApp details on a %s message to %s", channel, in.To)
	}
	if channel == ChannelSMS {
		n := s.numbers[in.To]
		if n == nil {
			return inboundTarget{}, fmt.Errorf("twiliosim: inbound to %s: %w", in.To, ErrNotFound)
		}
		acct := s.accounts[n.accountSID]
		url, method := acct.numberWebhook(n)
		return inboundTarget{acct: acct, url: url, method: method}, nil
	}
	for _, acct := range s.accounts {
		cs := acct.senderByAddress(in.To)
		if cs == nil {
			continue
		}
		t := inboundTarget{acct: acct, url: cs.webhookURL, method: cs.webhookMethod}
		svc := acct.services[cs.serviceSID]
		switch {
		case t.url != "":
		case svc != nil && svc.inboundURL != "":
			t.url, t.method = svc.inboundURL, svc.inboundMethod
		case acct.numberByE164(bare) != nil:
			t.url, t.method = acct.numberWebhook(acct.numberByE164(bare))
		}
		return t, nil
	}
	return inboundTarget{}, fmt.Errorf("twiliosim: inbound to %s: %w", in.To, ErrNotFound)
}

// numberWebhook is where texts to a number go: its Messaging Service's
// inbound URL when the service has one (and does not defer to the
// numbers), else the number's sms_url.
func (a *account) numberWebhook(n *phoneNumber) (url, method string) {
	if svc := a.services[a.serviceOf(n.e164)]; svc != nil && svc.inboundURL != "" && !svc.useNumberWebhook {
		return svc.inboundURL, svc.inboundMethod
	}
	return n.smsURL, n.smsMethod
}

// RedeliverInbound sends the exact webhook already sent for an inbound
// message once more (same body, signature and idempotency token), as a
// duplicate delivery from Twilio would arrive.
func (s *Server) RedeliverInbound(ctx context.Context, messageSID string) (InboundResult, error) {
	s.mu.Lock()
	req := s.webhooks[messageSID]
	s.mu.Unlock()
	if req == nil {
		return InboundResult{}, fmt.Errorf("twiliosim: no webhook was sent for %s: %w", messageSID, ErrNotFound)
	}
	res := InboundResult{MessageSID: messageSID, Webhook: req.clone()}
	resp, err := s.deliver(ctx, WebhookIncoming, req)
	res.Response = resp
	return res, err
}

// recordInboundLocked adds an inbound message and its media to the log.
func (s *Server) recordInboundLocked(acct *account, in InboundMessage) *message {
	now := s.nowLocked()
	prefix := prefixSMS
	if len(in.Media) > 0 {
		prefix = prefixMMS
	}
	channel, _ := splitAddress(in.To)
	m := &message{
		seq:         s.nextSeqLocked(),
		sid:         newSID(prefix),
		accountSID:  acct.sid,
		direction:   DirectionInbound,
		from:        in.From,
		to:          in.To,
		body:        in.Body,
		serviceSID:  acct.serviceOf(in.To),
		status:      StatusReceived,
		numSegments: SegmentCount(in.Body),
		numMedia:    len(in.Media),
		created:     now,
		updated:     now,
		sent:        now,
		done:        true,
		channel:     channel,
	}
	if cs := acct.senderByAddress(in.To); cs != nil {
		m.senderSID = cs.sid
	}
	for _, f := range in.Media {
		s.storeMediaLocked(m, f, now)
	}
	acct.messages = append(acct.messages, m)
	acct.messageBySID[m.sid] = m
	s.notifyLocked()
	return m
}

// inboundFormLocked is the form Twilio posts for an incoming message. SMS
// and MMS carry the geographic fields (ToCountry...) and, for a keyword,
// OptOutType; WhatsApp carries its own fields instead, as in Twilio's
// webhooks for WhatsApp senders.
func (s *Server) inboundFormLocked(acct *account, m *message, in InboundMessage, optOut string) (url.Values, error) {
	f := url.Values{}
	f.Set("SmsMessageSid", m.sid)
	f.Set("SmsSid", m.sid)
	f.Set("MessageSid", m.sid)
	f.Set("AccountSid", m.accountSID)
	f.Set("From", m.from)
	f.Set("To", m.to)
	f.Set("Body", m.body)
	f.Set("NumMedia", strconv.Itoa(m.numMedia))
	f.Set("NumSegments", strconv.Itoa(m.numSegments))
	f.Set("SmsStatus", StatusReceived)
	f.Set("ApiVersion", apiVersion)
	if m.serviceSID != "" {
		f.Set("MessagingServiceSid", m.serviceSID)
	}
	for i, md := range m.media {
		f.Set("MediaContentType"+strconv.Itoa(i), md.contentType)
		f.Set("MediaUrl"+strconv.Itoa(i), s.baseURL+mediaContentPath(md.accountSID, md.parentSID, md.sid))
	}
	switch m.channel {
	case ChannelSMS:
		for _, geo := range []string{"ToState", "ToCity", "ToZip", "FromState", "FromCity", "FromZip"} {
			f.Set(geo, "")
		}
		f.Set("ToCountry", countryOf(m.to))
		f.Set("FromCountry", countryOf(m.from))
		if optOut != "" {
			f.Set("OptOutType", optOut)
		}
	case ChannelWhatsApp:
		if err := whatsAppFields(f, acct, m, in.WhatsApp); err != nil {
			return nil, err
		}
	}
	for k, vs := range in.Extra {
		f[k] = append(f[k], vs...)
	}
	return f, nil
}

// whatsAppFields adds the WhatsApp parameters of an inbound message.
func whatsAppFields(f url.Values, acct *account, m *message, d *WhatsAppDetails) error {
	if d == nil {
		d = &WhatsAppDetails{}
	}
	_, bare := splitAddress(m.from)
	ctxFields := map[string]string{"WaId": strings.TrimPrefix(bare, "+")}
	set := func(name, value string) {
		if value != "" {
			f.Set(name, value)
			ctxFields[name] = value
		}
	}
	f.Set("WaId", ctxFields["WaId"])
	f.Set("ReferralNumMedia", "0")
	f.Set("MessageType", whatsAppMessageType(m, d))
	set("ProfileName", d.ProfileName)
	set("ButtonText", d.ButtonText)
	if d.ButtonPayload != "" {
		f.Set("ButtonPayload", d.ButtonPayload)
	}
	if d.Forwarded || d.FrequentlyForwarded {
		set("Forwarded", strconv.FormatBool(d.Forwarded))
		set("FrequentlyForwarded", strconv.FormatBool(d.FrequentlyForwarded))
	}
	if d.ReplyTo != "" {
		orig := acct.messageBySID[d.ReplyTo]
		if orig == nil {
			return fmt.Errorf("twiliosim: WhatsApp reply to %s: %w", d.ReplyTo, ErrNotFound)
		}
		f.Set("OriginalRepliedMessageSid", orig.sid)
		f.Set("OriginalRepliedMessageSender", orig.from)
	}
	if l := d.Location; l != nil {
		f.Set("Latitude", strconv.FormatFloat(l.Latitude, 'f', -1, 64))
		f.Set("Longitude", strconv.FormatFloat(l.Longitude, 'f', -1, 64))
		if l.Address != "" {
			f.Set("Address", l.Address)
		}
		if l.Label != "" {
			f.Set("Label", l.Label)
		}
	}
	if r := d.Referral; r != nil {
		for name, v := range map[string]string{
			"ReferralBody": r.Body, "ReferralHeadline": r.Headline, "ReferralSourceId": r.SourceID,
			"ReferralSourceType": r.SourceType, "ReferralSourceUrl": r.SourceURL, "ReferralCtwaClid": r.CtwaClid,
		} {
			if v != "" {
				f.Set(name, v)
			}
		}
	}
	meta, err := json.Marshal(map[string]any{"type": ChannelWhatsApp, "data": map[string]any{"context": ctxFields}})
	if err != nil {
		return fmt.Errorf("twiliosim: encoding ChannelMetadata: %w", err)
	}
	f.Set("ChannelMetadata", string(meta))
	return nil
}

// whatsAppMessageType is the MessageType parameter: text, the kind of the
// first attachment, location, or interactive for a button reply.
func whatsAppMessageType(m *message, d *WhatsAppDetails) string {
	switch {
	case d.Location != nil:
		return "location"
	case d.ButtonText != "" || d.ButtonPayload != "":
		return "interactive"
	case len(m.media) > 0:
		for _, kind := range []string{"image", "video", "audio"} {
			if strings.HasPrefix(m.media[0].contentType, kind+"/") {
				return kind
			}
		}
		return "document"
	}
	return "text"
}

// countryOf guesses the ISO country of a number from its calling code, for
// the ToCountry/FromCountry fields. Twilio looks numbers up; a few common
// codes are enough for tests.
func countryOf(e164 string) string {
	for _, c := range []struct{ prefix, iso string }{
		{"+1", "US"}, {"+44", "GB"}, {"+33", "FR"}, {"+49", "DE"}, {"+31", "NL"},
		{"+34", "ES"}, {"+39", "IT"}, {"+61", "AU"}, {"+46", "SE"}, {"+41", "CH"},
	} {
		if strings.HasPrefix(e164, c.prefix) {
			return c.iso
		}
	}
	return ""
}
