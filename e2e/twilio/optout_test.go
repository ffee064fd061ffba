package twilio_test

import (
	"strings"
	"testing"

	"maunium.net/go/mautrix/event"

	"github.com/trestle-bridge/trestle/connectors/twilio/twiliosim"
)

func TestAContactWhoTextsStopGetsNoRepliesUntilStartAndTheRoomSaysWhy(t *testing.T) {
	alice := newPerson(t)
	alice.login("")
	bob := uniqueNumber()
	room := alice.chatWith(bob)

	alice.textFrom(bob, "STOP")
	notice := alice.WaitForMessage(room, ghost(bob), "replied STOP")
	if c := notice.Content.AsMessage(); c.MsgType != event.MsgNotice || !strings.Contains(c.Body, "until they send START") {
		t.Errorf("the room says %q (%s), want a notice that Twilio blocks texts until START", c.Body, c.MsgType)
	}
	sent := alice.Send(room, "Sorry to bother you")
	st := alice.waitStatus(room, sent, func(c *event.BeeperMessageStatusEventContent) bool { return c.Status == event.MessageStatusFail })
	if !strings.Contains(st.Message, "replied STOP") {
		t.Errorf("the refused reply says %q, want the reason", st.Message)
	}

	alice.textFrom(bob, "START")
	alice.WaitForMessage(room, ghost(bob), "sent START")
	alice.Send(room, "Welcome back")
	out := waitOutbound(t, func(m twiliosim.OutboundMessage) bool { return m.To == bob && m.Body == "Welcome back" })
	for _, m := range env.Sim.Outbound() {
		if m.To == bob && m.Body == "Sorry to bother you" {
			t.Errorf("the reply to an opted-out contact reached Twilio: %+v", m)
		}
	}
	if out.From != alice.Number {
		t.Errorf("the reply after START went from %s", out.From)
	}
}
