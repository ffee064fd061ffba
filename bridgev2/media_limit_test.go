package bridgev2_test

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/trestle-bridge/trestle/bridgev2"
	"github.com/trestle-bridge/trestle/bridgev2/bridgeconfig"
	"github.com/trestle-bridge/trestle/bridgev2/bridgetest"
	"github.com/trestle-bridge/trestle/bridgev2/bridgetest/testnet"
	"github.com/trestle-bridge/trestle/bridgev2/networkid"
)

// tooLargeBody streams some bytes, then fails as a connector's size guard
// does when a download without a Content-Length runs past the limit.
type tooLargeBody struct{ io.Reader }

func (tooLargeBody) Close() error { return nil }

func (b tooLargeBody) Read(p []byte) (int, error) {
	n, err := b.Reader.Read(p)
	if err == io.EOF {
		return n, bridgev2.ErrMediaTooLarge
	}
	return n, err
}

// A download the connector stops for being too large is not an
// interruption worth retrying: the text arrives with a notice naming the
// attachment and the limit, after a single download.
func TestAnAttachmentOverTheLimitMidDownloadBecomesANoticeAtOnce(t *testing.T) {
	remote := testnet.NewRemote()
	h := bridgetest.New(t, remote.Connector, bridgetest.Options{Configure: func(c *bridgeconfig.Config) {
		c.Bridge.MaxMediaSize = 1 << 20
	}})
	login := h.Login(alice, map[string]string{"username": "alice1", "token": "secret"})
	remote.ServeMedia(func(*bridgev2.MediaRef) (io.ReadCloser, *bridgev2.MediaInfo, error) {
		return tooLargeBody{bytes.NewReader(make([]byte, 512<<10))}, &bridgev2.MediaInfo{MimeType: "image/jpeg", Size: -1}, nil
	})
	evt := &bridgev2.RemoteEvent{
		Kind: bridgev2.RemoteMessage, ID: "m1",
		Portal: networkid.PortalKey{ID: "bob", Receiver: login.ID},
		Sender: bridgev2.EventSender{Sender: "bob"}, Timestamp: time.Now(),
		Parts: []bridgev2.MessagePart{
			{ID: "media0", Media: &bridgev2.MediaRef{URL: "https://media.example/1", MimeType: "image/jpeg", Filename: "photo.jpg"}},
			{ID: "text", Text: "look at this"},
		},
	}
	receive(t, h, remote, evt)
	room := h.WaitForPortal(networkid.PortalKey{ID: "bob", Receiver: login.ID}, alice)
	h.WaitForText(room, "", "look at this")
	notice := h.WaitForText(room, "", "could not be bridged")
	if body := notice.Content.AsMessage().Body; !strings.Contains(body, "photo.jpg") || !strings.Contains(body, "limit of 1 MB") {
		t.Errorf("notice %q should name the attachment and the limit", body)
	}
	if n := remote.Downloads(); n != 1 {
		t.Errorf("the attachment was downloaded %d times, want once", n)
	}
}
