package twilio

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/bridgev2"
	"github.com/trestle-bridge/trestle/bridgev2/bridgetest"
	"github.com/trestle-bridge/trestle/bridgev2/networkid"
	"github.com/trestle-bridge/trestle/connectors/twilio/twiliosim"
)

// WhatsApp addresses of the test numbers.
const (
	waOurs   = whatsappPrefix + ourNumber
	waTheirs = whatsappPrefix + theirNumber
)

// whatsappEnv is an env whose account has a WhatsApp sender on ourNumber,
// logged in.
func whatsappEnv(t *testing.T, opts envOptions) (*env, *bridgev2.UserLogin) {
	t.Helper()
	e := newEnv(t, opts)
	if _, err := e.acct.AddWhatsAppSender(ourNumber, "Our Business"); err != nil {
		t.Fatal(err)
	}
	ul := e.login()
	if got := twClient(ul).whatsapp; got != ourNumber {
		t.Fatalf("login's WhatsApp sender %q, want %q", got, ourNumber)
	}
	return e, ul
}

// inboundWA sends a WhatsApp message from theirNumber to our sender.
func (e *env) inboundWA(body string, details *twiliosim.WhatsAppDetails, media ...twiliosim.MediaFile) twiliosim.InboundResult {
	e.t.Helper()
	res, err := e.sim.SendInbound(e.ctx(), twiliosim.InboundMessage{From: waTheirs, To: waOurs, Body: body, WhatsApp: details, Media: media})
	if err != nil {
		e.t.Fatalf("inbound WhatsApp: %v", err)
	}
	if res.Response.StatusCode != 200 {
		e.t.Fatalf("inbound WhatsApp webhook answered %d: %s", res.Response.StatusCode, res.Response.Body)
	}
	return res
}

// waRoom waits for the WhatsApp portal with theirNumber and joins alice.
func (e *env) waRoom() id.RoomID {
	e.t.Helper()
	key := networkid.PortalKey{ID: contact{addr: theirNumber, whatsapp: true}.portalID(), Receiver: ourLoginID}
	room := e.h.WaitForPortal(key, alice)
	e.eventually("portal recorded", func() bool {
		p, err := e.h.Bridge().GetPortalByRoom(e.ctx(), room)
		return err == nil && p != nil
	})
	return room
}

// fakeRoom returns the fake homeserver's room.
func (e *env) fakeRoom(room id.RoomID) *bridgetest.FakeRoom {
	for _, r := range e.h.Matrix.Rooms() {
		if r.ID == room {
			return r
		}
	}
	e.t.Fatalf("no room %s", room)
	return nil
}

func TestWhatsAppAndSMSPortalsOfOnePersonApart(t *testing.T) {
	e, _ := whatsappEnv(t, envOptions{})
	e.inbound(theirNumber, "by SMS")
	e.inboundWA("by WhatsApp", nil)
	smsRoom, waRoom := e.portalRoom(theirNumber), e.waRoom()
	if smsRoom == waRoom {
		t.Fatal("the SMS and WhatsApp chats with one person share a room")
	}
	e.h.WaitForText(smsRoom, e.ghost(theirNumber), "by SMS")
	e.h.WaitForText(waRoom, e.ghost(theirNumber), "by WhatsApp")
	if got := e.messagesFrom(smsRoom, e.ghost(theirNumber)); len(got) != 1 {
		t.Fatalf("SMS room has %q", got)
	}
	if got := e.messagesFrom(waRoom, e.ghost(theirNumber)); len(got) != 1 {
		t.Fatalf("WhatsApp room has %q", got)
	}
	smsName, waName := e.fakeRoom(smsRoom).Request.Name, e.fakeRoom(waRoom).Request.Name
	if !strings.HasSuffix(waName, "(WhatsApp)") || strings.Contains(smsName, "WhatsApp") {
		t.Fatalf("room names %q (SMS) and %q (WhatsApp) do not tell the chats apart", smsName, waName)
	}

	e.h.SendText(alice, waRoom, "answer on WhatsApp")
	e.h.SendText(alice, smsRoom, "answer by SMS")
	msgs := e.outbound(2)
	byBody := map[string]twiliosim.OutboundMessage{}
	for _, m := range msgs {
		byBody[m.Body] = m
	}
	if m := byBody["answer on WhatsApp"]; m.From != waOurs || m.To != waTheirs {
		t.Fatalf("WhatsApp reply went from %q to %q", m.From, m.To)
	}
	if m := byBody["answer by SMS"]; m.From != ourNumber || m.To != theirNumber {
		t.Fatalf("SMS reply went from %q to %q", m.From, m.To)
	}
}

func TestWhatsAppInboundReplyLocationAndMedia(t *testing.T) {
	e, _ := whatsappEnv(t, envOptions{})
	e.inboundWA("first", nil)
	room := e.waRoom()
	e.h.WaitForText(room, e.ghost(theirNumber), "first")
	sent := e.h.SendText(alice, room, "which one?")
	out := e.outbound(1)
	e.waitMapped(sent)

	e.inboundWA("this one", &twiliosim.WhatsAppDetails{ReplyTo: out[0].SID})
	reply := e.h.WaitForText(room, e.ghost(theirNumber), "this one")
	if got := reply.Content.AsMessage().RelatesTo.GetReplyTo(); got != sent {
		t.Fatalf("the WhatsApp reply relates to %q, want the Matrix message %q", got, sent)
	}

	e.inboundWA("", &twiliosim.WhatsAppDetails{Location: &twiliosim.Location{Latitude: 52.3676, Longitude: 4.9041, Label: "Dam Square"}})
	loc := e.h.WaitForText(room, e.ghost(theirNumber), "Dam Square").Content.AsMessage()
	if loc.MsgType != event.MsgLocation || loc.GeoURI != "geo:52.3676,4.9041" {
		t.Fatalf("location arrived as %s %q", loc.MsgType, loc.GeoURI)
	}

	e.inboundWA("a photo", nil, twiliosim.MediaFile{ContentType: "image/jpeg", Data: []byte("\xff\xd8\xff fake jpeg")})
	photo := e.h.WaitForText(room, e.ghost(theirNumber), "a photo").Content.AsMessage()
	if photo.MsgType != event.MsgImage {
		t.Fatalf("WhatsApp photo arrived as %s", photo.MsgType)
	}
}

func TestWhatsAppOutboundMediaLimits(t *testing.T) {
	e, _ := whatsappEnv(t, envOptions{})
	e.inboundWA("send me the file", nil)
	room := e.waRoom()
	e.h.WaitForText(room, e.ghost(theirNumber), "send me the file")
	uri := e.h.Matrix.PutMedia([]byte("%PDF-1.4 fake"), "application/pdf")
	e.h.SendMatrix(alice, room, event.EventMessage, &event.MessageEventContent{
		MsgType: event.MsgFile, Body: "report.pdf", URL: uri, Info: &event.FileInfo{MimeType: "application/pdf", Size: 14},
	})
	msgs := e.outbound(1)
	if msgs[0].To != waTheirs || len(msgs[0].MediaURLs) != 1 {
		t.Fatalf("the PDF went as %+v", msgs[0])
	}
	gif := e.h.Matrix.PutMedia([]byte("GIF89a"), "image/gif")
	evt := e.h.SendMatrix(alice, room, event.EventMessage, &event.MessageEventContent{
		MsgType: event.MsgImage, Body: "funny.gif", URL: gif, Info: &event.FileInfo{MimeType: "image/gif", Size: 6},
	})
	st := e.h.WaitForStatus(room, evt, event.MessageStatusFail)
	if !strings.Contains(st.Message, "WhatsApp cannot carry image/gif") {
		t.Fatalf("refusal %q", st.Message)
	}
}

// roomTopic is the current m.room.topic of a room on the fake homeserver.
func (e *env) roomTopic(room id.RoomID) string {
	topic := e.fakeRoom(room).Request.Topic
	for _, evt := range e.h.Matrix.Events(room) {
		if evt.Type == event.StateTopic {
			topic = evt.Content.AsTopic().Topic
		}
	}
	return topic
}

func TestWhatsAppWindowRefusesTextsButTemplatesGoThrough(t *testing.T) {
	clock := twiliosim.NewManualClock(time.Now().UTC().Truncate(time.Second))
	e, ul := whatsappEnv(t, envOptions{clock: clock})
	hx, err := e.acct.AddContent(twiliosim.ContentTemplate{FriendlyName: "reminder", Body: "Hi {{1}}, see you at {{2}}",
		Variables: map[string]string{"1": "name", "2": "time"}, Approval: twiliosim.ApprovalApproved})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.acct.AddContent(twiliosim.ContentTemplate{FriendlyName: "draft", Body: "not approved"}); err != nil {
		t.Fatal(err)
	}
	e.inboundWA("hello", nil)
	room := e.waRoom()
	e.h.WaitForText(room, e.ghost(theirNumber), "hello")
	closes := clock.Now().Add(24 * time.Hour).Format("15:04")
	if topic := e.roomTopic(room); !strings.Contains(topic, "until") || !strings.Contains(topic, closes) {
		t.Fatalf("topic %q does not say the window closes at %s", topic, closes)
	}
	e.h.SendText(alice, room, "within the window")
	e.outbound(1)

	clock.Advance(25 * time.Hour)
	late := e.h.SendText(alice, room, "too late")
	st := e.h.WaitForStatus(room, late, event.MessageStatusFail)
	if !strings.Contains(st.Message, "24-hour window") || !strings.Contains(st.Message, "templates") {
		t.Fatalf("refusal %q", st.Message)
	}
	e.h.WaitForText(room, e.h.Matrix.BotUserID(), "24-hour window")

	tmpl := e.h.SendText(alice, room, templateCommand+" "+hx+" Ada | 3pm")
	msgs, err := e.sim.WaitOutbound(e.ctx(), func(m []twiliosim.OutboundMessage) bool { return len(m) == 2 && m[1].Done })
	if err != nil {
		t.Fatalf("%v (have %d)", err, len(msgs))
	}
	if m := msgs[1]; m.ContentSID != hx || m.Body != "Hi Ada, see you at 3pm" || m.ErrorCode != 0 || m.From != waOurs {
		t.Fatalf("template went out as %+v", m)
	}
	e.h.WaitForStatus(room, tmpl, event.MessageStatusSuccess)
	if got := e.sim.Outbound(); len(got) != 2 {
		t.Fatalf("%d messages reached Twilio; the refused text must not", len(got))
	}

	templates, err := twClient(ul).rest.listApprovedTemplates(e.ctx())
	if err != nil {
		t.Fatal(err)
	}
	list := templateList(templates)
	if !strings.Contains(list, hx) || !strings.Contains(list, "reminder") || strings.Contains(list, "draft") {
		t.Fatalf("template list:\n%s", list)
	}
}

// waitReceipt waits for a read receipt of evtID from user in room.
func (e *env) waitReceipt(room id.RoomID, user id.UserID, evtID id.EventID) {
	e.t.Helper()
	_, err := e.h.Matrix.WaitForEvent(e.ctx(), room, "read receipt", func(evt *event.Event) bool {
		if evt.Type != event.EphemeralEventReceipt || evt.Sender != user {
			return false
		}
		rc, ok := evt.Content.Parsed.(*event.ReceiptEventContent)
		if !ok {
			return false
		}
		_, ok = (*rc)[evtID]
		return ok
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

func TestWhatsAppReadStatusBecomesTheContactsReadReceipt(t *testing.T) {
	e, _ := whatsappEnv(t, envOptions{})
	e.inboundWA("hi", nil)
	room := e.waRoom()
	e.h.WaitForText(room, e.ghost(theirNumber), "hi")
	sent := e.h.SendText(alice, room, "did you read this?")
	msgs, err := e.sim.WaitOutbound(e.ctx(), func(m []twiliosim.OutboundMessage) bool { return len(m) == 1 && m[0].Done })
	if err != nil {
		t.Fatal(err)
	}
	e.h.WaitForStatus(room, sent, event.MessageStatusSuccess)
	if err := e.sim.MarkRead(e.ctx(), msgs[0].SID); err != nil {
		t.Fatal(err)
	}
	e.waitReceipt(room, e.ghost(theirNumber), sent)
}

func TestRCSStatusSaysWhichChannelEachTextTook(t *testing.T) {
	e := newEnv(t, envOptions{})
	svc, err := e.acct.AddMessagingService("", ourNumber)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.acct.AddRCSSender("our_agent", "Our Business"); err != nil {
		t.Fatal(err)
	}
	if err := e.acct.AddServiceSender(svc, "rcs:our_agent"); err != nil {
		t.Fatal(err)
	}
	e.sim.SetRecipient(theirNumber, twiliosim.RecipientConfig{RCSCapable: true})
	creds := e.creds()
	creds["messaging_service_sid"] = svc
	e.loginAdvanced(creds, ourNumber)

	e.inbound(theirNumber, "I have RCS")
	e.inbound(theirNumber2, "I do not")
	rcsRoom, smsRoom := e.portalRoom(theirNumber), e.portalRoom(theirNumber2)
	e.h.WaitForText(rcsRoom, e.ghost(theirNumber), "I have RCS")
	e.h.WaitForText(smsRoom, e.ghost(theirNumber2), "I do not")
	overRCS := e.h.SendText(alice, rcsRoom, "rich")
	overSMS := e.h.SendText(alice, smsRoom, "plain")
	if st := e.waitDelivered(rcsRoom, overRCS); st.Message != "Sent over RCS." {
		t.Fatalf("RCS text status %q", st.Message)
	}
	if st := e.waitDelivered(smsRoom, overSMS); st.Message != "Sent over SMS." {
		t.Fatalf("SMS fallback status %q", st.Message)
	}
	var rcsSID string
	for _, m := range e.sim.Outbound() {
		switch {
		case m.Body == "rich":
			rcsSID = m.SID
			if m.Channel != twiliosim.ChannelRCS {
				t.Fatalf("the text to an RCS phone went over %s", m.Channel)
			}
		case m.Body == "plain" && m.From != ourNumber:
			t.Fatalf("the SMS fallback went from %s, want the login's number", m.From)
		}
	}
	if err := e.sim.MarkRead(e.ctx(), rcsSID); err != nil {
		t.Fatal(err)
	}
	e.waitReceipt(rcsRoom, e.ghost(theirNumber), overRCS)
}

// waitDelivered waits for the status of evtID that names the contact as a
// recipient it was delivered to.
func (e *env) waitDelivered(room id.RoomID, evtID id.EventID) *event.BeeperMessageStatusEventContent {
	e.t.Helper()
	evt, err := e.h.Matrix.WaitForEvent(e.ctx(), room, "delivered status", func(evt *event.Event) bool {
		c, ok := evt.Content.Parsed.(*event.BeeperMessageStatusEventContent)
		return ok && evt.Type == event.BeeperMessageStatus && c.RelatesTo.EventID == evtID && c.DeliveredToUsers != nil && len(*c.DeliveredToUsers) > 0
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return evt.Content.Parsed.(*event.BeeperMessageStatusEventContent)
}

func TestWhatsAppTextWhoseWebhookFailedIsCaughtUp(t *testing.T) {
	e, ul := whatsappEnv(t, envOptions{})
	if _, err := e.sim.SendInbound(e.ctx(), twiliosim.InboundMessage{From: waTheirs, To: waOurs, Body: "only in the log", LogOnly: true,
		Media: []twiliosim.MediaFile{{ContentType: "image/jpeg", Data: []byte("\xff\xd8\xff fake jpeg")}}}); err != nil {
		t.Fatal(err)
	}
	twClient(ul).wake()
	e.waitCaughtUp(ul, 2)
	room := e.waRoom()
	// From the log as by webhook: one image with its caption.
	if got := e.h.WaitForText(room, e.ghost(theirNumber), "only in the log").Content.AsMessage(); got.MsgType != event.MsgImage {
		t.Fatalf("the caught-up WhatsApp photo arrived as %s", got.MsgType)
	}
}

func TestLoginListsWhatsAppSendersNextToNumbers(t *testing.T) {
	e := newEnv(t, envOptions{numbers: []string{ourNumber, ourNumber2}})
	if _, err := e.acct.AddWhatsAppSender(ourNumber2, "Our Business"); err != nil {
		t.Fatal(err)
	}
	ctx := e.ctx()
	proc, err := e.conn().CreateLogin(ctx, e.h.User(alice), FlowAuthToken)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := proc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	step, err := proc.SubmitUserInput(ctx, e.creds())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(step.Instructions, "WhatsApp sender") || !strings.Contains(step.Instructions, ourNumber2) || strings.Contains(step.Instructions, ourNumber+",") {
		t.Fatalf("the choice does not say which number has a WhatsApp sender: %q", step.Instructions)
	}
	step, err = proc.SubmitUserInput(ctx, map[string]string{"phone_number": ourNumber2})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(step.Instructions, "WhatsApp") {
		t.Fatalf("completion does not mention the WhatsApp sender: %q", step.Instructions)
	}
	if meta := step.Complete.UserLogin.Metadata.(*LoginMetadata); meta.WhatsAppNumber != ourNumber2 {
		t.Fatalf("WhatsApp sender %q stored", meta.WhatsAppNumber)
	}
}

func TestAWhatsAppSenderWithoutAnSMSNumberLogsInForWhatsAppAlone(t *testing.T) {
	const waOnly = "+14155550199"
	e := newEnv(t, envOptions{})
	if _, err := e.acct.AddWhatsAppSender(waOnly, "Our Business"); err != nil {
		t.Fatal(err)
	}
	ctx := e.ctx()
	proc, err := e.conn().CreateLogin(ctx, e.h.User(alice), FlowAuthToken)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := proc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	step, err := proc.SubmitUserInput(ctx, e.creds())
	if err != nil {
		t.Fatal(err)
	}
	if opts := step.UserInput.Fields[0].Options; len(opts) != 2 || opts[0] != ourNumber || opts[1] != whatsappPrefix+waOnly {
		t.Fatalf("choices %q, want the SMS number and the WhatsApp sender", opts)
	}
	step, err = proc.SubmitUserInput(ctx, map[string]string{"phone_number": whatsappPrefix + waOnly})
	if err != nil {
		t.Fatal(err)
	}
	ul := step.Complete.UserLogin
	webhook := e.h.URL + "/_trestle/twilio/" + idFromAddr(waOnly) + "/incoming"
	if ul.RemoteName != "+1 415-555-0199 (WhatsApp)" || !strings.Contains(step.Instructions, webhook) {
		t.Fatalf("login %q, instructions %q", ul.RemoteName, step.Instructions)
	}
	e.waitState(ul, bridgev2.StateConnected)
	if err := e.acct.SetSenderWebhook(whatsappPrefix+waOnly, webhook); err != nil {
		t.Fatal(err)
	}
	if _, err := e.sim.SendInbound(ctx, twiliosim.InboundMessage{From: waTheirs, To: whatsappPrefix + waOnly, Body: "hello shop"}); err != nil {
		t.Fatal(err)
	}
	key := networkid.PortalKey{ID: contact{addr: theirNumber, whatsapp: true}.portalID(), Receiver: ul.ID}
	room := e.h.WaitForPortal(key, alice)
	e.h.WaitForText(room, e.ghost(theirNumber), "hello shop")
	e.eventually("portal recorded", func() bool {
		p, err := e.h.Bridge().GetPortalByRoom(ctx, room)
		return err == nil && p != nil
	})
	e.h.SendText(alice, room, "welcome")
	if m := e.outbound(1)[0]; m.From != whatsappPrefix+waOnly || m.To != waTheirs {
		t.Fatalf("reply went from %s to %s", m.From, m.To)
	}
	// A plain number opens a WhatsApp chat: the login has no SMS.
	resolved, err := ul.Client.(*Client).ResolveIdentifier(ctx, theirNumber2)
	if err != nil || resolved.Chat.ID != (contact{addr: theirNumber2, whatsapp: true}).portalID() {
		t.Fatalf("resolving a number: %+v %v", resolved, err)
	}
}

func TestAReplyOverRCSArrivesInTheSMSChat(t *testing.T) {
	e := newEnv(t, envOptions{})
	svc, err := e.acct.AddMessagingService("", ourNumber)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.acct.AddRCSSender("our_agent", "Our Business"); err != nil {
		t.Fatal(err)
	}
	if err := e.acct.AddServiceSender(svc, "rcs:our_agent"); err != nil {
		t.Fatal(err)
	}
	creds := e.creds()
	creds["messaging_service_sid"] = svc
	e.loginAdvanced(creds, ourNumber)
	if err := e.acct.ConfigureService(svc, twiliosim.ServiceConfig{InboundURL: e.h.URL + "/_trestle/twilio/" + string(ourLoginID) + "/incoming"}); err != nil {
		t.Fatal(err)
	}
	res, err := e.sim.SendInbound(e.ctx(), twiliosim.InboundMessage{From: "rcs:" + theirNumber, To: "rcs:our_agent", Body: "replying over RCS"})
	if err != nil || res.Response.StatusCode != 200 {
		t.Fatalf("RCS webhook: %v, HTTP %d %s", err, res.Response.StatusCode, res.Response.Body)
	}
	room := e.portalRoom(theirNumber)
	e.h.WaitForText(room, e.ghost(theirNumber), "replying over RCS")

	path := "/_trestle/twilio/" + string(ourLoginID) + "/incoming"
	other := url.Values{"AccountSid": {e.acct.SID()}, "MessageSid": {testSID}, "From": {"rcs:" + theirNumber}, "To": {"rcs:their_agent"},
		"MessagingServiceSid": {"MG0123456789abcdef0123456789abcdef"}, "Body": {"not for us"}}
	if code, body := e.post(path, other, e.signed(path, other)); code != http.StatusBadRequest {
		t.Fatalf("an RCS webhook of another Messaging Service got HTTP %d %s", code, body)
	}
}

func TestAnRCSReplyWhoseWebhookFailedIsCaughtUp(t *testing.T) {
	e := newEnv(t, envOptions{})
	svc, err := e.acct.AddMessagingService("", ourNumber)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.acct.AddRCSSender("our_agent", "Our Business"); err != nil {
		t.Fatal(err)
	}
	if err := e.acct.AddServiceSender(svc, "rcs:our_agent"); err != nil {
		t.Fatal(err)
	}
	creds := e.creds()
	creds["messaging_service_sid"] = svc
	ul := e.loginAdvanced(creds, ourNumber)
	if _, err := e.sim.SendInbound(e.ctx(), twiliosim.InboundMessage{From: "rcs:" + theirNumber, To: "rcs:our_agent", Body: "lost webhook", LogOnly: true}); err != nil {
		t.Fatal(err)
	}
	twClient(ul).wake()
	e.waitCaughtUp(ul, 2)
	room := e.portalRoom(theirNumber)
	e.h.WaitForText(room, e.ghost(theirNumber), "lost webhook")
}

func TestAWhatsApp63016FromTwilioIsExplainedInWords(t *testing.T) {
	// The bridge's clock stays while Twilio's moves on: the bridge thinks
	// the window is open, Twilio knows better, as after a clock skew.
	simClock := twiliosim.NewManualClock(time.Now().UTC().Truncate(time.Second))
	bridgeClock := twiliosim.NewManualClock(simClock.Now())
	e, _ := whatsappEnv(t, envOptions{clock: simClock, tweak: func(c *Connector) { c.now = bridgeClock.Now }})
	e.inboundWA("hello", nil)
	room := e.waRoom()
	e.h.WaitForText(room, e.ghost(theirNumber), "hello")
	simClock.Advance(25 * time.Hour)
	sent := e.h.SendText(alice, room, "too late for Twilio")
	if st := e.h.WaitForStatus(room, sent, event.MessageStatusFail); st.Message != errorSentences[63016] {
		t.Fatalf("failure %q", st.Message)
	}
}

func TestWhatsAppRoomsSayWhatWhatsAppCanCarryAndThatReceiptsAreNotSent(t *testing.T) {
	e, _ := whatsappEnv(t, envOptions{})
	e.inboundWA("hi", nil)
	room := e.waRoom()
	var f *event.RoomFeatures
	e.eventually("room features", func() bool {
		for _, r := range e.h.Matrix.Rooms() {
			if st := r.State[event.StateBeeperRoomFeatures.Type+"|"]; r.ID == room && st != nil {
				raw, _ := json.Marshal(st.Content.Parsed)
				f = &event.RoomFeatures{}
				return json.Unmarshal(raw, f) == nil
			}
		}
		return false
	})
	if !strings.HasPrefix(f.ID, "net.trestle.twilio.whatsapp") || f.ReadReceipts || f.TypingNotifications {
		t.Fatalf("WhatsApp room features %+v", f)
	}
	img, file := f.File[event.MsgImage], f.File[event.MsgFile]
	if img == nil || img.MimeTypes["image/png"] != event.CapLevelFullySupported || img.MimeTypes["image/gif"] != event.CapLevelUnsupported || img.MaxSize != 5<<20 {
		t.Fatalf("WhatsApp images %+v", img)
	}
	if file == nil || file.MimeTypes["application/pdf"] != event.CapLevelFullySupported || file.MaxSize != 16<<20 {
		t.Fatalf("WhatsApp files %+v", file)
	}
}
