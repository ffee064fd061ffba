package twiliosim

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"
)

// maxMediaBytes bounds what the simulator reads of one media file; Twilio's
// own MMS limit is 5 MB, so anything near this is already a bug.
const maxMediaBytes = 16 << 20

// MediaFetch records one fetch of a MediaUrl of an outbound message.
type MediaFetch struct {
	URL         string // the MediaUrl fetched
	StatusCode  int    // 0 when no answer came
	ContentType string // the answer's Content-Type
	Data        []byte // the answer's body
	Err         string // why the fetch failed, "" on success
}

// CallbackAttempt records one status callback the simulator posted.
type CallbackAttempt struct {
	Status   string          // MessageStatus sent: sent, delivered, undelivered, failed
	Request  *WebhookRequest // the signed request posted
	Response WebhookResponse // the bridge's answer
	Err      string          // transport error, "" when the bridge answered
}

// transition is one status change of an outbound message.
type transition struct {
	status string
	code   int
}

// startOutbound processes a newly created message in the background, as
// Twilio does after answering 201.
func (s *Server) startOutbound(accountSID, sid string) {
	s.goBackground(func(ctx context.Context) { s.processOutbound(ctx, accountSID, sid) })
}

// PauseOutbound holds newly created and not yet processed messages in their
// first status (queued or accepted) until ResumeOutbound.
func (s *Server) PauseOutbound() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.paused == nil {
		s.paused = make(chan struct{})
	}
}

// ResumeOutbound releases the messages PauseOutbound held.
func (s *Server) ResumeOutbound() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.paused != nil {
		close(s.paused)
		s.paused = nil
	}
}

// waitUnpaused blocks while outbound processing is paused.
func (s *Server) waitUnpaused(ctx context.Context) error {
	s.mu.Lock()
	gate := s.paused
	s.mu.Unlock()
	if gate == nil {
		return nil
	}
	select {
	case <-gate:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("twiliosim: outbound processing: %w", ctx.Err())
	}
}

// processOutbound takes one message from queued to its final status: it
// assigns a Messaging Service sender, fetches the media, then walks the
// statuses the recipient's configuration calls for, posting callbacks.
func (s *Server) processOutbound(ctx context.Context, accountSID, sid string) {
	if s.waitUnpaused(ctx) != nil {
		return
	}
	s.mu.Lock()
	acct := s.accounts[accountSID]
	m := acct.messageBySID[sid]
	_, contact := splitAddress(m.to)
	cfg := s.recipientLocked(contact)
	if m.status == StatusAccepted {
		s.assignServiceSenderLocked(acct, m, cfg)
		m.status = StatusQueued
		m.numSegments = SegmentCount(m.body)
		m.updated = s.nowLocked()
		s.notifyLocked()
	}
	if m.channel == ChannelSMS {
		acct.noteSticky(m.from, m.to)
	}
	steps := deliverySteps(cfg)
	mediaURLs := slices.Clone(m.mediaURLs)
	if m.channel == ChannelWhatsApp && !s.mayMessageLocked(acct, m) {
		steps, mediaURLs = []transition{{StatusFailed, CodeOutsideWindow}}, nil
	}
	s.mu.Unlock()

	for _, u := range mediaURLs {
		f := s.fetchMedia(ctx, u)
		s.mu.Lock()
		m.fetches = append(m.fetches, f)
		if f.Err == "" {
			s.storeMediaLocked(m, MediaFile{ContentType: f.ContentType, Data: f.Data}, s.nowLocked())
		}
		s.notifyLocked()
		s.mu.Unlock()
		if f.Err != "" {
			code := CodeHTTPRetrievalFailure
			if f.StatusCode/100 == 2 {
				code = CodeUnsupportedMedia
			}
			steps = []transition{{StatusFailed, code}}
			break
		}
	}

	switch cfg.Callbacks {
	case CallbacksOutOfOrder:
		for _, t := range steps {
			s.applyTransition(m, t)
		}
		for _, t := range slices.Backward(steps) {
			s.postStatusCallback(ctx, m, t.status)
		}
	case CallbacksDuplicated:
		for _, t := range steps {
			s.applyTransition(m, t)
			s.postStatusCallback(ctx, m, t.status)
			s.postStatusCallback(ctx, m, t.status)
		}
	case CallbacksNone:
		for _, t := range steps {
			s.applyTransition(m, t)
		}
	default:
		for _, t := range steps {
			s.applyTransition(m, t)
			s.postStatusCallback(ctx, m, t.status)
		}
	}

	s.mu.Lock()
	m.done = true
	s.notifyLocked()
	s.mu.Unlock()
}

// assignServiceSenderLocked picks the sender of a Messaging Service
// message as Twilio does once it is queued: the service's WhatsApp sender
// for a WhatsApp recipient; its RCS sender when it has one and the
// recipient's phone can take RCS, which turns the addresses into rcs: ones;
// otherwise a pool number (FallbackFrom, else the sticky or first one), as
// plain SMS, which is also Twilio's automatic fallback from RCS.
func (s *Server) assignServiceSenderLocked(acct *account, m *message, cfg RecipientConfig) {
	svc := acct.services[m.serviceSID]
	if m.channel == ChannelWhatsApp {
		cs := acct.serviceSender(svc, ChannelWhatsApp)
		m.from, m.senderSID = cs.address, cs.sid
		return
	}
	if cs := acct.serviceSender(svc, ChannelRCS); cs != nil && cfg.RCSCapable {
		m.channel, m.from, m.to, m.senderSID = ChannelRCS, cs.address, ChannelRCS+":"+m.to, cs.sid
		return
	}
	m.from = m.fallbackFrom
	if m.from == "" {
		m.from = acct.poolNumber(svc, m.to, len(m.mediaURLs) > 0)
	}
}

// windowLength is WhatsApp's customer-service window: free-form messages
// may follow the contact's last message by this much at most.
const windowLength = 24 * time.Hour

// mayMessageLocked reports whether a WhatsApp message may go out now: the
// contact wrote to the sender within the window, or it is an approved
// template.
func (s *Server) mayMessageLocked(acct *account, m *message) bool {
	if c := acct.contentBySID(m.contentSID); c != nil && c.Approval == ApprovalApproved {
		return true
	}
	last, ok := acct.lastInbound(m.to, m.from)
	return ok && s.nowLocked().Sub(last) < windowLength
}

// lastInbound returns when contact last wrote to ourAddress.
func (a *account) lastInbound(contact, ourAddress string) (time.Time, bool) {
	var last time.Time
	for _, m := range a.messages {
		if m.direction == DirectionInbound && m.from == contact && m.to == ourAddress && m.created.After(last) {
			last = m.created
		}
	}
	return last, !last.IsZero()
}

// deliverySteps are the statuses a message goes through after queued for a
// recipient. Twilio never reports the first status (queued) by callback.
func deliverySteps(cfg RecipientConfig) []transition {
	switch cfg.Behavior {
	case Undeliverable:
		return []transition{{StatusSent, 0}, {StatusUndelivered, orDefault(cfg.ErrorCode, CodeUnreachable)}}
	case FailToSend:
		return []transition{{StatusFailed, orDefault(cfg.ErrorCode, CodeUnknownError)}}
	default:
		return []transition{{StatusSent, 0}, {StatusDelivered, 0}}
	}
}

// orDefault returns v, or def when v is zero.
func orDefault(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

// applyTransition updates the stored message before its callback goes out,
// so a bridge that fetches the message on a callback sees that status.
func (s *Server) applyTransition(m *message, t transition) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.nowLocked()
	m.status = t.status
	m.updated = now
	if t.status == StatusSent {
		m.sent = now
	}
	if t.code != 0 {
		m.errorCode = t.code
		m.errorMessage = deliveryErrorMessage(t.code)
	}
	s.notifyLocked()
}

// postStatusCallback posts one signed status callback, if the message, its
// Messaging Service or its WhatsApp/RCS sender asked for callbacks (in
// that order of precedence), and records the bridge's answer.
func (s *Server) postStatusCallback(ctx context.Context, m *message, status string) {
	s.mu.Lock()
	acct := s.accounts[m.accountSID]
	target := m.statusCallback
	if svc := acct.services[m.serviceSID]; target == "" && svc != nil {
		target = svc.statusCallback
	}
	if cs := acct.senderBySID(m.senderSID); target == "" && cs != nil {
		target = cs.statusCallback
	}
	if target == "" {
		s.mu.Unlock()
		return
	}
	req := newWebhook(s.accounts[m.accountSID].authToken, target, http.MethodPost, statusForm(m, status))
	s.mu.Unlock()

	resp, err := s.deliver(ctx, WebhookStatusCallback, req)
	attempt := CallbackAttempt{Status: status, Request: req, Response: resp}
	if err != nil {
		attempt.Err = err.Error()
	}
	s.mu.Lock()
	m.callbacks = append(m.callbacks, attempt)
	s.notifyLocked()
	s.mu.Unlock()
}

// statusForm is the form of a status callback. WhatsApp and RCS messages
// carry the channel fields Twilio adds for "other messaging channels":
// ChannelPrefix (which tells the channel a Messaging Service message
// took), ChannelInstallSid, ChannelToAddress, EventType on delivered and
// read, and ChannelStatusMessage on failure.
func statusForm(m *message, status string) url.Values {
	form := url.Values{}
	form.Set("MessageSid", m.sid)
	form.Set("SmsSid", m.sid)
	form.Set("MessageStatus", status)
	form.Set("SmsStatus", status)
	form.Set("AccountSid", m.accountSID)
	form.Set("From", m.from)
	form.Set("To", m.to)
	form.Set("ApiVersion", apiVersion)
	if m.serviceSID != "" {
		form.Set("MessagingServiceSid", m.serviceSID)
	}
	failed := status == StatusFailed || status == StatusUndelivered
	if failed && m.errorCode != 0 {
		form.Set("ErrorCode", strconv.Itoa(m.errorCode))
		form.Set("ErrorMessage", m.errorMessage)
	}
	if m.channel == ChannelSMS {
		return form
	}
	_, bareTo := splitAddress(m.to)
	form.Set("ChannelPrefix", m.channel)
	form.Set("ChannelInstallSid", m.senderSID)
	form.Set("ChannelToAddress", bareTo)
	switch {
	case status == StatusDelivered:
		form.Set("EventType", "DELIVERED")
	case status == StatusRead:
		form.Set("EventType", "READ")
	case failed && m.errorMessage != "":
		form.Set("ChannelStatusMessage", m.errorMessage)
	}
	return form
}

// MarkRead makes the recipient of a delivered WhatsApp or RCS message read
// it: its status becomes read and, if it has a status callback, a read
// callback is posted before MarkRead returns. SMS has no read receipts.
func (s *Server) MarkRead(ctx context.Context, sid string) error {
	s.mu.Lock()
	var m *message
	for _, a := range s.accounts {
		if x := a.messageBySID[sid]; x != nil {
			m = x
		}
	}
	switch {
	case m == nil || m.direction != DirectionOutboundAPI:
		s.mu.Unlock()
		return fmt.Errorf("twiliosim: outbound message %s: %w", sid, ErrNotFound)
	case m.channel == ChannelSMS:
		s.mu.Unlock()
		return fmt.Errorf("twiliosim: message %s went out as SMS, which has no read receipts", sid)
	case m.status != StatusDelivered || !m.done:
		status := m.status
		s.mu.Unlock()
		return fmt.Errorf("twiliosim: message %s is %s, not delivered", sid, status)
	}
	m.status, m.updated = StatusRead, s.nowLocked()
	s.notifyLocked()
	s.mu.Unlock()
	s.postStatusCallback(ctx, m, StatusRead)
	return nil
}

// fetchMedia downloads one MediaUrl as Twilio would before sending an MMS.
func (s *Server) fetchMedia(ctx context.Context, u string) MediaFetch {
	f := MediaFetch{URL: u}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		f.Err = err.Error()
		return f
	}
	req.Header.Set("User-Agent", userAgent)
	resp, err := s.client.Do(req)
	if err != nil {
		f.Err = err.Error()
		return f
	}
	defer resp.Body.Close()
	f.StatusCode = resp.StatusCode
	f.ContentType = resp.Header.Get("Content-Type")
	f.Data, err = io.ReadAll(io.LimitReader(resp.Body, maxMediaBytes))
	switch {
	case err != nil:
		f.Err = fmt.Sprintf("reading media: %v", err)
	case resp.StatusCode/100 != 2:
		f.Err = "media URL answered " + resp.Status
	case f.ContentType == "":
		f.Err = "media URL answered without a Content-Type"
	}
	return f
}
