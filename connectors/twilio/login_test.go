package twilio

import (
	"strings"
	"testing"

	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/bridgev2"
	"github.com/trestle-bridge/trestle/bridgev2/networkid"
	"github.com/trestle-bridge/trestle/connectors/twilio/twiliosim"
)

func TestLoginOneNumber(t *testing.T) {
	e := newEnv(t, envOptions{})
	ul := e.login()
	if ul.ID != ourLoginID || ul.RemoteName != "+1 500-555-0006" {
		t.Fatalf("login %q named %q", ul.ID, ul.RemoteName)
	}
	e.waitState(ul, bridgev2.StateConnected)
	want := e.h.URL + "/_trestle/twilio/" + string(ourLoginID) + "/incoming"
	if got, _ := e.acct.SMSURL(ourNumber); got != want {
		t.Fatalf("sms_url = %q, want %q", got, want)
	}
	meta := ul.Metadata.(*LoginMetadata)
	if meta.WebhookURL != want || meta.PhoneNumber != ourNumber || meta.AccountSID != e.acct.SID() || meta.CatchUpSince.IsZero() {
		t.Fatalf("metadata: %+v", meta)
	}
	if strings.Contains(meta.String(), meta.AuthToken) {
		t.Fatal("LoginMetadata.String leaks the auth token")
	}
}

func TestLoginSeveralNumbersNationalAnswer(t *testing.T) {
	e := newEnv(t, envOptions{numbers: []string{ourNumber, ourNumber2}})
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
	if step.Type != bridgev2.LoginStepUserInput || len(step.UserInput.Fields) != 1 {
		t.Fatalf("expected a choice, got %+v", step)
	}
	f := step.UserInput.Fields[0]
	if f.Type != bridgev2.LoginInputSelect || f.ID != "phone_number" || len(f.Options) != 2 {
		t.Fatalf("field: %+v", f)
	}
	if _, err := proc.SubmitUserInput(ctx, map[string]string{"phone_number": "(500) 555-0099"}); err == nil {
		t.Fatal("a number of no one was accepted")
	}
	step, err = proc.SubmitUserInput(ctx, map[string]string{"phone_number": "(500) 555-0007"})
	if err != nil {
		t.Fatal(err)
	}
	if step.Type != bridgev2.LoginStepComplete || step.Complete.UserLogin.ID != "15005550007" {
		t.Fatalf("step: %+v", step)
	}
	if got, _ := e.acct.SMSURL(ourNumber); got != "" {
		t.Fatalf("the number not chosen got a webhook: %q", got)
	}
}

func TestLoginBadToken(t *testing.T) {
	e := newEnv(t, envOptions{})
	creds := e.creds()
	creds["auth_token"] = strings.Repeat("0", 32)
	_, err := e.h.TryLogin(alice, creds)
	if err == nil || bridgev2.HumanMessage(err) != "Twilio rejected the Account SID or auth token." {
		t.Fatalf("err = %v", err)
	}
	creds["auth_token"] = "not a token!"
	if _, err := e.h.TryLogin(alice, creds); err == nil {
		t.Fatal("malformed token accepted")
	}
}

func TestLoginAPIKeyAndUnmanagedWebhook(t *testing.T) {
	e := newEnv(t, envOptions{network: "manage_webhooks: false\n"})
	key, err := e.acct.AddAPIKey("", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx := e.ctx()
	proc, _ := e.conn().CreateLogin(ctx, e.h.User(alice), FlowAdvanced)
	creds := e.creds()
	creds["api_key_sid"], creds["api_key_secret"] = key.SID, key.Secret
	step, err := proc.SubmitUserInput(ctx, creds)
	if err != nil {
		t.Fatal(err)
	}
	url := e.h.URL + "/_trestle/twilio/" + string(ourLoginID) + "/incoming"
	if step.Type != bridgev2.LoginStepComplete || !strings.Contains(step.Instructions, url) {
		t.Fatalf("instructions %q lack %s", step.Instructions, url)
	}
	if got, _ := e.acct.SMSURL(ourNumber); got != "" {
		t.Fatalf("webhook set although manage_webhooks is off: %q", got)
	}
	if conv := e.h.URL + "/_trestle/twilio/" + string(ourLoginID) + "/conversations"; !strings.Contains(step.Instructions, conv) {
		t.Fatalf("instructions %q do not say where group texts go (%s)", step.Instructions, conv)
	}
	ul := step.Complete.UserLogin
	e.waitState(ul, bridgev2.StateConnected)
	if twClient(ul).rest.creds.User != key.SID {
		t.Fatal("REST calls do not use the API key")
	}
	creds["api_key_secret"] = "wrong0secret"
	proc, _ = e.conn().CreateLogin(ctx, e.h.User(alice), FlowAdvanced)
	if _, err := proc.SubmitUserInput(ctx, creds); err == nil || !strings.Contains(bridgev2.HumanMessage(err), "API key") {
		t.Fatalf("err = %v", err)
	}
}

func TestLogoutRemovesOnlyOurWebhook(t *testing.T) {
	e := newEnv(t, envOptions{})
	ul := e.login()
	if err := ul.Logout(e.ctx()); err != nil {
		t.Fatal(err)
	}
	if got, _ := e.acct.SMSURL(ourNumber); got != "" {
		t.Fatalf("webhook left behind: %q", got)
	}
	if got, err := twClient(ul).bgRest.conversationsWebhookURL(e.ctx()); err != nil || got != "" {
		t.Fatalf("Conversations webhook left behind: %q %v", got, err)
	}
	ul = e.login()
	if err := e.acct.SetSMSURL(ourNumber, "https://elsewhere.example.com/sms"); err != nil {
		t.Fatal(err)
	}
	if err := twClient(ul).bgRest.setConversationsWebhook(e.ctx(), "https://elsewhere.example.com/groups"); err != nil {
		t.Fatal(err)
	}
	if err := ul.Logout(e.ctx()); err != nil {
		t.Fatal(err)
	}
	if got, _ := e.acct.SMSURL(ourNumber); got != "https://elsewhere.example.com/sms" {
		t.Fatalf("someone else's webhook was removed: %q", got)
	}
	if got, _ := twClient(ul).bgRest.conversationsWebhookURL(e.ctx()); got != "https://elsewhere.example.com/groups" {
		t.Fatalf("someone else's Conversations webhook was changed: %q", got)
	}
}

func TestReloginKeepsWatermarkAndRetiresOldClient(t *testing.T) {
	e := newEnv(t, envOptions{})
	first := e.login()
	firstMark := first.Metadata.(*LoginMetadata).CatchUpSince
	old := twClient(first)
	second := e.login()
	if second == first || second.ID != first.ID {
		t.Fatalf("re-login made %v", second.ID)
	}
	if !old.retired {
		t.Fatal("the replaced client can still save its row")
	}
	if got := second.Metadata.(*LoginMetadata).CatchUpSince; got.After(firstMark) {
		t.Fatalf("watermark moved forward on re-login: %v > %v", got, firstMark)
	}
	e.inbound(theirNumber, "after re-login")
	e.h.WaitForText(e.portalRoom(theirNumber), e.ghost(theirNumber), "after re-login")
	// Another Matrix user cannot take the number over.
	if _, err := e.h.TryLogin("@mallory:example.com", e.creds()); err == nil || !strings.Contains(bridgev2.HumanMessage(err), "another Matrix user") {
		t.Fatalf("takeover: %v", err)
	}
}

func TestPlainLoginAsksOnlyForTheAccountSIDAndAuthToken(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := e.ctx()
	flows := e.conn().LoginFlows()
	if flows[0].ID != FlowAuthToken {
		t.Fatalf("the default flow is %q", flows[0].ID)
	}
	for flow, want := range map[string][]string{
		FlowAuthToken: {"account_sid", "auth_token"},
		FlowAdvanced:  {"account_sid", "auth_token", "api_key_sid", "api_key_secret", "messaging_service_sid"},
	} {
		proc, err := e.conn().CreateLogin(ctx, e.h.User(alice), flow)
		if err != nil {
			t.Fatal(err)
		}
		step, err := proc.Start(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, f := range step.UserInput.Fields {
			got = append(got, f.ID)
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("flow %s asks %v, want %v", flow, got, want)
		}
		proc.Cancel()
	}
	// The plain flow ignores fields it did not ask for.
	creds := e.creds()
	creds["messaging_service_sid"] = "MG00000000000000000000000000000000"
	ul := e.login(creds)
	if meta := ul.Metadata.(*LoginMetadata); meta.MessagingServiceSID != "" {
		t.Fatalf("the plain flow took a Messaging Service: %+v", meta)
	}
}

// loginAdvanced logs alice in with the advanced flow and picks number.
func (e *env) loginAdvanced(creds map[string]string, number string) *bridgev2.UserLogin {
	e.t.Helper()
	ctx := e.ctx()
	proc, err := e.conn().CreateLogin(ctx, e.h.User(alice), FlowAdvanced)
	if err != nil {
		e.t.Fatal(err)
	}
	step, err := proc.SubmitUserInput(ctx, creds)
	if err == nil && step.Type == bridgev2.LoginStepUserInput {
		step, err = proc.SubmitUserInput(ctx, map[string]string{"phone_number": number})
	}
	if err != nil {
		e.t.Fatal(err)
	}
	ul := step.Complete.UserLogin
	e.waitCaughtUp(ul, 1)
	return ul
}

func TestMessagingServiceRepliesFromTheNumberTheContactTexted(t *testing.T) {
	e := newEnv(t, envOptions{numbers: []string{ourNumber, ourNumber2}})
	svc, err := e.acct.AddMessagingService("", ourNumber, ourNumber2)
	if err != nil {
		t.Fatal(err)
	}
	creds := e.creds()
	creds["messaging_service_sid"] = svc
	e.loginAdvanced(creds, ourNumber)
	e.loginAdvanced(creds, ourNumber2)
	// The contact texts both numbers; the pool's sticky sender is now the
	// second, but each chat's reply goes out from the number it is with.
	for _, to := range []string{ourNumber, ourNumber2} {
		if _, err := e.sim.SendInbound(e.ctx(), twiliosim.InboundMessage{From: theirNumber, To: to, Body: "hi " + to}); err != nil {
			t.Fatal(err)
		}
	}
	rooms := map[string]id.RoomID{}
	for _, our := range []string{ourNumber, ourNumber2} {
		rooms[our] = e.h.WaitForPortal(networkid.PortalKey{ID: networkid.PortalID(idFromAddr(theirNumber)), Receiver: networkid.UserLoginID(idFromAddr(our))}, alice)
		e.h.WaitForText(rooms[our], e.ghost(theirNumber), "hi "+our)
	}
	for i, our := range []string{ourNumber, ourNumber2} {
		e.h.SendText(alice, rooms[our], "reply from "+our)
		msg := e.outbound(i + 1)[i]
		if msg.From != our || msg.To != theirNumber || msg.MessagingServiceSID != svc {
			t.Fatalf("reply in the chat with %s went from %s to %s through %q", our, msg.From, msg.To, msg.MessagingServiceSID)
		}
	}
}
