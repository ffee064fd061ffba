package twiliosim

import (
	"fmt"
	"time"
)

// AddHistory puts a past message straight into the account's log, for
// backfill tests: no webhook, no callback, no validation beyond shape.
// Direction defaults to inbound; DateCreated to now; DateSent to DateCreated
// (unless the status is queued, accepted or failed); Status to received for
// inbound and delivered for outbound; SID to a new SM... (MM... with media).
// It returns the SID.
func (a *Account) AddHistory(m Message) (string, error) {
	if m.Direction == "" {
		m.Direction = DirectionInbound
	}
	if m.Direction != DirectionInbound && m.Direction != DirectionOutboundAPI {
		return "", fmt.Errorf("twiliosim: history direction %q is neither %s nor %s", m.Direction, DirectionInbound, DirectionOutboundAPI)
	}
	if m.From == "" || m.To == "" {
		return "", fmt.Errorf("twiliosim: history message needs From and To")
	}
	if len(m.Media) > maxMediaURLs {
		return "", fmt.Errorf("twiliosim: history message has %d media files, at most %d", len(m.Media), maxMediaURLs)
	}
	if m.SID == "" {
		prefix := prefixSMS
		if len(m.Media) > 0 {
			prefix = prefixMMS
		}
		m.SID = newSID(prefix)
	}
	if !isSID(m.SID, prefixSMS) && !isSID(m.SID, prefixMMS) {
		return "", fmt.Errorf("twiliosim: history SID %q is not SM or MM followed by 32 hex digits", m.SID)
	}
	if m.Status == "" {
		m.Status = StatusReceived
		if m.Direction == DirectionOutboundAPI {
			m.Status = StatusDelivered
		}
	}

	s := a.s
	s.mu.Lock()
	defer s.mu.Unlock()
	acct := s.accounts[a.sid]
	if _, dup := acct.messageBySID[m.SID]; dup {
		return "", fmt.Errorf("twiliosim: message %s already exists", m.SID)
	}
	created := m.DateCreated.UTC()
	if created.IsZero() {
		created = s.nowLocked()
	}
	sent := m.DateSent.UTC()
	if sent.IsZero() && m.Status != StatusQueued && m.Status != StatusAccepted && m.Status != StatusFailed {
		sent = created
	}
	ours := m.To // the account's side of the conversation
	if m.Direction == DirectionOutboundAPI {
		ours = m.From
	}
	service := m.MessagingServiceSID
	if service == "" {
		service = acct.serviceOf(ours)
	}
	channel, _ := splitAddress(ours)
	msg := &message{
		seq:         s.nextSeqLocked(),
		sid:         m.SID,
		accountSID:  acct.sid,
		direction:   m.Direction,
		from:        m.From,
		to:          m.To,
		body:        m.Body,
		serviceSID:  service,
		status:      m.Status,
		numSegments: SegmentCount(m.Body),
		numMedia:    len(m.Media),
		errorCode:   m.ErrorCode,
		created:     created,
		updated:     latest(created, sent),
		sent:        sent,
		done:        true,
		seeded:      true,
		channel:     channel,
	}
	if m.ErrorCode != 0 {
		msg.errorMessage = deliveryErrorMessage(m.ErrorCode)
	}
	for _, f := range m.Media {
		s.storeMediaLocked(msg, f, created)
	}
	acct.messages = append(acct.messages, msg)
	acct.messageBySID[msg.sid] = msg
	s.notifyLocked()
	return msg.sid, nil
}

// latest returns the later of two times.
func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
