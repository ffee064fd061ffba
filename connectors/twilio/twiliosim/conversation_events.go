package twiliosim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
)

// Conversations post-event webhooks: form-encoded and signed with
// X-Twilio-Signature exactly like messaging webhooks, sent to the global
// webhook (/v1/Configuration/Webhooks, post_webhook_url) and to every
// conversation-scoped webhook whose filters name the event. As on Twilio,
// actions taken through the REST API fire webhooks only when the request
// carries X-Twilio-Webhook-Enabled: true; phones' texts and the test
// actions below always do. Delivery updates (onDeliveryUpdated) follow the
// bridge's messages to each phone.

// Conversations event types the simulator fires.
const (
	EventConversationAdded   = "onConversationAdded"
	EventConversationRemoved = "onConversationRemoved"
	EventMessageAdded        = "onMessageAdded"
	EventParticipantAdded    = "onParticipantAdded"
	EventParticipantRemoved  = "onParticipantRemoved"
	EventDeliveryUpdated     = "onDeliveryUpdated"
)

// webhookEnabledHeader opts REST actions into firing webhooks.
const webhookEnabledHeader = "X-Twilio-Webhook-Enabled"

// ConversationEvent is one Conversations webhook the simulator sent.
type ConversationEvent struct {
	EventType       string
	ConversationSID string
	Request         *WebhookRequest
	Response        WebhookResponse
	Err             string // transport error or webhook fault, "" when the bridge answered
}

// globalWebhook is an account's /v1/Configuration/Webhooks.
type globalWebhook struct {
	preURL, postURL, method, target string
	filters                         []string
}

// pendingEvent is a signed event request not yet sent.
type pendingEvent struct {
	event, conversationSID string
	req                    *WebhookRequest
}

// eventRequestsLocked builds the signed requests for an event on c: one
// for the global webhook and one per conversation-scoped webhook that
// asked for it. form holds the event's own parameters.
func (s *Server) eventRequestsLocked(acct *account, c *conversation, event, source string, form url.Values) []pendingEvent {
	base := func() url.Values {
		f := url.Values{}
		for k, v := range form {
			f[k] = slices.Clone(v)
		}
		f.Set("AccountSid", acct.sid)
		f.Set("ChatServiceSid", acct.chatServiceSID)
		f.Set("ConversationSid", c.sid)
		f.Set("EventType", event)
		f.Set("RetryCount", "0")
		if source != "" {
			f.Set("Source", source)
		}
		if c.serviceSID != "" {
			f.Set("MessagingServiceSid", c.serviceSID)
		}
		return f
	}
	var out []pendingEvent
	if g := acct.convWebhook; g.postURL != "" && slices.Contains(g.filters, event) {
		f := base()
		f.Set("WebhookType", "config")
		out = append(out, pendingEvent{event, c.sid, newWebhook(acct.authToken, g.postURL, g.method, f)})
	}
	for _, wh := range c.webhooks {
		if slices.Contains(wh.filters, event) {
			f := base()
			f.Set("WebhookType", "webhook")
			f.Set("WebhookSid", wh.sid)
			out = append(out, pendingEvent{event, c.sid, newWebhook(acct.authToken, wh.url, wh.method, f)})
		}
	}
	return out
}

// sendEvents sends the requests in order and records them on the account.
// It returns what was sent and the first failure.
func (s *Server) sendEvents(ctx context.Context, accountSID string, pending []pendingEvent) ([]ConversationEvent, error) {
	var out []ConversationEvent
	var firstErr error
	for _, p := range pending {
		resp, err := s.deliver(ctx, WebhookConversation, p.req)
		ev := ConversationEvent{EventType: p.event, ConversationSID: p.conversationSID, Request: p.req, Response: resp}
		if err != nil {
			ev.Err = err.Error()
			if firstErr == nil {
				firstErr = err
			}
		}
		s.mu.Lock()
		acct := s.accounts[accountSID]
		acct.convEvents = append(acct.convEvents, ev)
		s.notifyLocked()
		s.mu.Unlock()
		out = append(out, ev)
	}
	return out, firstErr
}

// sendEventsInBackground sends REST-triggered events after the answer, as
// Twilio's post-event webhooks are asynchronous.
func (s *Server) sendEventsInBackground(accountSID string, pending []pendingEvent) {
	if len(pending) == 0 {
		return
	}
	s.goBackground(func(ctx context.Context) {
		// The outcome is recorded in ConversationEvents.
		_, _ = s.sendEvents(ctx, accountSID, pending)
	})
}

// ConversationEvents returns the Conversations webhooks sent for the
// account, oldest first.
func (a *Account) ConversationEvents() []ConversationEvent {
	a.s.mu.Lock()
	defer a.s.mu.Unlock()
	out := slices.Clone(a.s.accounts[a.sid].convEvents)
	for i := range out {
		out[i].Request = out[i].Request.clone()
		out[i].Response.Header = out[i].Response.Header.Clone()
	}
	return out
}

// participantForm is an event's participant parameters.
func participantForm(p *participant) url.Values {
	f := url.Values{}
	f.Set("ParticipantSid", p.sid)
	f.Set("Attributes", p.attributes)
	f.Set("DateCreated", formatISO(p.created))
	f.Set("DateUpdated", formatISO(p.updated))
	if p.identity != "" {
		f.Set("Identity", p.identity)
	}
	if p.address != "" || p.projected != "" {
		f.Set("MessagingBinding.Type", "sms")
	}
	for name, v := range map[string]string{
		"MessagingBinding.Address": p.address, "MessagingBinding.ProxyAddress": p.proxy,
		"MessagingBinding.ProjectedAddress": p.projected,
	} {
		if v != "" {
			f.Set(name, v)
		}
	}
	return f
}

// messageForm is an event's message parameters; Media is a JSON array
// of {Sid, Filename, ContentType, Size, Category}, as Twilio sends it.
func messageForm(m *convMessage) url.Values {
	f := url.Values{}
	f.Set("MessageSid", m.sid)
	f.Set("Index", strconv.Itoa(m.index))
	f.Set("Author", m.author)
	f.Set("Body", m.body)
	f.Set("Attributes", m.attributes)
	f.Set("DateCreated", formatISO(m.created))
	if m.participantSID != "" {
		f.Set("ParticipantSid", m.participantSID)
	}
	if len(m.media) > 0 {
		type item struct {
			Sid, Filename, ContentType string
			Size                       int
			Category                   string
		}
		var items []item
		for _, md := range m.media {
			items = append(items, item{md.sid, md.filename, md.contentType, len(md.data), "media"})
		}
		data, _ := json.Marshal(items) // plain strings and ints always encode
		f.Set("Media", string(data))
	}
	return f
}

// conversationForm is an event's conversation parameters.
func conversationForm(c *conversation) url.Values {
	f := url.Values{}
	f.Set("FriendlyName", c.friendlyName)
	f.Set("UniqueName", c.uniqueName)
	f.Set("Attributes", c.attributes)
	f.Set("State", c.state)
	f.Set("DateCreated", formatISO(c.created))
	f.Set("DateUpdated", formatISO(c.updated))
	return f
}

// deliverConversationMessage takes a bridge's message to its final
// delivery statuses in the background, one phone after the other, each as
// the recipient configuration says, with onDeliveryUpdated on every change.
func (s *Server) deliverConversationMessage(accountSID string, c *conversation, m *convMessage) {
	if m.done {
		return
	}
	s.goBackground(func(ctx context.Context) {
		if s.waitUnpaused(ctx) != nil {
			return
		}
		for _, r := range m.receipts {
			_, bare := splitAddress(r.address)
			s.mu.Lock()
			steps := deliverySteps(s.recipientLocked(bare))
			s.mu.Unlock()
			for _, step := range steps {
				s.mu.Lock()
				r.status, r.errorCode, r.updated = step.status, step.code, s.nowLocked()
				acct := s.accounts[accountSID]
				f := url.Values{}
				f.Set("MessageSid", m.sid)
				f.Set("ParticipantSid", r.participantSID)
				f.Set("DeliveryReceiptSid", r.sid)
				f.Set("ChannelMessageSid", r.channelMessageSID)
				f.Set("Status", r.status)
				f.Set("ErrorCode", strconv.Itoa(r.errorCode))
				f.Set("DateCreated", formatISO(r.created))
				f.Set("DateUpdated", formatISO(r.updated))
				pending := s.eventRequestsLocked(acct, c, EventDeliveryUpdated, "", f)
				s.notifyLocked()
				s.mu.Unlock()
				// Recorded in ConversationEvents.
				_, _ = s.sendEvents(ctx, accountSID, pending)
			}
		}
		s.mu.Lock()
		m.done = true
		s.notifyLocked()
		s.mu.Unlock()
	})
}

// EventResult is what a test action did: the resource it created or
// removed and the webhooks it sent (already answered).
type EventResult struct {
	SID    string
	Events []ConversationEvent
}

// GroupText is a text one phone of a group MMS sends to the group.
type GroupText struct {
	// ConversationSID names the group. When empty, To and Others name it:
	// the group of those phones with To as projected address, created (as
	// Twilio's address autocreation does) when there is none.
	ConversationSID string
	// From is the phone that texts; a participant of the group.
	From string
	// To is the account's number the group includes (the projected
	// address); only needed without ConversationSID.
	To string
	// Others are the group's other phones; only needed without
	// ConversationSID.
	Others []string
	Body   string
	Media  []MediaFile
}

// SendGroupText delivers a phone's text to a group conversation: the
// message is added (Author is the phone's address, Source SMS, media in
// the Media Content Service) and onMessageAdded goes to the webhooks, whose
// answers come back in the result. A group created on the way fires
// onConversationAdded and onParticipantAdded first. The error reports a
// webhook that failed; the message is kept regardless.
func (s *Server) SendGroupText(ctx context.Context, in GroupText) (EventResult, error) {
	if len(in.Media) > maxMediaPerMessage {
		return EventResult{}, fmt.Errorf("twiliosim: group text has %d media files, at most %d", len(in.Media), maxMediaPerMessage)
	}
	s.mu.Lock()
	acct, c, pending, err := s.groupForTextLocked(in)
	if err != nil {
		s.mu.Unlock()
		return EventResult{}, err
	}
	var media []*mcsMedia
	for _, f := range in.Media {
		if f.ContentType == "" {
			s.mu.Unlock()
			return EventResult{}, errors.New("twiliosim: group text media needs a content type")
		}
		media = append(media, s.storeMCSMediaLocked(acct, f, in.From))
	}
	m := s.addMessageLocked(c, in.From, in.Body, "", "", sourceSMS, media)
	pending = append(pending, s.eventRequestsLocked(acct, c, EventMessageAdded, sourceSMS, messageForm(m))...)
	s.mu.Unlock()
	events, err := s.sendEvents(ctx, acct.sid, pending)
	return EventResult{SID: m.sid, Events: events}, err
}

// groupForTextLocked finds (or creates) the group a text goes to, with the
// events a creation fires.
func (s *Server) groupForTextLocked(in GroupText) (*account, *conversation, []pendingEvent, error) {
	if in.ConversationSID != "" {
		for _, acct := range s.accounts {
			if c := acct.conversationBySID(in.ConversationSID); c != nil {
				if c.authorParticipant(in.From) == nil || in.From == "" {
					return nil, nil, nil, fmt.Errorf("twiliosim: %s is not a participant of %s", in.From, c.sid)
				}
				return acct, c, nil, nil
			}
		}
		return nil, nil, nil, fmt.Errorf("twiliosim: conversation %s: %w", in.ConversationSID, ErrNotFound)
	}
	n := s.numbers[in.To]
	if n == nil {
		return nil, nil, nil, fmt.Errorf("twiliosim: group text to %s: %w", in.To, ErrNotFound)
	}
	acct := s.accounts[n.accountSID]
	phones := append([]string{in.From}, in.Others...)
	if found, ok := (&Account{s: s, sid: acct.sid}).findGroupLocked(in.To, phones); ok {
		return acct, acct.conversationBySID(found), nil, nil
	}
	c := s.newConversationLocked(acct, "", "", "")
	pending := s.eventRequestsLocked(acct, c, EventConversationAdded, sourceSMS, conversationForm(c))
	for _, np := range append(addressParticipants(phones), newParticipant{identity: in.To, projected: in.To}) {
		if apiErr := checkParticipantLocked(acct, c, np); apiErr != nil {
			s.removeConversationLocked(acct, c)
			return nil, nil, nil, fmt.Errorf("twiliosim: creating the group for %v: %w", phones, apiErr)
		}
		p := s.addParticipantLocked(c, np)
		pending = append(pending, s.eventRequestsLocked(acct, c, EventParticipantAdded, sourceSMS, participantForm(p))...)
	}
	return acct, c, pending, nil
}

// addressParticipants are phone participants for the addresses.
func addressParticipants(addrs []string) []newParticipant {
	var out []newParticipant
	for _, a := range addrs {
		out = append(out, newParticipant{address: a})
	}
	return out
}

// findGroupLocked is FindGroup with mu held.
func (a *Account) findGroupLocked(ourNumber string, phones []string) (string, bool) {
	want := slices.Sorted(slices.Values(phones))
	for _, c := range a.s.accounts[a.sid].conversations {
		var got []string
		projected := false
		for _, p := range c.participants {
			if p.address != "" {
				got = append(got, p.address)
			}
			projected = projected || p.projected == ourNumber
		}
		slices.Sort(got)
		if projected && slices.Equal(got, want) {
			return c.sid, true
		}
	}
	return "", false
}

// AddParticipant adds a phone to a conversation as another party would
// (Twilio's console, another application), with onParticipantAdded.
// Twilio's participant and group MMS rules apply.
func (a *Account) AddParticipant(ctx context.Context, conversationSID, address string) (EventResult, error) {
	return a.actOnConversation(ctx, conversationSID, func(acct *account, c *conversation) (string, []pendingEvent, error) {
		np := newParticipant{address: address}
		if apiErr := checkParticipantLocked(acct, c, np); apiErr != nil {
			return "", nil, apiErr
		}
		p := a.s.addParticipantLocked(c, np)
		return p.sid, a.s.eventRequestsLocked(acct, c, EventParticipantAdded, sourceAPI, participantForm(p)), nil
	})
}

// RemoveParticipant removes a participant as another party would, with
// onParticipantRemoved.
func (a *Account) RemoveParticipant(ctx context.Context, conversationSID, participantSID string) (EventResult, error) {
	return a.actOnConversation(ctx, conversationSID, func(acct *account, c *conversation) (string, []pendingEvent, error) {
		p := c.participantBySID(participantSID)
		if p == nil {
			return "", nil, fmt.Errorf("twiliosim: participant %s of %s: %w", participantSID, conversationSID, ErrNotFound)
		}
		a.s.removeParticipantLocked(c, p)
		return p.sid, a.s.eventRequestsLocked(acct, c, EventParticipantRemoved, sourceAPI, participantForm(p)), nil
	})
}

// RemoveConversation deletes a conversation as another party would, with
// onConversationRemoved.
func (a *Account) RemoveConversation(ctx context.Context, conversationSID string) (EventResult, error) {
	return a.actOnConversation(ctx, conversationSID, func(acct *account, c *conversation) (string, []pendingEvent, error) {
		pending := a.s.eventRequestsLocked(acct, c, EventConversationRemoved, sourceAPI, conversationForm(c))
		a.s.removeConversationLocked(acct, c)
		return c.sid, pending, nil
	})
}

// actOnConversation runs act on one of the account's conversations with
// the state lock held, then sends the events it returns.
func (a *Account) actOnConversation(ctx context.Context, conversationSID string,
	act func(acct *account, c *conversation) (sid string, pending []pendingEvent, err error)) (EventResult, error) {
	s := a.s
	s.mu.Lock()
	acct := s.accounts[a.sid]
	c := acct.conversationBySID(conversationSID)
	if c == nil {
		s.mu.Unlock()
		return EventResult{}, fmt.Errorf("twiliosim: conversation %s: %w", conversationSID, ErrNotFound)
	}
	sid, pending, err := act(acct, c)
	s.mu.Unlock()
	if err != nil {
		return EventResult{}, err
	}
	events, err := s.sendEvents(ctx, a.sid, pending)
	return EventResult{SID: sid, Events: events}, err
}

// webhookEnabled reports whether a REST request opted into webhooks.
func webhookEnabled(r *http.Request) bool {
	return r.Header.Get(webhookEnabledHeader) == "true"
}
