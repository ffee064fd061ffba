package twilio

import (
	"bytes"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"maunium.net/go/mautrix/event"

	"github.com/trestle-bridge/trestle/bridgev2"
	"github.com/trestle-bridge/trestle/bridgev2/database"
	"github.com/trestle-bridge/trestle/connectors/twilio/twiliosim"
)

// pngBytes is a 1x1 PNG.
var pngBytes = []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82")

func TestInboundTextReachesMatrix(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.login()
	res := e.inbound(theirNumber, "Hello from the phone")
	if res.Response.StatusCode != http.StatusOK || !strings.Contains(string(res.Response.Body), "<Response></Response>") ||
		res.Response.Header.Get("Content-Type") != "text/xml" {
		t.Fatalf("webhook answer: %d %q", res.Response.StatusCode, res.Response.Body)
	}
	room := e.portalRoom(theirNumber)
	e.h.WaitForText(room, e.ghost(theirNumber), "Hello from the phone")
	if name := e.h.Matrix.Profile(e.ghost(theirNumber)).DisplayName; name != "+1 415-555-0100" {
		t.Fatalf("ghost name %q", name)
	}
	// Twilio delivering the same webhook again changes nothing.
	again, err := e.sim.RedeliverInbound(e.ctx(), res.MessageSID)
	if err != nil || again.Response.StatusCode != http.StatusOK {
		t.Fatalf("redelivery: %v %d", err, again.Response.StatusCode)
	}
	e.inbound(theirNumber, "second")
	e.h.WaitForText(room, e.ghost(theirNumber), "second")
	if got := e.messagesFrom(room, e.ghost(theirNumber)); !slices.Equal(got, []string{"Hello from the phone", "second"}) {
		t.Fatalf("room has %q", got)
	}
}

func TestInboundMMS(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.login()
	e.inbound(theirNumber, "look", twiliosim.MediaFile{ContentType: "image/png", Data: pngBytes})
	room := e.portalRoom(theirNumber)
	e.h.WaitForText(room, e.ghost(theirNumber), "look")
	evt, err := e.h.Matrix.WaitForEvent(e.ctx(), room, "image", func(evt *event.Event) bool {
		return evt.Type == event.EventMessage && evt.Content.AsMessage().MsgType == event.MsgImage
	})
	if err != nil {
		t.Fatal(err)
	}
	content := evt.Content.AsMessage()
	if content.MsgType != "m.image" || content.Body != "MMS image 1.png" || content.URL == "" {
		t.Fatalf("image event: %+v", content)
	}
	data, mimeType, ok := e.h.Matrix.Media(content.URL)
	if !ok || !bytes.Equal(data, pngBytes) || mimeType != "image/png" {
		t.Fatalf("uploaded media %v %q %d bytes", ok, mimeType, len(data))
	}
}

// incomingForm is a valid inbound webhook body for the env's account.
func (e *env) incomingForm(sid string) url.Values {
	return url.Values{
		"MessageSid": {sid}, "AccountSid": {e.acct.SID()}, "From": {theirNumber}, "To": {ourNumber},
		"Body": {"hi"}, "NumMedia": {"0"},
	}
}

const testSID = "SM0123456789abcdef0123456789abcdef"

func TestWebhookRejections(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.login()
	path := "/_trestle/twilio/" + string(ourLoginID) + "/incoming"
	form := e.incomingForm(testSID)

	if code, _ := e.post(path, form, nil); code != http.StatusForbidden {
		t.Errorf("unsigned: %d", code)
	}
	forged := http.Header{"X-Twilio-Signature": {twiliosim.Signature("0123456789abcdef0123456789abcdef", e.h.URL+path, form)}}
	if code, _ := e.post(path, form, forged); code != http.StatusForbidden {
		t.Errorf("forged: %d", code)
	}
	// Signed for another host, as a proxy rewriting Host would make it look.
	other := http.Header{"X-Twilio-Signature": {twiliosim.Signature(e.acct.AuthToken(), "https://evil.example.com"+path, form)}}
	if code, _ := e.post(path, form, other); code != http.StatusForbidden {
		t.Errorf("other URL: %d", code)
	}
	tampered := e.signed(path, form)
	form2 := e.incomingForm(testSID)
	form2.Set("Body", "tampered")
	if code, _ := e.post(path, form2, tampered); code != http.StatusForbidden {
		t.Errorf("tampered body: %d", code)
	}
	if code, _ := e.post("/_trestle/twilio/19995550123/incoming", form, e.signed("/_trestle/twilio/19995550123/incoming", form)); code != http.StatusNotFound {
		t.Errorf("unknown login: %d", code)
	}
	bad := e.incomingForm(testSID)
	bad.Set("From", "not a number")
	if code, body := e.post(path, bad, e.signed(path, bad)); code != http.StatusBadRequest || !strings.Contains(body, "From") {
		t.Errorf("bad From: %d %q", code, body)
	}
	bad = e.incomingForm(testSID)
	bad.Set("NumMedia", "11")
	if code, _ := e.post(path, bad, e.signed(path, bad)); code != http.StatusBadRequest {
		t.Errorf("NumMedia 11: %d", code)
	}
	bad = e.incomingForm(testSID)
	bad.Set("NumMedia", "1")
	if code, body := e.post(path, bad, e.signed(path, bad)); code != http.StatusBadRequest || !strings.Contains(body, "MediaUrl0") {
		t.Errorf("missing MediaUrl0: %d %q", code, body)
	}
	wrongAcct := e.incomingForm(testSID)
	wrongAcct.Set("AccountSid", "AC0123456789abcdef0123456789abcdef")
	if code, _ := e.post(path, wrongAcct, e.signed(path, wrongAcct)); code != http.StatusForbidden {
		t.Errorf("other account: %d", code)
	}
	huge := e.incomingForm(testSID)
	huge.Set("Body", strings.Repeat("x", 70<<10))
	if code, _ := e.post(path, huge, e.signed(path, huge)); code != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized: %d", code)
	}
	req, _ := http.NewRequest(http.MethodPost, e.h.URL+path, strings.NewReader(`{"json":true}`))
	req.Header.Set("Content-Type", "application/json")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusBadRequest {
		t.Errorf("JSON body: %v %v", err, resp)
	} else {
		resp.Body.Close()
	}
	if resp, err := http.Get(e.h.URL + path); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: %v %v", err, resp)
	} else {
		resp.Body.Close()
	}
	// None of that reached the journal.
	if _, err := e.h.Bridge().DB.Messages.GetFirstPart(e.ctx(), ourLoginID, testSID); err == nil {
		t.Fatal("a rejected webhook was bridged")
	}
	// The same request, properly signed, is accepted.
	if code, body := e.post(path, form, e.signed(path, form)); code != http.StatusOK || body != emptyTwiML {
		t.Fatalf("signed: %d %q", code, body)
	}
	e.h.WaitForText(e.portalRoom(theirNumber), e.ghost(theirNumber), "hi")
}

func TestWebhookSignatureUsesPublicAddressAndQuery(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.login()
	path := "/_trestle/twilio/" + string(ourLoginID) + "/incoming?source=test"
	form := e.incomingForm("SM1123456789abcdef0123456789abcdef")
	form.Set("Body", "caf\xe9 invalid utf-8")
	h := e.signed(path, form)
	h.Set("Host", "internal.invalid")
	h.Set("X-Forwarded-Host", "evil.example.com")
	if code, _ := e.post(path, form, h); code != http.StatusOK {
		t.Fatalf("query URL: %d", code)
	}
	e.h.WaitForText(e.portalRoom(theirNumber), e.ghost(theirNumber), "caf\uFFFD invalid")
}

func TestStatusCallbacks(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.login()
	e.sim.SetRecipient(theirNumber2, twiliosim.RecipientConfig{Behavior: twiliosim.Undeliverable, ErrorCode: 30007})
	e.sim.SetRecipient(theirNumber, twiliosim.RecipientConfig{Callbacks: twiliosim.CallbacksOutOfOrder})
	for _, tc := range []struct {
		remote string
		want   database.Delivery
	}{{theirNumber, database.DeliveryDelivered}, {theirNumber2, database.DeliveryFailed}} {
		e.inbound(tc.remote, "ping")
		room := e.portalRoom(tc.remote)
		evtID := e.h.SendText(alice, room, "pong")
		out, err := e.sim.WaitOutbound(e.ctx(), func(m []twiliosim.OutboundMessage) bool {
			return len(m) > 0 && m[len(m)-1].To == tc.remote && m[len(m)-1].Done
		})
		if err != nil {
			t.Fatal(err)
		}
		last := out[len(out)-1]
		if last.Body != "pong" || !strings.Contains(last.StatusCallback, "/status/") {
			t.Fatalf("outbound: %+v", last)
		}
		for _, cb := range last.Callbacks {
			if cb.Response.StatusCode != http.StatusOK {
				t.Fatalf("callback %s answered %d", cb.Status, cb.Response.StatusCode)
			}
		}
		e.eventually("delivery "+string(tc.want), func() bool {
			m, err := e.h.Bridge().DB.Messages.GetByMXID(e.ctx(), evtID)
			return err == nil && m.Delivery == tc.want
		})
		if tc.want == database.DeliveryFailed {
			st := e.h.WaitForStatus(room, evtID, event.MessageStatusFail)
			if st.Message != errorSentences[30007] {
				t.Fatalf("failure message %q", st.Message)
			}
		}
	}
}

func TestDeliveryStateMapping(t *testing.T) {
	for status, want := range map[string]database.Delivery{
		"sent": database.DeliverySent, "delivered": database.DeliveryDelivered, "read": database.DeliveryRead,
		"undelivered": database.DeliveryFailed, "failed": database.DeliveryFailed,
	} {
		if got, ok := deliveryState(status); !ok || got != want {
			t.Errorf("%s -> %q %v", status, got, ok)
		}
	}
	for _, status := range []string{"queued", "accepted", "sending", "scheduled", "receiving", "bogus", ""} {
		if _, ok := deliveryState(status); ok {
			t.Errorf("%s should be ignored", status)
		}
	}
	if s := deliveryFailureSentence("21610", "x"); !strings.Contains(s, "STOP") {
		t.Errorf("21610: %q", s)
	}
	if s := deliveryFailureSentence("39999", "Weird"); !strings.Contains(s, "39999") || !strings.Contains(s, "Weird") {
		t.Errorf("unknown: %q", s)
	}
}

func TestParseInboundFormParts(t *testing.T) {
	form := url.Values{
		"MessageSid": {"MM0123456789abcdef0123456789abcdef"}, "From": {theirNumber}, "To": {ourNumber},
		"NumMedia": {"2"}, "Body": {"two pics"},
		"MediaUrl0": {"https://api.twilio.com/x/0"}, "MediaContentType0": {"image/jpeg"},
		"MediaUrl1": {"https://api.twilio.com/x/1"}, "MediaContentType1": {"video/mp4"},
	}
	in, err := parseInboundForm(form)
	if err != nil {
		t.Fatal(err)
	}
	parts := messageParts(in.Body, in.Media)
	if len(parts) != 3 || parts[0].ID != "media0" || parts[1].ID != "media1" || parts[2].ID != "text" ||
		parts[0].Media.Filename != "MMS image 1.jpg" || parts[1].Media.Filename != "MMS video 2.mp4" || parts[2].Text != "two pics" {
		t.Fatalf("parts: %+v", parts)
	}
	text := messageParts("just text", nil)
	if len(text) != 1 || text[0].ID != "" || text[0].Text != "just text" {
		t.Fatalf("text parts: %+v", text)
	}
	_ = bridgev2.MessagePart{}
}

func TestAReadReportIsTheContactsReadReceipt(t *testing.T) {
	e := newEnv(t, envOptions{})
	room := e.chat()
	evtID := e.h.SendText(alice, room, "seen this?")
	sent := e.outbound(1)[0]
	e.eventually("delivered", func() bool {
		m, err := e.h.Bridge().DB.Messages.GetByMXID(e.ctx(), evtID)
		return err == nil && m.Delivery == database.DeliveryDelivered
	})
	// Twilio reports read for RCS and WhatsApp messages, naming the
	// contact with the channel's prefix.
	u, err := url.Parse(sent.StatusCallback)
	if err != nil {
		t.Fatal(err)
	}
	form := url.Values{"MessageSid": {sent.SID}, "MessageStatus": {"read"}, "To": {"rcs:" + theirNumber},
		"From": {ourNumber}, "AccountSid": {e.acct.SID()}}
	if code, body := e.post(u.Path, form, e.signed(u.Path, form)); code != http.StatusOK {
		t.Fatalf("read report answered %d: %s", code, body)
	}
	ghost := e.ghost(theirNumber)
	_, err = e.h.Matrix.WaitForEvent(e.ctx(), room, "read receipt", func(evt *event.Event) bool {
		c, ok := evt.Content.Parsed.(*event.ReceiptEventContent)
		if evt.Type != event.EphemeralEventReceipt || evt.Sender != ghost || !ok {
			return false
		}
		_, read := (*c)[evtID][event.ReceiptTypeRead][ghost]
		return read
	})
	if err != nil {
		t.Fatal(err)
	}
	e.eventually("read", func() bool {
		m, err := e.h.Bridge().DB.Messages.GetByMXID(e.ctx(), evtID)
		return err == nil && m.Delivery == database.DeliveryRead
	})
}
