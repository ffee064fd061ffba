package twiliosim

import (
	"errors"
	"testing"
	"time"

	openapi "github.com/twilio/twilio-go/rest/api/v2010"
)

func TestClockAndHistoryForBackfill(t *testing.T) {
	sim, acct := startSim(t, Options{})
	b := newBridge(t)
	if err := acct.SetSMSURL(ourNumber, b.url("/sms")); err != nil {
		t.Fatal(err)
	}
	// 20 past messages, both directions, some with media.
	start := time.Date(2024, 5, 10, 8, 0, 0, 0, time.UTC)
	seedConversation(t, acct, start, 20)

	// A text that arrives while the bridge is down, at a chosen time.
	down := time.Date(2024, 5, 12, 9, 30, 0, 0, time.UTC)
	sim.SetClock(func() time.Time { return down })
	missed, err := sim.SendInbound(testCtx(t), InboundMessage{From: otherPhone, To: ourNumber, Body: "missed", LogOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	sim.SetClock(nil)

	api := accountAPI(t, sim, acct)
	got, err := api.ListMessage((&openapi.ListMessageParams{}).SetTo(ourNumber).SetDateSentAfter(down))
	if err != nil || len(got) != 1 || *got[0].Sid != missed.MessageSID || *got[0].DateSent != "Sun, 12 May 2024 09:30:00 +0000" {
		t.Fatalf("catch-up list: %v %v", got, err)
	}
	all, err := api.ListMessage(nil)
	if err != nil || len(all) != 21 {
		t.Fatalf("%d messages: %v", len(all), err)
	}
	if n := len(b.requests()); n != 0 {
		t.Fatalf("history sent %d webhooks", n)
	}
	if n := len(sim.Outbound()); n != 0 {
		t.Fatalf("history counts as %d outbound API messages", n)
	}
	log := acct.Messages()
	if log[0].SID != missed.MessageSID || log[len(log)-1].DateCreated != start || log[len(log)-1].Media == nil {
		t.Fatalf("log order or media wrong: first %+v last %+v", log[0], log[len(log)-1])
	}
}

func TestAddHistoryDefaultsAndValidation(t *testing.T) {
	_, acct := startSim(t, Options{})
	at := time.Date(2023, 1, 2, 3, 4, 5, 0, time.UTC)
	sid, err := acct.AddHistory(Message{Direction: DirectionOutboundAPI, From: ourNumber, To: theirNumber, Body: "x",
		DateCreated: at, Status: StatusUndelivered, ErrorCode: CodeUnreachable})
	if err != nil {
		t.Fatal(err)
	}
	m := acct.Messages()[0]
	if m.SID != sid || m.DateSent != at || m.Status != StatusUndelivered || m.ErrorCode != CodeUnreachable {
		t.Fatalf("history message = %+v", m)
	}
	if _, err := acct.AddHistory(Message{SID: sid, From: theirNumber, To: ourNumber}); err == nil {
		t.Fatal("duplicate SID accepted")
	}
	if _, err := acct.AddHistory(Message{Direction: "sideways", From: theirNumber, To: ourNumber}); err == nil {
		t.Fatal("bad direction accepted")
	}
	if _, err := acct.AddHistory(Message{From: theirNumber}); err == nil {
		t.Fatal("missing To accepted")
	}
	if err := acct.SetSMSURL(otherPhone, "http://127.0.0.1:1/"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("SetSMSURL on unknown number: %v", err)
	}
}
