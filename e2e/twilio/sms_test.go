package twilio_test

import (
	"testing"

	"maunium.net/go/mautrix/event"

	"github.com/trestle-bridge/trestle/connectors/twilio/twiliosim"
)

func TestATextFromAPhoneOpensAPortalAndTheReplyIsDelivered(t *testing.T) {
	alice := newPerson(t)
	alice.login("")
	bob := uniqueNumber()

	res := alice.textFrom(bob, "Hi Alice, it's Bob")
	if res.Response.StatusCode != 200 {
		t.Fatalf("webhook answered %+v", res.Response)
	}
	room := alice.portalFor(bob)
	alice.WaitForMessage(room, ghost(bob), "Hi Alice, it's Bob")

	reply := alice.Send(room, "Hi Bob!")
	out := waitOutbound(t, func(m twiliosim.OutboundMessage) bool { return m.Body == "Hi Bob!" })
	if out.To != bob || out.From != alice.Number {
		t.Fatalf("reply went from %s to %s, want %s to %s", out.From, out.To, alice.Number, bob)
	}
	alice.waitStatus(room, reply, func(c *event.BeeperMessageStatusEventContent) bool {
		return c.Status == event.MessageStatusSuccess && c.DeliveredToUsers != nil && len(*c.DeliveredToUsers) > 0
	})
}
