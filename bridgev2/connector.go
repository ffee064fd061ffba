package bridgev2

import (
	"context"
	"io"
	"net/http"
	"time"

	"maunium.net/go/mautrix/event"

	"github.com/trestle-bridge/trestle/bridgev2/database"
	"github.com/trestle-bridge/trestle/bridgev2/networkid"
)

// NetworkInfo describes a remote network to users and to Matrix clients.
type NetworkInfo struct {
	// DisplayName is the human name ("Twilio SMS").
	DisplayName string
	// ID is a short lowercase identifier ("twilio"), used in m.bridge state,
	// in URL paths and as the default command prefix.
	ID string
	// URL is the network's home page.
	URL string
	// DefaultUsernameTemplate is the ghost localpart template suggested for
	// new configs, e.g. "twilio_{{.}}".
	DefaultUsernameTemplate string
}

// NetworkConnector is what a network package provides: one value per bridge
// process. It knows its network and nothing about Matrix.
type NetworkConnector interface {
	// Info describes the network.
	Info() NetworkInfo
	// Config returns a pointer that the config's "network" section is
	// decoded into before Init.
	Config() any
	// DBMetaTypes declares the connector's metadata types for stored rows.
	DBMetaTypes() database.MetaTypes
	// Init hands the connector the bridge, once, before any login is loaded.
	// The connector keeps it to hand remote events in and to look up logins.
	Init(b *Bridge) error
	// LoginFlows lists the ways to log in, in preference order.
	LoginFlows() []LoginFlow
	// CreateLogin starts a login process for user with one of LoginFlows.
	CreateLogin(ctx context.Context, user *User, flowID string) (LoginProcess, error)
	// LoadLogin turns a stored login into a client. It must not do network
	// I/O; the core calls Connect on the client afterwards.
	LoadLogin(ctx context.Context, login *UserLogin) (NetworkClient, error)
}

// NetworkClient is one live remote account. The core calls it from portal
// workers, so it must be safe for concurrent use across portals.
type NetworkClient interface {
	// Connect starts receiving for this login (verifies credentials, catches
	// up on what was missed). It reports problems through the login's bridge
	// state rather than by blocking.
	Connect(ctx context.Context)
	// Disconnect stops receiving; the login stays stored.
	Disconnect()
	// LogoutRemote undoes what the login set up on the remote side (for
	// Twilio: the webhook) before the login is deleted.
	LogoutRemote(ctx context.Context)
	// HandleMatrixMessage sends a Matrix message to the remote chat.
	HandleMatrixMessage(ctx context.Context, msg *MatrixMessage) (*MatrixMessageResponse, error)
	// ResolveIdentifier turns something a user typed (a phone number, a
	// username) into a remote user and the chat with them.
	ResolveIdentifier(ctx context.Context, identifier string) (*ResolvedIdentifier, error)
	// GetChatInfo returns the current info of a chat.
	GetChatInfo(ctx context.Context, portal *Portal) (*ChatInfo, error)
	// GetUserInfo returns the current profile of a remote contact.
	GetUserInfo(ctx context.Context, ghost *Ghost) (*UserInfo, error)
}

// The optional capabilities below are discovered by type assertion on the
// NetworkClient (or, for HTTPHandlerProvider, the NetworkConnector). Where a
// client lacks one, the core tells the Matrix user the action is not
// supported on this network.

// EditHandler is a client that can edit sent messages.
type EditHandler interface {
	HandleMatrixEdit(ctx context.Context, edit *MatrixEdit) error
}

// ReactionHandler is a client that can react to messages.
type ReactionHandler interface {
	HandleMatrixReaction(ctx context.Context, reaction *MatrixReaction) (*MatrixReactionResponse, error)
	HandleMatrixReactionRemove(ctx context.Context, removal *MatrixReactionRemove) error
}

// RedactionHandler is a client that can delete messages.
type RedactionHandler interface {
	HandleMatrixRedaction(ctx context.Context, redaction *MatrixRedaction) error
}

// ReadReceiptHandler is a client that can mark chats as read.
type ReadReceiptHandler interface {
	HandleMatrixReadReceipt(ctx context.Context, receipt *MatrixReadReceipt) error
}

// TypingHandler is a client that can send typing notifications.
type TypingHandler interface {
	HandleMatrixTyping(ctx context.Context, typing *MatrixTyping) error
}

// Backfiller is a client that can fetch chat history, imported when a
// portal's room is created, before the event that created it.
type Backfiller interface {
	// FetchHistory returns the newest messages of the chat, oldest first,
	// as many as the connector's config allows.
	FetchHistory(ctx context.Context, portal *Portal) ([]*RemoteEvent, error)
}

// MediaDownloader is a client that can fetch media its remote events refer
// to. Remote events carry a MediaRef rather than bytes so that the journal
// stays small; the core downloads when it delivers the event.
type MediaDownloader interface {
	DownloadMedia(ctx context.Context, ref *MediaRef) (io.ReadCloser, *MediaInfo, error)
}

// SendReconciler is a client that can tell whether a send interrupted by a
// crash reached the remote network, so that it is not repeated.
type SendReconciler interface {
	// FindSent looks for the message sent for msg (which carries the same
	// SendToken as the interrupted attempt). It returns nil if there is none.
	FindSent(ctx context.Context, msg *MatrixMessage, since time.Time) (*MatrixMessageResponse, error)
}

// ContactLister is a client that can list the user's remote contacts.
type ContactLister interface {
	GetContacts(ctx context.Context) ([]*ResolvedIdentifier, error)
}

// HTTPHandlerProvider is a connector that receives HTTP requests from its
// network (webhooks). The core mounts the handler at /_trestle/<network ID>/
// on the appservice listener, with the full path left intact;
// Bridge.NetworkPublicURL gives the public URL of such a path.
type HTTPHandlerProvider interface {
	HTTPHandler() http.Handler
}

// ConfigValidator is a connector whose config section can be checked at
// start-up, so a bad value fails fast with the key's name.
type ConfigValidator interface {
	ValidateConfig() error
}

// MatrixMessage is a Matrix message for the remote network.
type MatrixMessage struct {
	Event   *event.Event
	Content *event.MessageEventContent
	Portal  *Portal
	Login   *UserLogin
	// ReplyTo is the mapping of the message being replied to, if any.
	ReplyTo *database.Message
	// SendToken is unique to this Matrix event and stable across retries;
	// connectors attach it to the remote send when they can (see
	// SendReconciler).
	SendToken string
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
// usually one, several when a long text was split.
type MatrixMessageResponse struct {
	Messages []SentMessage
	// DeliveryReported says the network will later report delivery (via
	// RemoteDeliveryStatus events), so clients should expect a delivered
	// status.
	DeliveryReported bool
}

// MatrixEdit is an edit of a bridged message.
type MatrixEdit struct {
	Event      *event.Event
	NewContent *event.MessageEventContent
	Target     *database.Message
	Portal     *Portal
	Login      *UserLogin
}

// MatrixReaction is a reaction to a bridged message.
type MatrixReaction struct {
	Event  *event.Event
	Emoji  string
	Target *database.Message
	Portal *Portal
	Login  *UserLogin
}

// MatrixReactionResponse tells the core how to key the stored reaction.
type MatrixReactionResponse struct {
	EmojiID networkid.EmojiID
}

// MatrixReactionRemove is the redaction of a bridged reaction.
type MatrixReactionRemove struct {
	Event  *event.Event
	Target *database.Reaction
	Portal *Portal
	Login  *UserLogin
}

// MatrixRedaction is the redaction of a bridged message.
type MatrixRedaction struct {
	Event  *event.Event
	Target *database.Message
	Portal *Portal
	Login  *UserLogin
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
}

// ChatInfo describes a remote chat. Nil fields are unknown and left alone.
type ChatInfo struct {
	Name   *string `json:"name,omitempty"`
	Topic  *string `json:"topic,omitempty"`
	Avatar *Avatar `json:"avatar,omitempty"`
	// IsDM marks a one-to-one chat with OtherUser.
	IsDM      bool             `json:"is_dm,omitempty"`
	OtherUser networkid.UserID `json:"other_user,omitempty"`
	// Members lists remote participants of a group chat.
	Members []networkid.UserID `json:"members,omitempty"`
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
