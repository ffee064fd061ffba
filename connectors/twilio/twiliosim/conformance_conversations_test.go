package twiliosim

import (
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	conversations "github.com/twilio/twilio-go/rest/conversations/v1"
)

func TestConversationsConformToTheSpec(t *testing.T) {
	sim, acct, _, api := groupSim(t)
	ctx := testCtx(t)
	conv := createGroup(t, api, alice, bob)
	media := uploadMedia(t, sim, acct, "a.png", "image/png", []byte("png"))
	msg, err := api.CreateConversationMessage(conv, (&conversations.CreateConversationMessageParams{}).SetAuthor("bridge").SetBody("hi").SetMediaSid(media))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := acct.WaitConversations(ctx, func(cs []Conversation) bool { return cs[0].Messages[0].Done }); err != nil {
		t.Fatal(err)
	}
	if _, err := sim.SendGroupText(ctx, GroupText{ConversationSID: conv, From: alice, Body: "from a phone"}); err != nil {
		t.Fatal(err)
	}
	hook, err := api.CreateConversationScopedWebhook(conv, (&conversations.CreateConversationScopedWebhookParams{}).
		SetTarget("webhook").SetConfigurationUrl("https://bridge.example/c").SetConfigurationFilters([]string{EventMessageAdded}))
	if err != nil {
		t.Fatal(err)
	}
	parts, err := api.ListConversationParticipant(conv, nil)
	if err != nil {
		t.Fatal(err)
	}
	other, err := api.CreateConversation(nil)
	if err != nil {
		t.Fatal(err)
	}

	c := "/v1/Conversations/" + conv
	checkSpecCases(t, sim, acct, apis[apiConversations].spec, false, []specCase{
		{"/v1/Configuration", "GET", "/v1/Configuration", ""},
		{"/v1/Configuration/Webhooks", "GET", "/v1/Configuration/Webhooks", ""},
		{"/v1/Configuration/Webhooks", "POST", "/v1/Configuration/Webhooks", "Filters=onMessageAdded&Filters=onParticipantAdded&PostWebhookUrl=https%3A%2F%2Fbridge.example%2Fconv"},
		{"/v1/Conversations", "POST", "/v1/Conversations", "FriendlyName=Friends&UniqueName=friends"},
		{"/v1/Conversations", "GET", "/v1/Conversations?PageSize=1", ""},
		{"/v1/Conversations/{Sid}", "GET", c, ""},
		{"/v1/Conversations/{ConversationSid}/Participants", "POST", c + "/Participants", "MessagingBinding.Address=%2B15551230013"},
		{"/v1/Conversations/{ConversationSid}/Participants", "GET", c + "/Participants?PageSize=2", ""},
		{"/v1/Conversations/{ConversationSid}/Participants/{Sid}", "GET", c + "/Participants/" + *parts[2].Sid, ""},
		{"/v1/Conversations/{ConversationSid}/Messages", "POST", c + "/Messages", "Author=bridge&Body=more"},
		{"/v1/Conversations/{ConversationSid}/Messages", "GET", c + "/Messages?Order=desc&PageSize=2", ""},
		{"/v1/Conversations/{ConversationSid}/Messages/{Sid}", "GET", c + "/Messages/" + *msg.Sid, ""},
		{"/v1/Conversations/{ConversationSid}/Messages/{MessageSid}/Receipts", "GET", c + "/Messages/" + *msg.Sid + "/Receipts", ""},
		{"/v1/Conversations/{ConversationSid}/Webhooks", "POST", c + "/Webhooks", "Target=webhook&Configuration.Url=https%3A%2F%2Fbridge.example%2Fd&Configuration.Filters=onMessageAdded"},
		{"/v1/Conversations/{ConversationSid}/Webhooks", "GET", c + "/Webhooks", ""},
		{"/v1/Conversations/{ConversationSid}/Webhooks/{Sid}", "DELETE", c + "/Webhooks/" + *hook.Sid, ""},
		{"/v1/Conversations/{ConversationSid}/Participants/{Sid}", "DELETE", c + "/Participants/" + *parts[0].Sid, ""},
		{"/v1/Conversations/{Sid}", "DELETE", "/v1/Conversations/" + *other.Sid, ""},
	})
}

func init() {
	exercisedBy["conversations"] = []string{
		"GET /v1/Configuration", "GET /v1/Configuration/Webhooks", "POST /v1/Configuration/Webhooks",
		"POST /v1/Conversations", "GET /v1/Conversations", "GET /v1/Conversations/{Sid}", "DELETE /v1/Conversations/{Sid}",
		"POST /v1/Conversations/{ConversationSid}/Participants", "GET /v1/Conversations/{ConversationSid}/Participants",
		"GET /v1/Conversations/{ConversationSid}/Participants/{Sid}", "DELETE /v1/Conversations/{ConversationSid}/Participants/{Sid}",
		"POST /v1/Conversations/{ConversationSid}/Messages", "GET /v1/Conversations/{ConversationSid}/Messages",
		"GET /v1/Conversations/{ConversationSid}/Messages/{Sid}",
		"GET /v1/Conversations/{ConversationSid}/Messages/{MessageSid}/Receipts",
		"POST /v1/Conversations/{ConversationSid}/Webhooks", "GET /v1/Conversations/{ConversationSid}/Webhooks",
		"DELETE /v1/Conversations/{ConversationSid}/Webhooks/{Sid}",
	}
}

// TestMediaContentServiceShape holds the MCS Media resource, which no
// OpenAPI file describes, to the properties Twilio's documentation lists
// (mcsMediaFields), and checks upload, fetch and content.
func TestMediaContentServiceShape(t *testing.T) {
	sim, acct := startSim(t, Options{})
	service := chatService(sim, acct)
	req, _ := http.NewRequest(http.MethodPost, sim.URL()+"/v1/Services/"+service+"/Media", strings.NewReader("raw bytes"))
	req.Header.Set("Content-Type", "text/plain")
	req.SetBasicAuth(acct.SID(), acct.AuthToken())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("raw upload: %d %s", resp.StatusCode, raw)
	}
	var uploaded map[string]any
	if err := json.Unmarshal(raw, &uploaded); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range uploaded {
		keys = append(keys, k)
	}
	if !slices.Equal(slices.Sorted(slices.Values(keys)), slices.Sorted(slices.Values(mcsMediaFields))) {
		t.Fatalf("fields = %v, want %v", keys, mcsMediaFields)
	}
	if uploaded["size"] != float64(9) || uploaded["content_type"] != "text/plain" || uploaded["filename"] != nil || uploaded["category"] != "media" {
		t.Fatalf("uploaded = %v", uploaded)
	}
	sid := uploaded["sid"].(string)
	if !isSID(sid, prefixMedia) || uploaded["service_sid"] != service {
		t.Fatalf("sid %s service %v", sid, uploaded["service_sid"])
	}

	content := rawGet(t, sim, "/v1/Services/"+service+"/Media/"+sid+"/Content", acct.SID(), acct.AuthToken())
	if content.StatusCode != http.StatusTemporaryRedirect || !strings.Contains(content.Header.Get("Location"), cdnPrefix) {
		t.Fatalf("content: %d %s", content.StatusCode, content.Header.Get("Location"))
	}
	if resp := rawGet(t, sim, "/v1/Services/"+service+"/Media/"+sid, "", ""); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("unauthenticated fetch: %d", resp.StatusCode)
	}
	if resp := rawGet(t, sim, "/v1/Services/IS"+strings.Repeat("0", 32)+"/Media/"+sid, acct.SID(), acct.AuthToken()); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("fetch from another service: %d", resp.StatusCode)
	}
}
