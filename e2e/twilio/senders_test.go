package twilio_test

import (
	"strings"
	"testing"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// senderGhost is the Matrix ID of a short code's or sender ID's puppet.
func senderGhost(remoteID string) id.UserID {
	return id.NewUserID("twilio_"+id.EncodeUserLocalpart(remoteID), "localhost")
}

func TestVerificationCodesFromShortCodesAndSenderIDsArriveAndRepliesFailClearly(t *testing.T) {
	alice := newPerson(t)
	alice.login("")
	shortCode, senderID := senderGhost("short-89363"), senderGhost("alpha-GOOGLE")

	alice.textFrom("89363", "Your verification code is 482913")
	scRoom := alice.portalWith(shortCode)
	alice.WaitForMessage(scRoom, shortCode, "482913")
	alice.textFrom("GOOGLE", "G-771204 is your Google verification code.")
	idRoom := alice.portalWith(senderID)
	alice.WaitForMessage(idRoom, senderID, "G-771204")

	// The sender ID's room says, once, that it cannot be answered.
	topic := alice.State(idRoom, event.StateTopic, "")
	if topic == nil || !strings.Contains(topic.Content.AsTopic().Topic, "cannot receive them") {
		t.Errorf("the sender ID's room topic is %+v, want it to say replies cannot be sent", topic)
	}

	for room, want := range map[id.RoomID]string{idRoom: "alphanumeric sender ID", scRoom: "short code"} {
		sent := alice.Send(room, "Thanks!")
		st := alice.waitStatus(room, sent, func(c *event.BeeperMessageStatusEventContent) bool { return c.Status == event.MessageStatusFail })
		if !strings.Contains(st.Message, want) {
			t.Errorf("the reply failed with %q, want it to say %q", st.Message, want)
		}
	}
	for _, m := range env.Sim.Outbound() {
		if m.AccountSID == alice.Account.SID() {
			t.Errorf("a reply that cannot be delivered reached Twilio: %+v", m)
		}
	}
}
