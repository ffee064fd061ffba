package twiliosim

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/nyaruka/phonenumbers"
)

// Conversations (conversations.twilio.com/v1), the subset a bridge needs
// for group MMS: a group is a Conversation whose participants are phones
// (MessagingBinding.Address) plus one participant for the bridge, an
// identity with the bridge's number as MessagingBinding.ProjectedAddress.
// Messages the bridge creates go to every phone of the group from the
// projected number, with delivery receipts; a phone texting the group
// (SendGroupText) becomes a conversation message and an onMessageAdded
// webhook. Only the default Conversation Service is served (the shortened
// /v1/Conversations URLs), with the global and conversation-scoped
// webhooks.

// Group MMS limits.
const (
	maxGroupParticipants = 10
	maxMediaPerMessage   = 10
)

// Conversations error codes; the numbers and titles are Twilio's (see
// https://www.twilio.com/docs/api/errors/<code>).
const (
	CodeInvalidBindingAddress   = 50407 // Invalid messaging binding address
	CodeInvalidProxyAddress     = 50408 // Invalid participant proxy address
	CodeBindingExists           = 50416 // A binding for this participant and proxy address already exists
	CodeProjectedAddressMissing = 50434 // Participant projected address not provided
	CodeGroupMMSActivation      = 50435 // Group MMS activation failed
	CodeGroupParticipantLimit   = 50436 // Participant limit exceeded for group conversation
	CodeAuthorNotInGroup        = 50513 // Message author should be among Group MMS participants
	CodeInvalidConversationMG   = 50341 // Invalid messaging service SID
)

// conversation is one Conversation of an account's default service.
// Guarded by Server.mu.
type conversation struct {
	seq          int64
	sid          string
	accountSID   string
	serviceSID   string // the Messaging Service delivering its SMS, or ""
	friendlyName string
	uniqueName   string
	attributes   string
	state        string
	created      time.Time
	updated      time.Time
	participants []*participant
	messages     []*convMessage
	webhooks     []*convWebhook
	nextIndex    int
}

// participant is a Conversation participant.
type participant struct {
	seq        int64
	sid        string
	identity   string
	address    string // the phone, "" for a chat participant
	proxy      string // MessagingBinding.ProxyAddress (1:1 SMS conversations)
	projected  string // MessagingBinding.ProjectedAddress (the bridge in a group)
	attributes string
	created    time.Time
	updated    time.Time
}

// convMessage is a Conversation message.
type convMessage struct {
	seq            int64
	sid            string
	index          int
	author         string
	body           string
	attributes     string
	participantSID string
	contentSID     string
	media          []*mcsMedia
	source         string // SMS for a phone's text, API for a created one
	created        time.Time
	updated        time.Time
	receipts       []*receipt
	done           bool // every delivery receipt is final
}

// receipt is the delivery of a bridge's message to one phone.
type receipt struct {
	sid               string
	participantSID    string
	address           string
	channelMessageSID string
	status            string
	errorCode         int
	created           time.Time
	updated           time.Time
}

// convWebhook is a conversation-scoped webhook.
type convWebhook struct {
	sid     string
	url     string
	method  string
	filters []string
	created time.Time
}

// isGroup reports whether the conversation is a group MMS: it has a
// participant with a projected address.
func (c *conversation) isGroup() bool {
	return slices.ContainsFunc(c.participants, func(p *participant) bool { return p.projected != "" })
}

// participantBySID returns the participant with that SID, or nil.
func (c *conversation) participantBySID(sid string) *participant {
	for _, p := range c.participants {
		if p.sid == sid {
			return p
		}
	}
	return nil
}

// authorParticipant returns the participant an author names (its identity
// or its address), or nil.
func (c *conversation) authorParticipant(author string) *participant {
	for _, p := range c.participants {
		if (p.identity != "" && p.identity == author) || (p.address != "" && p.address == author) {
			return p
		}
	}
	return nil
}

// messageBySID returns the message with that SID, or nil.
func (c *conversation) messageBySID(sid string) *convMessage {
	for _, m := range c.messages {
		if m.sid == sid {
			return m
		}
	}
	return nil
}

// conversationBySID returns the account's conversation, or nil.
func (a *account) conversationBySID(sid string) *conversation {
	for _, c := range a.conversations {
		if c.sid == sid {
			return c
		}
	}
	return nil
}

// newParticipant is a participant create's parameters.
type newParticipant struct {
	identity, address, proxy, projected, attributes string
}

// checkParticipantLocked applies Twilio's participant and group MMS rules
// to adding np to c.
func checkParticipantLocked(acct *account, c *conversation, np newParticipant) *apiError {
	switch {
	case np.identity == "" && np.address == "":
		return errBadParam("A participant needs an Identity or a MessagingBinding.Address")
	case np.address != "" && !validBindingAddress(np.address):
		return newAPIError(http.StatusBadRequest, CodeInvalidBindingAddress, "Invalid messaging binding address %s", np.address)
	case np.proxy != "" && acct.numberByE164(np.proxy) == nil && acct.senderByAddress(np.proxy) == nil:
		return newAPIError(http.StatusBadRequest, CodeInvalidProxyAddress, "Invalid participant proxy address %s", np.proxy)
	case np.projected != "" && acct.numberByE164(np.projected) == nil:
		return newAPIError(http.StatusBadRequest, CodeInvalidProxyAddress, "Invalid participant projected address %s: it must be one of the account's phone numbers", np.projected)
	}
	for _, p := range c.participants {
		if np.address != "" && p.address == np.address {
			return newAPIError(http.StatusConflict, CodeBindingExists,
				"A binding for this participant and proxy address already exists in Conversation %s", c.sid)
		}
		if np.identity != "" && p.identity == np.identity {
			return newAPIError(http.StatusConflict, CodeBindingExists, "Participant with identity %s already exists in Conversation %s", np.identity, c.sid)
		}
	}
	group := c.isGroup() || np.projected != ""
	if !group {
		return nil
	}
	all := append(slices.Clone(c.participants), &participant{identity: np.identity, address: np.address, proxy: np.proxy, projected: np.projected})
	projected := 0
	for _, p := range all {
		switch {
		case p.projected != "":
			projected++
		case p.address == "":
			return newAPIError(http.StatusBadRequest, CodeProjectedAddressMissing,
				"Participant projected address not provided: this is a Group MMS conversation, and participant %q has neither an Address nor a ProjectedAddress", p.identity)
		case !isUSOrCanada(p.address):
			return newAPIError(http.StatusBadRequest, CodeGroupMMSActivation,
				"Group MMS activation failed: %s is not a US or Canadian number, and Group MMS supports only those", p.address)
		}
	}
	if projected > 1 {
		return newAPIError(http.StatusBadRequest, CodeGroupMMSActivation, "Group MMS activation failed: a group conversation has one projected address")
	}
	if len(all) > maxGroupParticipants {
		return newAPIError(http.StatusBadRequest, CodeGroupParticipantLimit,
			"Participant limit exceeded for group conversation: at most %d participants", maxGroupParticipants)
	}
	return nil
}

// validBindingAddress reports whether a participant address is one Twilio
// takes: an E.164 number, optionally with the whatsapp: prefix.
func validBindingAddress(addr string) bool {
	channel, bare := splitAddress(addr)
	return channel != ChannelRCS && e164Pattern.MatchString(bare)
}

// isUSOrCanada reports a +1 number of the US or Canada. Fictional numbers
// (555...) belong to no region; their +1 puts them in North America.
func isUSOrCanada(addr string) bool {
	channel, bare := splitAddress(addr)
	if channel != ChannelSMS || !strings.HasPrefix(bare, "+1") {
		return false
	}
	num, err := phonenumbers.Parse(bare, "US")
	if err != nil {
		return false
	}
	switch phonenumbers.GetRegionCodeForNumber(num) {
	case "US", "CA", "":
		return true
	}
	return false
}

// addParticipantLocked adds a checked participant and returns it.
func (s *Server) addParticipantLocked(c *conversation, np newParticipant) *participant {
	now := s.nowLocked()
	p := &participant{
		seq: s.nextSeqLocked(), sid: newSID(prefixParticipant), identity: np.identity, address: np.address,
		proxy: np.proxy, projected: np.projected, attributes: cmpOr(np.attributes, "{}"), created: now, updated: now,
	}
	c.participants = append(c.participants, p)
	c.updated = now
	s.notifyLocked()
	return p
}

// removeParticipantLocked removes a participant.
func (s *Server) removeParticipantLocked(c *conversation, p *participant) {
	c.participants = slices.DeleteFunc(c.participants, func(x *participant) bool { return x == p })
	c.updated = s.nowLocked()
	s.notifyLocked()
}

// removeConversationLocked deletes a conversation.
func (s *Server) removeConversationLocked(acct *account, c *conversation) {
	acct.conversations = slices.DeleteFunc(acct.conversations, func(x *conversation) bool { return x == c })
	s.notifyLocked()
}

// addMessageLocked appends a message to c. Messages authored by a group's
// projected participant (or any chat participant of a 1:1 conversation)
// get a receipt for every phone but the author.
func (s *Server) addMessageLocked(c *conversation, author, body, attributes, contentSID, source string, media []*mcsMedia) *convMessage {
	now := s.nowLocked()
	m := &convMessage{
		seq: s.nextSeqLocked(), sid: newSID(prefixConversationMessage), index: c.nextIndex,
		author: author, body: body, attributes: cmpOr(attributes, "{}"), contentSID: contentSID,
		media: media, source: source, created: now, updated: now, done: true,
	}
	c.nextIndex++
	if p := c.authorParticipant(author); p != nil {
		m.participantSID = p.sid
	}
	for _, md := range media {
		md.messageSID, md.conversationSID = m.sid, c.sid
	}
	if source != sourceSMS {
		for _, p := range c.participants {
			if p.address == "" || p.address == author {
				continue
			}
			prefix := prefixSMS
			if len(media) > 0 {
				prefix = prefixMMS
			}
			m.receipts = append(m.receipts, &receipt{
				sid: newSID(prefixReceipt), participantSID: p.sid, address: p.address,
				channelMessageSID: newSID(prefix), created: now, updated: now,
			})
			m.done = false
		}
	}
	c.messages = append(c.messages, m)
	c.updated = now
	s.notifyLocked()
	return m
}

// Sources of conversation events (the Source webhook parameter).
const (
	sourceSMS = "SMS"
	sourceAPI = "API"
)

// Conversation is a snapshot of a conversation for tests.
type Conversation struct {
	SID                 string
	FriendlyName        string
	MessagingServiceSID string
	// Group is set for a group MMS (a participant has a projected address).
	Group        bool
	Participants []Participant
	Messages     []ConversationMessage
}

// Participant is a snapshot of a conversation participant.
type Participant struct {
	SID              string
	Identity         string // "" for a phone
	Address          string // the phone, "" for a chat participant
	ProxyAddress     string
	ProjectedAddress string // the bridge's number in a group
}

// ConversationMessage is a snapshot of a conversation message and of its
// delivery to the group's phones.
type ConversationMessage struct {
	SID            string
	Index          int
	Author         string
	Body           string
	Attributes     string
	ParticipantSID string
	Media          []MediaFile
	DateCreated    time.Time
	// Deliveries has one entry per phone the message went to; messages
	// phones sent have none (the carrier delivers a group MMS to the other
	// phones itself).
	Deliveries []Delivery
	// Done is set once every delivery has its final status.
	Done bool
}

// Delivery is one phone's copy of a message the bridge sent to a group.
type Delivery struct {
	To                string // the phone
	From              string // the projected (or proxy) number it came from
	ParticipantSID    string
	ReceiptSID        string // DY...
	ChannelMessageSID string // the SMS/MMS SID of this copy
	Status            string // sent, delivered, undelivered or failed
	ErrorCode         int
}

// snapshotConversation copies a conversation for tests.
func snapshotConversation(c *conversation) Conversation {
	out := Conversation{SID: c.sid, FriendlyName: c.friendlyName, MessagingServiceSID: c.serviceSID, Group: c.isGroup()}
	from := ""
	for _, p := range c.participants {
		out.Participants = append(out.Participants, Participant{
			SID: p.sid, Identity: p.identity, Address: p.address, ProxyAddress: p.proxy, ProjectedAddress: p.projected,
		})
		from = cmpOr(from, cmpOr(p.projected, p.proxy))
	}
	for _, m := range c.messages {
		cm := ConversationMessage{
			SID: m.sid, Index: m.index, Author: m.author, Body: m.body, Attributes: m.attributes,
			ParticipantSID: m.participantSID, DateCreated: m.created, Done: m.done,
		}
		for _, md := range m.media {
			cm.Media = append(cm.Media, MediaFile{ContentType: md.contentType, Data: md.data, Filename: md.filename})
		}
		for _, r := range m.receipts {
			cm.Deliveries = append(cm.Deliveries, Delivery{
				To: r.address, From: from, ParticipantSID: r.participantSID, ReceiptSID: r.sid,
				ChannelMessageSID: r.channelMessageSID, Status: r.status, ErrorCode: r.errorCode,
			})
		}
		out.Messages = append(out.Messages, cm)
	}
	return out
}

// Conversations returns the account's conversations, oldest first.
func (a *Account) Conversations() []Conversation {
	a.s.mu.Lock()
	defer a.s.mu.Unlock()
	var out []Conversation
	for _, c := range a.s.accounts[a.sid].conversations {
		out = append(out, snapshotConversation(c))
	}
	return out
}

// WaitConversations waits until cond holds for the account's
// conversations, and returns them; like WaitOutbound, cond runs on every
// state change and must not block.
func (a *Account) WaitConversations(ctx context.Context, cond func([]Conversation) bool) ([]Conversation, error) {
	for {
		a.s.mu.Lock()
		changed := a.s.changed
		a.s.mu.Unlock()
		snap := a.Conversations()
		if cond(snap) {
			return snap, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return snap, fmt.Errorf("twiliosim: waiting for conversations: %w", ctx.Err())
		}
	}
}

// FindGroup returns the group conversation whose projected address is
// ourNumber and whose phones are exactly phones (in any order).
func (a *Account) FindGroup(ourNumber string, phones ...string) (Conversation, bool) {
	a.s.mu.Lock()
	defer a.s.mu.Unlock()
	sid, ok := a.findGroupLocked(ourNumber, phones)
	if !ok {
		return Conversation{}, false
	}
	return snapshotConversation(a.s.accounts[a.sid].conversationBySID(sid)), true
}
