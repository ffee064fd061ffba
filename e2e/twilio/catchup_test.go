package twilio_test

import (
	"bytes"
	"fmt"
	"slices"
	"testing"

	"maunium.net/go/mautrix/event"

	"github.com/trestle-bridge/trestle/connectors/twilio/twiliosim"
)

// This test stops the shared bridge; it must not run in parallel with
// others (none of the package's tests do).
func TestTextsSentWhileTheBridgeWasStoppedArriveOnceAndInOrderAfterRestart(t *testing.T) {
	alice := newPerson(t)
	alice.login("")
	bob, carol := uniqueNumber(), uniqueNumber()
	room := alice.chatWith(bob)
	picture := testPNG(t, 24, 24)

	if err := env.Bridge.Stop(); err != nil {
		t.Fatalf("the bridge did not stop cleanly: %v", err)
	}
	t.Cleanup(func() {
		// Leave a running bridge to the next test whatever happened here.
		if !env.Bridge.Running() {
			if err := env.Bridge.StartAgain(ctx(t), env.Binary); err != nil {
				t.Errorf("restarting the bridge: %v", err)
			}
		}
	})

	// Twilio logs each text; the webhook of the first ones fails because
	// nobody listens, the others only reach the log (as when Twilio gave
	// up on the bridge).
	down := func(from, body string, logOnly bool, media ...twiliosim.MediaFile) {
		t.Helper()
		res, err := env.Sim.SendInbound(ctx(t), twiliosim.InboundMessage{From: from, To: alice.Number, Body: body, LogOnly: logOnly, Media: media})
		if !logOnly && err == nil {
			t.Fatalf("the webhook of %q reached a stopped bridge: %+v", body, res.Response)
		}
		if logOnly && err != nil {
			t.Fatal(err)
		}
	}
	down(bob, "While you were out 1", false)
	down(carol, "Carol here, while you were out", false)
	down(bob, "While you were out 2", true, twiliosim.MediaFile{ContentType: "image/png", Data: picture})
	down(bob, "While you were out 3", false)

	if err := env.Bridge.StartAgain(ctx(t), env.Binary); err != nil {
		t.Fatalf("restarting the bridge: %v", err)
	}

	alice.WaitForMessage(room, ghost(bob), "While you were out 3")
	carolRoom := alice.portalFor(carol)
	alice.WaitForMessage(carolRoom, ghost(carol), "Carol here, while you were out")

	// A live text after them is the barrier: whatever catch-up would have
	// delivered comes before it.
	alice.textFrom(bob, "Back online?")
	alice.WaitForMessage(room, ghost(bob), "Back online?")
	want := []string{"Hello from " + bob, "While you were out 1", "MMS image 1.png", "While you were out 2", "While you were out 3", "Back online?"}
	if got := alice.bodiesFrom(room, ghost(bob)); !slices.Equal(got, want) {
		t.Errorf("Bob's portal shows %q, want each text once and in order: %q", got, want)
	}
	if got := alice.bodiesFrom(carolRoom, ghost(carol)); !slices.Equal(got, []string{"Carol here, while you were out"}) {
		t.Errorf("Carol's new portal shows %q, want her one text", got)
	}
	// The MMS recovered from the log has its picture, fetched with the
	// account's credentials like a webhook's.
	for _, evt := range alice.messages(room) {
		if c := evt.Content.AsMessage(); c.MsgType == event.MsgImage {
			got, err := alice.Matrix.DownloadBytes(ctx(t), c.URL.ParseOrIgnore())
			if err != nil || !bytes.Equal(got, picture) {
				t.Errorf("the recovered picture downloads as %d bytes (%v), want the %d bytes Bob sent", len(got), err, len(picture))
			}
		}
	}
}

func TestTextsWhoseWebhooksWereBlackHoledArriveOnceAndInOrderAfterThePathReturns(t *testing.T) {
	alice := newPerson(t)
	alice.login("")
	bob, carol := uniqueNumber(), uniqueNumber()
	room := alice.chatWith(bob)

	// A proxy in front of the bridge fails: Twilio logs each text, its
	// webhook goes nowhere, and the bridge hears nothing. Texts keep
	// coming from two people.
	hole := env.Sim.InjectWebhookFault(twiliosim.WebhookFault{Kind: twiliosim.WebhookUnreachable, URLPrefix: webhookURL(alice.Number)})
	var bobs []string
	for i := range 6 {
		from, body := bob, fmt.Sprintf("Through the outage %d", i+1)
		if i == 2 {
			from, body = carol, "Carol, during the outage"
		} else {
			bobs = append(bobs, body)
		}
		if _, err := env.Sim.SendInbound(ctx(t), twiliosim.InboundMessage{From: from, To: alice.Number, Body: body}); err == nil {
			t.Fatalf("the webhook of %q reached the bridge through the black hole", body)
		}
	}
	if hole.Hits() != 6 {
		t.Fatalf("the black hole stopped %d webhooks, want 6", hole.Hits())
	}
	// Within one reconcile period (2s here), while the path is still
	// down, the bridge finds them in Twilio's log.
	alice.WaitForMessage(room, ghost(bob), bobs[len(bobs)-1])
	hole.Remove()
	alice.textFrom(bob, "The path is back")
	alice.WaitForMessage(room, ghost(bob), "The path is back")
	want := append(append([]string{"Hello from " + bob}, bobs...), "The path is back")
	if got := alice.bodiesFrom(room, ghost(bob)); !slices.Equal(got, want) {
		t.Errorf("Bob's portal shows %q, want each text once and in order: %q", got, want)
	}
	carolRoom := alice.portalFor(carol)
	alice.WaitForMessage(carolRoom, ghost(carol), "Carol, during the outage")
	if got := alice.bodiesFrom(carolRoom, ghost(carol)); !slices.Equal(got, []string{"Carol, during the outage"}) {
		t.Errorf("Carol's portal shows %q, want her one text", got)
	}
}
