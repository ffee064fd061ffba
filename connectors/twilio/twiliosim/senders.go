package twiliosim

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Senders that are not phone numbers, and the Messaging Services that pool
// senders. A WhatsApp sender is "whatsapp:+E164"; an RCS sender is
// "rcs:<agent id>" and, as on Twilio, sends only through a Messaging
// Service that also holds phone numbers to fall back to.

// channelSender is a WhatsApp or RCS sender of an account: what the
// Senders API (v2) lists account-wide and a Messaging Service's
// ChannelSenders list when it belongs to one. Guarded by Server.mu.
type channelSender struct {
	seq         int64
	sid         string // XE...: also the ChannelInstallSid of its messages
	accountSID  string
	channel     string // ChannelWhatsApp or ChannelRCS
	address     string // "whatsapp:+15005550006" or "rcs:trestle_agent"
	profileName string
	// webhookURL receives inbound messages (the Senders API's
	// webhook.callback_url); empty falls back to the Messaging Service or
	// the phone number of the same E.164.
	webhookURL     string
	webhookMethod  string
	statusCallback string
	serviceSID     string
	created        time.Time
	updated        time.Time
}

// messagingService is a Messaging Service: its sender pool and the
// settings that change how messages through it behave.
type messagingService struct {
	seq            int64
	sid            string
	accountSID     string
	friendlyName   string
	numbers        []string // E.164 pool, in the order added
	inboundURL     string
	inboundMethod  string
	fallbackURL    string
	fallbackMethod string
	statusCallback string
	stickySender   bool
	// useNumberWebhook is use_inbound_webhook_on_number: inbound texts go to
	// each number's own sms_url instead of inboundURL.
	useNumberWebhook bool
	// sticky remembers, per contact (bare E.164), the pool number the
	// conversation uses, so replies come from the number the contact knows.
	sticky  map[string]string
	created time.Time
	updated time.Time
}

// AddWhatsAppSender gives the account a WhatsApp sender for the E.164
// number, with the WhatsApp profile name contacts see, and returns its SID
// (XE...). The number need not be one of the account's phone numbers; when
// it is, inbound WhatsApp messages go to that number's sms_url unless the
// sender has a webhook of its own (SetSenderWebhook).
func (a *Account) AddWhatsAppSender(e164, profileName string) (string, error) {
	if !e164Pattern.MatchString(e164) {
		return "", fmt.Errorf("twiliosim: %q is not an E.164 phone number", e164)
	}
	return a.addSender(ChannelWhatsApp, ChannelWhatsApp+":"+e164, profileName)
}

// AddRCSSender gives the account an RCS sender (agent) and returns its SID
// (XE...). agentID is what follows "rcs:" in its address: lower-case
// letters, digits and underscores. Add it to a Messaging Service with
// AddServiceSender; Twilio sends RCS only through a service.
func (a *Account) AddRCSSender(agentID, displayName string) (string, error) {
	if !agentIDPattern.MatchString(agentID) {
		return "", fmt.Errorf("twiliosim: RCS agent ID %q must be 3-100 lower-case letters, digits or underscores", agentID)
	}
	return a.addSender(ChannelRCS, ChannelRCS+":"+agentID, displayName)
}

func (a *Account) addSender(channel, address, profileName string) (string, error) {
	s := a.s
	s.mu.Lock()
	defer s.mu.Unlock()
	acct := s.accounts[a.sid]
	if acct.senderByAddress(address) != nil {
		return "", fmt.Errorf("twiliosim: sender %s already exists", address)
	}
	now := s.nowLocked()
	cs := &channelSender{
		seq: s.nextSeqLocked(), sid: newSID(prefixChannelSender), accountSID: a.sid,
		channel: channel, address: address, profileName: profileName,
		webhookMethod: "POST", created: now, updated: now,
	}
	acct.senders = append(acct.senders, cs)
	s.notifyLocked()
	return cs.sid, nil
}

// SetSenderWebhook sets the inbound webhook of a WhatsApp or RCS sender
// (given by address, e.g. "whatsapp:+15005550006"), as the Senders API's
// webhook.callback_url does.
func (a *Account) SetSenderWebhook(address, url string) error {
	a.s.mu.Lock()
	defer a.s.mu.Unlock()
	cs := a.s.accounts[a.sid].senderByAddress(address)
	if cs == nil {
		return fmt.Errorf("twiliosim: sender %s of account %s: %w", address, a.sid, ErrNotFound)
	}
	cs.webhookURL = url
	cs.updated = a.s.nowLocked()
	a.s.notifyLocked()
	return nil
}

// AddMessagingService creates a Messaging Service whose sender pool is the
// given senders of this account, and returns its SID (MG...). A sender is
// one of the account's numbers (E.164) or a WhatsApp or RCS sender's
// address. An empty sid is generated. Sticky sender is on, as it is by
// default on Twilio: a message through the service goes out from the pool
// number the contact last texted or was texted from, else from the first
// number of the pool.
func (a *Account) AddMessagingService(sid string, senders ...string) (string, error) {
	if sid == "" {
		sid = newSID(prefixMessagingService)
	}
	if !isSID(sid, prefixMessagingService) {
		return "", fmt.Errorf("twiliosim: messaging service SID %q is not MG followed by 32 hex digits", sid)
	}
	s := a.s
	s.mu.Lock()
	defer s.mu.Unlock()
	acct := s.accounts[a.sid]
	if _, ok := acct.services[sid]; ok {
		return "", fmt.Errorf("twiliosim: messaging service %s already exists", sid)
	}
	now := s.nowLocked()
	svc := &messagingService{
		seq: s.nextSeqLocked(), sid: sid, accountSID: a.sid,
		friendlyName:  "Trestle simulator service " + sid[len(sid)-6:],
		inboundMethod: "POST", fallbackMethod: "POST", stickySender: true,
		sticky: map[string]string{}, created: now, updated: now,
	}
	for _, sender := range senders {
		if err := acct.addToServiceLocked(svc, sender); err != nil {
			return "", err
		}
	}
	acct.services[sid] = svc
	s.notifyLocked()
	return sid, nil
}

// AddServiceSender adds one of the account's senders (an E.164 number or a
// WhatsApp or RCS address) to a Messaging Service's pool.
func (a *Account) AddServiceSender(serviceSID, sender string) error {
	a.s.mu.Lock()
	defer a.s.mu.Unlock()
	acct := a.s.accounts[a.sid]
	svc := acct.services[serviceSID]
	if svc == nil {
		return fmt.Errorf("twiliosim: messaging service %s of account %s: %w", serviceSID, a.sid, ErrNotFound)
	}
	if err := acct.addToServiceLocked(svc, sender); err != nil {
		return err
	}
	svc.updated = a.s.nowLocked()
	a.s.notifyLocked()
	return nil
}

// addToServiceLocked puts a sender into a service's pool.
func (acct *account) addToServiceLocked(svc *messagingService, sender string) error {
	if cs := acct.senderByAddress(sender); cs != nil {
		if cs.serviceSID != "" && cs.serviceSID != svc.sid {
			return fmt.Errorf("twiliosim: sender %s already belongs to messaging service %s", sender, cs.serviceSID)
		}
		cs.serviceSID = svc.sid
		return nil
	}
	if acct.numberByE164(sender) == nil {
		return fmt.Errorf("twiliosim: sender %s of account %s: %w", sender, acct.sid, ErrNotFound)
	}
	if other := acct.serviceOf(sender); other != "" && other != svc.sid {
		return fmt.Errorf("twiliosim: number %s already belongs to messaging service %s", sender, other)
	}
	if !slices.Contains(svc.numbers, sender) {
		svc.numbers = append(svc.numbers, sender)
	}
	return nil
}

// ServiceConfig is the part of a Messaging Service's configuration tests
// set directly; the bridge can set the same through the Services API.
type ServiceConfig struct {
	// InboundURL receives inbound messages to every sender of the pool
	// (inbound_request_url), unless UseNumberWebhook is set.
	InboundURL string
	// InboundMethod is POST (default) or GET.
	InboundMethod string
	// StatusCallback receives status callbacks of messages sent through
	// the service without a StatusCallback of their own.
	StatusCallback string
	// NoStickySender turns sticky sender off: every message then goes out
	// from the first suitable number of the pool.
	NoStickySender bool
	// UseNumberWebhook sends inbound texts to each number's own sms_url.
	UseNumberWebhook bool
}

// ConfigureService sets a Messaging Service's configuration.
func (a *Account) ConfigureService(serviceSID string, cfg ServiceConfig) error {
	a.s.mu.Lock()
	defer a.s.mu.Unlock()
	svc := a.s.accounts[a.sid].services[serviceSID]
	if svc == nil {
		return fmt.Errorf("twiliosim: messaging service %s of account %s: %w", serviceSID, a.sid, ErrNotFound)
	}
	svc.inboundURL, svc.statusCallback = cfg.InboundURL, cfg.StatusCallback
	svc.inboundMethod = cmpOr(strings.ToUpper(cfg.InboundMethod), "POST")
	svc.stickySender, svc.useNumberWebhook = !cfg.NoStickySender, cfg.UseNumberWebhook
	svc.updated = a.s.nowLocked()
	a.s.notifyLocked()
	return nil
}

// cmpOr returns v, or def when v is empty.
func cmpOr(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// senderByAddress returns the account's WhatsApp or RCS sender with that
// address, or nil.
func (a *account) senderByAddress(address string) *channelSender {
	for _, cs := range a.senders {
		if cs.address == address {
			return cs
		}
	}
	return nil
}

// senderBySID returns the account's WhatsApp or RCS sender with that SID,
// or nil.
func (a *account) senderBySID(sid string) *channelSender {
	for _, cs := range a.senders {
		if cs.sid == sid {
			return cs
		}
	}
	return nil
}

// serviceSender returns the service's sender on a channel, or nil.
func (a *account) serviceSender(svc *messagingService, channel string) *channelSender {
	for _, cs := range a.senders {
		if cs.serviceSID == svc.sid && cs.channel == channel {
			return cs
		}
	}
	return nil
}

// sortedServices returns the account's services in creation order.
func (a *account) sortedServices() []*messagingService {
	out := slices.Collect(maps.Values(a.services))
	slices.SortFunc(out, func(x, y *messagingService) int { return int(x.seq - y.seq) })
	return out
}

// poolNumber picks the pool number a message to contact goes out from:
// the sticky one when sticky sender is on and it can carry the message,
// else the first that can (MMS-capable when there is media).
func (a *account) poolNumber(svc *messagingService, contact string, hasMedia bool) string {
	capable := func(e164 string) bool {
		n := a.numberByE164(e164)
		return n != nil && n.caps.SMS && (!hasMedia || n.caps.MMS)
	}
	if sticky := svc.sticky[contact]; svc.stickySender && sticky != "" && slices.Contains(svc.numbers, sticky) && capable(sticky) {
		return sticky
	}
	for _, e164 := range svc.numbers {
		if capable(e164) {
			return e164
		}
	}
	return svc.numbers[0]
}

// noteSticky records which pool number a conversation with contact uses.
func (a *account) noteSticky(ourNumber, contact string) {
	if sid := a.serviceOf(ourNumber); sid != "" {
		a.services[sid].sticky[contact] = ourNumber
	}
}
