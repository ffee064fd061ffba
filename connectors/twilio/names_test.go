package twilio

import (
	"testing"

	"maunium.net/go/mautrix/event"
)

func TestTheNameTheUserGivesAContactWinsOverTheNumber(t *testing.T) {
	e := newEnv(t, envOptions{})
	room := e.chat()
	ghost := e.ghost(theirNumber)
	displayName := func() string {
		if p := e.h.Matrix.Profile(ghost); p != nil {
			return p.DisplayName
		}
		return ""
	}
	if got := displayName(); got != "+1 415-555-0100" {
		t.Fatalf("the contact is first called %q, want the formatted number", got)
	}

	e.h.SendText(alice, room, "!test set-name Bob Builder")
	e.h.WaitForText(room, e.h.Matrix.BotUserID(), "now called Bob Builder")
	if got := displayName(); got != "Bob Builder" {
		t.Fatalf("after set-name the contact is called %q", got)
	}

	// Renaming the room in a Matrix client names the contact too.
	e.h.SendMatrix(alice, room, event.StateRoomName, &event.RoomNameEventContent{Name: "Bob from work"})
	e.eventually("the rename", func() bool { return displayName() == "Bob from work" })

	// A restarted bridge asks the connector about the contact again; the
	// user's name still wins over the network's.
	e.h.Restart()
	e.waitCaughtUp(e.h.Bridge().GetLogin(ourLoginID), 1)
	e.inbound(theirNumber, "it's me again")
	e.h.WaitForText(room, ghost, "it's me again")
	if got := displayName(); got != "Bob from work" {
		t.Fatalf("after a restart the contact is called %q", got)
	}
}
