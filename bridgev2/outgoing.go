package bridgev2

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	"maunium.net/go/mautrix/event"

	"github.com/trestle-bridge/trestle/bridgev2/database"
	"github.com/trestle-bridge/trestle/bridgev2/networkid"
)

// Outgoing is what every Matrix event on its way to the remote network
// carries, whatever its kind.
type Outgoing struct {
	Event  *event.Event
	Portal *Portal
	Login  *UserLogin
	// SendToken is unique to this Matrix event and stable across retries
	// and restarts. Attach it to the remote send as an idempotency key
	// where the network has one (Twilio: the status callback URL), so that
	// a SendReconciler can recognise the send later.
	SendToken string
	// Progress lists the remote messages earlier attempts already created
	// for this event, from the journal. A connector that sends several
	// remote messages for one event (a long text split in parts) records
	// each with Progress.Record as soon as the network accepted it, and
	// skips those already listed: a retry, or a restart after a crash,
	// then resumes at the right part.
	Progress *SendProgress
}

// Base returns o itself, so that every kind of OutgoingEvent gives access
// to what they share.
func (o *Outgoing) Base() *Outgoing { return o }

// OutgoingEvent is one of *MatrixMessage, *MatrixEdit, *MatrixReaction,
// *MatrixReactionRemove, *MatrixRedaction and *MatrixMembership; a
// SendReconciler type-switches on it.
type OutgoingEvent interface {
	Base() *Outgoing
}

// SendProgress is the journalled progress of one Outgoing event. It is
// safe for concurrent use. The zero value keeps its progress in memory
// only, for connectors' unit tests.
type SendProgress struct {
	bridge *Bridge
	seq    int64
	mu     sync.Mutex
	sent   []SentMessage
}

// progressEntry is how a SentMessage is kept in the journal.
type progressEntry struct {
	ID        networkid.MessageID `json:"id"`
	PartID    networkid.PartID    `json:"part_id,omitempty"`
	Timestamp int64               `json:"ts,omitempty"`
	Metadata  json.RawMessage     `json:"metadata,omitempty"`
}

func (b *Bridge) loadProgress(row *database.OutboundEvent) *SendProgress {
	p := &SendProgress{bridge: b, seq: row.Seq}
	var entries []progressEntry
	if len(row.Progress) > 0 && json.Unmarshal(row.Progress, &entries) == nil {
		for _, e := range entries {
			m := SentMessage{ID: e.ID, PartID: e.PartID}
			if e.Timestamp != 0 {
				m.Timestamp = time.UnixMilli(e.Timestamp)
			}
			if len(e.Metadata) > 0 {
				m.Metadata = e.Metadata
			}
			p.sent = append(p.sent, m)
		}
	}
	return p
}

// Sent returns the remote messages already created for the event, in the
// order they were recorded.
func (p *SendProgress) Sent() []SentMessage {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.sent)
}

// Count is len(Sent()).
func (p *SendProgress) Count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.sent)
}

// Has reports whether a remote message is already recorded.
func (p *SendProgress) Has(id networkid.MessageID) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.ContainsFunc(p.sent, func(m SentMessage) bool { return m.ID == id })
}

// Record commits a remote message created for the event to the journal
// and returns once it is durable. A message already recorded is not
// recorded twice. If Record fails, return its error, an UnconfirmedError:
// the network has the message and the journal may not, so the core
// reconciles before it retries.
func (p *SendProgress) Record(ctx context.Context, m SentMessage) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.sent {
		if s.ID == m.ID && s.PartID == m.PartID {
			return nil
		}
	}
	next := append(slices.Clone(p.sent), m)
	entries := make([]progressEntry, len(next))
	for i, s := range next {
		e := progressEntry{ID: s.ID, PartID: s.PartID}
		if !s.Timestamp.IsZero() {
			e.Timestamp = s.Timestamp.UnixMilli()
		}
		if s.Metadata != nil {
			raw, err := json.Marshal(s.Metadata)
			if err != nil {
				return fmt.Errorf("encode sent message metadata: %w", err)
			}
			e.Metadata = raw
		}
		entries[i] = e
	}
	data, err := json.Marshal(entries)
	if err != nil {
		return fmt.Errorf("encode send progress: %w", err)
	}
	if p.bridge == nil {
		p.sent = next
		return nil
	}
	err = p.bridge.DB.Write(ctx, func(ctx context.Context, tx database.Execer) error {
		return p.bridge.DB.Outbound.SetProgress(ctx, tx, p.seq, data)
	})
	if err != nil {
		return UnconfirmedError("Could not record the send's progress.", err)
	}
	p.sent = next
	return nil
}

// merge adds the messages of a connector's response that it did not
// record itself, in memory only: the core writes the final list with the
// message mapping.
func (p *SendProgress) merge(resp *MatrixMessageResponse) []SentMessage {
	p.mu.Lock()
	defer p.mu.Unlock()
	if resp != nil {
		for _, m := range resp.Messages {
			if !slices.ContainsFunc(p.sent, func(s SentMessage) bool { return s.ID == m.ID && s.PartID == m.PartID }) {
				p.sent = append(p.sent, m)
			}
		}
	}
	return slices.Clone(p.sent)
}

// MatrixMessage is a Matrix message for the remote network.
type MatrixMessage struct {
	Outgoing
	Content *event.MessageEventContent
	// ReplyTo is the mapping of the message being replied to, if any.
	ReplyTo *database.Message
	// Relay is set when the sender has no login of their own and the
	// message goes through the portal's relay login.
	Relay *RelaySender
}

// RelaySender describes the real Matrix sender of a relayed message.
type RelaySender struct {
	UserID      string
	DisplayName string
	// Formatted is the relay prefix already rendered from the config's
	// template, e.g. "Alice: ".
	Formatted string
}

// SentMessage is one remote message that a Matrix event became.
type SentMessage struct {
	ID        networkid.MessageID
	PartID    networkid.PartID
	Timestamp time.Time
	Metadata  any
}

// MatrixMessageResponse lists the remote messages a Matrix message became;
// usually one, several when a long text was split. Messages already
// recorded with Progress.Record may be left out.
type MatrixMessageResponse struct {
	Messages []SentMessage
	// DeliveryReported says the network will later report delivery (via
	// RemoteDeliveryStatus events), so clients should expect a delivered
	// status.
	DeliveryReported bool
}

// MatrixEdit is an edit of a bridged message.
type MatrixEdit struct {
	Outgoing
	NewContent *event.MessageEventContent
	Target     *database.Message
}

// MatrixReaction is a reaction to a bridged message.
type MatrixReaction struct {
	Outgoing
	Emoji  string
	Target *database.Message
}

// MatrixReactionResponse tells the core how to key the stored reaction.
type MatrixReactionResponse struct {
	EmojiID networkid.EmojiID
}

// MatrixReactionRemove is the redaction of a bridged reaction.
type MatrixReactionRemove struct {
	Outgoing
	Target *database.Reaction
}

// MatrixRedaction is the redaction of a bridged message.
type MatrixRedaction struct {
	Outgoing
	Target *database.Message
}

// MatrixReadReceipt says the user read up to Target.
type MatrixReadReceipt struct {
	EventID string
	Target  *database.Message
	Portal  *Portal
	Login   *UserLogin
}

// MatrixTyping says whether the user is typing in the portal.
type MatrixTyping struct {
	IsTyping bool
	Portal   *Portal
	Login    *UserLogin
}

// ResolvedIdentifier is what ResolveIdentifier found.
type ResolvedIdentifier struct {
	UserID   networkid.UserID
	UserInfo *UserInfo
	// Chat is the DM with that user as seen by the login.
	Chat networkid.PortalKey
	// ChatInfo describes the chat, if known without another request.
	ChatInfo *ChatInfo
	// Notice is a sentence for the user about the contact, such as a
	// warning that they probably cannot receive messages; start-chat
	// shows it after opening the chat. Empty for none.
	Notice string
}

// ChatInfo describes a remote chat. Nil fields are unknown and left alone.
type ChatInfo struct {
	Name   *string `json:"name,omitempty"`
	Topic  *string `json:"topic,omitempty"`
	Avatar *Avatar `json:"avatar,omitempty"`
	// IsDM marks a one-to-one chat with OtherUser.
	IsDM      bool             `json:"is_dm,omitempty"`
	OtherUser networkid.UserID `json:"other_user,omitempty"`
	// Members lists the remote participants of a group chat, all of them:
	// their ghosts join the room when it is created, and when a
	// RemoteChatInfo event (or a message) carries the list, the room's
	// ghosts become exactly these. Nil leaves membership alone.
	Members []networkid.UserID `json:"members"`
}

// UserInfo describes a remote contact. Nil fields are unknown.
type UserInfo struct {
	Name   *string `json:"name,omitempty"`
	Avatar *Avatar `json:"avatar,omitempty"`
	// Identifiers are human identifiers such as "tel:+14155550100".
	Identifiers []string `json:"identifiers,omitempty"`
}

// Avatar is a remote avatar. ID changes whenever the picture does.
type Avatar struct {
	ID     networkid.AvatarID `json:"id"`
	Media  *MediaRef          `json:"media,omitempty"`
	Remove bool               `json:"remove,omitempty"`
}

// Ptr returns a pointer to v, for the optional fields of ChatInfo and UserInfo.
func Ptr[T any](v T) *T { return &v }
