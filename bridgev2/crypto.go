package bridgev2

import (
	"context"
	"io"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// Crypto is end-to-bridge encryption as the core uses it; package
// bridgev2/e2ee implements it. Options.Crypto is nil unless
// encryption.allow is on, and encrypted events are then refused with a
// notice. Encrypting what the bridge sends is the Matrix side's business
// (e2ee wraps the Matrix interface), so only the receiving half is here.
type Crypto interface {
	// Decrypt returns the decrypted form of an m.room.encrypted event. When
	// its keys have not arrived it waits a bounded time, asks the sender's
	// devices for them, and then gives up with an error whose message says
	// what happened.
	Decrypt(ctx context.Context, evt *event.Event) (*event.Event, error)
	// IsEncrypted reports whether a room has encryption turned on.
	IsEncrypted(ctx context.Context, roomID id.RoomID) (bool, error)
	// HandleRoomEvent shows the crypto side a state event of a room
	// (encryption, membership, history visibility) from a transaction.
	HandleRoomEvent(ctx context.Context, evt *event.Event)
	// DecryptMedia wraps the body of a downloaded file in its decryption if
	// the file was sent encrypted; ok is false for plain files.
	DecryptMedia(ctx context.Context, uri id.ContentURIString, body io.ReadCloser) (out io.ReadCloser, ok bool, err error)
}

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
