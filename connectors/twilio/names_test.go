package twilio

import (
	"encoding/json"
	"testing"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
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

// roomName is the room's current name: its latest m.room.name, else the
// name it was created with.
func (e *env) roomName(room id.RoomID) string {
	name := e.fakeRoom(room).Request.Name
	for _, evt := range e.h.Matrix.Events(room) {
		if evt.Type != event.StateRoomName {
			continue
		}
		// The user's own events are stored as raw JSON only.
		var content event.RoomNameEventContent
		if err := json.Unmarshal(evt.Content.VeryRaw, &content); err != nil {
			e.t.Fatalf("m.room.name %s: %v", evt.ID, err)
		}
		name = content.Name
	}
	return name
}

func TestARoomNameTheUserTypedSurvivesTextsCatchUpAndResync(t *testing.T) {
	e := newEnv(t, envOptions{network: "reconcile_interval: 1s\n"})
	room := e.chat()
	ghost := e.ghost(theirNumber)
	e.h.SendMatrix(alice, room, event.StateRoomName, &event.RoomNameEventContent{Name: "Bob from work"})
	e.eventually("the rename", func() bool { return e.displayName(ghost) == "Bob from work" })

	e.inbound(theirNumber, "a text by webhook")
	e.h.WaitForText(room, ghost, "a text by webhook")
	hole := e.sim.BlackHoleWebhooks()
	e.sendLost("a text by catch-up")
	hole.Remove()
	e.h.WaitForText(room, ghost, "a text by catch-up")
	if got := e.roomName(room); got != "Bob from work" {
		t.Fatalf("after texts the room is called %q", got)
	}

	// An admin's resync repairs a room from the chat's info, which names
	// the chat after the number; the user's name stays.
	portal, err := e.h.Bridge().GetPortalByRoom(e.ctx(), room)
	if err != nil {
		t.Fatal(err)
	}
	if err := portal.Resync(e.ctx()); err != nil {
		t.Fatal(err)
	}
	if got := e.roomName(room); got != "Bob from work" {
		t.Fatalf("after a resync the room is called %q", got)
	}
}
