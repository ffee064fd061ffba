// Package networkid holds the typed identifiers that the core and network
// connectors exchange. Each is a distinct string type so that a remote user ID
// can never be passed where a message ID is expected.
package networkid

// PortalID identifies a chat on the remote network (for SMS: the other phone
// number). It is only unique together with a receiver, see PortalKey.
type PortalID string

// UserID identifies a contact on the remote network.
type UserID string

// UserLoginID identifies one remote account that a Matrix user logged in with
// (for Twilio: the sending number or messaging service).
type UserLoginID string

// MessageID identifies a message on the remote network.
type MessageID string

// PartID identifies one part of a remote message that became several Matrix
// events (an MMS with two pictures), or one of several remote messages that a
// single Matrix event was split into. The empty PartID is the first part.
type PartID string

// EmojiID identifies a reaction on networks that key reactions by something
// other than the emoji itself. Most connectors leave it empty.
type EmojiID string

// AvatarID identifies a remote avatar so the core can tell when it changed
// without downloading it again.
type AvatarID string

// PortalKey is the primary key of a portal: the remote chat, and the login
// through which it is seen. SMS chats are private to the receiving number, so
// the Twilio connector always sets Receiver.
type PortalKey struct {
	ID       PortalID    `json:"id"`
	Receiver UserLoginID `json:"receiver,omitempty"`
}

// String formats the key for logs.
func (pk PortalKey) String() string {
	if pk.Receiver == "" {
		return string(pk.ID)
	}
	return string(pk.ID) + "/" + string(pk.Receiver)
}
