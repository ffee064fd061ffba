package e2ee_test

import (
	"testing"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// Element turns encryption on by sending m.room.encryption from a room's
// settings, and renames a room with m.room.name; Dendrite refuses either
// when the room's power levels ask more of the user than they have. In a
// portal the user may do both (renaming a DM names the contact).
func TestThePortalsUserMayTurnEncryptionOnAndRenameIt(t *testing.T) {
	alice := newPerson(t)
	bob := uniqueNumber()
	room := alice.portalWith(bob)
	// The portal is encrypted already (encryption.default), and Dendrite
	// takes an unchanged state event without checking; the rotation
	// period (Megolm's usual 100 messages) makes it a change.
	if _, err := alice.Matrix.SendStateEvent(ctx(t), room, event.StateEncryption, "",
		&event.EncryptionEventContent{Algorithm: id.AlgorithmMegolmV1, RotationPeriodMessages: 100}); err != nil {
		t.Fatalf("Dendrite refused the user's m.room.encryption in their portal: %v", err)
	}
	if _, err := alice.Matrix.SendStateEvent(ctx(t), room, event.StateRoomName, "",
		&event.RoomNameEventContent{Name: "Bob from the bakery"}); err != nil {
		t.Fatalf("Dendrite refused the user's m.room.name in their DM portal: %v", err)
	}
	alice.textFrom(bob, "still encrypted")
	mustBeEncrypted(t, alice.WaitForMessage(room, ghost(bob), "still encrypted"))
}
