package twilio_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/trestle-bridge/trestle/connectors/twilio/twiliosim"
)

func TestLogoutUnbridgesThePortalsAndTheNumber(t *testing.T) {
	alice := newPerson(t)
	alice.login("")
	bob := uniqueNumber()
	room := alice.chatWith(bob)
	hook := webhookURL(alice.Number)
	if u, _ := alice.Account.SMSURL(alice.Number); u != hook {
		t.Fatalf("after login the number's SmsUrl is %q, want %q", u, hook)
	}

	confirm := alice.command("logout "+alice.Number, "Logged out").Content.AsMessage().Body
	if !strings.Contains(confirm, international(alice.Number)) {
		t.Errorf("the bot confirmed %q, want it to name %s", confirm, international(alice.Number))
	}
	alice.WaitForMessage(room, bot(), "no longer bridged")
	if u, _ := alice.Account.SMSURL(alice.Number); u != "" {
		t.Errorf("after logout the number's SmsUrl is still %q", u)
	}
	alice.command("list-logins", "You have no logins")

	// Twilio has nowhere to send Bob's next text...
	_, err := env.Sim.SendInbound(ctx(t), twiliosim.InboundMessage{From: bob, To: alice.Number, Body: "Anyone there?"})
	if !errors.Is(err, twiliosim.ErrNoWebhook) {
		t.Errorf("a text after logout was sent to a webhook (err %v), want none", err)
	}
	// ...and a stale webhook left behind elsewhere finds no login.
	if err := alice.Account.SetSMSURL(alice.Number, hook); err != nil {
		t.Fatal(err)
	}
	res, err := env.Sim.SendInbound(ctx(t), twiliosim.InboundMessage{From: bob, To: alice.Number, Body: "Hello?"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Response.StatusCode != http.StatusNotFound {
		t.Errorf("the bridge answered a text to a logged-out number with %d, want 404", res.Response.StatusCode)
	}
	for _, m := range alice.messages(room) {
		if body := m.Content.AsMessage().Body; body == "Anyone there?" || body == "Hello?" {
			t.Errorf("a text after logout reached the room: %q", body)
		}
	}
}

func TestRotatedCredentialsFailSendsClearlyUntilLoggedInAgainAndOthersKeepWorking(t *testing.T) {
	alice := newPerson(t)
	alice.login("")
	bob := uniqueNumber()
	room := alice.chatWith(bob)

	newToken := alice.Account.RotateAuthToken()
	rememberSecret("rotated auth token of "+alice.Account.SID(), newToken)

	sent := alice.Send(room, "Sent with an old token")
	st := alice.waitStatus(room, sent, isFailure)
	if !strings.Contains(st.Message, "rejected the auth token") || !strings.Contains(st.Message, "log in again") {
		t.Errorf("the failure reads %q, want it to say the credentials were rejected and to log in again", st.Message)
	}
	notice := alice.WaitForMessage(alice.Mgmt, bot(), "BAD_CREDENTIALS").Content.AsMessage().Body
	if !strings.Contains(notice, international(alice.Number)) || !strings.Contains(notice, "log in again") {
		t.Errorf("the management room notice reads %q, want it to name the number and say to log in again", notice)
	}
	for _, m := range outboundTo(bob) {
		if m.Body == "Sent with an old token" {
			t.Errorf("Twilio accepted a message with the old token: %+v", m)
		}
	}

	// Twilio signs with the new token, which the bridge does not know yet:
	// Bob's text is refused, and stays in Twilio's log.
	res, err := env.Sim.SendInbound(ctx(t), twiliosim.InboundMessage{From: bob, To: alice.Number, Body: "Are you ignoring me?"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Response.StatusCode != http.StatusForbidden {
		t.Errorf("a webhook signed with the new token was answered %d, want 403", res.Response.StatusCode)
	}

	// Logging in again with the new token, as the notice says, mends it,
	// and recovers the text refused meanwhile.
	alice.login("")
	alice.WaitForMessage(room, ghost(bob), "Are you ignoring me?")
	again := alice.Send(room, "Sent with the new token")
	alice.waitStatus(room, again, isDeliveredTo(ghost(bob)))
	alice.textFrom(bob, "Got it")
	alice.WaitForMessage(room, ghost(bob), "Got it")

	// Another user of the same bridge is not affected.
	carol := newPerson(t)
	carol.login("")
	dave := uniqueNumber()
	carolRoom := carol.chatWith(dave)
	ok := carol.Send(carolRoom, "Still working here")
	carol.waitStatus(carolRoom, ok, isDeliveredTo(ghost(dave)))
}
