package twiliosim

import (
	"net/http"
	"testing"
	"time"
)

func TestAPICallsAreCountedPerAccountAndEndpoint(t *testing.T) {
	sim, acct := startSim(t, Options{})
	other, err := sim.AddAccount("", "")
	if err != nil {
		t.Fatal(err)
	}
	key, err := acct.AddAPIKey("", "", APIKeyStandard)
	if err != nil {
		t.Fatal(err)
	}
	api := accountAPI(t, sim, acct)
	for range 3 {
		if _, err := api.ListMessage(nil); err != nil {
			t.Fatal(err)
		}
	}
	send(t, api, theirNumber, "hi", "")
	// An API key's calls count for the account that owns it.
	if _, err := twilioAPI(t, sim, key.SID, key.Secret, acct.SID()).ListMessage(nil); err != nil {
		t.Fatal(err)
	}
	// A call a fault answers is still a call.
	sim.InjectFault(Fault{Kind: FaultRateLimit, Times: 1})
	_, err = api.ListMessage(nil)
	restError(t, err, http.StatusTooManyRequests, CodeTooManyRequests)
	if _, err := accountAPI(t, sim, other).ListMessage(nil); err != nil {
		t.Fatal(err)
	}

	list := "GET api.twilio.com/2010-04-01/Accounts/{AccountSid}/Messages.json"
	create := "POST api.twilio.com/2010-04-01/Accounts/{AccountSid}/Messages.json"
	got := acct.APICalls()
	if got[list] != 5 || got[create] != 1 || len(got) != 2 || acct.APICallTotal() != 6 {
		t.Fatalf("calls = %v (total %d)", got, acct.APICallTotal())
	}
	if other.APICallTotal() != 1 {
		t.Fatalf("other account's calls = %v", other.APICalls())
	}
	var sawOther bool
	for _, c := range sim.APICalls() {
		sawOther = sawOther || (c.Account == other.SID() && c.Endpoint == list && c.Count == 1)
	}
	if !sawOther {
		t.Fatalf("APICalls = %+v", sim.APICalls())
	}

	sim.ResetAPICalls()
	if acct.APICallTotal() != 0 || len(sim.APICalls()) != 0 {
		t.Fatalf("after reset: %v", sim.APICalls())
	}
	// Requests refused by an outage never reached Twilio.
	if err := sim.SetOutage(OutageUnavailable); err != nil {
		t.Fatal(err)
	}
	_, _ = api.ListMessage(nil)
	if err := sim.SetOutage(OutageNone); err != nil {
		t.Fatal(err)
	}
	if acct.APICallTotal() != 0 {
		t.Fatalf("outage request counted: %v", acct.APICalls())
	}
}

func TestManualClockDrivesTimestamps(t *testing.T) {
	start := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := NewManualClock(start)
	sim, acct, _ := smsSim(t, Options{Now: clock.Now})
	ctx := testCtx(t)
	if _, err := sim.SendInbound(ctx, InboundMessage{From: theirNumber, To: ourNumber, Body: "first"}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(25 * time.Hour)
	if _, err := sim.SendInbound(ctx, InboundMessage{From: theirNumber, To: ourNumber, Body: "second"}); err != nil {
		t.Fatal(err)
	}
	msgs := acct.Messages()
	if !msgs[0].DateSent.Equal(start.Add(25*time.Hour)) || !msgs[1].DateSent.Equal(start) {
		t.Fatalf("dates = %v, %v", msgs[0].DateSent, msgs[1].DateSent)
	}
	clock.Set(start)
	if !clock.Now().Equal(start) {
		t.Fatalf("Set: %v", clock.Now())
	}
}
