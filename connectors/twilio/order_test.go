package twilio

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/trestle-bridge/trestle/connectors/twilio/twiliosim"
)

// After downtime, the first webhook must not overtake the texts whose
// webhooks failed meanwhile: it runs the catch-up first, so they reach
// Matrix in the order Twilio logged them.
func TestAWebhookAfterDowntimeArrivesAfterTheTextsMissedMeanwhile(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.login()
	e.inbound(theirNumber, "before")
	room := e.portalRoom(theirNumber)
	e.h.WaitForText(room, e.ghost(theirNumber), "before")

	e.h.Stop()
	for _, body := range []string{"missed 1", "missed 2"} {
		_, _ = e.sim.SendInbound(e.ctx(), twiliosim.InboundMessage{From: theirNumber, To: ourNumber, Body: body})
	}
	// The connection loop's own catch-up is held up (verifying the
	// credentials hangs), so the next webhook comes first.
	hang := e.sim.InjectFault(twiliosim.Fault{Kind: twiliosim.FaultDelay, Delay: 3 * time.Second,
		Method: http.MethodGet, Path: "/2010-04-01/Accounts/*.json"})
	defer hang.Remove()
	e.h.Restart()
	if res := e.inbound(theirNumber, "after"); res.Response.StatusCode != http.StatusOK {
		t.Fatalf("webhook answered %d", res.Response.StatusCode)
	}
	e.h.WaitForText(room, e.ghost(theirNumber), "after")
	got := e.messagesFrom(room, e.ghost(theirNumber))
	if want := []string{"before", "missed 1", "missed 2", "after"}; !slices.Equal(got, want) {
		t.Fatalf("room has %q, want %q", got, want)
	}
}
