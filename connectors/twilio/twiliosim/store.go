package twiliosim

import (
	"slices"
	"time"
)

// Message directions and statuses as Twilio spells them.
const (
	DirectionInbound     = "inbound"
	DirectionOutboundAPI = "outbound-api"

	StatusAccepted    = "accepted"
	StatusQueued      = "queued"
	StatusSent        = "sent"
	StatusDelivered   = "delivered"
	StatusUndelivered = "undelivered"
	StatusFailed      = "failed"
	StatusReceived    = "received"
	StatusRead        = "read" // WhatsApp and RCS only
)

// apiVersion is the only REST version the simulator speaks.
const apiVersion = "2010-04-01"

// Capabilities says what a phone number can do, as in the
// incoming_phone_number resource's capabilities object.
type Capabilities struct {
	SMS   bool // can send and receive texts
	MMS   bool // can send and receive media
	Voice bool // can take calls (not simulated)
	Fax   bool // can take faxes (not simulated)
}

// MediaFile is one media attachment: its bytes, MIME type and, for inbound
// media, an optional file name (Twilio does not expose names; the simulator
// keeps it only for tests).
type MediaFile struct {
	ContentType string // MIME type, e.g. image/jpeg; required
	Data        []byte // the file's bytes
	Filename    string // kept for tests only; Twilio has no media names
}

// APIKeyKind distinguishes Twilio's key types, which matters because Standard
// keys may not read the Accounts resource.
type APIKeyKind int

const (
	// APIKeyStandard keys can use every resource except /Accounts.
	APIKeyStandard APIKeyKind = iota
	// APIKeyMain keys can use every resource, /Accounts included.
	APIKeyMain
)

// APIKey is an API key SID and its secret, usable as basic-auth credentials
// for the account that owns it.
type APIKey struct {
	SID    string     // SK...: the basic-auth user name
	Secret string     // the basic-auth password
	Kind   APIKeyKind // Standard or Main
}

// account is the simulator's state for one Twilio account. All fields are
// guarded by Server.mu.
type account struct {
	sid          string
	authToken    string
	friendlyName string
	created      time.Time
	numbers      []*phoneNumber // in creation order, as Twilio lists them
	services     map[string]*messagingService
	senders      []*channelSender // WhatsApp and RCS senders, in creation order
	messages     []*message       // in creation order
	messageBySID map[string]*message
	optOuts      map[optOutKey]bool
	contents     []*content // Content API templates, in creation order

	// Conversations: the default service, its default participant role,
	// the global webhook, conversations in creation order, the Media
	// Content Service's files and the events sent.
	chatServiceSID string
	roleSID        string
	convWebhook    globalWebhook
	conversations  []*conversation
	mcs            map[string]*mcsMedia
	convEvents     []ConversationEvent
}

// phoneNumber is an IncomingPhoneNumber resource.
type phoneNumber struct {
	sid                  string
	accountSID           string
	e164                 string
	friendlyName         string
	caps                 Capabilities
	smsURL               string
	smsMethod            string
	smsFallbackURL       string
	smsFallbackMethod    string
	statusCallback       string
	statusCallbackMethod string
	voiceURL             string
	voiceMethod          string
	voiceFallbackURL     string
	voiceFallbackMethod  string
	voiceCallerIDLookup  bool
	created              time.Time
	updated              time.Time
}

// message is one entry of an account's message log, inbound or outbound.
type message struct {
	seq            int64 // creation order, to break timestamp ties
	sid            string
	accountSID     string
	direction      string
	from           string
	to             string
	body           string
	serviceSID     string
	status         string
	numSegments    int
	numMedia       int
	errorCode      int
	errorMessage   string
	created        time.Time
	updated        time.Time
	sent           time.Time // zero means null
	media          []*media
	statusCallback string
	// channel is the channel the message travels on (ChannelSMS,
	// ChannelWhatsApp, ChannelRCS); for a Messaging Service message it is
	// decided when it is queued.
	channel string
	// senderSID is the WhatsApp or RCS sender (XE...) it goes through.
	senderSID        string
	contentSID       string
	contentVariables string
	fallbackFrom     string // FallbackFrom: the SMS sender if RCS fails

	// Outbound processing, for observers.
	mediaURLs []string
	fetches   []MediaFetch
	callbacks []CallbackAttempt
	done      bool
	seeded    bool // added with AddHistory, not through the API
}

// media is one stored media file. cdnKey names its unauthenticated copy under
// /cdn/, the way Twilio's media URLs redirect to a CDN.
type media struct {
	sid         string
	parentSID   string
	accountSID  string
	contentType string
	filename    string
	data        []byte
	created     time.Time
	cdnKey      string
}

// sortedNewestFirst returns the account's messages newest first, by creation
// time then creation order, which is what Twilio's list returns. Creation
// time never changes, so paging stays stable while statuses move.
func (a *account) sortedNewestFirst() []*message {
	out := slices.Clone(a.messages)
	slices.SortStableFunc(out, func(x, y *message) int {
		if c := y.created.Compare(x.created); c != 0 {
			return c
		}
		switch {
		case y.seq > x.seq:
			return 1
		case y.seq < x.seq:
			return -1
		}
		return 0
	})
	return out
}

// numberByE164 returns the account's number with that E.164 value, or nil.
func (a *account) numberByE164(e164 string) *phoneNumber {
	for _, n := range a.numbers {
		if n.e164 == e164 {
			return n
		}
	}
	return nil
}

// numberBySID returns the account's number with that SID, or nil.
func (a *account) numberBySID(sid string) *phoneNumber {
	for _, n := range a.numbers {
		if n.sid == sid {
			return n
		}
	}
	return nil
}

// serviceOf returns the SID of the messaging service a sender (a number,
// or a WhatsApp or RCS address) belongs to, or "" when it belongs to none.
func (a *account) serviceOf(sender string) string {
	if cs := a.senderByAddress(sender); cs != nil {
		return cs.serviceSID
	}
	for _, svc := range a.services {
		if slices.Contains(svc.numbers, sender) {
			return svc.sid
		}
	}
	return ""
}

// mediaBySID returns the message's media with that SID, or nil.
func (m *message) mediaBySID(sid string) *media {
	for _, md := range m.media {
		if md.sid == sid {
			return md
		}
	}
	return nil
}
