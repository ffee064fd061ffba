package bridgev2

import (
	"encoding/json"
	"time"

	"maunium.net/go/mautrix/event"

	"github.com/trestle-bridge/trestle/bridgev2/database"
	"github.com/trestle-bridge/trestle/bridgev2/networkid"
)

// RemoteEventKind says what happened on the remote network.
type RemoteEventKind string

// Remote event kinds.
const (
	RemoteMessage        RemoteEventKind = "message"
	RemoteEdit           RemoteEventKind = "edit"
	RemoteReaction       RemoteEventKind = "reaction"
	RemoteReactionRemove RemoteEventKind = "reaction_remove"
	RemoteDelete         RemoteEventKind = "delete"
	RemoteReadReceipt    RemoteEventKind = "read_receipt"
	RemoteDeliveryStatus RemoteEventKind = "delivery_status"
	RemoteTyping         RemoteEventKind = "typing"
	RemoteChatInfo       RemoteEventKind = "chat_info"
)

// RemoteEvent is something that happened on the remote network, handed to
// the core by a connector with UserLogin.Ingest. It is plain data, because
// the core journals it in the database before the connector acknowledges it
// to the network, and delivers it to Matrix from there, possibly after a
// restart.
type RemoteEvent struct {
	Kind   RemoteEventKind     `json:"kind"`
	Portal networkid.PortalKey `json:"portal"`
	Sender EventSender         `json:"sender"`
	// ID is the remote ID of this event: the message ID for messages, and
	// for other kinds an ID unique to the event if the network has one. The
	// core drops a second event with the same kind and ID.
	ID        networkid.MessageID `json:"id,omitempty"`
	Timestamp time.Time           `json:"ts"`

	// Target is the message an edit, reaction, deletion, read receipt or
	// delivery status refers to.
	Target networkid.MessageID `json:"target,omitempty"`
	// TargetPart narrows Target to one part; empty means the first part
	// (reactions) or all parts (edits, deletions).
	TargetPart *networkid.PartID `json:"target_part,omitempty"`

	// Parts are the content of a message or the new content of an edit.
	Parts []MessagePart `json:"parts,omitempty"`
	// ReplyTo is the remote message this one replies to.
	ReplyTo networkid.MessageID `json:"reply_to,omitempty"`

	// Emoji and EmojiID describe a reaction or reaction removal.
	Emoji   string            `json:"emoji,omitempty"`
	EmojiID networkid.EmojiID `json:"emoji_id,omitempty"`

	// Status is the delivery report of a message the user sent.
	Status *DeliveryStatus `json:"status,omitempty"`
	// ChatInfo is the new info of the chat (RemoteChatInfo), or on a
	// message the chat as the network describes it now: the info to create
	// the room with if the message creates it, and otherwise applied to the
	// room where its name, topic or avatar changed.
	ChatInfo *ChatInfo `json:"chat_info,omitempty"`
	// Typing is how long the sender will keep typing; zero means stopped.
	Typing time.Duration `json:"typing,omitempty"`

	// NoRoomCreation stops a message from creating the portal's room; such
	// events for a portal without a room fail instead of creating one.
	NoRoomCreation bool `json:"no_room_creation,omitempty"`
}

// EventSender says who caused a remote event.
type EventSender struct {
	// Sender is the remote user; for IsFromMe events, the login's own
	// remote identity.
	Sender networkid.UserID `json:"sender,omitempty"`
	// IsFromMe marks events the logged-in account itself caused elsewhere
	// (sent from another device or console).
	IsFromMe bool `json:"is_from_me,omitempty"`
	// Info, if the network tells who the sender is along with the event
	// (a display name in a webhook), updates the sender's ghost when it
	// differs from what the ghost shows.
	Info *UserInfo `json:"info,omitempty"`
}

// MessagePart is one Matrix event of a remote message.
type MessagePart struct {
	ID networkid.PartID `json:"id,omitempty"`
	// Type is m.text, m.notice or m.emote for text parts. Media parts may
	// leave it empty: the core picks m.image/m.video/m.audio/m.file from
	// the media's MIME type.
	Type event.MessageType `json:"type,omitempty"`
	Text string            `json:"text,omitempty"`
	// HTML is an optional formatted version of Text.
	HTML  string    `json:"html,omitempty"`
	Media *MediaRef `json:"media,omitempty"`
	// GeoURI makes an m.location part ("geo:52.37,4.90"); Text describes
	// the place.
	GeoURI string `json:"geo_uri,omitempty"`
	// Metadata is the connector's metadata for the stored message row,
	// decoded with its DBMetaTypes().Message type.
	Metadata json.RawMessage `json:"metadata,omitempty"`
}

// MediaRef locates remote media for the connector's MediaDownloader. URL is
// whatever the connector needs; the core never fetches it itself.
type MediaRef struct {
	URL      string `json:"url"`
	MimeType string `json:"mime_type,omitempty"`
	Filename string `json:"filename,omitempty"`
	Size     int64  `json:"size,omitempty"`
}

// MediaInfo describes downloaded media.
type MediaInfo struct {
	MimeType string
	Filename string
	// Size is the length in bytes, or -1 if unknown until read.
	Size int64
}

// DeliveryStatus reports what became of a message a Matrix user sent.
type DeliveryStatus struct {
	State database.Delivery `json:"state"`
	// Message is a human sentence for failures ("The recipient has
	// unsubscribed (replied STOP)"), or, with delivered and read, a note
	// shown in the sender's message status ("Sent over RCS.").
	Message string `json:"message,omitempty"`
	// Code is the network's error code, for logs and bug reports.
	Code string `json:"code,omitempty"`
	// SendToken identifies the send when the network echoes it back (a
	// status callback URL), for reports that arrive before the send's
	// response was recorded.
	SendToken string `json:"send_token,omitempty"`
}

// dedupKey is the journal's key for recognising a replayed event. Events
// without an ID cannot be recognised and get none.
func (e *RemoteEvent) dedupKey() string {
	switch {
	case e.Kind == RemoteDeliveryStatus && e.Status != nil:
		return "status:" + string(e.Target) + ":" + string(e.Status.State)
	case e.ID != "":
		return string(e.Kind) + ":" + string(e.ID)
	default:
		return ""
	}
}
