package twiliosim

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// OutboundMessage is a snapshot of a message created through the REST API
// and of what the simulator did with it.
type OutboundMessage struct {
	SID                 string   // SM... or MM...
	AccountSID          string   // the account that created it
	From                string   // assigned when queued for a Messaging Service
	To                  string   // the recipient
	Body                string   // the text, possibly empty for MMS
	MessagingServiceSID string   // MG... when sent through a service
	StatusCallback      string   // the StatusCallback URL given, or ""
	MediaURLs           []string // the MediaUrl values given, in order
	Status              string   // current status: queued ... delivered, read
	ErrorCode           int      // 0, or the failure's error code
	// Channel is the channel it went out on (ChannelSMS, ChannelWhatsApp,
	// ChannelRCS); for a Messaging Service message it is set once queued.
	Channel string
	// ContentSID and ContentVariables are the template sent, if any; Body
	// is then the rendered template.
	ContentSID       string
	ContentVariables string
	// Media has one entry per MediaUrl fetched, in order.
	Media []MediaFetch
	// Callbacks has one entry per status callback posted, in order.
	Callbacks []CallbackAttempt
	// Done is set once processing has finished: every fetch and callback
	// that will ever happen has happened.
	Done bool
}

// CallbackStatuses returns the MessageStatus of each callback posted, in
// order: a compact thing to assert on.
func (m OutboundMessage) CallbackStatuses() []string {
	out := make([]string, len(m.Callbacks))
	for i, c := range m.Callbacks {
		out[i] = c.Status
	}
	return out
}

// Message is a snapshot of one entry of an account's message log.
type Message struct {
	SID                 string      // SM... or MM...
	AccountSID          string      // the account whose log holds it
	Direction           string      // DirectionInbound or DirectionOutboundAPI
	From                string      // sender
	To                  string      // recipient
	Body                string      // text
	MessagingServiceSID string      // MG... or ""
	Status              string      // e.g. received, delivered, failed
	ErrorCode           int         // 0, or the failure's error code
	Channel             string      // ChannelSMS, ChannelWhatsApp or ChannelRCS
	DateCreated         time.Time   // when it entered the log
	DateSent            time.Time   // zero when not sent
	Media               []MediaFile // attachments, in order
}

// snapshotOutbound copies an outbound message for observers.
func snapshotOutbound(m *message) OutboundMessage {
	return OutboundMessage{
		SID:                 m.sid,
		AccountSID:          m.accountSID,
		From:                m.from,
		To:                  m.to,
		Body:                m.body,
		MessagingServiceSID: m.serviceSID,
		StatusCallback:      m.statusCallback,
		MediaURLs:           slices.Clone(m.mediaURLs),
		Status:              m.status,
		ErrorCode:           m.errorCode,
		Channel:             m.channel,
		ContentSID:          m.contentSID,
		ContentVariables:    m.contentVariables,
		Media:               slices.Clone(m.fetches),
		Callbacks:           cloneCallbacks(m.callbacks),
		Done:                m.done,
	}
}

// snapshotMessage copies a log entry for observers.
func snapshotMessage(m *message) Message {
	out := Message{
		SID:                 m.sid,
		AccountSID:          m.accountSID,
		Direction:           m.direction,
		From:                m.from,
		To:                  m.to,
		Body:                m.body,
		MessagingServiceSID: m.serviceSID,
		Status:              m.status,
		ErrorCode:           m.errorCode,
		Channel:             m.channel,
		DateCreated:         m.created,
		DateSent:            m.sent,
	}
	for _, md := range m.media {
		out.Media = append(out.Media, MediaFile{ContentType: md.contentType, Data: md.data, Filename: md.filename})
	}
	return out
}

// outboundLocked lists every outbound-api message of every account in
// creation order.
func (s *Server) outboundLocked() []OutboundMessage {
	var all []*message
	for _, a := range s.accounts {
		for _, m := range a.messages {
			if m.direction == DirectionOutboundAPI && !m.seeded {
				all = append(all, m)
			}
		}
	}
	slices.SortFunc(all, func(x, y *message) int { return int(x.seq - y.seq) })
	out := make([]OutboundMessage, len(all))
	for i, m := range all {
		out[i] = snapshotOutbound(m)
	}
	return out
}

// Outbound returns every message created through the REST API, across
// accounts, oldest first.
func (s *Server) Outbound() []OutboundMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.outboundLocked()
}

// WaitOutbound waits until cond holds for the outbound messages, and returns
// them. cond is evaluated on every state change; it must not block. On
// ctx's end it returns the last snapshot and the wrapped ctx error.
func (s *Server) WaitOutbound(ctx context.Context, cond func([]OutboundMessage) bool) ([]OutboundMessage, error) {
	for {
		s.mu.Lock()
		snap := s.outboundLocked()
		changed := s.changed
		s.mu.Unlock()
		if cond(snap) {
			return snap, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return snap, fmt.Errorf("twiliosim: waiting for outbound messages: %w", ctx.Err())
		}
	}
}

// WaitMessage waits until the outbound message sid exists and cond holds for
// it. A nil cond waits for processing to finish (Done).
func (s *Server) WaitMessage(ctx context.Context, sid string, cond func(OutboundMessage) bool) (OutboundMessage, error) {
	if cond == nil {
		cond = func(m OutboundMessage) bool { return m.Done }
	}
	var last OutboundMessage
	_, err := s.WaitOutbound(ctx, func(all []OutboundMessage) bool {
		for _, m := range all {
			if m.SID == sid {
				last = m
				return cond(m)
			}
		}
		return false
	})
	if err != nil {
		return last, fmt.Errorf("twiliosim: message %s (status %q): %w", sid, last.Status, err)
	}
	return last, nil
}

// Messages returns the account's message log, newest first as the REST list
// returns it.
func (a *Account) Messages() []Message {
	a.s.mu.Lock()
	defer a.s.mu.Unlock()
	var out []Message
	for _, m := range a.s.accounts[a.sid].sortedNewestFirst() {
		out = append(out, snapshotMessage(m))
	}
	return out
}

// cloneCallbacks deep-copies callback records for a snapshot.
func cloneCallbacks(in []CallbackAttempt) []CallbackAttempt {
	out := slices.Clone(in)
	for i := range out {
		out[i].Request = out[i].Request.clone()
		out[i].Response.Header = out[i].Response.Header.Clone()
	}
	return out
}
