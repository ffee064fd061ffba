package twiliosim

import (
	"net/http"
	"testing"

	openapi "github.com/twilio/twilio-go/rest/api/v2010"
)

// sendParams creates a message with any parameters and returns the error.
func sendParams(api *openapi.ApiService, p *openapi.CreateMessageParams) (string, error) {
	m, err := api.CreateMessage(p)
	if err != nil {
		return "", err
	}
	return *m.Sid, nil
}

// sendAndWait creates a message and waits until the simulator is done
// with it.
func sendAndWait(t *testing.T, sim *Server, api *openapi.ApiService, p *openapi.CreateMessageParams) OutboundMessage {
	t.Helper()
	sid, err := sendParams(api, p)
	if err != nil {
		t.Fatal(err)
	}
	m, err := sim.WaitMessage(testCtx(t), sid, nil)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// smsSim starts a simulator (with opts) whose ourNumber posts its texts to
// a fake bridge's /sms.
func smsSim(t *testing.T, opts Options) (*Server, *Account, *bridge) {
	t.Helper()
	sim, acct := startSim(t, opts)
	b := newBridge(t)
	if err := acct.SetSMSURL(ourNumber, b.url("/sms")); err != nil {
		t.Fatal(err)
	}
	return sim, acct, b
}

func TestSendersThatAreNotPhoneNumbers(t *testing.T) {
	sim, acct, _ := smsSim(t, Options{})
	ctx := testCtx(t)
	api := accountAPI(t, sim, acct)

	for _, from := range []string{"12345", "GOOGLE", "+18005550199"} {
		res, err := sim.SendInbound(ctx, InboundMessage{From: from, To: ourNumber, Body: "Your code is 123456"})
		if err != nil || res.Response.StatusCode != http.StatusOK {
			t.Fatalf("inbound from %s: %+v, %v", from, res, err)
		}
		if got := res.Webhook.Form.Get("From"); got != from {
			t.Fatalf("webhook From = %q, want %q", got, from)
		}
		m, err := api.FetchMessage(res.MessageSID, nil)
		if err != nil || *m.From != from {
			t.Fatalf("logged message from %s: %+v, %v", from, m, err)
		}
	}

	// Replies: Twilio numbers cannot text short codes (21265) or
	// alphanumeric sender IDs (21211: not a phone number); toll-free
	// numbers are ordinary numbers.
	base := func(to string) *openapi.CreateMessageParams {
		return (&openapi.CreateMessageParams{}).SetTo(to).SetFrom(ourNumber).SetBody("thanks")
	}
	_, err := sendParams(api, base("12345"))
	restError(t, err, http.StatusBadRequest, CodeToShortCode)
	_, err = sendParams(api, base("GOOGLE"))
	restError(t, err, http.StatusBadRequest, CodeInvalidToNumber)
	if _, err := sendParams(api, base("+18005550199")); err != nil {
		t.Fatalf("reply to a toll-free number: %v", err)
	}
}

func TestOptOutKeywords(t *testing.T) {
	sim, acct, _ := smsSim(t, Options{})
	ctx := testCtx(t)
	api := accountAPI(t, sim, acct)
	text := func(body string) InboundResult {
		t.Helper()
		res, err := sim.SendInbound(ctx, InboundMessage{From: theirNumber, To: ourNumber, Body: body})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	reply := func() error {
		_, err := sendParams(api, (&openapi.CreateMessageParams{}).SetTo(theirNumber).SetFrom(ourNumber).SetBody("hello?"))
		return err
	}

	if res := text("stop sending me these"); res.Webhook.Form.Has("OptOutType") {
		t.Fatalf("a sentence containing STOP is no keyword: %v", res.Webhook.Form)
	}
	if res := text(" Stop "); res.Webhook.Form.Get("OptOutType") != OptOutTypeStop {
		t.Fatalf("OptOutType = %q", res.Webhook.Form.Get("OptOutType"))
	}
	if !acct.OptedOut(ourNumber, theirNumber) {
		t.Fatal("not opted out after STOP")
	}
	restError(t, reply(), http.StatusBadRequest, CodeUnsubscribed)
	// Another number of the account is another sender.
	if _, err := acct.AddNumber(ourNumber2, Capabilities{SMS: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := sendParams(api, (&openapi.CreateMessageParams{}).SetTo(theirNumber).SetFrom(ourNumber2).SetBody("x")); err != nil {
		t.Fatalf("send from another number: %v", err)
	}
	if res := text("HELP"); res.Webhook.Form.Get("OptOutType") != OptOutTypeHelp || !acct.OptedOut(ourNumber, theirNumber) {
		t.Fatalf("HELP: OptOutType %q, opted out %v", res.Webhook.Form.Get("OptOutType"), acct.OptedOut(ourNumber, theirNumber))
	}
	if res := text("unstop"); res.Webhook.Form.Get("OptOutType") != OptOutTypeStart {
		t.Fatalf("UNSTOP: OptOutType %q", res.Webhook.Form.Get("OptOutType"))
	}
	if err := reply(); err != nil {
		t.Fatalf("reply after START: %v", err)
	}
}

func TestMessagingServicePoolStickySenderAndWebhooks(t *testing.T) {
	sim, acct := startSim(t, Options{})
	if _, err := acct.AddNumber(ourNumber2, Capabilities{SMS: true, MMS: true}); err != nil {
		t.Fatal(err)
	}
	svc, err := acct.AddMessagingService("", ourNumber, ourNumber2)
	if err != nil {
		t.Fatal(err)
	}
	b := newBridge(t)
	if err := acct.ConfigureService(svc, ServiceConfig{InboundURL: b.url("/service-in"), StatusCallback: b.url("/service-status")}); err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	api := accountAPI(t, sim, acct)

	// Inbound to any pool number reaches the service's webhook.
	res, err := sim.SendInbound(ctx, InboundMessage{From: theirNumber, To: ourNumber2, Body: "hi"})
	if err != nil || res.Webhook.URL != b.url("/service-in") || res.Webhook.Form.Get("MessagingServiceSid") != svc {
		t.Fatalf("inbound: %+v, %v", res.Webhook, err)
	}

	viaService := func(to string) OutboundMessage {
		t.Helper()
		return sendAndWait(t, sim, api, (&openapi.CreateMessageParams{}).SetTo(to).SetMessagingServiceSid(svc).SetBody("reply"))
	}
	// The reply comes from the number the contact texted, and its status
	// goes to the service's status callback.
	m := viaService(theirNumber)
	if m.From != ourNumber2 || len(m.Callbacks) != 2 || m.Callbacks[0].Request.URL != b.url("/service-status") {
		t.Fatalf("reply from %s, callbacks %+v", m.From, m.CallbackStatuses())
	}
	// A new contact gets the first number; later messages stick to it.
	if m := viaService(otherPhone); m.From != ourNumber {
		t.Fatalf("new contact texted from %s", m.From)
	}
	if _, err := sim.SendInbound(ctx, InboundMessage{From: otherPhone, To: ourNumber, Body: "ok"}); err != nil {
		t.Fatal(err)
	}
	if m := viaService(otherPhone); m.From != ourNumber {
		t.Fatalf("sticky sender broke: %s", m.From)
	}

	// Opting out of one pool number opts out of the whole service.
	if _, err := sim.SendInbound(ctx, InboundMessage{From: theirNumber, To: ourNumber2, Body: "STOP"}); err != nil {
		t.Fatal(err)
	}
	_, err = sendParams(api, (&openapi.CreateMessageParams{}).SetTo(theirNumber).SetMessagingServiceSid(svc).SetBody("x"))
	restError(t, err, http.StatusBadRequest, CodeUnsubscribed)
	_, err = sendParams(api, (&openapi.CreateMessageParams{}).SetTo(theirNumber).SetFrom(ourNumber).SetBody("x"))
	restError(t, err, http.StatusBadRequest, CodeUnsubscribed)
	if !acct.OptedOut(svc, theirNumber) {
		t.Fatal("service not opted out")
	}

	// With use_inbound_webhook_on_number the number's own sms_url wins.
	if err := acct.SetSMSURL(ourNumber, b.url("/number-in")); err != nil {
		t.Fatal(err)
	}
	if err := acct.ConfigureService(svc, ServiceConfig{InboundURL: b.url("/service-in"), UseNumberWebhook: true}); err != nil {
		t.Fatal(err)
	}
	res, err = sim.SendInbound(ctx, InboundMessage{From: otherPhone, To: ourNumber, Body: "hi"})
	if err != nil || res.Webhook.URL != b.url("/number-in") {
		t.Fatalf("inbound with UseNumberWebhook: %+v, %v", res.Webhook, err)
	}
}
