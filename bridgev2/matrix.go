package bridgev2

import (
	"context"
	"io"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/bridgev2/networkid"
)

// Matrix is the homeserver as the core uses it: acting as the bridge bot or
// as any ghost in the appservice's namespace. Package bridgev2/matrix
// implements it over the client-server API; every method is idempotent
// where the homeserver allows it, so the core can retry freely.
type Matrix interface {
	// BotUserID is the bridge bot's Matrix ID.
	BotUserID() id.UserID
	// GhostUserID is the Matrix ID of a remote user's ghost.
	GhostUserID(user networkid.UserID) id.UserID
	// ParseGhostUserID reverses GhostUserID; ok is false for IDs outside
	// the ghost namespace.
	ParseGhostUserID(userID id.UserID) (user networkid.UserID, ok bool)
	// ServerName is the homeserver's domain.
	ServerName() string

	// EnsureRegistered registers an appservice user if it does not exist.
	EnsureRegistered(ctx context.Context, userID id.UserID) error
	// SetProfile sets a bridge user's displayname and avatar; empty values
	// are left alone.
	SetProfile(ctx context.Context, userID id.UserID, displayName string, avatar id.ContentURIString) error

	// CreateRoom creates a room as the given user.
	CreateRoom(ctx context.Context, as id.UserID, req *mautrix.ReqCreateRoom) (id.RoomID, error)
	// JoinRoom joins as the given user; joining twice is not an error.
	JoinRoom(ctx context.Context, as id.UserID, roomID id.RoomID) error
	// InviteUser invites target as the given user; inviting a member is not
	// an error.
	InviteUser(ctx context.Context, as id.UserID, roomID id.RoomID, target id.UserID) error
	// LeaveRoom leaves as the given user.
	LeaveRoom(ctx context.Context, as id.UserID, roomID id.RoomID) error

	// SendMessage sends a timeline event. txnID makes the send idempotent:
	// the same txnID from the same user yields the same event. A non-zero
	// ts asks the homeserver to backdate the event (appservices only).
	SendMessage(ctx context.Context, as id.UserID, roomID id.RoomID, evtType event.Type, content any, txnID string, ts time.Time) (id.EventID, error)
	// SendState sets a state event.
	SendState(ctx context.Context, as id.UserID, roomID id.RoomID, evtType event.Type, stateKey string, content any) (id.EventID, error)
	// Redact redacts an event, idempotently by txnID.
	Redact(ctx context.Context, as id.UserID, roomID id.RoomID, target id.EventID, reason, txnID string) (id.EventID, error)
	// MarkRead sends a read receipt.
	MarkRead(ctx context.Context, as id.UserID, roomID id.RoomID, eventID id.EventID) error
	// SetTyping sets or clears a typing notification.
	SetTyping(ctx context.Context, as id.UserID, roomID id.RoomID, timeout time.Duration) error

	// Upload stores media on the homeserver.
	Upload(ctx context.Context, as id.UserID, data io.Reader, size int64, mimeType, filename string) (id.ContentURIString, error)
	// Download fetches media from the homeserver; the caller closes the body.
	Download(ctx context.Context, uri id.ContentURIString) (io.ReadCloser, *MediaInfo, error)
	// Ping checks that the homeserver answers, for readiness probes.
	Ping(ctx context.Context) error
}

// TxnMarkerKey is the content key under which the core stores the
// transaction ID of every message it bridges into Matrix, so that a send
// whose answer was lost can be recognised in the room afterwards.
const TxnMarkerKey = "net.trestle.txn_id"

// EventFinder is implemented by Matrix sides that can look through a room's
// recent timeline. The core uses it before repeating a send that may have
// reached the homeserver without its answer reaching the bridge (the bridge
// was killed mid-request, or the homeserver died while answering):
// transaction-ID deduplication only covers a request whose answer the
// homeserver finished, and only until it restarts.
type EventFinder interface {
	// FindSent returns the ID of the event among the newest limit events
	// of the room whose content carries TxnMarkerKey = txnID, or "" if
	// there is none.
	FindSent(ctx context.Context, roomID id.RoomID, txnID string, limit int) (id.EventID, error)
}
