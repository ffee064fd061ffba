package twiliosim

import (
	"errors"
	"net/http"
	"slices"
	"testing"
	"time"

	openapi "github.com/twilio/twilio-go/rest/api/v2010"
)

func TestBlackHoledWebhooksLeaveTextsInTheLog(t *testing.T) {
	start := time.Date(2025, 5, 1, 23, 59, 0, 0, time.UTC)
	clock := NewManualClock(start)
	sim, acct, b := smsSim(t, Options{Now: clock.Now})
	ctx := testCtx(t)
	api := accountAPI(t, sim, acct)

	hole := sim.BlackHoleWebhooks()
	var lost []string
	for i := range 5 {
		res, err := sim.SendInbound(ctx, InboundMessage{From: theirNumber, To: ourNumber, Body: "lost " + string(rune('a'+i))})
		if !errors.Is(err, ErrWebhookUnreachable) {
			t.Fatalf("inbound during the black hole: %v", err)
		}
		lost = append(lost, res.MessageSID)
		clock.Advance(30 * time.Second) // crosses midnight: DateSent> is by day
	}
	// Status callbacks vanish too, and their attempts say why.
	sid := send(t, api, otherPhone, "out", b.url("/status"))
	m, err := sim.WaitMessage(ctx, sid, nil)
	if err != nil || len(m.Callbacks) != 2 || m.Callbacks[0].Err == "" || m.Callbacks[0].Response.StatusCode != 0 {
		t.Fatalf("callbacks during the black hole: %+v, %v", m.Callbacks, err)
	}
	if len(b.requests()) != 0 {
		t.Fatalf("the bridge heard %d requests through the black hole", len(b.requests()))
	}
	if hole.Hits() != 7 {
		t.Fatalf("hits = %d, want 7", hole.Hits())
	}
	hole.Remove()
	if _, err := sim.SendInbound(ctx, InboundMessage{From: theirNumber, To: ourNumber, Body: "after"}); err != nil {
		t.Fatalf("after the black hole: %v", err)
	}

	// A bridge recovers the lost texts by listing, a page at a time.
	var found []string
	pageToken := ""
	params := (&openapi.ListMessageParams{}).SetTo(ourNumber).SetDateSentAfter(start).SetPageSize(2)
	for page := 0; ; page++ {
		resp, err := api.PageMessage(params, pageToken, "")
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range resp.Messages {
			found = append(found, *m.Sid)
		}
		if resp.NextPageUri == nil {
			break
		}
		next, _ := parseNextToken(*resp.NextPageUri)
		pageToken = next
		if page > 10 {
			t.Fatal("paging does not end")
		}
	}
	for _, sid := range lost {
		if !slices.Contains(found, sid) {
			t.Fatalf("lost text %s is not listed after the black hole: %v", sid, found)
		}
	}
	if len(found) != 6 {
		t.Fatalf("listed %d inbound texts, want 6", len(found))
	}
}

func TestWebhookFaultKinds(t *testing.T) {
	sim, acct, b := smsSim(t, Options{})
	ctx := testCtx(t)
	in := InboundMessage{From: theirNumber, To: ourNumber, Body: "x"}

	proxy := sim.InjectWebhookFault(WebhookFault{Kind: WebhookProxyError, Webhooks: []WebhookKind{WebhookIncoming}, Times: 1})
	res, err := sim.SendInbound(ctx, in)
	if err != nil || res.Response.StatusCode != http.StatusBadGateway || len(b.requests()) != 0 || proxy.Hits() != 1 {
		t.Fatalf("proxy error: %+v, %v, bridge got %d", res.Response, err, len(b.requests()))
	}
	timeout := sim.InjectWebhookFault(WebhookFault{Kind: WebhookTimeout, URLPrefix: b.url("/sms"), Times: 1})
	if _, err := sim.SendInbound(ctx, in); !errors.Is(err, ErrWebhookTimeout) || len(b.requests()) != 0 {
		t.Fatalf("timeout: %v", err)
	}
	timeout.Remove()
	// Faults for other kinds or targets leave the webhook alone.
	sim.InjectWebhookFault(WebhookFault{Kind: WebhookUnreachable, Webhooks: []WebhookKind{WebhookStatusCallback}})
	sim.InjectWebhookFault(WebhookFault{Kind: WebhookUnreachable, URLPrefix: "http://elsewhere.example/"})
	delay := sim.InjectWebhookFault(WebhookFault{Kind: WebhookDelay, Delay: 30 * time.Millisecond})
	begin := time.Now()
	if _, err := sim.SendInbound(ctx, in); err != nil || len(b.requests()) != 1 {
		t.Fatalf("delayed: %v, bridge got %d", err, len(b.requests()))
	}
	if time.Since(begin) < 30*time.Millisecond || delay.Hits() != 1 {
		t.Fatalf("not delayed (%v, %d hits)", time.Since(begin), delay.Hits())
	}
	// ClearFaults removes webhook faults as well.
	sim.ClearFaults()
	sid := send(t, accountAPI(t, sim, acct), otherPhone, "out", b.url("/status"))
	if m, err := sim.WaitMessage(ctx, sid, nil); err != nil || m.Callbacks[1].Err != "" {
		t.Fatalf("callback after ClearFaults: %+v, %v", m.Callbacks, err)
	}
}

// parseNextToken returns the PageToken of a next_page_uri.
func parseNextToken(uri string) (string, error) {
	req, err := http.NewRequest(http.MethodGet, "http://x"+uri, nil)
	if err != nil {
		return "", err
	}
	return req.URL.Query().Get("PageToken"), nil
}
