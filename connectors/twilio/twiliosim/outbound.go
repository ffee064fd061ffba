package twiliosim

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
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
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping {
		return
	}
	// Added under mu, which Close takes before Wait: no Add races the Wait.
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.processOutbound(s.ctx, accountSID, sid)
	}()
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
	cfg := s.recipientLocked(m.to)
	if m.status == StatusAccepted {
		// Messaging Service: the sender is picked once queued.
		m.from = acct.services[m.serviceSID].numbers[0]
		m.status = StatusQueued
		m.numSegments = SegmentCount(m.body)
		m.updated = s.nowLocked()
		s.notifyLocked()
	}
	mediaURLs := slices.Clone(m.mediaURLs)
	s.mu.Unlock()

	steps := deliverySteps(cfg)
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

// postStatusCallback posts one signed status callback, if the message asked
// for callbacks, and records the bridge's answer.
func (s *Server) postStatusCallback(ctx context.Context, m *message, status string) {
	s.mu.Lock()
	target := m.statusCallback
	if target == "" {
		s.mu.Unlock()
		return
	}
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
	if (status == StatusFailed || status == StatusUndelivered) && m.errorCode != 0 {
		form.Set("ErrorCode", strconv.Itoa(m.errorCode))
		form.Set("ErrorMessage", m.errorMessage)
	}
	req := newWebhook(s.accounts[m.accountSID].authToken, target, http.MethodPost, form)
	s.mu.Unlock()

	resp, err := s.send(ctx, req)
	attempt := CallbackAttempt{Status: status, Request: req, Response: resp}
	if err != nil {
		attempt.Err = err.Error()
	}
	s.mu.Lock()
	m.callbacks = append(m.callbacks, attempt)
	s.notifyLocked()
	s.mu.Unlock()
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
