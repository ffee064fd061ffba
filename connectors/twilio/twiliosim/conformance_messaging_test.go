package twiliosim

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	messagingv2 "github.com/twilio/twilio-go/rest/messaging/v2"
)

// messagingFixture is an account with a service holding a number, a
// WhatsApp sender and an RCS sender, and two content templates.
func messagingFixture(t *testing.T) (sim *Server, acct *Account, svc, waSID, template string) {
	t.Helper()
	sim, acct = startSim(t, Options{})
	waSID, err := acct.AddWhatsAppSender(ourNumber, "Trestle")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := acct.AddRCSSender("trestle_agent", "Trestle"); err != nil {
		t.Fatal(err)
	}
	if svc, err = acct.AddMessagingService("", ourNumber, waOurs, "rcs:trestle_agent"); err != nil {
		t.Fatal(err)
	}
	if err := acct.ConfigureService(svc, ServiceConfig{InboundURL: "https://bridge.example/in"}); err != nil {
		t.Fatal(err)
	}
	if template, err = acct.AddContent(ContentTemplate{FriendlyName: "Reminder", Body: "Hi {{1}}",
		Variables: map[string]string{"1": "there"}, Approval: ApprovalApproved}); err != nil {
		t.Fatal(err)
	}
	if _, err := acct.AddContent(ContentTemplate{FriendlyName: "Draft", Body: "x"}); err != nil {
		t.Fatal(err)
	}
	return sim, acct, svc, waSID, template
}

func TestMessagingServicesConformToTheSpec(t *testing.T) {
	sim, acct, svc, waSID, _ := messagingFixture(t)
	checkSpecCases(t, sim, acct, apis[apiMessaging].spec, false, []specCase{
		{"/v1/Services", "GET", "/v1/Services", ""},
		{"/v1/Services/{Sid}", "GET", "/v1/Services/" + svc, ""},
		{"/v1/Services/{Sid}", "POST", "/v1/Services/" + svc, "StickySender=false&StatusCallback=https%3A%2F%2Fbridge.example%2Fstatus"},
		{"/v1/Services/{ServiceSid}/PhoneNumbers", "GET", "/v1/Services/" + svc + "/PhoneNumbers", ""},
		{"/v1/Services/{MessagingServiceSid}/ChannelSenders", "GET", "/v1/Services/" + svc + "/ChannelSenders?PageSize=1", ""},
		{"/v1/Services/{MessagingServiceSid}/ChannelSenders/{Sid}", "GET", "/v1/Services/" + svc + "/ChannelSenders/" + waSID, ""},
	})
}

func TestContentConformsToTheSpec(t *testing.T) {
	sim, acct, _, _, template := messagingFixture(t)
	checkSpecCases(t, sim, acct, apis[apiContent].spec, false, []specCase{
		{"/v1/Content", "GET", "/v1/Content?PageSize=1", ""},
		{"/v1/Content/{Sid}", "GET", "/v1/Content/" + template, ""},
		{"/v1/ContentAndApprovals", "GET", "/v1/ContentAndApprovals", ""},
		{"/v1/Content/{Sid}/ApprovalRequests", "GET", "/v1/Content/" + template + "/ApprovalRequests", ""},
	})
}

func init() {
	exercisedBy["messaging"] = []string{
		"GET /v1/Services", "GET /v1/Services/{Sid}", "POST /v1/Services/{Sid}",
		"GET /v1/Services/{ServiceSid}/PhoneNumbers",
		"GET /v1/Services/{MessagingServiceSid}/ChannelSenders",
		"GET /v1/Services/{MessagingServiceSid}/ChannelSenders/{Sid}",
	}
	exercisedBy["content"] = []string{
		"GET /v1/Content", "GET /v1/Content/{Sid}", "GET /v1/ContentAndApprovals", "GET /v1/Content/{Sid}/ApprovalRequests",
	}
}

// strictDecode decodes raw into v, refusing any field v's type does not
// declare, so that JSON checked this way cannot drift from a twilio-go
// model without failing.
func strictDecode(raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// TestSendersMatchTwilioGoModels holds the Senders API v2, for which
// shared/twilio has no OpenAPI file, to the models twilio-go generates from
// Twilio's: every emitted field, nested ones included, must be declared
// there with a compatible type.
func TestSendersMatchTwilioGoModels(t *testing.T) {
	sim, acct, _, waSID, _ := messagingFixture(t)
	get := func(path string) []byte {
		resp := rawGet(t, sim, path, acct.SID(), acct.AuthToken())
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, raw)
		}
		return raw
	}
	var list messagingv2.ListChannelsSenderResponse
	if err := strictDecode(get("/v2/Channels/Senders?Channel=whatsapp"), &list); err != nil {
		t.Fatalf("list does not match ListChannelsSenderResponse: %v", err)
	}
	if len(list.Senders) != 1 || list.Meta.Key != "senders" || !strings.HasPrefix(list.Meta.Url, sim.URL()) {
		t.Fatalf("list = %+v", list)
	}
	var one messagingv2.MessagingV2ChannelsSenderResponse
	if err := strictDecode(get("/v2/Channels/Senders/"+waSID), &one); err != nil {
		t.Fatalf("sender does not match MessagingV2ChannelsSenderResponse: %v", err)
	}
	if err := strictDecode([]byte(`{"sid":"XE1","surprise":true}`), &one); err == nil {
		t.Fatal("strictDecode accepted an undeclared field")
	}
}
