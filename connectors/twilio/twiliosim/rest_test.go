package twiliosim

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	openapi "github.com/twilio/twilio-go/rest/api/v2010"
)

func TestFetchAccountThroughTwilioGo(t *testing.T) {
	sim, acct := startSim(t, Options{})
	api := accountAPI(t, sim, acct)

	got, err := api.FetchAccount(acct.SID())
	if err != nil {
		t.Fatalf("FetchAccount: %v", err)
	}
	if *got.Sid != acct.SID() || *got.AuthToken != acct.AuthToken() || *got.Status != "active" || *got.Type != "Full" {
		t.Fatalf("account = %+v", got)
	}
	if _, err := time.Parse(time.RFC1123Z, *got.DateCreated); err != nil {
		t.Fatalf("date_created %q is not RFC 2822: %v", *got.DateCreated, err)
	}
}

func TestAuthentication(t *testing.T) {
	sim, acct := startSim(t, Options{})
	other, err := sim.AddAccount("", "")
	if err != nil {
		t.Fatal(err)
	}
	mainKey, err := acct.AddAPIKey("", "", APIKeyMain)
	if err != nil {
		t.Fatal(err)
	}
	stdKey, err := acct.AddAPIKey("", "", APIKeyStandard)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("main API key fetches the account", func(t *testing.T) {
		if _, err := twilioAPI(t, sim, mainKey.SID, mainKey.Secret, acct.SID()).FetchAccount(acct.SID()); err != nil {
			t.Fatalf("FetchAccount with main key: %v", err)
		}
	})
	t.Run("standard API key may not read /Accounts but may list messages", func(t *testing.T) {
		api := twilioAPI(t, sim, stdKey.SID, stdKey.Secret, acct.SID())
		_, err := api.FetchAccount(acct.SID())
		restError(t, err, http.StatusUnauthorized, CodeAuthenticate)
		if _, err := api.ListMessage(nil); err != nil {
			t.Fatalf("ListMessage with standard key: %v", err)
		}
	})
	t.Run("wrong token", func(t *testing.T) {
		_, err := twilioAPI(t, sim, acct.SID(), "wrongtoken", acct.SID()).FetchAccount(acct.SID())
		restError(t, err, http.StatusUnauthorized, CodeAuthenticate)
	})
	t.Run("credentials of another account", func(t *testing.T) {
		_, err := twilioAPI(t, sim, other.SID(), other.AuthToken(), acct.SID()).ListMessage(nil)
		restError(t, err, http.StatusUnauthorized, CodeAuthenticate)
	})
	t.Run("removed key", func(t *testing.T) {
		acct.RemoveAPIKey(mainKey.SID)
		_, err := twilioAPI(t, sim, mainKey.SID, mainKey.Secret, acct.SID()).ListMessage(nil)
		restError(t, err, http.StatusUnauthorized, CodeAuthenticate)
	})
	t.Run("missing credentials: exact Twilio body and WWW-Authenticate", func(t *testing.T) {
		resp := rawGet(t, sim, accountURI(acct.SID()), "", "")
		if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" {
			t.Fatalf("status %d, WWW-Authenticate %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
		var body map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatal(err)
		}
		want := map[string]any{
			"code": float64(20003), "message": "Authenticate",
			"more_info": "https://www.twilio.com/docs/errors/20003", "status": float64(401),
		}
		if len(body) != len(want) {
			t.Fatalf("body = %v", body)
		}
		for k, v := range want {
			if body[k] != v {
				t.Fatalf("body[%s] = %v, want %v", k, body[k], v)
			}
		}
	})
	t.Run("rotated token", func(t *testing.T) {
		oldToken := acct.AuthToken()
		newToken := acct.RotateAuthToken()
		if newToken == oldToken || acct.AuthToken() != newToken {
			t.Fatalf("rotation did not change the token")
		}
		_, err := twilioAPI(t, sim, acct.SID(), oldToken, acct.SID()).ListMessage(nil)
		restError(t, err, http.StatusUnauthorized, CodeAuthenticate)
		if _, err := twilioAPI(t, sim, acct.SID(), newToken, acct.SID()).ListMessage(nil); err != nil {
			t.Fatalf("new token: %v", err)
		}
	})
}

func TestUnknownResourcesAndMethods(t *testing.T) {
	sim, acct := startSim(t, Options{})
	api := accountAPI(t, sim, acct)

	_, err := api.FetchMessage("SM"+strings.Repeat("0", 32), nil)
	te := restError(t, err, http.StatusNotFound, CodeNotFound)
	if !strings.Contains(te.Message, "/Messages/SM") {
		t.Fatalf("404 message %q does not name the resource", te.Message)
	}
	_, err = api.FetchIncomingPhoneNumber("PN"+strings.Repeat("0", 32), nil)
	restError(t, err, http.StatusNotFound, CodeNotFound)
	_, err = api.FetchMedia("MM"+strings.Repeat("0", 32), "ME"+strings.Repeat("0", 32), nil)
	restError(t, err, http.StatusNotFound, CodeNotFound)

	resp := rawGet(t, sim, "/2010-04-01/Accounts/"+acct.SID()+"/Calls.json", acct.SID(), acct.AuthToken())
	if resp.StatusCode != http.StatusNotFound || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("unknown path: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	err = api.DeleteMessage("SM"+strings.Repeat("0", 32), nil)
	restError(t, err, http.StatusMethodNotAllowed, CodeMethodNotAllowed)
}

func TestIncomingPhoneNumbersThroughTwilioGo(t *testing.T) {
	sim, acct := startSim(t, Options{})
	if _, err := acct.AddNumber(ourNumber2, Capabilities{SMS: true}); err != nil {
		t.Fatal(err)
	}
	api := accountAPI(t, sim, acct)

	all, err := api.ListIncomingPhoneNumber(nil)
	if err != nil || len(all) != 2 {
		t.Fatalf("ListIncomingPhoneNumber: %d numbers, %v", len(all), err)
	}
	list, err := api.ListIncomingPhoneNumber((&openapi.ListIncomingPhoneNumberParams{}).SetPhoneNumber(ourNumber2))
	if err != nil || len(list) != 1 {
		t.Fatalf("filtered list: %d numbers, %v", len(list), err)
	}
	n := list[0]
	if *n.PhoneNumber != ourNumber2 || !strings.HasPrefix(*n.Sid, "PN") || len(*n.Sid) != 34 ||
		!n.Capabilities.Sms || n.Capabilities.Mms || *n.SmsMethod != "POST" || *n.FriendlyName != "(500) 555-0007" {
		t.Fatalf("number = %+v caps %+v", n, n.Capabilities)
	}
	wild, err := api.ListIncomingPhoneNumber((&openapi.ListIncomingPhoneNumberParams{}).SetPhoneNumber("555000*"))
	if err != nil || len(wild) != 2 {
		t.Fatalf("wildcard filter: %d numbers, %v", len(wild), err)
	}

	hook := "http://127.0.0.1:9/sms"
	updated, err := api.UpdateIncomingPhoneNumber(*n.Sid, (&openapi.UpdateIncomingPhoneNumberParams{}).
		SetSmsUrl(hook).SetSmsMethod("POST").SetStatusCallback("http://127.0.0.1:9/status"))
	if err != nil {
		t.Fatalf("UpdateIncomingPhoneNumber: %v", err)
	}
	if *updated.SmsUrl != hook || *updated.StatusCallback != "http://127.0.0.1:9/status" {
		t.Fatalf("updated = %+v", updated)
	}
	if got, _ := acct.SMSURL(ourNumber2); got != hook {
		t.Fatalf("stored sms_url = %q", got)
	}
	fetched, err := api.FetchIncomingPhoneNumber(*n.Sid, nil)
	if err != nil || *fetched.SmsUrl != hook {
		t.Fatalf("FetchIncomingPhoneNumber: %+v %v", fetched, err)
	}

	_, err = api.UpdateIncomingPhoneNumber(*n.Sid, (&openapi.UpdateIncomingPhoneNumberParams{}).SetSmsMethod("PUT"))
	restError(t, err, http.StatusBadRequest, CodeInvalidParameter)
	_, err = api.UpdateIncomingPhoneNumber(*n.Sid, (&openapi.UpdateIncomingPhoneNumberParams{}).SetSmsUrl("not a url"))
	restError(t, err, http.StatusBadRequest, CodeInvalidParameter)
}

func TestCreateMessageThroughTwilioGo(t *testing.T) {
	sim, acct := startSim(t, Options{})
	sim.PauseOutbound() // observe the create answer and the stored message before delivery
	api := accountAPI(t, sim, acct)
	before := time.Now().Add(-time.Second)

	m, err := api.CreateMessage((&openapi.CreateMessageParams{}).SetTo(theirNumber).SetFrom(ourNumber).SetBody("hello"))
	if err != nil {
		t.Fatalf("CreateMessage: %v", err)
	}
	if !strings.HasPrefix(*m.Sid, "SM") || len(*m.Sid) != 34 || *m.Status != StatusQueued || *m.Direction != DirectionOutboundAPI ||
		*m.NumSegments != "1" || *m.NumMedia != "0" || *m.AccountSid != acct.SID() || *m.ApiVersion != "2010-04-01" ||
		m.DateSent != nil || m.ErrorCode != nil || *m.Body != "hello" || *m.From != ourNumber || *m.To != theirNumber {
		t.Fatalf("created message = %+v", m)
	}
	created, err := time.Parse(time.RFC1123Z, *m.DateCreated)
	if err != nil || created.Before(before.Truncate(time.Second)) || !strings.HasSuffix(*m.DateCreated, "+0000") {
		t.Fatalf("date_created %q: %v", *m.DateCreated, err)
	}
	if *m.Uri != messageURI(acct.SID(), *m.Sid) || (*m.SubresourceUris)["media"] != mediaListURI(acct.SID(), *m.Sid) {
		t.Fatalf("uri %q, subresource_uris %v", *m.Uri, *m.SubresourceUris)
	}
	fetched, err := api.FetchMessage(*m.Sid, nil)
	if err != nil || *fetched.Status != StatusQueued {
		t.Fatalf("FetchMessage: %+v %v", fetched, err)
	}

	t.Run("MMS gets an MM SID and counts media", func(t *testing.T) {
		mms, err := api.CreateMessage((&openapi.CreateMessageParams{}).SetTo(theirNumber).SetFrom(ourNumber).
			SetMediaUrl([]string{"http://127.0.0.1:9/a.png", "http://127.0.0.1:9/b.png"}))
		if err != nil {
			t.Fatalf("CreateMessage: %v", err)
		}
		if !strings.HasPrefix(*mms.Sid, "MM") || *mms.NumMedia != "2" || *mms.Body != "" {
			t.Fatalf("mms = %+v", mms)
		}
	})
	t.Run("segments are counted like Twilio", func(t *testing.T) {
		long, err := api.CreateMessage((&openapi.CreateMessageParams{}).SetTo(theirNumber).SetFrom(ourNumber).
			SetBody(strings.Repeat("é", 71)))
		if err != nil || *long.NumSegments != "1" { // é is GSM-7
			t.Fatalf("GSM body: %v %v", long, err)
		}
		ucs, err := api.CreateMessage((&openapi.CreateMessageParams{}).SetTo(theirNumber).SetFrom(ourNumber).
			SetBody(strings.Repeat("ж", 71)))
		if err != nil || *ucs.NumSegments != "2" {
			t.Fatalf("UCS-2 body: %v %v", ucs, err)
		}
	})
	t.Run("messaging service: accepted, sender assigned later", func(t *testing.T) {
		svc, err := acct.AddMessagingService("", ourNumber)
		if err != nil {
			t.Fatal(err)
		}
		sm, err := api.CreateMessage((&openapi.CreateMessageParams{}).SetTo(theirNumber).SetMessagingServiceSid(svc).SetBody("hi"))
		if err != nil {
			t.Fatalf("CreateMessage: %v", err)
		}
		if *sm.Status != StatusAccepted || sm.From != nil || *sm.MessagingServiceSid != svc || *sm.NumSegments != "0" {
			t.Fatalf("service message = %+v", sm)
		}
		both, err := api.CreateMessage((&openapi.CreateMessageParams{}).SetTo(theirNumber).SetMessagingServiceSid(svc).
			SetFrom(ourNumber).SetBody("hi"))
		if err != nil || *both.Status != StatusQueued || *both.From != ourNumber || *both.MessagingServiceSid != svc {
			t.Fatalf("service message with From = %+v, %v", both, err)
		}
		sim.ResumeOutbound()
		done, err := sim.WaitMessage(testCtx(t), *sm.Sid, nil)
		if err != nil || done.From != ourNumber || done.Status != StatusDelivered {
			t.Fatalf("processed service message = %+v, %v", done, err)
		}
	})
}

func TestCreateMessageValidation(t *testing.T) {
	sim, acct := startSim(t, Options{})
	if _, err := acct.AddNumber(ourNumber2, Capabilities{SMS: true}); err != nil { // no MMS
		t.Fatal(err)
	}
	sim.SetRecipient("+15557770001", RecipientConfig{Behavior: Unsubscribed})
	sim.SetRecipient("+15557770002", RecipientConfig{Behavior: Landline})
	sim.SetRecipient("+15557770003", RecipientConfig{Behavior: InvalidNumber})
	api := accountAPI(t, sim, acct)
	p := func() *openapi.CreateMessageParams { return &openapi.CreateMessageParams{} }
	media := func(n int) []string {
		var out []string
		for range n {
			out = append(out, "http://127.0.0.1:9/x.png")
		}
		return out
	}

	for _, tc := range []struct {
		name   string
		params *openapi.CreateMessageParams
		code   int
	}{
		{"missing To", p().SetFrom(ourNumber).SetBody("x"), CodeToRequired},
		{"missing From and service", p().SetTo(theirNumber).SetBody("x"), CodeFromRequired},
		{"no body nor media", p().SetTo(theirNumber).SetFrom(ourNumber), CodeBodyRequired},
		{"body over 1600 characters", p().SetTo(theirNumber).SetFrom(ourNumber).SetBody(strings.Repeat("a", 1601)), CodeBodyTooLong},
		{"eleven media", p().SetTo(theirNumber).SetFrom(ourNumber).SetMediaUrl(media(11)), CodeTooManyMedia},
		{"invalid media URL", p().SetTo(theirNumber).SetFrom(ourNumber).SetMediaUrl([]string{"ftp://x/y"}), CodeInvalidMediaURL},
		{"invalid To", p().SetTo("12").SetFrom(ourNumber).SetBody("x"), CodeInvalidToNumber},
		{"To equals From", p().SetTo(ourNumber).SetFrom(ourNumber).SetBody("x"), CodeSameToFrom},
		{"malformed From", p().SetTo(theirNumber).SetFrom("nonsense!").SetBody("x"), CodeInvalidFromNumber},
		{"From not ours", p().SetTo(theirNumber).SetFrom(otherPhone).SetBody("x"), CodeFromNotOwned},
		{"From not MMS capable", p().SetTo(theirNumber).SetFrom(ourNumber2).SetMediaUrl(media(1)), CodeFromNotOwned},
		{"unknown service", p().SetTo(theirNumber).SetMessagingServiceSid("MG" + strings.Repeat("1", 32)).SetBody("x"), CodeInvalidService},
		{"invalid StatusCallback", p().SetTo(theirNumber).SetFrom(ourNumber).SetBody("x").SetStatusCallback("nope"), CodeInvalidStatusCallback},
		{"unsubscribed recipient", p().SetTo("+15557770001").SetFrom(ourNumber).SetBody("x"), CodeUnsubscribed},
		{"landline recipient", p().SetTo("+15557770002").SetFrom(ourNumber).SetBody("x"), CodeNotMobile},
		{"invalid recipient", p().SetTo("+15557770003").SetFrom(ourNumber).SetBody("x"), CodeInvalidToNumber},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := api.CreateMessage(tc.params)
			restError(t, err, http.StatusBadRequest, tc.code)
		})
	}
	if n := len(sim.Outbound()); n != 0 {
		t.Fatalf("%d messages were created by invalid requests", n)
	}
	// Exactly 1600 characters is fine.
	if _, err := api.CreateMessage(p().SetTo(theirNumber).SetFrom(ourNumber).SetBody(strings.Repeat("a", 1600))); err != nil {
		t.Fatalf("1600 characters: %v", err)
	}
}

func TestErrorBodyIsTwilios(t *testing.T) {
	sim, acct := startSim(t, Options{})
	req, _ := http.NewRequest(http.MethodPost, sim.URL()+messagesURI(acct.SID()), strings.NewReader("From=%2B15005550006&Body=x"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(acct.SID(), acct.AuthToken())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var body apiError
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
	if resp.StatusCode != 400 || body != (apiError{Code: 21604, Message: "A 'To' phone number is required.",
		MoreInfo: "https://www.twilio.com/docs/errors/21604", Status: 400}) {
		t.Fatalf("%d %s", resp.StatusCode, raw)
	}
}

func TestTransportNeverReachesTwilio(t *testing.T) {
	sim := New(Options{}) // not started: no URL yet
	defer sim.Close()
	c := &http.Client{Transport: sim.Transport(nil)}
	resp, err := c.Get("https://api.twilio.com/2010-04-01/Accounts.json")
	if err == nil {
		resp.Body.Close()
		t.Fatal("request to api.twilio.com went somewhere")
	}
	if !strings.Contains(err.Error(), "no URL") {
		t.Fatalf("error = %v", err)
	}
}
