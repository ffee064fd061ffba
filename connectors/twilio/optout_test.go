package twilio

import (
	"strings"
	"testing"

	"maunium.net/go/mautrix/event"
)

func TestAContactWhoRepliedStopIsNotTextedUntilStart(t *testing.T) {
	e := newEnv(t, envOptions{})
	room := e.chat()
	ghost := e.ghost(theirNumber)

	e.inbound(theirNumber, "STOP")
	e.h.WaitForText(room, ghost, "replied STOP; Twilio blocks texts to them until they send START")
	// Refused at once, with the reason, and Twilio never asked; also
	// after a restart.
	for _, restart := range []bool{false, true} {
		if restart {
			e.h.Restart()
			e.waitCaughtUp(e.h.Bridge().GetLogin(ourLoginID), 1)
		}
		reply := e.h.SendText(alice, room, "are you there?")
		st := e.h.WaitForStatus(room, reply, event.MessageStatusFail)
		if !strings.Contains(st.Message, "replied STOP") {
			t.Fatalf("the reply failed with %q", st.Message)
		}
	}
	if n := len(e.sim.Outbound()); n != 0 {
		t.Fatalf("%d texts were sent to a contact who opted out", n)
	}

	e.inbound(theirNumber, "start")
	e.h.WaitForText(room, ghost, "sent START")
	e.h.SendText(alice, room, "welcome back")
	if out := e.outbound(1); out[0].Body != "welcome back" {
		t.Fatalf("sent %q", out[0].Body)
	}
}

func TestAStopRecoveredFromTheLogBlocksRepliesToo(t *testing.T) {
	e := newEnv(t, envOptions{})
	room := e.chat()
	hole := e.sim.BlackHoleWebhooks()
	e.sendLost("Stop")
	hole.Remove()
	e.h.Restart()
	e.h.WaitForText(room, e.ghost(theirNumber), "replied STOP")
	reply := e.h.SendText(alice, room, "sorry")
	if st := e.h.WaitForStatus(room, reply, event.MessageStatusFail); !strings.Contains(st.Message, "replied STOP") {
		t.Fatalf("the reply failed with %q", st.Message)
	}
}

func TestOptOutNoticesAreNoticesFromTheContact(t *testing.T) {
	e := newEnv(t, envOptions{})
	room := e.chat()
	e.inbound(theirNumber, "HELP")
	evt := e.h.WaitForText(room, e.ghost(theirNumber), "asked for HELP")
	if c := evt.Content.AsMessage(); c.MsgType != event.MsgNotice {
		t.Fatalf("the notice is a %s", c.MsgType)
	}
}
