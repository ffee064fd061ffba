package twiliosim

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/twilio/twilio-go/client"
	openapi "github.com/twilio/twilio-go/rest/api/v2010"
	contentapi "github.com/twilio/twilio-go/rest/content/v1"
	messagingv1 "github.com/twilio/twilio-go/rest/messaging/v1"
	messagingv2 "github.com/twilio/twilio-go/rest/messaging/v2"
)

const (
	waOurs   = "whatsapp:" + ourNumber
	waTheirs = "whatsapp:" + theirNumber
)

// whatsAppSim starts a simulator on a manual clock with a WhatsApp sender
// for ourNumber whose webhook is the bridge's.
func whatsAppSim(t *testing.T) (*Server, *Account, *bridge, *ManualClock) {
	t.Helper()
	clock := NewManualClock(time.Date(2025, 6, 1, 9, 0, 0, 0, time.UTC))
	sim, acct := startSim(t, Options{Now: clock.Now})
	if _, err := acct.AddWhatsAppSender(ourNumber, "Trestle Test"); err != nil {
		t.Fatal(err)
	}
	b := newBridge(t)
	if err := acct.SetSenderWebhook(waOurs, b.url("/whatsapp")); err != nil {
		t.Fatal(err)
	}
	return sim, acct, b, clock
}

func TestWhatsAppInboundWebhookFields(t *testing.T) {
	sim, acct, b, _ := whatsAppSim(t)
	ctx := testCtx(t)
	first, err := sim.SendInbound(ctx, InboundMessage{From: waTheirs, To: waOurs, Body: "hello",
		WhatsApp: &WhatsAppDetails{ProfileName: "Ada"}})
	if err != nil {
		t.Fatal(err)
	}
	f := first.Webhook.Form
	want := map[string]string{
		"From": waTheirs, "To": waOurs, "Body": "hello", "ProfileName": "Ada", "WaId": theirNumber[1:],
		"MessageType": "text", "SmsStatus": "received", "NumMedia": "0", "ReferralNumMedia": "0", "AccountSid": acct.SID(),
	}
	for k, v := range want {
		if f.Get(k) != v {
			t.Errorf("%s = %q, want %q", k, f.Get(k), v)
		}
	}
	if f.Has("ToCountry") || f.Has("OptOutType") {
		t.Errorf("WhatsApp webhooks carry no SMS geography or opt-out fields: %v", f)
	}
	var meta struct {
		Type string
		Data struct{ Context map[string]string }
	}
	if err := json.Unmarshal([]byte(f.Get("ChannelMetadata")), &meta); err != nil || meta.Type != "whatsapp" || meta.Data.Context["ProfileName"] != "Ada" {
		t.Errorf("ChannelMetadata = %s (%v)", f.Get("ChannelMetadata"), err)
	}
	validator := client.NewRequestValidator(acct.AuthToken())
	if r := b.requests()[0]; !validator.ValidateBody(r.URL, r.Body, r.Header.Get("X-Twilio-Signature")) {
		t.Error("signature does not validate")
	}

	api := accountAPI(t, sim, acct)
	out, err := sendParams(api, (&openapi.CreateMessageParams{}).SetTo(waTheirs).SetFrom(waOurs).SetBody("hi Ada"))
	if err != nil {
		t.Fatal(err)
	}
	reply, err := sim.SendInbound(ctx, InboundMessage{From: waTheirs, To: waOurs, Body: "here",
		WhatsApp: &WhatsAppDetails{ReplyTo: out, Location: &Location{Latitude: 52.3676, Longitude: 4.9041, Label: "Dam"}}})
	if err != nil {
		t.Fatal(err)
	}
	f = reply.Webhook.Form
	if f.Get("OriginalRepliedMessageSid") != out || f.Get("OriginalRepliedMessageSender") != waOurs ||
		f.Get("MessageType") != "location" || f.Get("Latitude") != "52.3676" || f.Get("Longitude") != "4.9041" || f.Get("Label") != "Dam" {
		t.Errorf("reply with location: %v", f)
	}
	media, err := sim.SendInbound(ctx, InboundMessage{From: waTheirs, To: waOurs,
		Media: []MediaFile{{ContentType: "image/jpeg", Data: []byte("jpg")}}, Extra: map[string][]string{"ExternalUserId": {"whatsapp:ID.1"}}})
	if err != nil || media.Webhook.Form.Get("MessageType") != "image" || media.Webhook.Form.Get("ExternalUserId") != "whatsapp:ID.1" {
		t.Errorf("media message: %v, %v", media.Webhook.Form, err)
	}

	// Addresses must match: an SMS number does not text a WhatsApp sender.
	if _, err := sim.SendInbound(ctx, InboundMessage{From: theirNumber, To: waOurs, Body: "x"}); err == nil {
		t.Error("SMS from to a WhatsApp sender accepted")
	}
}

func TestWhatsAppSendingWindowTemplatesAndRead(t *testing.T) {
	sim, acct, b, clock := whatsAppSim(t)
	ctx := testCtx(t)
	api := accountAPI(t, sim, acct)
	send := func(p *openapi.CreateMessageParams) OutboundMessage {
		t.Helper()
		return sendAndWait(t, sim, api, p.SetTo(waTheirs).SetFrom(waOurs).SetStatusCallback(b.url("/status")))
	}
	text := func() *openapi.CreateMessageParams { return (&openapi.CreateMessageParams{}).SetBody("free-form") }

	// Nobody wrote yet: the window is closed.
	if m := send(text()); m.Status != StatusFailed || m.ErrorCode != CodeOutsideWindow {
		t.Fatalf("before any inbound: %s %d", m.Status, m.ErrorCode)
	}
	if _, err := sim.SendInbound(ctx, InboundMessage{From: waTheirs, To: waOurs, Body: "hi"}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(23 * time.Hour)
	m := send(text())
	if m.Status != StatusDelivered || m.Channel != ChannelWhatsApp {
		t.Fatalf("inside the window: %s %d", m.Status, m.ErrorCode)
	}
	delivered := m.Callbacks[len(m.Callbacks)-1].Request.Form
	if delivered.Get("ChannelPrefix") != "whatsapp" || delivered.Get("ChannelToAddress") != theirNumber ||
		delivered.Get("EventType") != "DELIVERED" || delivered.Get("ChannelInstallSid")[:2] != prefixChannelSender {
		t.Fatalf("delivered callback = %v", delivered)
	}
	if err := sim.MarkRead(ctx, m.SID); err != nil {
		t.Fatal(err)
	}
	read, _ := sim.WaitMessage(ctx, m.SID, nil)
	if read.Status != StatusRead || !slices.Equal(read.CallbackStatuses(), []string{"sent", "delivered", "read"}) ||
		read.Callbacks[2].Request.Form.Get("EventType") != "READ" {
		t.Fatalf("after MarkRead: %s %v", read.Status, read.CallbackStatuses())
	}

	clock.Advance(2 * time.Hour)
	closed := send(text())
	if closed.Status != StatusFailed || closed.ErrorCode != CodeOutsideWindow || closed.Callbacks[0].Request.Form.Get("ErrorCode") != "63016" {
		t.Fatalf("25 h after the contact wrote: %s %d %v", closed.Status, closed.ErrorCode, closed.CallbackStatuses())
	}

	approved, err := acct.AddContent(ContentTemplate{FriendlyName: "Appointment reminder", Body: "Hi {{1}}, see you at {{2}}",
		Variables: map[string]string{"1": "there", "2": "noon"}, Approval: ApprovalApproved})
	if err != nil {
		t.Fatal(err)
	}
	pending, err := acct.AddContent(ContentTemplate{FriendlyName: "Promo", Body: "Sale!", Approval: ApprovalPending})
	if err != nil {
		t.Fatal(err)
	}
	tmpl := send((&openapi.CreateMessageParams{}).SetContentSid(approved).SetContentVariables(`{"1":"Ada"}`))
	if tmpl.Status != StatusDelivered || tmpl.Body != "Hi Ada, see you at noon" || tmpl.ContentSID != approved {
		t.Fatalf("approved template outside the window: %s %d %q", tmpl.Status, tmpl.ErrorCode, tmpl.Body)
	}
	if m := send((&openapi.CreateMessageParams{}).SetContentSid(pending)); m.ErrorCode != CodeOutsideWindow {
		t.Fatalf("pending template outside the window: %s %d", m.Status, m.ErrorCode)
	}
	_, err = sendParams(api, (&openapi.CreateMessageParams{}).SetTo(waTheirs).SetFrom(waOurs).SetContentSid(approved).SetContentVariables("[1]"))
	restError(t, err, http.StatusBadRequest, CodeInvalidContentVars)
	_, err = sendParams(api, (&openapi.CreateMessageParams{}).SetTo(waTheirs).SetFrom(waOurs).SetContentSid(newSID(prefixContent)))
	restError(t, err, http.StatusBadRequest, CodeInvalidContentSID)

	// The log lists WhatsApp messages by their addresses, '+' unescaped or not.
	for _, q := range []string{"?To=whatsapp%3A%2B15551230001", "?To=whatsapp:+15551230001"} {
		var page struct{ Messages []messageJSON }
		getJSON(t, sim, acct, messagesURI(acct.SID())+q, &page)
		if len(page.Messages) != 5 || page.Messages[0].To != waTheirs {
			t.Fatalf("list %s: %d messages", q, len(page.Messages))
		}
	}

	// SMS has no read receipts; mixed channels and unknown senders fail.
	sms := send((&openapi.CreateMessageParams{}).SetBody("x").SetTo(theirNumber).SetFrom(ourNumber))
	if err := sim.MarkRead(ctx, sms.SID); err == nil {
		t.Fatal("MarkRead on an SMS succeeded")
	}
	_, err = sendParams(api, (&openapi.CreateMessageParams{}).SetTo(theirNumber).SetFrom(waOurs).SetBody("x"))
	restError(t, err, http.StatusBadRequest, CodeChannelMismatch)
	_, err = sendParams(api, (&openapi.CreateMessageParams{}).SetTo(waTheirs).SetFrom("whatsapp:"+ourNumber2).SetBody("x"))
	restError(t, err, http.StatusBadRequest, CodeChannelNotFound)
}

func TestWhatsAppSendersAndTemplatesAreListable(t *testing.T) {
	sim, acct, _, _ := whatsAppSim(t)
	if _, err := acct.AddWhatsAppSender(ourNumber2, "Second"); err != nil {
		t.Fatal(err)
	}
	rcs, err := acct.AddRCSSender("trestle_test_agent", "Trestle")
	if err != nil {
		t.Fatal(err)
	}
	svc, err := acct.AddMessagingService("", ourNumber, waOurs, "rcs:trestle_test_agent")
	if err != nil {
		t.Fatal(err)
	}
	rh := requestHandler(t, sim, acct)

	v2 := messagingv2.NewApiService(rh)
	senders, err := v2.ListChannelsSender((&messagingv2.ListChannelsSenderParams{}).SetChannel("whatsapp").SetPageSize(1))
	if err != nil {
		t.Fatalf("ListChannelsSender: %v", err)
	}
	if len(senders) != 2 || *senders[0].SenderId != waOurs || *senders[1].SenderId != "whatsapp:"+ourNumber2 || *senders[0].Status != "ONLINE" {
		t.Fatalf("senders = %+v", senders)
	}
	hook := "https://bridge.example/whatsapp"
	updated, err := v2.UpdateChannelsSender(*senders[1].Sid, (&messagingv2.UpdateChannelsSenderParams{}).SetMessagingV2Update(
		messagingv2.MessagingV2Update{Webhook: &messagingv2.MessagingV2Webhook{CallbackUrl: &hook}}))
	if err != nil || *updated.Webhook.CallbackUrl != hook {
		t.Fatalf("UpdateChannelsSender: %+v, %v", updated, err)
	}
	if _, err := v2.ListChannelsSender((&messagingv2.ListChannelsSenderParams{}).SetChannel("fax")); err == nil {
		t.Fatal("Channel=fax accepted")
	}

	v1 := messagingv1.NewApiService(rh)
	channelSenders, err := v1.ListChannelSender(svc, nil)
	if err != nil || len(channelSenders) != 2 || *channelSenders[0].SenderType != "WhatsApp" ||
		*channelSenders[1].Sid != rcs || *channelSenders[1].Sender != "rcs:trestle_test_agent" {
		t.Fatalf("ListChannelSender = %+v, %v", channelSenders, err)
	}
	services, err := v1.ListService(nil)
	if err != nil || len(services) != 1 || *services[0].Sid != svc || !*services[0].StickySender {
		t.Fatalf("ListService = %+v, %v", services, err)
	}
	numbers, err := v1.ListPhoneNumber(svc, nil)
	if err != nil || len(numbers) != 1 || *numbers[0].PhoneNumber != ourNumber {
		t.Fatalf("ListPhoneNumber = %+v, %v", numbers, err)
	}
	inbound := "https://bridge.example/sms"
	if _, err := v1.UpdateService(svc, (&messagingv1.UpdateServiceParams{}).SetInboundRequestUrl(inbound)); err != nil {
		t.Fatal(err)
	}
	if got, err := v1.FetchService(svc); err != nil || *got.InboundRequestUrl != inbound {
		t.Fatalf("FetchService after update = %+v, %v", got, err)
	}

	if _, err := acct.AddContent(ContentTemplate{FriendlyName: "Reminder", Body: "Hi {{1}}", Approval: ApprovalApproved}); err != nil {
		t.Fatal(err)
	}
	if _, err := acct.AddContent(ContentTemplate{FriendlyName: "Draft", Body: "x"}); err != nil {
		t.Fatal(err)
	}
	ct := contentapi.NewApiService(rh)
	list, err := ct.ListContentAndApprovals(nil)
	if err != nil || len(list) != 2 {
		t.Fatalf("ListContentAndApprovals = %+v, %v", list, err)
	}
	approval := func(c contentapi.ContentV1ContentAndApprovals) any { return (*c.ApprovalRequests)["status"] }
	if approval(list[0]) != ApprovalApproved || approval(list[1]) != ApprovalUnsubmitted {
		t.Fatalf("approvals = %v, %v", approval(list[0]), approval(list[1]))
	}
	fetched, err := ct.FetchApprovalFetch(*list[0].Sid)
	if err != nil || (*fetched.Whatsapp)["status"] != ApprovalApproved || (*fetched.Whatsapp)["name"] != "reminder" {
		t.Fatalf("FetchApprovalFetch = %+v, %v", fetched, err)
	}
}

func TestRCSWithSMSFallback(t *testing.T) {
	sim, acct := startSim(t, Options{})
	if _, err := acct.AddRCSSender("trestle_agent", "Trestle"); err != nil {
		t.Fatal(err)
	}
	svc, err := acct.AddMessagingService("", ourNumber, "rcs:trestle_agent")
	if err != nil {
		t.Fatal(err)
	}
	b := newBridge(t)
	ctx := testCtx(t)
	api := accountAPI(t, sim, acct)
	sim.SetRecipient(theirNumber, RecipientConfig{RCSCapable: true})
	send := func(to string) OutboundMessage {
		t.Helper()
		return sendAndWait(t, sim, api, (&openapi.CreateMessageParams{}).SetTo(to).SetMessagingServiceSid(svc).SetBody("hi").SetStatusCallback(b.url("/status")))
	}

	rcs := send(theirNumber)
	cb := rcs.Callbacks[0].Request.Form
	if rcs.Channel != ChannelRCS || rcs.From != "rcs:trestle_agent" || rcs.To != "rcs:"+theirNumber ||
		cb.Get("ChannelPrefix") != "rcs" || cb.Get("From") != "rcs:trestle_agent" || cb.Get("ChannelToAddress") != theirNumber {
		t.Fatalf("RCS-capable recipient: %+v, callback %v", rcs, cb)
	}
	if err := sim.MarkRead(ctx, rcs.SID); err != nil {
		t.Fatalf("MarkRead on RCS: %v", err)
	}

	sms := send(otherPhone)
	cb = sms.Callbacks[0].Request.Form
	if sms.Channel != ChannelSMS || sms.From != ourNumber || sms.To != otherPhone || cb.Has("ChannelPrefix") {
		t.Fatalf("fallback to SMS: %+v, callback %v", sms, cb)
	}

	// Replies over RCS reach the service's webhook.
	if err := acct.ConfigureService(svc, ServiceConfig{InboundURL: b.url("/rcs-in")}); err != nil {
		t.Fatal(err)
	}
	res, err := sim.SendInbound(ctx, InboundMessage{From: "rcs:" + theirNumber, To: "rcs:trestle_agent", Body: "thanks"})
	if err != nil || res.Webhook.URL != b.url("/rcs-in") || res.Webhook.Form.Get("MessagingServiceSid") != svc {
		t.Fatalf("RCS inbound: %+v, %v", res.Webhook, err)
	}
}
