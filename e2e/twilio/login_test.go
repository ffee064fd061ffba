package twilio_test

import (
	"strings"
	"testing"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/connectors/twilio/twiliosim"
	"github.com/trestle-bridge/trestle/internal/matrixtest"
)

func TestLoginWithSeveralNumbersAsksWhichAndAcceptsTheNumberInNationalFormat(t *testing.T) {
	first, second, third := uniqueNumber(), uniqueNumber(), uniqueNumber()
	alice := newPerson(t, first, second, third)
	// REST calls go through an API key; webhooks are still signed with the
	// auth token.
	key, err := alice.Account.AddAPIKey("", "", twiliosim.APIKeyStandard)
	if err != nil {
		t.Fatal(err)
	}
	rememberCredentials("API key secret of "+key.SID, key.SID, key.Secret)

	alice.command("login advanced", "send your **Account SID**")
	alice.command(alice.Account.SID(), "auth token")
	alice.command(alice.Account.AuthToken(), "API key SID")
	alice.command(key.SID, "API key secret")
	alice.command(key.Secret, "Messaging Service SID")
	question := alice.command("-", "phone number").Content.AsMessage().Body
	for _, n := range []string{first, second, third} {
		if !strings.Contains(question, n) {
			t.Errorf("the number question does not offer %s: %q", n, question)
		}
	}
	// Typed the way people in the US write it (default_region: US).
	done := alice.command(national(second), "Logged in").Content.AsMessage().Body
	if !strings.Contains(done, international(second)) {
		t.Errorf("the bot confirmed %q, want it to name %s", done, international(second))
	}

	list := alice.command("list-logins", international(second)).Content.AsMessage().Body
	if !strings.Contains(list, international(second)) || strings.Contains(list, international(first)) || strings.Contains(list, international(third)) {
		t.Errorf("list-logins says %q, want only %s", list, international(second))
	}
	if u, _ := alice.Account.SMSURL(second); u != webhookURL(second) {
		t.Errorf("the chosen number's SmsUrl is %q, want %q", u, webhookURL(second))
	}
	for _, other := range []string{first, third} {
		if u, _ := alice.Account.SMSURL(other); u != "" {
			t.Errorf("the number %s that was not chosen got the SmsUrl %q", other, u)
		}
	}

	// The chosen number is the bridged one, both ways.
	alice.Number = second
	bob := uniqueNumber()
	room := alice.chatWith(bob)
	alice.Send(room, "Sent through the API key")
	out := waitOutbound(t, func(m twiliosim.OutboundMessage) bool { return m.Body == "Sent through the API key" })
	if out.From != second || out.To != bob {
		t.Errorf("the reply went from %s to %s, want %s to %s", out.From, out.To, second, bob)
	}
}

func TestLoginWithAWrongAuthTokenIsRefusedClearlyAndCreatesNoLogin(t *testing.T) {
	alice := newPerson(t)
	wrong := "0123456789abcdef0123456789abcdef"
	if wrong == alice.Account.AuthToken() {
		t.Fatal("the simulator generated the very token meant to be wrong")
	}
	rememberSecret("wrong auth token typed at login", wrong)

	// Two questions, no optional ones in the way.
	alice.command("login", "send your **Account SID**")
	alice.command(alice.Account.SID(), "auth token")
	failed := alice.command(wrong, "Login failed").Content.AsMessage().Body
	if !strings.Contains(failed, "rejected the Account SID or auth token") {
		t.Errorf("the login failure reads %q, want it to say the credentials were rejected", failed)
	}
	// The bot asks again; the person gives up.
	alice.command("cancel", "Login cancelled")
	alice.command("list-logins", "You have no logins")
	for _, m := range env.Sim.Outbound() {
		if m.AccountSID == alice.Account.SID() {
			t.Errorf("a failed login sent a message: %+v", m)
		}
	}
	if u, _ := alice.Account.SMSURL(alice.Number); u != "" {
		t.Errorf("a failed login set the number's SmsUrl to %q", u)
	}
}

func TestAMessagingServiceWithTwoNumbersRepliesFromTheNumberTheContactTexted(t *testing.T) {
	first, second := uniqueNumber(), uniqueNumber()
	alice := newPerson(t, first, second)
	svc, err := alice.Account.AddMessagingService("", first, second)
	if err != nil {
		t.Fatal(err)
	}
	alice.loginWith(loginOptions{Service: svc, Choose: national(first)})
	alice.loginWith(loginOptions{Service: svc, Choose: national(second)})

	// bob texts both numbers, the first and then the second: the pool's
	// sticky sender for him is now the second number.
	bob := uniqueNumber()
	alice.Number = first
	toFirst := alice.chatWith(bob)
	alice.Number = second
	alice.textFrom(bob, "Now the other number")
	inv := alice.WaitForInvite(func(inv *matrixtest.Invite) bool { return inv.Sender == ghost(bob) && inv.RoomID != toFirst })
	toSecond := inv.RoomID
	alice.WaitForMembership(toSecond, alice.ID, event.MembershipJoin)
	alice.WaitForMessage(toSecond, ghost(bob), "Now the other number")

	for room, from := range map[id.RoomID]string{toFirst: first, toSecond: second} {
		body := "Reply from " + from
		alice.Send(room, body)
		out := waitOutbound(t, func(m twiliosim.OutboundMessage) bool { return m.Body == body })
		if out.From != from || out.To != bob || out.MessagingServiceSID != svc {
			t.Errorf("the reply in the chat with %s went from %s to %s through %q, want from %s through %s",
				from, out.From, out.To, out.MessagingServiceSID, from, svc)
		}
	}
}
