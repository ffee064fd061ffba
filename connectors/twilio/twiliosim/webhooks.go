package twiliosim

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
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

// ErrNoWebhook is returned (wrapped) by SendInbound when the receiving number
// has no sms_url: the message is in the log, but nobody was told.
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

// InboundMessage is a text or MMS that a phone sends to one of the
// simulator's numbers.
type InboundMessage struct {
	From  string      // the sender's number
	To    string      // a number added with AddNumber
	Body  string      // the text
	Media []MediaFile // up to 10 attachments, making it an MMS
	// LogOnly records the message in the account's log without sending the
	// webhook: a text that arrived while the bridge was down and survives
	// only in the log.
	LogOnly bool
}

// InboundResult tells what became of an inbound message.
type InboundResult struct {
	MessageSID string // the logged message's SID
	// Webhook is the request sent, nil when none was (LogOnly, no sms_url).
	Webhook *WebhookRequest
	// Response is the bridge's answer; zero when no webhook was sent or the
	// request failed.
	Response WebhookResponse
}

// SendInbound delivers an inbound message the way Twilio does: it records it
// in the receiving account's message log (status received, SID SM... or
// MM... with media), then posts the signed webhook to the number's sms_url
// and returns the bridge's answer. The error reports a webhook that could not
// be sent or answered; the message is logged regardless.
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
	n := s.numbers[in.To]
	if n == nil {
		s.mu.Unlock()
		return InboundResult{}, fmt.Errorf("twiliosim: inbound to %s: %w", in.To, ErrNotFound)
	}
	if len(in.Media) > 0 && s.baseURL == "" {
		s.mu.Unlock()
		return InboundResult{}, errors.New("twiliosim: inbound media needs the simulator's URL: call Start or set Options.BaseURL")
	}
	acct := s.accounts[n.accountSID]
	m := s.recordInboundLocked(acct, in)
	res := InboundResult{MessageSID: m.sid}
	if in.LogOnly {
		s.mu.Unlock()
		return res, nil
	}
	if n.smsURL == "" {
		s.mu.Unlock()
		return res, fmt.Errorf("twiliosim: inbound %s to %s: %w", m.sid, n.e164, ErrNoWebhook)
	}
	req := newWebhook(acct.authToken, n.smsURL, n.smsMethod, s.inboundFormLocked(m))
	s.webhooks[m.sid] = req
	s.mu.Unlock()

	res.Webhook = req.clone()
	resp, err := s.send(ctx, req)
	res.Response = resp
	return res, err
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
	resp, err := s.send(ctx, req)
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
	}
	for _, f := range in.Media {
		s.storeMediaLocked(m, f, now)
	}
	acct.messages = append(acct.messages, m)
	acct.messageBySID[m.sid] = m
	s.notifyLocked()
	return m
}

// inboundFormLocked is the form Twilio posts for an incoming message.
func (s *Server) inboundFormLocked(m *message) url.Values {
	f := url.Values{}
	f.Set("ToCountry", countryOf(m.to))
	f.Set("ToState", "")
	f.Set("SmsMessageSid", m.sid)
	f.Set("NumMedia", strconv.Itoa(m.numMedia))
	f.Set("ToCity", "")
	f.Set("FromZip", "")
	f.Set("SmsSid", m.sid)
	f.Set("FromState", "")
	f.Set("SmsStatus", StatusReceived)
	f.Set("FromCity", "")
	f.Set("Body", m.body)
	f.Set("FromCountry", countryOf(m.from))
	f.Set("To", m.to)
	if m.serviceSID != "" {
		f.Set("MessagingServiceSid", m.serviceSID)
	}
	f.Set("ToZip", "")
	f.Set("NumSegments", strconv.Itoa(m.numSegments))
	f.Set("MessageSid", m.sid)
	f.Set("AccountSid", m.accountSID)
	f.Set("From", m.from)
	f.Set("ApiVersion", apiVersion)
	for i, md := range m.media {
		f.Set("MediaContentType"+strconv.Itoa(i), md.contentType)
		f.Set("MediaUrl"+strconv.Itoa(i), s.baseURL+mediaContentPath(md.accountSID, md.parentSID, md.sid))
	}
	return f
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
