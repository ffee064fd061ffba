package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime/multipart"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/trestle-bridge/trestle/connectors/twilio/twiliosim"
)

// SuggestedPhones are the remote phones the page offers before the user
// types a number of their own: two North American numbers from the 555-01xx
// range reserved for fiction, a UK one from Ofcom's drama range, a WhatsApp
// contact, and two senders of verification codes that are not phone
// numbers: a short code and an alphanumeric sender ID (replies to them
// fail, as on Twilio).
var SuggestedPhones = []string{"+14155550101", "+14155550102", "+447700900123", whatsappPrefix + "+14155550103", "89363", "GOOGLE"}

// whatsappPrefix makes a phone of the page a WhatsApp contact: it writes to
// the WhatsApp sender of the user's number instead of texting the number.
const whatsappPrefix = "whatsapp:"

const (
	// maxMessageBytes bounds one text from the page, attachments included:
	// Twilio's own MMS limit is 5 MB, so this is generous.
	maxMessageBytes = 16 << 20
	// maxAttachments is Twilio's limit on media per message.
	maxAttachments = 10
	// longPoll is how long a state request waits for a change before it
	// answers with the unchanged state, well under the usual proxy and
	// browser idle timeouts.
	longPoll = 25 * time.Second
	// inboundTimeout bounds the webhook that one text from the page causes.
	inboundTimeout = 30 * time.Second
)

// behavior is a way the simulated network treats one phone.
type behavior struct {
	ID    string `json:"id"`
	Label string `json:"label"`
	cfg   twiliosim.RecipientConfig
}

// behaviors are the recipient behaviours the page offers, the default first.
var behaviors = []behavior{
	{ID: "deliver", Label: "Receives texts normally", cfg: twiliosim.RecipientConfig{Behavior: twiliosim.Deliver}},
	{ID: "unreachable", Label: "Unreachable: sent, then undelivered (30003)", cfg: twiliosim.RecipientConfig{Behavior: twiliosim.Undeliverable}},
	{ID: "unsubscribed", Label: "Unsubscribed: replied STOP, Twilio refuses (21610)", cfg: twiliosim.RecipientConfig{Behavior: twiliosim.Unsubscribed}},
	{ID: "failing", Label: "Carrier failure: failed (30008)", cfg: twiliosim.RecipientConfig{Behavior: twiliosim.FailToSend}},
}

// deliveryErrors are Twilio's sentences for the error codes the simulator
// reports on messages, so the page can say more than a number.
var deliveryErrors = map[int]string{
	twiliosim.CodeHTTPRetrievalFailure: "Twilio could not fetch the media",
	twiliosim.CodeUnsupportedMedia:     "the media had no usable content type",
	twiliosim.CodeUnreachable:          "unreachable destination handset",
	twiliosim.CodeUnknownDestination:   "unknown destination handset",
	twiliosim.CodeLandline:             "landline or unreachable carrier",
	twiliosim.CodeFiltered:             "message filtered",
	twiliosim.CodeUnknownError:         "unknown error",
}

// phoneSide plays the phones on the far side of Twilio: it texts the user's
// Twilio number through the simulator, exactly as a phone's text reaches
// Twilio, and shows what the bridge sent back with Twilio's statuses.
type phoneSide struct {
	sim    *twiliosim.Server
	acct   *twiliosim.Account
	number string // the user's Twilio number, E.164
	notify *notifier

	mu sync.Mutex
	// behaviors remembers what the page set per phone: the simulator only
	// takes recipient settings, it does not report them.
	behaviors map[string]string
	held      bool
	// webhooks records what the bridge answered to each text from the page,
	// by message SID; the simulator keeps only the request.
	webhooks map[string]string
}

func newPhoneSide(sim *twiliosim.Server, acct *twiliosim.Account, number string, n *notifier) *phoneSide {
	return &phoneSide{
		sim:       sim,
		acct:      acct,
		number:    number,
		notify:    n,
		behaviors: map[string]string{},
		webhooks:  map[string]string{},
	}
}

// watch bumps the notifier on every change of the simulator's state until
// ctx ends. WaitOutbound calls its condition on each state change (texts in
// either direction, statuses, media fetches, callbacks), which makes it a
// change feed when the condition never holds.
func (p *phoneSide) watch(ctx context.Context) {
	_, _ = p.sim.WaitOutbound(ctx, func([]twiliosim.OutboundMessage) bool {
		p.notify.bump()
		return false
	})
}

// routes registers the phone API on mux.
func (p *phoneSide) routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/phone", p.handleState)
	mux.HandleFunc("POST /api/phone/send", p.handleSend)
	mux.HandleFunc("POST /api/phone/behavior", p.handleBehavior)
	mux.HandleFunc("POST /api/phone/hold", p.handleHold)
	mux.HandleFunc("GET /api/phone/media", p.handleMedia)
}

// phoneState is the answer of GET /api/phone: one phone's conversation with
// the user's Twilio number.
type phoneState struct {
	Version      uint64         `json:"version"`
	Phone        string         `json:"phone"`
	TwilioNumber string         `json:"twilioNumber"`
	Behavior     string         `json:"behavior"`
	Behaviors    []behavior     `json:"behaviors"`
	Held         bool           `json:"held"`
	Phones       []string       `json:"phones"` // suggested and already texting phones
	Messages     []phoneMessage `json:"messages"`
}

// phoneMessage is one text of the conversation, from the phone's side.
type phoneMessage struct {
	SID string `json:"sid"`
	// FromPhone is set for texts the phone sent; the others are what the
	// bridge sent to the phone through Twilio.
	FromPhone bool   `json:"fromPhone"`
	Body      string `json:"body"`
	Time      string `json:"time"` // RFC 3339
	// Status is Twilio's: received for texts from the phone; queued, sent,
	// delivered, undelivered or failed for texts to it.
	Status string `json:"status"`
	// Trail lists the statuses a text to the phone went through so far,
	// since they often pass faster than the eye.
	Trail     []string `json:"trail,omitempty"`
	ErrorCode int      `json:"errorCode,omitempty"`
	Error     string   `json:"error,omitempty"`
	// Webhook tells what the bridge answered to a text from the phone.
	Webhook string       `json:"webhook,omitempty"`
	Media   []phoneMedia `json:"media,omitempty"`
	// MediaErrors are media Twilio could not fetch from the bridge.
	MediaErrors []string `json:"mediaErrors,omitempty"`
	// Group lists the other phones of a group text (group MMS); empty for
	// one-to-one texts.
	Group []string `json:"group,omitempty"`
	// Author is the other phone that wrote a group text the phone got.
	Author string `json:"author,omitempty"`
}

// phoneMedia is an attachment, served by GET /api/phone/media.
type phoneMedia struct {
	URL         string `json:"url"`
	ContentType string `json:"contentType"`
}

func (p *phoneSide) handleState(w http.ResponseWriter, r *http.Request) {
	phone, err := normalizePhone(r.URL.Query().Get("number"), p.number)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	seen, _ := strconv.ParseUint(r.URL.Query().Get("since"), 10, 64)
	version := p.notify.wait(r.Context(), seen, longPoll)
	writeJSON(w, http.StatusOK, p.state(phone, version))
}

// state builds the conversation of phone with the user's Twilio number.
func (p *phoneSide) state(phone string, version uint64) phoneState {
	p.mu.Lock()
	st := phoneState{
		Version:      version,
		Phone:        phone,
		TwilioNumber: p.number,
		Behavior:     p.behaviors[phone],
		Behaviors:    behaviors,
		Held:         p.held,
		Messages:     []phoneMessage{},
	}
	webhooks := maps.Clone(p.webhooks)
	p.mu.Unlock()
	if st.Behavior == "" {
		st.Behavior = behaviors[0].ID
	}

	// The account's log has both directions with their current status and
	// stored media; the outbound observations add what the simulator did
	// on the way (callbacks posted, media fetches that failed).
	observed := map[string]twiliosim.OutboundMessage{}
	for _, o := range p.sim.Outbound() {
		if o.AccountSID == p.acct.SID() {
			observed[o.SID] = o
		}
	}
	log := p.acct.Messages() // newest first
	st.Phones = slices.Clone(SuggestedPhones)
	if !slices.Contains(st.Phones, phone) {
		st.Phones = append(st.Phones, phone)
	}
	for _, m := range log {
		if other := p.remoteOf(m); other != "" && !slices.Contains(st.Phones, other) {
			st.Phones = append(st.Phones, other)
		}
	}
	for _, m := range slices.Backward(log) {
		if p.remoteOf(m) != phone {
			continue
		}
		pm := phoneMessage{
			SID:       m.SID,
			FromPhone: m.Direction == twiliosim.DirectionInbound,
			Body:      m.Body,
			Time:      m.DateCreated.Format(time.RFC3339),
			Status:    m.Status,
			ErrorCode: m.ErrorCode,
			Error:     deliveryErrors[m.ErrorCode],
			Webhook:   webhooks[m.SID],
		}
		for i, f := range m.Media {
			pm.Media = append(pm.Media, phoneMedia{
				URL:         fmt.Sprintf("/api/phone/media?sid=%s&i=%d", m.SID, i),
				ContentType: f.ContentType,
			})
		}
		if o, ok := observed[m.SID]; ok {
			// Twilio never calls back for queued, the first status.
			pm.Trail = []string{twiliosim.StatusQueued}
			// Callbacks may repeat a status; and a message sent without
			// a StatusCallback has none, so its current status ends the
			// trail.
			for _, s := range append(o.CallbackStatuses(), m.Status) {
				if s != pm.Trail[len(pm.Trail)-1] {
					pm.Trail = append(pm.Trail, s)
				}
			}
			for _, f := range o.Media {
				if f.Err != "" {
					pm.MediaErrors = append(pm.MediaErrors, f.URL+": "+f.Err)
				} else if f.StatusCode/100 != 2 {
					pm.MediaErrors = append(pm.MediaErrors, fmt.Sprintf("%s: HTTP %d", f.URL, f.StatusCode))
				}
			}
		}
		st.Messages = append(st.Messages, pm)
	}
	st.Messages = append(st.Messages, p.groupMessages(phone, webhooks)...)
	slices.SortStableFunc(st.Messages, func(a, b phoneMessage) int { return strings.Compare(a.Time, b.Time) })
	return st
}

// groupMessages are the texts of the group MMS conversations the phone and
// the user's Twilio number are in, as the phone sees them: its own, the
// other phones', and the bridge's with their delivery to this phone.
func (p *phoneSide) groupMessages(phone string, webhooks map[string]string) []phoneMessage {
	var out []phoneMessage
	for _, c := range p.acct.Conversations() {
		ours, in := false, false
		var others []string
		for _, part := range c.Participants {
			switch {
			case part.ProjectedAddress == p.number:
				ours = true
			case part.Address == phone:
				in = true
			case part.Address != "":
				others = append(others, part.Address)
			}
		}
		if !c.Group || !ours || !in {
			continue
		}
		for _, m := range c.Messages {
			pm := phoneMessage{SID: m.SID, Body: m.Body, Time: m.DateCreated.UTC().Format(time.RFC3339),
				Status: twiliosim.StatusReceived, Group: others, Webhook: webhooks[m.SID]}
			switch m.Author {
			case phone:
				pm.FromPhone = true
			case p.number:
				pm.Status = twiliosim.StatusQueued
				for _, d := range m.Deliveries {
					if d.To == phone {
						pm.Status, pm.ErrorCode, pm.Error = d.Status, d.ErrorCode, deliveryErrors[d.ErrorCode]
					}
				}
			default:
				pm.Author = m.Author
			}
			for i, f := range m.Media {
				pm.Media = append(pm.Media, phoneMedia{
					URL:         fmt.Sprintf("/api/phone/media?sid=%s&i=%d", m.SID, i),
					ContentType: f.ContentType,
				})
			}
			out = append(out, pm)
		}
	}
	return out
}

// remoteOf returns the phone at the other end of a logged message when the
// message is between that phone and the user's Twilio number, else "".
func (p *phoneSide) remoteOf(m twiliosim.Message) string {
	switch {
	case m.Direction == twiliosim.DirectionInbound && (m.To == p.number || m.To == whatsappPrefix+p.number):
		return m.From
	case m.Direction == twiliosim.DirectionOutboundAPI && (m.From == p.number || m.From == whatsappPrefix+p.number):
		return m.To
	}
	return ""
}

// sendResult is the answer of POST /api/phone/send.
type sendResult struct {
	SID     string `json:"sid"`
	Webhook string `json:"webhook"`
}

// handleSend texts the user's Twilio number from a phone: a multipart form
// with "from", "body" and any number of "media" files, which make it an MMS;
// with "group" (other phones), it is a group text to them and the number.
func (p *phoneSide) handleSend(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxMessageBytes)
	if err := r.ParseMultipartForm(maxMessageBytes); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("reading the text: %w", err))
		return
	}
	defer func() { _ = r.MultipartForm.RemoveAll() }()
	phone, err := normalizePhone(r.FormValue("from"), p.number)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	body := r.FormValue("body")
	media, err := readAttachments(r.MultipartForm.File["media"])
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	if strings.TrimSpace(body) == "" && len(media) == 0 {
		writeError(w, http.StatusBadRequest, errors.New("type a text or attach a file"))
		return
	}

	// The webhook is the bridge's business, not the page's: a reload of the
	// page must not cancel it halfway.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), inboundTimeout)
	defer cancel()
	if group := strings.TrimSpace(r.FormValue("group")); group != "" {
		p.sendGroup(ctx, w, phone, group, body, media)
		return
	}
	to := p.number
	if strings.HasPrefix(phone, whatsappPrefix) {
		to = whatsappPrefix + p.number
	}
	res, err := p.sim.SendInbound(ctx, twiliosim.InboundMessage{From: phone, To: to, Body: body, Media: media})
	if res.MessageSID == "" {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	outcome := fmt.Sprintf("the bridge answered HTTP %d", res.Response.StatusCode)
	switch {
	case errors.Is(err, twiliosim.ErrNoWebhook):
		outcome = "Twilio had nowhere to send it: the number has no webhook (is it logged in to the bridge?)"
	case err != nil:
		outcome = "the bridge did not answer: " + err.Error()
	case res.Response.StatusCode/100 != 2:
		outcome = fmt.Sprintf("the bridge refused it: HTTP %d %s", res.Response.StatusCode, strings.TrimSpace(string(res.Response.Body)))
	}
	p.mu.Lock()
	p.webhooks[res.MessageSID] = outcome
	p.mu.Unlock()
	p.notify.bump()
	writeJSON(w, http.StatusOK, sendResult{SID: res.MessageSID, Webhook: outcome})
}

// sendGroup texts a group MMS from phone: the group of phone, the user's
// Twilio number and the other phones listed in group (commas or spaces
// between them), created on the first text as Twilio does.
func (p *phoneSide) sendGroup(ctx context.Context, w http.ResponseWriter, phone, group, body string, media []twiliosim.MediaFile) {
	var others []string
	for _, f := range strings.FieldsFunc(group, func(r rune) bool { return r == ',' || r == ';' }) {
		other, err := normalizePhone(f, p.number)
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("group member %q: %w", strings.TrimSpace(f), err))
			return
		}
		if other != phone && !slices.Contains(others, other) {
			others = append(others, other)
		}
	}
	if len(others) == 0 {
		writeError(w, http.StatusBadRequest, errors.New("name at least one other phone for a group text"))
		return
	}
	res, err := p.sim.SendGroupText(ctx, twiliosim.GroupText{From: phone, To: p.number, Others: others, Body: body, Media: media})
	if res.SID == "" {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	outcome := "Twilio had nowhere to send it: the account has no Conversations webhook (is the number logged in to the bridge?)"
	for _, ev := range res.Events {
		if ev.EventType != twiliosim.EventMessageAdded {
			continue
		}
		switch {
		case ev.Err != "":
			outcome = "the bridge did not answer: " + ev.Err
		case ev.Response.StatusCode/100 != 2:
			outcome = fmt.Sprintf("the bridge refused it: HTTP %d %s", ev.Response.StatusCode, strings.TrimSpace(string(ev.Response.Body)))
		default:
			outcome = fmt.Sprintf("the bridge answered HTTP %d", ev.Response.StatusCode)
		}
	}
	p.mu.Lock()
	p.webhooks[res.SID] = outcome
	p.mu.Unlock()
	p.notify.bump()
	writeJSON(w, http.StatusOK, sendResult{SID: res.SID, Webhook: outcome})
}

// readAttachments reads uploaded files as MMS media, trusting the browser's
// content type unless it gave none.
func readAttachments(files []*multipart.FileHeader) ([]twiliosim.MediaFile, error) {
	if len(files) > maxAttachments {
		return nil, fmt.Errorf("an MMS carries at most %d files, not %d", maxAttachments, len(files))
	}
	var media []twiliosim.MediaFile
	for _, fh := range files {
		f, err := fh.Open()
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", fh.Filename, err)
		}
		data, err := io.ReadAll(f)
		_ = f.Close()
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", fh.Filename, err)
		}
		ct := fh.Header.Get("Content-Type")
		if ct == "" || ct == "application/octet-stream" {
			ct = http.DetectContentType(data)
		}
		media = append(media, twiliosim.MediaFile{ContentType: ct, Data: data, Filename: fh.Filename})
	}
	return media, nil
}

// handleBehavior sets how the network treats texts to a phone:
// {"number": "+1...", "behavior": "unreachable"}.
func (p *phoneSide) handleBehavior(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Number   string `json:"number"`
		Behavior string `json:"behavior"`
	}
	if err := readJSON(r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	phone, err := normalizePhone(req.Number, p.number)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	i := slices.IndexFunc(behaviors, func(b behavior) bool { return b.ID == req.Behavior })
	if i < 0 {
		writeError(w, http.StatusBadRequest, fmt.Errorf("unknown behaviour %q", req.Behavior))
		return
	}
	p.sim.SetRecipient(strings.TrimPrefix(phone, whatsappPrefix), behaviors[i].cfg)
	p.mu.Lock()
	p.behaviors[phone] = behaviors[i].ID
	p.mu.Unlock()
	p.notify.bump()
	writeJSON(w, http.StatusOK, struct{}{})
}

// handleHold holds texts to every phone at queued, or lets them go:
// {"hold": true}. Twilio moves a text through its statuses in milliseconds
// here; holding makes each step visible.
func (p *phoneSide) handleHold(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Hold bool `json:"hold"`
	}
	if err := readJSON(r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	p.mu.Lock()
	if req.Hold && !p.held {
		p.sim.PauseOutbound()
	} else if !req.Hold && p.held {
		p.sim.ResumeOutbound()
	}
	p.held = req.Hold
	p.mu.Unlock()
	p.notify.bump()
	writeJSON(w, http.StatusOK, struct{}{})
}

// handleMedia serves an attachment of a logged message: ?sid=MM...&i=0.
// For texts to the phone these are the bytes Twilio fetched from the bridge.
func (p *phoneSide) handleMedia(w http.ResponseWriter, r *http.Request) {
	sid := r.URL.Query().Get("sid")
	i, err := strconv.Atoi(r.URL.Query().Get("i"))
	if err != nil {
		writeError(w, http.StatusBadRequest, errors.New("media index i must be a number"))
		return
	}
	for _, m := range p.acct.Messages() {
		if m.SID == sid && i >= 0 && i < len(m.Media) {
			serveMedia(w, m.Media[i].ContentType, m.Media[i].Data)
			return
		}
	}
	// Group texts keep their media in the conversation.
	for _, c := range p.acct.Conversations() {
		for _, m := range c.Messages {
			if m.SID == sid && i >= 0 && i < len(m.Media) {
				serveMedia(w, m.Media[i].ContentType, m.Media[i].Data)
				return
			}
		}
	}
	writeError(w, http.StatusNotFound, fmt.Errorf("no media %d on message %s", i, sid))
}

// serveMedia sends bytes that came from outside the page (a phone, the
// bridge, Matrix) without letting them act as part of the page: a file
// claiming to be HTML must not run script on the page's origin.
func serveMedia(w http.ResponseWriter, contentType string, data []byte) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "sandbox; default-src 'none'; img-src 'self'; media-src 'self'; style-src 'unsafe-inline'")
	h.Set("Cache-Control", "private, max-age=3600")
	if !strings.HasPrefix(contentType, "image/") && !strings.HasPrefix(contentType, "video/") && !strings.HasPrefix(contentType, "audio/") {
		h.Set("Content-Disposition", "attachment")
	}
	if contentType == "" {
		contentType = "application/octet-stream"
	}
	h.Set("Content-Type", contentType)
	h.Set("Content-Length", strconv.Itoa(len(data)))
	_, _ = w.Write(data)
}

// e164 is what Twilio accepts as a phone number.
var (
	e164 = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)
	// shortCode and senderID are the senders of verification codes that
	// are not phone numbers: "89363", "GOOGLE".
	shortCode = regexp.MustCompile(`^[0-9]{5,6}$`)
	senderID  = regexp.MustCompile(`^[A-Za-z0-9]*[A-Za-z][A-Za-z0-9]*$`)
)

// normalizePhone accepts a phone number the way people type it ("+1 (415)
// 555-0101", or ten digits for a US number, the bridge's default region)
// and returns it in E.164; a short code or alphanumeric sender ID is
// returned as is. own is the user's Twilio number, which cannot
// text itself.
func normalizePhone(s, own string) (string, error) {
	if rest, ok := strings.CutPrefix(strings.TrimSpace(s), whatsappPrefix); ok {
		e164, err := normalizePhone(rest, own)
		if err != nil {
			return "", err
		}
		// WhatsApp has phone numbers only.
		if !strings.HasPrefix(e164, "+") {
			return "", fmt.Errorf("%q is not a phone number: WhatsApp contacts have one, like whatsapp:+1 415 555 0101", s)
		}
		return whatsappPrefix + e164, nil
	}
	cleaned := strings.Map(func(r rune) rune {
		switch r {
		case ' ', '-', '(', ')', '.', '\u00a0':
			return -1
		}
		return r
	}, strings.TrimSpace(s))
	if shortCode.MatchString(cleaned) || (senderID.MatchString(cleaned) && len(cleaned) <= 11) {
		return cleaned, nil
	}
	if len(cleaned) == 10 && !strings.HasPrefix(cleaned, "+") {
		cleaned = "+1" + cleaned
	}
	if !e164.MatchString(cleaned) {
		return "", fmt.Errorf("%q is not a phone number: use the international form, like +1 415 555 0101", s)
	}
	if cleaned == own {
		return "", fmt.Errorf("%s is your own Twilio number; pick another phone to act as", cleaned)
	}
	return cleaned, nil
}

// readJSON decodes a small JSON request body.
func readJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("reading the request: %w", err)
	}
	return nil
}

// writeJSON answers with v as JSON. The state changes all the time, so
// nothing is cached.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// apiError is the body of every failed API request.
type apiError struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, status int, err error) {
	msg := "unknown error"
	if err != nil {
		msg = err.Error()
	}
	writeJSON(w, status, apiError{Error: msg})
}
