package twilio

import (
	"strings"
	"testing"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/bridgev2/networkid"
	"github.com/trestle-bridge/trestle/connectors/twilio/twiliosim"
)

// senderRoom waits for the portal with any kind of sender and joins it.
func (e *env) senderRoom(addr string) id.RoomID {
	e.t.Helper()
	room := e.h.WaitForPortal(networkid.PortalKey{ID: networkid.PortalID(idFromAddr(addr)), Receiver: ourLoginID}, alice)
	e.eventually("portal recorded", func() bool {
		p, err := e.h.Bridge().GetPortalByRoom(e.ctx(), room)
		return err == nil && p != nil
	})
	return room
}

func TestShortCodesSenderIDsAndTollFreeNumbersGetAPortal(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.login()
	const tollFree = "+18005550199"
	texts := map[string]string{
		"12345":  "Your verification code is 482913",
		"GOOGLE": "G-771204 is your Google verification code.",
		tollFree: "Your order has shipped",
	}
	rooms := map[string]id.RoomID{}
	for from, body := range texts {
		e.inbound(from, body)
		rooms[from] = e.senderRoom(from)
		e.h.WaitForText(rooms[from], e.ghost(from), body)
	}
	// The sender ID's room says once, in its topic, that it cannot be
	// answered; a phone number's does not.
	for _, r := range e.h.Matrix.Rooms() {
		switch r.ID {
		case rooms["GOOGLE"]:
			if !strings.Contains(r.Request.Topic, "cannot receive them") {
				t.Errorf("the sender ID's room topic is %q", r.Request.Topic)
			}
		case rooms[tollFree]:
			if r.Request.Topic != "" {
				t.Errorf("the toll-free number's room has the topic %q", r.Request.Topic)
			}
		}
	}

	// Replies to senders that cannot receive texts fail at once, with the
	// reason, and never reach Twilio.
	for from, want := range map[string]string{"GOOGLE": "alphanumeric sender ID", "12345": "short code"} {
		reply := e.h.SendText(alice, rooms[from], "thanks")
		if st := e.h.WaitForStatus(rooms[from], reply, event.MessageStatusFail); !strings.Contains(st.Message, want) {
			t.Errorf("the reply to %s failed with %q, want it to say %q", from, st.Message, want)
		}
	}
	e.h.SendText(alice, rooms[tollFree], "when does it arrive?")
	if out := e.outbound(1); len(out) != 1 || out[0].To != tollFree {
		t.Fatalf("Twilio was asked to send %+v, want only the reply to the toll-free number", out)
	}
}

func TestCatchUpRecoversTextsFromSenderIDs(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.login()
	e.h.Stop()
	if _, err := e.sim.SendInbound(e.ctx(), twiliosim.InboundMessage{From: "AMAZON", To: ourNumber, Body: "Your code: 551234"}); err == nil {
		t.Log("the stopped bridge answered the webhook")
	}
	e.h.Restart()
	room := e.senderRoom("AMAZON")
	e.h.WaitForText(room, e.ghost("AMAZON"), "Your code: 551234")
}

func TestSenderAddresses(t *testing.T) {
	for in, want := range map[string]string{
		"+14155550100": "14155550100", "12345": "short-12345", "GOOGLE": "alpha-GOOGLE", "My Shop": "alpha-My Shop",
	} {
		addr, _, err := parseSender(in)
		if err != nil || idFromAddr(addr) != want {
			t.Errorf("%q: ID %q (%v), want %q", in, idFromAddr(addr), err, want)
			continue
		}
		if back, _, err := addrFromID(want); err != nil || back != in {
			t.Errorf("ID %q reads back as %q (%v)", want, back, err)
		}
	}
	for _, bad := range []string{"", "12", "123456789", "TWELVELETTER", " GOOGLE", "GOO-GLE", "+1"} {
		if _, _, err := parseSender(bad); err == nil {
			t.Errorf("%q accepted as a sender", bad)
		}
	}
	for _, bad := range []string{"short-1", "alpha-", "alpha-a-b", "12"} {
		if _, _, err := addrFromID(bad); err == nil {
			t.Errorf("ID %q accepted", bad)
		}
	}
}

// A chat's contact is a number over SMS, the same number over WhatsApp, or
// a sender that is not a phone; each has its own portal, and the portal
// says which it is.
func TestEveryKindOfContactHasAPortalOfItsOwn(t *testing.T) {
	froms := []string{"+14155550100", "whatsapp:+14155550100", "12345", "GOOGLE", "WA12"}
	seen := map[networkid.PortalID]string{}
	for _, from := range froms {
		k, err := parseSenderAddress(from)
		if err != nil {
			t.Fatalf("%q refused as a sender: %v", from, err)
		}
		id := k.portalID()
		if other, ok := seen[id]; ok {
			t.Errorf("%q and %q share the portal %q", from, other, id)
		}
		seen[id] = from
		back, err := contactFromPortalID(id)
		if err != nil || back != k || back.address() != from {
			t.Errorf("portal %q of %q reads back as %+v (%v)", id, from, back, err)
		}
	}
	// WhatsApp has phone numbers only.
	for _, bad := range []string{"whatsapp:12345", "whatsapp:GOOGLE"} {
		if _, err := parseSenderAddress(bad); err == nil {
			t.Errorf("%q accepted as a sender", bad)
		}
	}
}
