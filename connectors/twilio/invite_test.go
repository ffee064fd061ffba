package twilio

import (
	"testing"

	"maunium.net/go/mautrix/event"

	"github.com/trestle-bridge/trestle/bridgev2/networkid"
)

func TestInvitingTheGhostOfANumberWithoutItsCountryCodeOpensTheDMWithIt(t *testing.T) {
	e := newEnv(t, envOptions{network: "default_region: US\n"})
	e.login()
	// alice types the number as she knows it; the ghost namespace allows
	// it, and the contact's own ghost takes over the room.
	typed := e.h.Matrix.GhostUserID("4155550100")
	room := e.h.Matrix.CreateUserRoom(alice, typed)
	e.h.SendMembership(alice, room, typed, event.MembershipInvite)
	canonical := e.ghost(theirNumber)
	e.eventually("the contact's ghost in the room", func() bool { return e.h.Matrix.Membership(room, canonical) == "join" })
	e.eventually("the typed ghost gone", func() bool { return e.h.Matrix.Membership(room, typed) == "leave" })
	e.eventually("the room recorded as the portal", func() bool {
		p, err := e.h.Bridge().GetPortalByRoom(e.ctx(), room)
		return err == nil && p != nil && p.PortalKey == networkid.PortalKey{ID: networkid.PortalID(idFromAddr(theirNumber)), Receiver: ourLoginID}
	})
	e.h.SendText(alice, room, "found you")
	e.eventually("the text sent to the number", func() bool {
		for _, m := range e.acct.Messages() {
			if m.To == theirNumber && m.Body == "found you" {
				return true
			}
		}
		return false
	})
	e.inbound(theirNumber, "hello back")
	e.eventually("the answer in the room", func() bool { return len(e.messagesFrom(room, canonical)) > 0 })
}
