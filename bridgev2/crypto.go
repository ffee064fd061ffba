package bridgev2

import (
	"context"
	"io"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/bridgev2/database"
)

// Crypto is end-to-bridge encryption as the core uses it; package
// bridgev2/e2ee implements it. Options.Crypto is nil unless
// encryption.allow is on, and encrypted events are then refused with a
// notice. Encrypting what the bridge sends is the Matrix side's business
// (e2ee wraps the Matrix interface), so only the receiving half is here.
type Crypto interface {
	// Decrypt returns the decrypted form of an m.room.encrypted event and
	// the seal that must commit before the event has any effect outside the
	// bridge. When its keys have not arrived it waits a bounded time, asks
	// the sender's devices for them, and then gives up with an error whose
	// message says what happened.
	Decrypt(ctx context.Context, evt *event.Event) (*event.Event, Seal, error)
	// IsEncrypted reports whether a room has encryption turned on.
	IsEncrypted(ctx context.Context, roomID id.RoomID) (bool, error)
	// HandleRoomEvent shows the crypto side a state event of a room
	// (encryption, membership, history visibility) from a transaction.
	HandleRoomEvent(ctx context.Context, evt *event.Event)
	// DecryptMedia wraps the body of a downloaded file in its decryption if
	// the file was sent encrypted; ok is false for plain files.
	DecryptMedia(ctx context.Context, uri id.ContentURIString, body io.ReadCloser) (out io.ReadCloser, ok bool, err error)
}

// A Seal writes the crypto state a decryption left uncommitted: the replay
// guard's record of the event's Megolm message index and the key of a file
// it carries. The core runs it in the transaction of the event's next
// journal change (see writeOutbound), which always comes before the event
// reaches the remote network, so the record is durable before anything a
// replay could repeat, without a commit of its own. A nil Seal writes
// nothing.
type Seal func(ctx context.Context, tx database.Execer) error

// isCryptoState reports whether the crypto side wants to see an event.
func isCryptoState(t event.Type) bool {
	return t == event.StateEncryption || t == event.StateMember || t == event.StateHistoryVisibility
}

// encryptionInitialState is the m.room.encryption state of new portals
// when encryption.default is on.
func encryptionInitialState() *event.Event {
	return &event.Event{Type: event.StateEncryption, StateKey: ptr(""), Content: event.Content{Parsed: &event.EncryptionEventContent{
		Algorithm: id.AlgorithmMegolmV1,
	}}}
}
