package twiliosim

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/twilio/twilio-go/client"
)

func TestSignatureMatchesTwiliosReference(t *testing.T) {
	// The reference vector of twilio-go's own validator tests.
	params := url.Values{}
	for k, v := range map[string]string{
		"Digits": "1234", "CallSid": "CA1234567890ABCDE", "To": "+18005551212", "Caller": "+14158675309",
		"From": "+14158675309", "ReasonConferenceEnded": "test", "Reason": "Participant",
	} {
		params.Set(k, v)
	}
	if got := Signature("12345", "https://mycompany.com/myapp.php?foo=1&bar=2", params); got != "vOEb5UThFn24KEfnOFLQY2AE5FY=" {
		t.Fatalf("Signature = %q", got)
	}
}

func TestSendInboundSMS(t *testing.T) {
	sim, acct := startSim(t, Options{})
	b := newBridge(t)
	hook := b.url("/twilio/sms?tenant=1")
	if err := acct.SetSMSURL(ourNumber, hook); err != nil {
		t.Fatal(err)
	}
	b.setStatus(http.StatusNoContent)

	res, err := sim.SendInbound(testCtx(t), InboundMessage{From: theirNumber, To: ourNumber, Body: "Hi there €"})
	if err != nil {
		t.Fatalf("SendInbound: %v", err)
	}
	if !strings.HasPrefix(res.MessageSID, "SM") || res.Response.StatusCode != http.StatusNoContent {
		t.Fatalf("result = %+v", res)
	}
	got := b.requests()
	if len(got) != 1 {
		t.Fatalf("bridge got %d requests", len(got))
	}
	r := got[0]
	if r.Method != http.MethodPost || r.URL != hook {
		t.Fatalf("%s %s", r.Method, r.URL)
	}
	for h, want := range map[string]string{
		"Content-Type": "application/x-www-form-urlencoded",
		"User-Agent":   "TwilioProxy/1.1",
	} {
		if r.Header.Get(h) != want {
			t.Fatalf("header %s = %q", h, r.Header.Get(h))
		}
	}
	if r.Header.Get("I-Twilio-Idempotency-Token") == "" {
		t.Fatal("no I-Twilio-Idempotency-Token")
	}
	validator := client.NewRequestValidator(acct.AuthToken())
	if !validator.ValidateBody(r.URL, r.Body, r.Header.Get("X-Twilio-Signature")) {
		t.Fatal("twilio-go's RequestValidator rejects the webhook signature")
	}
	wrong := client.NewRequestValidator("0123456789abcdef0123456789abcdef")
	if wrong.ValidateBody(r.URL, r.Body, r.Header.Get("X-Twilio-Signature")) {
		t.Fatal("signature validates with the wrong token")
	}
	want := map[string]string{
		"ToCountry": "US", "ToState": "", "SmsMessageSid": res.MessageSID, "NumMedia": "0", "ToCity": "",
		"FromZip": "", "SmsSid": res.MessageSID, "FromState": "", "SmsStatus": "received", "FromCity": "",
		"Body": "Hi there €", "FromCountry": "US", "To": ourNumber, "ToZip": "", "NumSegments": "1",
		"MessageSid": res.MessageSID, "AccountSid": acct.SID(), "From": theirNumber, "ApiVersion": "2010-04-01",
	}
	for k, v := range want {
		if vs, ok := r.Form[k]; !ok || vs[0] != v {
			t.Fatalf("form %s = %v, want %q", k, vs, v)
		}
	}
	if len(r.Form) != len(want) {
		t.Fatalf("form has unexpected fields: %v", r.Form)
	}

	// The message is in the log, where twilio-go sees it.
	m, err := accountAPI(t, sim, acct).FetchMessage(res.MessageSID, nil)
	if err != nil {
		t.Fatalf("FetchMessage: %v", err)
	}
	if *m.Direction != DirectionInbound || *m.Status != StatusReceived || *m.Body != "Hi there €" || m.DateSent == nil {
		t.Fatalf("logged message = %+v", m)
	}
}

func TestSendInboundMMSMediaNeedsAuthAndRedirectsToCDN(t *testing.T) {
	sim, acct := startSim(t, Options{})
	svc, err := acct.AddMessagingService("", ourNumber)
	if err != nil {
		t.Fatal(err)
	}
	b := newBridge(t)
	if err := acct.SetSMSURL(ourNumber, b.url("/sms")); err != nil {
		t.Fatal(err)
	}
	png := []byte("\x89PNG fake image")
	res, err := sim.SendInbound(testCtx(t), InboundMessage{
		From: theirNumber, To: ourNumber,
		Media: []MediaFile{{ContentType: "image/png", Data: png, Filename: "cat.png"}, {ContentType: "text/vcard", Data: []byte("BEGIN:VCARD")}},
	})
	if err != nil {
		t.Fatalf("SendInbound: %v", err)
	}
	if !strings.HasPrefix(res.MessageSID, "MM") {
		t.Fatalf("MMS SID %q", res.MessageSID)
	}
	form := b.requests()[0].Form
	if form.Get("NumMedia") != "2" || form.Get("MediaContentType0") != "image/png" || form.Get("MediaContentType1") != "text/vcard" ||
		form.Get("MessagingServiceSid") != svc || form.Get("Body") != "" {
		t.Fatalf("form = %v", form)
	}
	mediaURL := form.Get("MediaUrl0")
	if !strings.HasPrefix(mediaURL, sim.URL()+"/2010-04-01/Accounts/"+acct.SID()+"/Messages/"+res.MessageSID+"/Media/ME") {
		t.Fatalf("MediaUrl0 = %q", mediaURL)
	}
	path := strings.TrimPrefix(mediaURL, sim.URL())

	if resp := rawGet(t, sim, path, "", ""); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("media without auth: %d", resp.StatusCode)
	}
	other, _ := sim.AddAccount("", "")
	if resp := rawGet(t, sim, path, other.SID(), other.AuthToken()); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("media with another account's credentials: %d", resp.StatusCode)
	}
	resp := rawGet(t, sim, path, acct.SID(), acct.AuthToken())
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusTemporaryRedirect || !strings.HasPrefix(loc, sim.URL()+"/cdn/") {
		t.Fatalf("media with auth: %d Location %q", resp.StatusCode, loc)
	}
	cdn := rawGet(t, sim, strings.TrimPrefix(loc, sim.URL()), "", "") // no auth on the CDN
	data, _ := io.ReadAll(cdn.Body)
	if cdn.StatusCode != http.StatusOK || cdn.Header.Get("Content-Type") != "image/png" || !bytes.Equal(data, png) {
		t.Fatalf("CDN: %d %q %q", cdn.StatusCode, cdn.Header.Get("Content-Type"), data)
	}

	// Media metadata through twilio-go.
	api := accountAPI(t, sim, acct)
	list, err := api.ListMedia(res.MessageSID, nil)
	if err != nil || len(list) != 2 {
		t.Fatalf("ListMedia: %d %v", len(list), err)
	}
	one, err := api.FetchMedia(res.MessageSID, *list[0].Sid, nil)
	if err != nil || *one.ContentType != "image/png" || *one.Uri != path+".json" {
		t.Fatalf("FetchMedia: %+v %v", one, err)
	}
	if logged := acct.Messages()[0]; logged.Media[0].Filename != "cat.png" || !bytes.Equal(logged.Media[0].Data, png) {
		t.Fatalf("logged media = %+v", logged.Media)
	}
}

func TestSendInboundLogOnlyAndNoWebhook(t *testing.T) {
	sim, acct := startSim(t, Options{})
	b := newBridge(t)

	// No sms_url: logged, reported.
	res, err := sim.SendInbound(testCtx(t), InboundMessage{From: theirNumber, To: ourNumber, Body: "nobody listens"})
	if !errors.Is(err, ErrNoWebhook) || res.MessageSID == "" || res.Webhook != nil {
		t.Fatalf("no sms_url: %+v %v", res, err)
	}
	if err := acct.SetSMSURL(ourNumber, b.url("/sms")); err != nil {
		t.Fatal(err)
	}
	res2, err := sim.SendInbound(testCtx(t), InboundMessage{From: theirNumber, To: ourNumber, Body: "while you were down", LogOnly: true})
	if err != nil || res2.Webhook != nil {
		t.Fatalf("LogOnly: %+v %v", res2, err)
	}
	if n := len(b.requests()); n != 0 {
		t.Fatalf("bridge got %d requests", n)
	}
	logged, err := accountAPI(t, sim, acct).ListMessage(nil)
	if err != nil || len(logged) != 2 || *logged[0].Sid != res2.MessageSID || *logged[1].Sid != res.MessageSID {
		t.Fatalf("log = %v, %v", logged, err)
	}
	if _, err := sim.SendInbound(testCtx(t), InboundMessage{From: theirNumber, To: otherPhone, Body: "x"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("inbound to an unknown number: %v", err)
	}
}

func TestRedeliverInboundIsIdentical(t *testing.T) {
	sim, acct := startSim(t, Options{})
	b := newBridge(t)
	if err := acct.SetSMSURL(ourNumber, b.url("/sms")); err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	res, err := sim.SendInbound(ctx, InboundMessage{From: theirNumber, To: ourNumber, Body: "twice"})
	if err != nil {
		t.Fatal(err)
	}
	again, err := sim.RedeliverInbound(ctx, res.MessageSID)
	if err != nil || again.MessageSID != res.MessageSID {
		t.Fatalf("RedeliverInbound: %+v %v", again, err)
	}
	got := b.requests()
	if len(got) != 2 {
		t.Fatalf("bridge got %d requests", len(got))
	}
	for _, h := range []string{"X-Twilio-Signature", "I-Twilio-Idempotency-Token", "Content-Type", "User-Agent"} {
		if got[0].Header.Get(h) != got[1].Header.Get(h) {
			t.Fatalf("header %s differs: %q vs %q", h, got[0].Header.Get(h), got[1].Header.Get(h))
		}
	}
	if !bytes.Equal(got[0].Body, got[1].Body) {
		t.Fatal("bodies differ")
	}
	if n := len(acct.Messages()); n != 1 {
		t.Fatalf("redelivery logged %d messages", n)
	}
	if _, err := sim.RedeliverInbound(ctx, "SM"+strings.Repeat("0", 32)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("redeliver unknown: %v", err)
	}
}

func TestWebhookSignedWithRotatedToken(t *testing.T) {
	sim, acct := startSim(t, Options{})
	b := newBridge(t)
	if err := acct.SetSMSURL(ourNumber, b.url("/sms")); err != nil {
		t.Fatal(err)
	}
	oldToken := acct.AuthToken()
	newToken := acct.RotateAuthToken()
	if _, err := sim.SendInbound(testCtx(t), InboundMessage{From: theirNumber, To: ourNumber, Body: "x"}); err != nil {
		t.Fatal(err)
	}
	r := b.requests()[0]
	sig := r.Header.Get("X-Twilio-Signature")
	newV, oldV := client.NewRequestValidator(newToken), client.NewRequestValidator(oldToken)
	if !newV.ValidateBody(r.URL, r.Body, sig) || oldV.ValidateBody(r.URL, r.Body, sig) {
		t.Fatal("webhook not signed with the rotated token")
	}
}

func TestWebhookWithGETMethod(t *testing.T) {
	sim, acct := startSim(t, Options{})
	b := newBridge(t)
	api := accountAPI(t, sim, acct)
	nums, err := api.ListIncomingPhoneNumber(nil)
	if err != nil {
		t.Fatal(err)
	}
	hook := b.url("/sms?x=1")
	params := url.Values{"SmsUrl": {hook}, "SmsMethod": {"GET"}}
	req, _ := http.NewRequest(http.MethodPost, sim.URL()+numberURI(acct.SID(), *nums[0].Sid), strings.NewReader(params.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(acct.SID(), acct.AuthToken())
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("update: %v %v", resp, err)
	}
	resp.Body.Close()

	if _, err := sim.SendInbound(testCtx(t), InboundMessage{From: theirNumber, To: ourNumber, Body: "get me"}); err != nil {
		t.Fatal(err)
	}
	r := b.requests()[0]
	if r.Method != http.MethodGet || r.Form.Get("Body") != "get me" || r.Form.Get("x") != "1" {
		t.Fatalf("%s %s %v", r.Method, r.URL, r.Form)
	}
	v := client.NewRequestValidator(acct.AuthToken())
	if !v.Validate(r.URL, map[string]string{}, r.Header.Get("X-Twilio-Signature")) {
		t.Fatal("GET webhook signature does not validate")
	}
}
