package twilio

import (
	"strings"
	"testing"

	"maunium.net/go/mautrix/event"

	"github.com/trestle-bridge/trestle/connectors/twilio/twiliosim"
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

// Opt-out keywords are Twilio's SMS rule: on WhatsApp "stop" is a word
// like any other, and the chat goes on, also when the text is recovered
// from the log (where the bridge matches keywords itself).
func TestStopOnWhatsAppNeitherNoticesNorBlocks(t *testing.T) {
	e, ul := whatsappEnv(t, envOptions{})
	if _, err := e.sim.SendInbound(e.ctx(), twiliosim.InboundMessage{From: waTheirs, To: waOurs, Body: "STOP", LogOnly: true}); err != nil {
		t.Fatal(err)
	}
	twClient(ul).wake()
	room := e.waRoom()
	e.h.WaitForText(room, e.ghost(theirNumber), "STOP")
	reply := e.h.SendText(alice, room, "stop what?")
	if out := e.outbound(1); out[0].Body != "stop what?" {
		t.Fatalf("sent %q", out[0].Body)
	}
	e.h.WaitForStatus(room, reply, event.MessageStatusSuccess)
	for _, evt := range e.h.Matrix.Events(room) {
		if c, ok := evt.Content.Parsed.(*event.MessageEventContent); ok && strings.Contains(c.Body, "replied STOP") {
			t.Fatalf("a WhatsApp STOP got the SMS opt-out notice %q", c.Body)
		}
	}
}
