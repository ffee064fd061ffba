package bridgev2

// This file is the whole contract between the core and a network
// connector. A connector that only sends and receives text implements the
// six methods of NetworkConnector and NetworkClient; everything else is an
// optional interface below, which the core discovers by type assertion and
// for which it has a sensible default.

import (
	"context"
	"io"
	"net/http"
	"time"

	"github.com/trestle-bridge/trestle/bridgev2/bridgeconfig"
	"github.com/trestle-bridge/trestle/bridgev2/database"
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
	// Init hands the connector the bridge, once, before any login is
	// loaded. The connector keeps it to look up logins and portals.
	Init(b *Bridge) error
	// LoginFlows lists the ways to log in, in preference order.
	LoginFlows() []LoginFlow
	// CreateLogin starts a login process for user with one of LoginFlows.
	CreateLogin(ctx context.Context, user *User, flowID string) (LoginProcess, error)
	// LoadLogin turns a stored login into a client. It must not do network
	// I/O; the core connects the client afterwards (see Connectable).
	LoadLogin(ctx context.Context, login *UserLogin) (NetworkClient, error)
}

// NetworkClient is one live remote account. The core calls it from portal
// workers, so it must be safe for concurrent use across portals.
type NetworkClient interface {
	// HandleMatrixMessage sends a Matrix message to the remote chat. Return
	// a classified *Error on failure (see errors.go): the core decides
	// whether and when to try again, so a connector never loops itself.
	HandleMatrixMessage(ctx context.Context, msg *MatrixMessage) (*MatrixMessageResponse, error)
}

// Optional capabilities of a NetworkConnector.

// ConfigProvider is a connector with a config section. Config returns a
// pointer that the config's "network" section is decoded into, strictly,
// before Init: it should already hold the defaults.
type ConfigProvider interface {
	Config() any
}

// ConfigValidator is a connector whose config section can be checked at
// start-up, so a bad value fails fast with the key's name.
type ConfigValidator interface {
	ValidateConfig() error
}

// MetaTypesProvider is a connector that stores typed metadata on logins,
// portals, ghosts or messages. Without it, metadata comes back as
// map[string]any.
type MetaTypesProvider interface {
	DBMetaTypes() database.MetaTypes
}

// HTTPHandlerProvider is a connector that receives HTTP requests from its
// network (webhooks). The handler is mounted at Bridge.NetworkPathPrefix
// (/_trestle/<network ID>/) on the bridge's listener, with the full path
// left intact; Bridge.NetworkPublicURL gives the public URL of such a path.
type HTTPHandlerProvider interface {
	HTTPHandler() http.Handler
}

// Optional capabilities of a NetworkClient. Where a client lacks one that
// a Matrix user's action needs (an edit, a reaction), the core tells the
// user it is not supported on this network.

// Connectable is a client that keeps a connection or a background loop.
// Connect starts receiving (verifies credentials, catches up on what was
// missed) and must not block on the network: it reports trouble through
// UserLogin.SetState. Without it, a login is connected as soon as it is
// loaded.
type Connectable interface {
	Connect(ctx context.Context)
	// Disconnect stops receiving; the login stays stored.
	Disconnect()
}

// RemoteLogouter is a client that set something up on the remote side (for
// Twilio: the number's webhook) to undo before its login is deleted.
type RemoteLogouter interface {
	LogoutRemote(ctx context.Context)
}

// IdentifierResolver is a client that can start chats: it turns something
// a user typed (a phone number, a username) into a remote user and the
// chat with them. Without it, start-chat says the network cannot.
type IdentifierResolver interface {
	ResolveIdentifier(ctx context.Context, identifier string) (*ResolvedIdentifier, error)
}

// ChatInfoProvider is a client that can describe a chat when its portal
// room is created and the event that created it carried no ChatInfo.
// Without it, the room is a DM with the event's sender.
type ChatInfoProvider interface {
	GetChatInfo(ctx context.Context, portal *Portal) (*ChatInfo, error)
}

// UserInfoProvider is a client that can describe a contact the first time
// this process sees its ghost (unless an event's EventSender.Info already
// did). Without it, a ghost is named after its remote user ID.
type UserInfoProvider interface {
	GetUserInfo(ctx context.Context, ghost *Ghost) (*UserInfo, error)
}

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

// SendReconciler is a client that can tell whether a send the core could
// not confirm (the bridge crashed mid-send, or an attempt failed with an
// Error marked MayHaveSent) reached the remote network, so that it is not
// repeated. The core asks before every such retry, for every kind of
// Outgoing event.
type SendReconciler interface {
	// FindSent looks on the remote network for what earlier attempts at
	// out (a *MatrixMessage, *MatrixEdit, *MatrixReaction,
	// *MatrixReactionRemove, *MatrixRedaction or *MatrixMembership)
	// created since the given time, beyond what out's Progress already
	// lists, and records each
	// remote message it finds with Progress.Record. It reports whether the
	// send is complete; if not, the core sends again and the connector
	// resumes after the recorded parts.
	FindSent(ctx context.Context, out OutgoingEvent, since time.Time) (complete bool, err error)
}

// GroupCreator is a client that can start group chats: it creates the
// chat on the remote network with the users a Matrix user named and says
// what the chat is, so that the core can make its room with their ghosts.
// start-chat with several identifiers and the provisioning API's
// create_group use it; without it, they say the network cannot.
type GroupCreator interface {
	CreateGroup(ctx context.Context, params *GroupParams) (*CreatedGroup, error)
}

// MembershipHandler is a client that can add remote users to a group chat
// and remove them, when a Matrix user invites or kicks their ghosts in the
// group's portal room. Without it, such invites are declined and kicks
// undone, with a notice that the network cannot.
type MembershipHandler interface {
	HandleMatrixMembership(ctx context.Context, change *MatrixMembership) error
}

// ContactLister is a client that can list the user's remote contacts.
type ContactLister interface {
	GetContacts(ctx context.Context) ([]*ResolvedIdentifier, error)
}

// ConfigureNetwork decodes the config's network section into the
// connector's config (if it has one) and validates it, naming the key of a
// bad value. bridgemain calls it before the bridge is built.
func ConfigureNetwork(cfg *bridgeconfig.Config, connector NetworkConnector) error {
	if p, ok := connector.(ConfigProvider); ok {
		if err := bridgeconfig.DecodeNetwork(cfg.Network, p.Config()); err != nil {
			return err
		}
	}
	if v, ok := connector.(ConfigValidator); ok {
		return v.ValidateConfig()
	}
	return nil
}

// MetaTypesOf returns the connector's metadata types, or none.
func MetaTypesOf(connector NetworkConnector) database.MetaTypes {
	if p, ok := connector.(MetaTypesProvider); ok {
		return p.DBMetaTypes()
	}
	return database.MetaTypes{}
}
