package twiliosim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/twilio/twilio-go/client"
	conversations "github.com/twilio/twilio-go/rest/conversations/v1"
)

// Group members: phones of the group besides the bridge's number.
const (
	alice = "+15551230011"
	bob   = "+15551230012"
	carol = "+15551230013"
)

// groupSim starts a simulator whose account has ourNumber and a global
// Conversations webhook (every event) to a fake bridge, and returns a
// twilio-go Conversations client.
func groupSim(t *testing.T) (*Server, *Account, *bridge, *conversations.ApiService) {
	t.Helper()
	sim, acct := startSim(t, Options{})
	b := newBridge(t)
	api := conversations.NewApiService(requestHandler(t, sim, acct))
	_, err := api.UpdateConfigurationWebhook((&conversations.UpdateConfigurationWebhookParams{}).
		SetPostWebhookUrl(b.url("/conversations")).SetMethod("POST").
		SetFilters([]string{EventMessageAdded, EventParticipantAdded, EventParticipantRemoved, EventConversationAdded, EventConversationRemoved, EventDeliveryUpdated}))
	if err != nil {
		t.Fatalf("UpdateConfigurationWebhook: %v", err)
	}
	return sim, acct, b, api
}

// createGroup builds a group as a bridge does: the phones by address, the
// bridge as an identity projecting ourNumber.
func createGroup(t *testing.T, api *conversations.ApiService, phones ...string) string {
	t.Helper()
	c, err := api.CreateConversation((&conversations.CreateConversationParams{}).SetFriendlyName("Group"))
	if err != nil {
		t.Fatalf("CreateConversation: %v", err)
	}
	for _, p := range phones {
		if _, err := api.CreateConversationParticipant(*c.Sid, (&conversations.CreateConversationParticipantParams{}).SetMessagingBindingAddress(p)); err != nil {
			t.Fatalf("adding %s: %v", p, err)
		}
	}
	if _, err := api.CreateConversationParticipant(*c.Sid, (&conversations.CreateConversationParticipantParams{}).
		SetIdentity("bridge").SetMessagingBindingProjectedAddress(ourNumber)); err != nil {
		t.Fatalf("adding the bridge: %v", err)
	}
	return *c.Sid
}

// uploadMedia uploads a file to the account's Media Content Service as a
// multipart form and returns its SID.
func uploadMedia(t *testing.T, sim *Server, acct *Account, name, contentType string, data []byte) string {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	h := map[string][]string{
		"Content-Disposition": {fmt.Sprintf(`form-data; name="Media"; filename=%q`, name)},
		"Content-Type":        {contentType},
	}
	part, err := mw.CreatePart(h)
	if err != nil {
		t.Fatal(err)
	}
	part.Write(data)
	mw.Close()
	req, _ := http.NewRequest(http.MethodPost, sim.URL()+"/v1/Services/"+chatService(sim, acct)+"/Media", &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.SetBasicAuth(acct.SID(), acct.AuthToken())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload: %d %v %v", resp.StatusCode, got, err)
	}
	return got["sid"].(string)
}

// chatService is the account's default Conversation Service.
func chatService(sim *Server, acct *Account) string {
	sim.mu.Lock()
	defer sim.mu.Unlock()
	return sim.accounts[acct.SID()].chatServiceSID
}

func TestGroupMMSFromTheBridgeReachesEveryPhone(t *testing.T) {
	sim, acct, b, api := groupSim(t)
	ctx := testCtx(t)
	sim.SetRecipient(carol, RecipientConfig{Behavior: Undeliverable, ErrorCode: CodeUnreachable})
	conv := createGroup(t, api, alice, bob, carol)
	media := uploadMedia(t, sim, acct, "cat.png", "image/png", []byte("png"))

	msg, err := api.CreateConversationMessage(conv, (&conversations.CreateConversationMessageParams{}).
		SetAuthor("bridge").SetBody("hello all").SetMediaSid(media))
	if err != nil {
		t.Fatalf("CreateConversationMessage: %v", err)
	}
	if msg.Index != 0 || *msg.Author != "bridge" || msg.ParticipantSid == nil || msg.Media == nil || len(*msg.Media) != 1 {
		t.Fatalf("message = %+v", msg)
	}

	convs, err := acct.WaitConversations(ctx, func(cs []Conversation) bool {
		return len(cs) == 1 && len(cs[0].Messages) == 1 && cs[0].Messages[0].Done
	})
	if err != nil {
		t.Fatal(err)
	}
	m := convs[0].Messages[0]
	if !convs[0].Group || len(m.Deliveries) != 3 || len(m.Media) != 1 || string(m.Media[0].Data) != "png" || m.Media[0].Filename != "cat.png" {
		t.Fatalf("conversation = %+v", convs[0])
	}
	statuses := map[string]string{}
	for _, d := range m.Deliveries {
		if d.From != ourNumber || !strings.HasPrefix(d.ChannelMessageSID, prefixMMS) {
			t.Fatalf("delivery = %+v", d)
		}
		statuses[d.To] = d.Status
	}
	if statuses[alice] != StatusDelivered || statuses[bob] != StatusDelivered || statuses[carol] != StatusUndelivered {
		t.Fatalf("statuses = %v", statuses)
	}

	receipts, err := api.ListConversationMessageReceipt(conv, *msg.Sid, nil)
	if err != nil || len(receipts) != 3 {
		t.Fatalf("receipts = %+v, %v", receipts, err)
	}
	fetched, err := api.FetchConversationMessage(conv, *msg.Sid)
	if err != nil {
		t.Fatal(err)
	}
	delivery := (*fetched.Delivery).(map[string]any)
	if delivery["total"] != float64(3) || delivery["delivered"] != "some" || delivery["undelivered"] != "some" || delivery["sent"] != "all" {
		t.Fatalf("delivery = %v", delivery)
	}

	// REST actions fire no webhooks without X-Twilio-Webhook-Enabled;
	// delivery updates always do (two per delivered copy, two for carol's).
	var kinds []string
	for _, ev := range acct.ConversationEvents() {
		kinds = append(kinds, ev.EventType)
	}
	if len(kinds) != 6 || slices.ContainsFunc(kinds, func(k string) bool { return k != EventDeliveryUpdated }) {
		t.Fatalf("events = %v", kinds)
	}
	got := b.requests()
	if len(got) != 6 || got[0].Form.Get("DeliveryReceiptSid")[:2] != prefixReceipt || got[0].Form.Get("WebhookType") != "config" {
		t.Fatalf("bridge got %d requests: %v", len(got), got[0].Form)
	}
	validator := client.NewRequestValidator(acct.AuthToken())
	if !validator.ValidateBody(got[0].URL, got[0].Body, got[0].Header.Get("X-Twilio-Signature")) {
		t.Fatal("conversation webhook signature does not validate")
	}

	// With the header, the message webhook fires too.
	if _, err := api.CreateConversationMessage(conv, (&conversations.CreateConversationMessageParams{}).
		SetAuthor("bridge").SetBody("again").SetXTwilioWebhookEnabled("true")); err != nil {
		t.Fatal(err)
	}
	b.waitFor(t, ctx, func(r received) bool {
		return r.Form.Get("EventType") == EventMessageAdded && r.Form.Get("Source") == sourceAPI && r.Form.Get("Body") == "again"
	})
}

func TestGroupMMSRules(t *testing.T) {
	sim, acct, _, api := groupSim(t)
	conv := createGroup(t, api, alice, bob)
	add := func(p *conversations.CreateConversationParticipantParams) error {
		_, err := api.CreateConversationParticipant(conv, p)
		return err
	}
	addr := func(a string) *conversations.CreateConversationParticipantParams {
		return (&conversations.CreateConversationParticipantParams{}).SetMessagingBindingAddress(a)
	}
	restError(t, add(addr("+447700900123")), http.StatusBadRequest, CodeGroupMMSActivation)
	restError(t, add(addr("not-a-number")), http.StatusBadRequest, CodeInvalidBindingAddress)
	restError(t, add(addr(alice)), http.StatusConflict, CodeBindingExists)
	restError(t, add((&conversations.CreateConversationParticipantParams{}).SetIdentity("someone")), http.StatusBadRequest, CodeProjectedAddressMissing)
	if _, err := acct.AddNumber(ourNumber2, Capabilities{SMS: true, MMS: true}); err != nil {
		t.Fatal(err)
	}
	restError(t, add((&conversations.CreateConversationParticipantParams{}).SetIdentity("other").SetMessagingBindingProjectedAddress(ourNumber2)),
		http.StatusBadRequest, CodeGroupMMSActivation)
	restError(t, add((&conversations.CreateConversationParticipantParams{}).SetIdentity("x").SetMessagingBindingProjectedAddress("+15557770000")),
		http.StatusBadRequest, CodeInvalidProxyAddress)
	// Ten participants at most: the bridge and alice and bob leave room
	// for seven more phones.
	for i := range 7 {
		if err := add(addr(fmt.Sprintf("+1555123%04d", 100+i))); err != nil {
			t.Fatalf("participant %d: %v", i+4, err)
		}
	}
	restError(t, add(addr("+15551230200")), http.StatusBadRequest, CodeGroupParticipantLimit)

	_, err := api.CreateConversationMessage(conv, (&conversations.CreateConversationMessageParams{}).SetAuthor("stranger").SetBody("x"))
	restError(t, err, http.StatusBadRequest, CodeAuthorNotInGroup)
	_, err = api.FetchConversation("CH" + strings.Repeat("0", 32))
	restError(t, err, http.StatusNotFound, CodeNotFound)
	_, err = api.CreateConversation((&conversations.CreateConversationParams{}).SetMessagingServiceSid("MG" + strings.Repeat("0", 32)))
	restError(t, err, http.StatusBadRequest, CodeInvalidConversationMG)

	// A 1:1 conversation (proxy address, no projected one) has no group rules.
	one, err := api.CreateConversation(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := api.CreateConversationParticipant(*one.Sid, addr("+447700900123").SetMessagingBindingProxyAddress(ourNumber)); err != nil {
		t.Fatalf("1:1 participant abroad: %v", err)
	}
	if c := acct.Conversations(); len(c) != 2 || c[1].Group {
		t.Fatalf("conversations = %+v", c)
	}
	_ = sim
}

func TestPhoneTextsAGroup(t *testing.T) {
	sim, acct, b, api := groupSim(t)
	ctx := testCtx(t)

	// A phone starts a group with the bridge's number and two others.
	res, err := sim.SendGroupText(ctx, GroupText{From: alice, To: ourNumber, Others: []string{bob, carol}, Body: "who's in?",
		Media: []MediaFile{{ContentType: "image/jpeg", Data: []byte("jpeg"), Filename: "pic.jpg"}}})
	if err != nil {
		t.Fatalf("SendGroupText: %v", err)
	}
	var kinds []string
	for _, ev := range res.Events {
		kinds = append(kinds, ev.EventType)
	}
	want := []string{EventConversationAdded, EventParticipantAdded, EventParticipantAdded, EventParticipantAdded, EventParticipantAdded, EventMessageAdded}
	if !slices.Equal(kinds, want) {
		t.Fatalf("events = %v, want %v", kinds, want)
	}
	group, ok := acct.FindGroup(ourNumber, carol, alice, bob)
	if !ok {
		t.Fatalf("no group: %+v", acct.Conversations())
	}
	added := res.Events[len(res.Events)-1].Request.Form
	for k, v := range map[string]string{
		"EventType": EventMessageAdded, "ConversationSid": group.SID, "MessageSid": res.SID, "Author": alice,
		"Body": "who's in?", "Index": "0", "Source": "SMS", "AccountSid": acct.SID(), "ChatServiceSid": chatService(sim, acct),
	} {
		if added.Get(k) != v {
			t.Errorf("onMessageAdded %s = %q, want %q", k, added.Get(k), v)
		}
	}
	var items []struct {
		Sid, Filename, ContentType, Category string
		Size                                 int
	}
	if err := json.Unmarshal([]byte(added.Get("Media")), &items); err != nil || len(items) != 1 || items[0].Filename != "pic.jpg" || items[0].Size != 4 {
		t.Fatalf("Media = %s (%v)", added.Get("Media"), err)
	}
	participant := res.Events[1].Request.Form
	if participant.Get("MessagingBinding.Address") != alice || participant.Get("ParticipantSid")[:2] != prefixParticipant {
		t.Fatalf("onParticipantAdded = %v", participant)
	}

	// The bridge fetches the media through the Media Content Service.
	var meta map[string]any
	getJSON(t, sim, acct, "/v1/Services/"+chatService(sim, acct)+"/Media/"+items[0].Sid, &meta)
	if meta["author"] != alice || meta["message_sid"] != res.SID || meta["channel_sid"] != group.SID {
		t.Fatalf("media = %v", meta)
	}
	direct := meta["links"].(map[string]any)["content_direct_temporary"].(string)
	resp, err := http.Get(direct)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(data) != "jpeg" || resp.Header.Get("Content-Type") != "image/jpeg" {
		t.Fatalf("content: %q %s", data, resp.Header.Get("Content-Type"))
	}

	// A second text finds the same group; a conversation-scoped webhook
	// hears it too.
	hook := b.url("/scoped")
	if _, err := api.CreateConversationScopedWebhook(group.SID, (&conversations.CreateConversationScopedWebhookParams{}).
		SetTarget("webhook").SetConfigurationUrl(hook).SetConfigurationFilters([]string{EventMessageAdded})); err != nil {
		t.Fatal(err)
	}
	again, err := sim.SendGroupText(ctx, GroupText{From: bob, To: ourNumber, Others: []string{alice, carol}, Body: "me"})
	if err != nil || len(again.Events) != 2 || again.Events[1].Request.URL != hook || again.Events[1].Request.Form.Get("WebhookType") != "webhook" {
		t.Fatalf("second text: %+v, %v", again.Events, err)
	}
	if _, err := sim.SendGroupText(ctx, GroupText{ConversationSID: group.SID, From: "+15550000000", Body: "x"}); err == nil {
		t.Fatal("a stranger texted the group")
	}
	msgs, err := api.ListConversationMessage(group.SID, (&conversations.ListConversationMessageParams{}).SetOrder("desc"))
	if err != nil || len(msgs) != 2 || *msgs[0].Author != bob || msgs[0].Index != 1 {
		t.Fatalf("messages = %+v, %v", msgs, err)
	}
}

func TestParticipantChangesAndRemovalFireWebhooks(t *testing.T) {
	sim, acct, b, api := groupSim(t)
	ctx := testCtx(t)
	conv := createGroup(t, api, alice, bob)

	add, err := acct.AddParticipant(ctx, conv, carol)
	if err != nil || len(add.Events) != 1 || add.Events[0].Request.Form.Get("MessagingBinding.Address") != carol {
		t.Fatalf("AddParticipant: %+v, %v", add, err)
	}
	rm, err := acct.RemoveParticipant(ctx, conv, add.SID)
	if err != nil || rm.Events[0].EventType != EventParticipantRemoved || rm.Events[0].Request.Form.Get("ParticipantSid") != add.SID {
		t.Fatalf("RemoveParticipant: %+v, %v", rm, err)
	}
	// The bridge removing a participant through the API, opted into webhooks.
	parts, err := api.ListConversationParticipant(conv, nil)
	if err != nil || len(parts) != 3 {
		t.Fatalf("participants = %v, %v", parts, err)
	}
	if err := api.DeleteConversationParticipant(conv, *parts[0].Sid, (&conversations.DeleteConversationParticipantParams{}).SetXTwilioWebhookEnabled("true")); err != nil {
		t.Fatal(err)
	}
	b.waitFor(t, ctx, func(r received) bool {
		return r.Form.Get("EventType") == EventParticipantRemoved && r.Form.Get("ParticipantSid") == *parts[0].Sid
	})
	gone, err := acct.RemoveConversation(ctx, conv)
	if err != nil || gone.Events[0].EventType != EventConversationRemoved || len(acct.Conversations()) != 0 {
		t.Fatalf("RemoveConversation: %+v, %v", gone, err)
	}
	_ = sim
}

func TestConversationsFaults(t *testing.T) {
	sim, acct, b, api := groupSim(t)
	ctx := testCtx(t)
	conv := createGroup(t, api, alice, bob)

	sim.InjectFault(Fault{Kind: FaultServerError, Path: "/v1/Conversations/*/Messages", Times: 1})
	_, err := api.CreateConversationMessage(conv, (&conversations.CreateConversationMessageParams{}).SetAuthor("bridge").SetBody("x"))
	restError(t, err, http.StatusInternalServerError, CodeInternalError)
	sim.InjectFault(Fault{Kind: FaultRateLimit, Account: acct.SID(), Times: 1})
	_, err = api.ListConversation(nil)
	restError(t, err, http.StatusTooManyRequests, CodeTooManyRequests)

	hole := sim.InjectWebhookFault(WebhookFault{Kind: WebhookUnreachable, Webhooks: []WebhookKind{WebhookConversation}})
	res, err := sim.SendGroupText(ctx, GroupText{ConversationSID: conv, From: alice, Body: "lost"})
	if err == nil || res.SID == "" || len(b.requests()) != 0 || hole.Hits() != 1 {
		t.Fatalf("black-holed group text: %+v, %v", res, err)
	}
	hole.Remove()
	// The text is in the conversation, where listing finds it.
	msgs, err := api.ListConversationMessage(conv, nil)
	if err != nil || len(msgs) != 1 || *msgs[0].Body != "lost" {
		t.Fatalf("messages = %+v, %v", msgs, err)
	}
	calls := acct.APICalls()
	if calls["POST conversations.twilio.com/v1/Conversations/{ConversationSid}/Messages"] != 1 ||
		calls["GET conversations.twilio.com/v1/Conversations/{ConversationSid}/Messages"] != 1 {
		t.Fatalf("calls = %v", calls)
	}
}
