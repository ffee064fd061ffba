package twilio_test

import (
	"bytes"
	"strings"
	"testing"

	"maunium.net/go/mautrix/event"

	"github.com/trestle-bridge/trestle/connectors/twilio/twiliosim"
)

func TestAnMMSWithTwoImagesArrivesAsTwoImagesAndItsTextWithTheSameBytes(t *testing.T) {
	alice := newPerson(t)
	alice.login("")
	bob := uniqueNumber()
	photo, drawing := testJPEG(t, 64, 48), testPNG(t, 40, 30)

	alice.textFrom(bob, "Two pictures from the trip", twiliosim.MediaFile{ContentType: "image/jpeg", Data: photo},
		twiliosim.MediaFile{ContentType: "image/png", Data: drawing})
	room := alice.portalFor(bob)
	alice.WaitForMessage(room, ghost(bob), "Two pictures from the trip")

	type want struct {
		mime          string
		data          []byte
		width, height int
	}
	wants := []want{{"image/jpeg", photo, 64, 48}, {"image/png", drawing, 40, 30}}
	var images []*event.MessageEventContent
	var order []string
	for _, evt := range alice.messages(room) {
		if evt.Sender != ghost(bob) {
			continue
		}
		c := evt.Content.AsMessage()
		order = append(order, string(c.MsgType))
		if c.MsgType == event.MsgImage {
			images = append(images, c)
		}
	}
	if strings.Join(order, ",") != "m.image,m.image,m.text" {
		t.Fatalf("the MMS became %v, want two m.image events, then the m.text", order)
	}
	for i, c := range images {
		w := wants[i]
		if c.Info == nil {
			t.Fatalf("image %d has no info", i+1)
		}
		if c.Info.MimeType != w.mime || c.Info.Size != len(w.data) || c.Info.Width != w.width || c.Info.Height != w.height {
			t.Errorf("image %d has info %s, %d bytes, %dx%d; want %s, %d bytes, %dx%d", i+1,
				c.Info.MimeType, c.Info.Size, c.Info.Width, c.Info.Height, w.mime, len(w.data), w.width, w.height)
		}
		mxc, err := c.URL.Parse()
		if err != nil {
			t.Fatalf("image %d has no valid mxc URL %q: %v", i+1, c.URL, err)
		}
		// Authenticated media: downloaded as the user, through the
		// homeserver's /_matrix/client/v1/media API.
		got, err := alice.Matrix.DownloadBytes(ctx(t), mxc)
		if err != nil {
			t.Fatalf("downloading image %d: %v", i+1, err)
		}
		if !bytes.Equal(got, w.data) {
			t.Errorf("image %d downloads as %d bytes that differ from the %d bytes Bob sent", i+1, len(got), len(w.data))
		}
	}
}

func TestAnImageSentFromMatrixIsFetchedByTwilioByteForByte(t *testing.T) {
	alice := newPerson(t)
	alice.login("")
	bob := uniqueNumber()
	room := alice.chatWith(bob)
	picture := testPNG(t, 32, 32)

	sent := alice.SendImage(room, picture, "image/png", "sunset.png")
	out := waitOutbound(t, func(m twiliosim.OutboundMessage) bool { return m.To == bob && len(m.Media) > 0 })
	if out.From != alice.Number {
		t.Errorf("the MMS went from %s, want %s", out.From, alice.Number)
	}
	if len(out.MediaURLs) != 1 || !strings.HasPrefix(out.MediaURLs[0], env.BridgeURL+"/_trestle/media/") {
		t.Errorf("the MMS has MediaUrl %q, want one URL under the bridge's public address", out.MediaURLs)
	}
	fetch := out.Media[0]
	if fetch.Err != "" || fetch.StatusCode != 200 {
		t.Fatalf("Twilio could not fetch the image: HTTP %d, %s", fetch.StatusCode, fetch.Err)
	}
	if fetch.ContentType != "image/png" {
		t.Errorf("the image was served as %q, want image/png", fetch.ContentType)
	}
	if !bytes.Equal(fetch.Data, picture) {
		t.Errorf("Twilio fetched %d bytes that differ from the %d bytes sent", len(fetch.Data), len(picture))
	}
	alice.waitStatus(room, sent, isDeliveredTo(ghost(bob)))
}
