package twilio_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"unicode/utf16"

	"maunium.net/go/mautrix/event"

	"github.com/trestle-bridge/trestle/connectors/twilio/twiliosim"
)

// longText is exactly n characters of words of varied length separated by
// single spaces.
func longText(n int) string {
	words := []string{"the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "while",
		"telephone", "exchanges", "hum", "quietly", "in", "the", "background"}
	var b strings.Builder
	for i := 0; b.Len() < n; i++ {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s%d", words[i%len(words)], i)
	}
	s := b.String()[:n]
	// Never end on a space or a cut-off word's lone space.
	return strings.TrimRight(s, " ") + strings.Repeat("z", n-len(strings.TrimRight(s, " ")))
}

func TestALongMessageArrivesAsTwoTextsCutBetweenWordsWithOneSuccessStatus(t *testing.T) {
	alice := newPerson(t)
	alice.login("")
	bob := uniqueNumber()
	room := alice.chatWith(bob)
	text := longText(2000)
	if len(text) != 2000 || strings.Count(text, " ") < 200 {
		t.Fatalf("bad test text: %d characters, %d spaces", len(text), strings.Count(text, " "))
	}

	sent := alice.Send(room, text)
	alice.waitStatus(room, sent, isSent)
	msgs, err := env.Sim.WaitOutbound(ctx(t), func(all []twiliosim.OutboundMessage) bool {
		var n int
		for _, m := range all {
			if m.To == bob {
				if !m.Done {
					return false
				}
				n++
			}
		}
		return n >= 2
	})
	if err != nil {
		t.Fatal(err)
	}
	var bodies []string
	for _, m := range msgs {
		if m.To == bob {
			bodies = append(bodies, m.Body)
			if m.From != alice.Number {
				t.Errorf("a part went from %s, want %s", m.From, alice.Number)
			}
		}
	}
	if len(bodies) != 2 {
		t.Fatalf("the message became %d texts, want 2", len(bodies))
	}
	for i, b := range bodies {
		if n := len(utf16.Encode([]rune(b))); n > 1600 {
			t.Errorf("part %d has %d characters, over Twilio's 1600", i+1, n)
		}
	}
	// Rejoined with the space the cut fell on, the parts are the original:
	// nothing lost, nothing reordered, and no word cut in two.
	if got := strings.Join(bodies, " "); got != text {
		t.Errorf("the parts rejoin to a different text:\npart 1 ends %q\npart 2 starts %q", tail(bodies[0]), head(bodies[1]))
	}

	// Both parts' reports were posted (Done) before the next message is
	// sent; the portal's statuses go out in order, so once the next
	// message's delivery is reported, so is everything about this one.
	next := alice.Send(room, "Did you get both halves?")
	alice.waitStatus(room, next, isDeliveredTo(ghost(bob)))
	var successes, delivered, failures int
	for _, st := range alice.statuses(room, sent) {
		switch {
		case isSent(st):
			successes++
		case isDeliveredTo(ghost(bob))(st):
			delivered++
		default:
			failures++
		}
	}
	// A "sent" status still queued when the delivery report comes is
	// replaced by it, so there may be no plain success; never two.
	if successes > 1 || failures != 0 {
		t.Errorf("the sender got %d success and %d other statuses for the send, want at most one success: %+v",
			successes, failures, alice.statuses(room, sent))
	}
	if delivered == 0 {
		t.Errorf("the sender was never told the message was delivered")
	}
	// The core reports delivery once per part (see the report on
	// applyDeliveryStatus); one report per message is what a sender expects.
	t.Logf("delivery was reported %d times for the 2 parts", delivered)
}

func head(s string) string { return s[:min(len(s), 30)] }
func tail(s string) string { return s[max(0, len(s)-30):] }

func TestDeliveryReportsReachTheSender(t *testing.T) {
	alice := newPerson(t)
	alice.login("")

	t.Run("delivered", func(t *testing.T) {
		bob := uniqueNumber()
		room := alice.chatWith(bob)
		sent := alice.Send(room, "Did this reach you?")
		alice.waitStatus(room, sent, isDeliveredTo(ghost(bob)))
	})

	t.Run("failed because the phone is unreachable", func(t *testing.T) {
		carol := uniqueNumber()
		env.Sim.SetRecipient(carol, twiliosim.RecipientConfig{Behavior: twiliosim.Undeliverable, ErrorCode: twiliosim.CodeUnreachable})
		room := alice.chatWith(carol)
		sent := alice.Send(room, "Are you there, Carol?")
		st := alice.waitStatus(room, sent, isFailure)
		if !strings.Contains(st.Message, "phone is unreachable") || !strings.HasSuffix(st.Message, ".") {
			t.Errorf("the failure reads %q, want a sentence saying the phone is unreachable", st.Message)
		}
		if st.Reason == "" {
			t.Errorf("the failure status has no reason")
		}
		notice := alice.WaitForMessageAfter(room, sent, bot(), "unreachable").Content.AsMessage()
		if notice.MsgType != event.MsgNotice {
			t.Errorf("the bot told the room with a %s, want an m.notice", notice.MsgType)
		}
	})
}

func TestTextingARecipientWhoRepliedStopFailsSayingSo(t *testing.T) {
	alice := newPerson(t)
	alice.login("")
	dave := uniqueNumber()
	room := alice.chatWith(dave)
	env.Sim.SetRecipient(dave, twiliosim.RecipientConfig{Behavior: twiliosim.Unsubscribed})

	sent := alice.Send(room, "Hello again, Dave")
	st := alice.waitStatus(room, sent, isFailure)
	if !strings.Contains(st.Message, "unsubscribed") || !strings.Contains(st.Message, "STOP") {
		t.Errorf("the failure reads %q, want it to say Dave unsubscribed by replying STOP", st.Message)
	}
	if n := len(outboundTo(dave)); n != 0 {
		t.Errorf("Twilio created %d messages to an unsubscribed recipient", n)
	}
}

func TestAReadReportFromTwilioIsAReadReceiptFromTheContact(t *testing.T) {
	alice := newPerson(t)
	alice.login("")
	bob := uniqueNumber()
	room := alice.chatWith(bob)
	sent := alice.Send(room, "Did you read this?")
	alice.waitStatus(room, sent, isDeliveredTo(ghost(bob)))
	out := waitOutbound(t, func(m twiliosim.OutboundMessage) bool { return m.Body == "Did you read this?" && m.Done })
	if len(out.Callbacks) == 0 {
		t.Fatalf("Twilio posted no status callback for %s", out.SID)
	}
	// Twilio reports read for RCS and WhatsApp messages (the simulator
	// only for those channels), naming the contact with the channel's
	// prefix; this is that report, signed as Twilio signs it.
	callbackURL := out.Callbacks[0].Request.URL
	report := url.Values{}
	for k, v := range map[string]string{"MessageSid": out.SID, "MessageStatus": "read", "AccountSid": alice.Account.SID(),
		"From": alice.Number, "To": "rcs:" + bob, "ChannelPrefix": "rcs", "EventType": "READ", "ApiVersion": "2010-04-01"} {
		report.Set(k, v)
	}
	if code := postWebhook(t, callbackURL, report, twiliosim.Signature(alice.Account.AuthToken(), callbackURL, report)); code != http.StatusOK {
		t.Fatalf("the read report was answered %d", code)
	}
	alice.WaitForReceipt(room, ghost(bob), sent)
}
