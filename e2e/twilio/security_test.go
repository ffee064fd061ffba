package twilio_test

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"maunium.net/go/mautrix/event"

	"github.com/trestle-bridge/trestle/connectors/twilio/twiliosim"
)

func TestWebhooksWithAForgedOrMissingSignatureAreRejectedAndStoreNothing(t *testing.T) {
	alice := newPerson(t)
	alice.login("")
	bob := uniqueNumber()
	room := alice.chatWith(bob)
	incoming := webhookURL(alice.Number)

	forged := inboundForm(alice.Account, bob, alice.Number, "FORGED: send me your codes")
	tampered := inboundForm(alice.Account, bob, alice.Number, "Harmless text")
	signedOriginal := twiliosim.Signature(alice.Account.AuthToken(), incoming, tampered)
	tampered.Set("Body", "TAMPERED: send me your codes")
	for _, c := range []struct {
		name      string
		form      url.Values
		signature string
	}{
		{"no signature", forged, ""},
		{"signed with another key", forged, twiliosim.Signature("ffffffffffffffffffffffffffffffff", incoming, forged)},
		{"signed for another URL", forged, twiliosim.Signature(alice.Account.AuthToken(), "https://bridge.example.com/_trestle/twilio/"+strings.TrimPrefix(alice.Number, "+")+"/incoming", forged)},
		{"body changed after signing", tampered, signedOriginal},
	} {
		if code := postWebhook(t, incoming, c.form, c.signature); code != http.StatusForbidden {
			t.Errorf("an incoming webhook with %s was answered %d, want 403", c.name, code)
		}
	}

	// A real text after the forgeries: in the same portal's queue, so had
	// any forgery been stored it would show before this one.
	alice.textFrom(bob, "The real Bob")
	alice.WaitForMessage(room, ghost(bob), "The real Bob")
	if got := alice.bodiesFrom(room, ghost(bob)); !slices.Equal(got, []string{"Hello from " + bob, "The real Bob"}) {
		t.Errorf("the portal shows %q, want only Bob's real texts", got)
	}

	// Status callbacks: a forged "failed" report about a delivered message.
	sent := alice.Send(room, "Thanks, real Bob")
	alice.waitStatus(room, sent, isDeliveredTo(ghost(bob)))
	out := waitOutbound(t, func(m twiliosim.OutboundMessage) bool { return m.Body == "Thanks, real Bob" && m.Done })
	if len(out.Callbacks) == 0 {
		t.Fatalf("Twilio posted no status callback for %s", out.SID)
	}
	callbackURL := out.Callbacks[0].Request.URL
	report := url.Values{}
	for k, v := range map[string]string{"MessageSid": out.SID, "SmsSid": out.SID, "MessageStatus": "failed", "SmsStatus": "failed",
		"AccountSid": alice.Account.SID(), "From": alice.Number, "To": bob, "ErrorCode": "30007", "ErrorMessage": "Carrier violation",
		"ApiVersion": "2010-04-01"} {
		report.Set(k, v)
	}
	for name, sig := range map[string]string{
		"no signature":            "",
		"signed with another key": twiliosim.Signature("ffffffffffffffffffffffffffffffff", callbackURL, report),
	} {
		if code := postWebhook(t, callbackURL, report, sig); code != http.StatusForbidden {
			t.Errorf("a status callback with %s was answered %d, want 403", name, code)
		}
	}
	// The next real report in the portal's queue is the barrier.
	next := alice.Send(room, "One more, real Bob")
	alice.waitStatus(room, next, isDeliveredTo(ghost(bob)))
	for _, st := range alice.statuses(room, sent) {
		if st.Status != event.MessageStatusSuccess {
			t.Errorf("a forged status callback reached the sender: %+v", st)
		}
	}
	for _, m := range alice.messages(room) {
		if m.Sender == bot() {
			t.Errorf("the bot posted %q after forged webhooks", m.Content.AsMessage().Body)
		}
	}
}

func TestADuplicateWebhookProducesOneMatrixMessage(t *testing.T) {
	alice := newPerson(t)
	alice.login("")
	bob := uniqueNumber()
	room := alice.chatWith(bob)

	first := alice.textFrom(bob, "Only once, please")
	again, err := env.Sim.RedeliverInbound(ctx(t), first.MessageSID)
	if err != nil {
		t.Fatal(err)
	}
	if again.Response.StatusCode != http.StatusOK {
		t.Errorf("the bridge answered the duplicate with %d, want 200 so Twilio does not complain", again.Response.StatusCode)
	}
	alice.textFrom(bob, "And this after it")
	alice.WaitForMessage(room, ghost(bob), "And this after it")
	want := []string{"Hello from " + bob, "Only once, please", "And this after it"}
	if got := alice.bodiesFrom(room, ghost(bob)); !slices.Equal(got, want) {
		t.Errorf("the portal shows %q, want %q", got, want)
	}
}
