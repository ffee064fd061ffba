package e2ee_test

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/connectors/twilio/twiliosim"
	"github.com/trestle-bridge/trestle/internal/matrixtest"
	crypto "github.com/trestle-bridge/trestle/internal/mautrixcrypto"
)

var counter atomic.Int64

func bot() id.UserID { return id.NewUserID("twiliobot", "localhost") }

func ghost(e164 string) id.UserID {
	return id.NewUserID("twilio_"+strings.TrimPrefix(e164, "+"), "localhost")
}

func uniqueNumber() string { return fmt.Sprintf("+1415556%04d", counter.Add(1)%10000) }

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	return c
}

// person is a Matrix user with encryption on their device and a Twilio
// account with one number.
type person struct {
	t *testing.T
	*matrixtest.T
	ID        id.UserID
	localpart string
	Mgmt      id.RoomID
	Account   *twiliosim.Account
	Number    string
}

// newPerson creates the accounts and opens an encrypted DM with the bridge
// bot, as Element does, then logs in to Twilio through it.
func newPerson(t *testing.T) *person {
	t.Helper()
	localpart := fmt.Sprintf("crypt%d", counter.Add(1))
	cli, err := env.NewUser(ctx(t), localpart, "password-"+localpart)
	if err != nil {
		t.Fatal(err)
	}
	p := &person{t: t, T: matrixtest.StartForTest(t, cli, matrixtest.Options{AutoJoin: true, Crypto: true}), ID: cli.UserID, localpart: localpart}
	p.Timeout = 60 * time.Second
	if p.Account, err = env.Sim.AddAccount("", ""); err != nil {
		t.Fatal(err)
	}
	p.Number = uniqueNumber()
	if _, err := p.Account.AddNumber(p.Number, twiliosim.Capabilities{SMS: true, MMS: true}); err != nil {
		t.Fatal(err)
	}
	resp, err := cli.CreateRoom(ctx(t), &mautrix.ReqCreateRoom{
		Preset: "trusted_private_chat", IsDirect: true, Invite: []id.UserID{bot()},
		InitialState: []*event.Event{{Type: event.StateEncryption, StateKey: new(string),
			Content: event.Content{Parsed: &event.EncryptionEventContent{Algorithm: id.AlgorithmMegolmV1}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	p.Mgmt = resp.RoomID
	p.WaitForMembership(p.Mgmt, bot(), event.MembershipJoin)
	p.WaitForMessage(p.Mgmt, bot(), "management room")
	p.command("login", "send your **Account SID**")
	p.command(p.Account.SID(), "auth token")
	p.command(p.Account.AuthToken(), "Logged in")
	return p
}

func (p *person) command(text, want string) *event.Event {
	p.t.Helper()
	sent := p.Send(p.Mgmt, text)
	return p.WaitForMessageAfter(p.Mgmt, sent, bot(), want)
}

func (p *person) textFrom(remote, body string, media ...twiliosim.MediaFile) {
	p.t.Helper()
	res, err := env.Sim.SendInbound(ctx(p.t), twiliosim.InboundMessage{From: remote, To: p.Number, Body: body, Media: media})
	if err != nil {
		p.t.Fatal(err)
	}
	if res.Response.StatusCode != http.StatusOK {
		p.t.Fatalf("the bridge answered the webhook of %q with %d", body, res.Response.StatusCode)
	}
}

// portalWith has remote text the person and returns the portal, once the
// text arrived in it, decrypted.
func (p *person) portalWith(remote string) id.RoomID {
	p.t.Helper()
	greeting := "Hello from " + remote
	p.textFrom(remote, greeting)
	inv := p.WaitForInvite(func(inv *matrixtest.Invite) bool { return inv.Sender == ghost(remote) })
	p.WaitForMembership(inv.RoomID, p.ID, event.MembershipJoin)
	mustBeEncrypted(p.t, p.WaitForMessage(inv.RoomID, ghost(remote), greeting))
	return inv.RoomID
}

// mustBeEncrypted fails unless the event reached the user encrypted.
func mustBeEncrypted(t *testing.T, evt *event.Event) {
	t.Helper()
	if !evt.Mautrix.WasEncrypted {
		t.Errorf("%s (%s) reached the user in plaintext in an encrypted room", evt.ID, evt.Content.AsMessage().Body)
	}
}

func waitOutbound(t *testing.T, cond func(twiliosim.OutboundMessage) bool) twiliosim.OutboundMessage {
	t.Helper()
	var found twiliosim.OutboundMessage
	_, err := env.Sim.WaitOutbound(ctx(t), func(all []twiliosim.OutboundMessage) bool {
		for _, m := range all {
			if cond(m) && m.Done {
				found = m
				return true
			}
		}
		return false
	})
	if err != nil {
		t.Fatalf("no such message reached Twilio: %v", err)
	}
	return found
}

func testPNG(t *testing.T, w, h int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{R: uint8(x * 255 / w), G: uint8(y * 255 / h), B: uint8(counter.Load()), A: 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestNewPortalsAreEncryptedAndTextsAndPicturesCrossThemBothWays(t *testing.T) {
	alice := newPerson(t)
	bob := uniqueNumber()
	room := alice.portalWith(bob)
	if alice.State(room, event.StateEncryption, "") == nil {
		t.Fatal("the portal was created without m.room.encryption")
	}

	photo := testPNG(t, 24, 16)
	alice.textFrom(bob, "A picture", twiliosim.MediaFile{ContentType: "image/png", Data: photo})
	img := alice.WaitForEvent(room, func(e *event.Event) bool {
		return e.Sender == ghost(bob) && e.Type == event.EventMessage && e.Content.AsMessage().MsgType == event.MsgImage
	})
	mustBeEncrypted(t, img)
	if img.Content.AsMessage().File == nil {
		t.Error("the MMS picture is stored in plaintext on the homeserver; want an encrypted attachment")
	}
	if got := alice.DownloadMedia(img.Content.AsMessage()); !bytes.Equal(got, photo) {
		t.Errorf("the MMS picture downloads as %d bytes that differ from the %d Bob sent", len(got), len(photo))
	}
	mustBeEncrypted(t, alice.WaitForMessage(room, ghost(bob), "A picture"))

	greeting := alice.WaitForMessage(room, ghost(bob), "Hello from")
	alice.SendReply(room, greeting.ID, "Encrypted reply")
	out := waitOutbound(t, func(m twiliosim.OutboundMessage) bool {
		return m.To == bob && strings.HasSuffix(m.Body, "Encrypted reply")
	})
	if out.From != alice.Number {
		t.Errorf("the reply went from %s, want %s", out.From, alice.Number)
	}
	if !strings.Contains(out.Body, "Hello from") {
		t.Errorf("the reply reached Bob as %q, without the quote of the message it answers", out.Body)
	}

	picture := testPNG(t, 20, 20)
	alice.SendEncryptedImage(room, picture, "image/png", "sunset.png")
	mms := waitOutbound(t, func(m twiliosim.OutboundMessage) bool { return m.To == bob && len(m.Media) > 0 })
	if fetch := mms.Media[0]; fetch.StatusCode != http.StatusOK || !bytes.Equal(fetch.Data, picture) {
		t.Errorf("Twilio fetched HTTP %d, %d bytes; want the %d bytes of the picture, decrypted", fetch.StatusCode, len(fetch.Data), len(picture))
	}
}

func TestAnEncryptedPortalWorksBothWaysAfterARestart(t *testing.T) {
	alice := newPerson(t)
	bob := uniqueNumber()
	room := alice.portalWith(bob)
	alice.Send(room, "before the restart")
	waitOutbound(t, func(m twiliosim.OutboundMessage) bool { return m.To == bob && m.Body == "before the restart" })

	if err := env.Bridge.Restart(ctx(t), env.Binary); err != nil {
		t.Fatal(err)
	}
	alice.textFrom(bob, "after the restart, inbound")
	mustBeEncrypted(t, alice.WaitForMessage(room, ghost(bob), "after the restart, inbound"))
	alice.Send(room, "after the restart, outbound")
	waitOutbound(t, func(m twiliosim.OutboundMessage) bool { return m.To == bob && m.Body == "after the restart, outbound" })
	if n := len(alice.Undecryptable(room)); n != 0 {
		t.Errorf("%d events in the portal could not be decrypted by the user", n)
	}
}

func TestASecondDeviceOfTheUserGetsTheKeysOfLaterMessages(t *testing.T) {
	alice := newPerson(t)
	bob := uniqueNumber()
	room := alice.portalWith(bob)

	cli, err := env.Dendrite.LoginDevice(ctx(t), alice.localpart, "password-"+alice.localpart, "second device")
	if err != nil {
		t.Fatal(err)
	}
	second := matrixtest.StartForTest(t, cli, matrixtest.Options{Crypto: true})
	// The bridge learns of the new device from its next /sync, a moment
	// after the login; a text sent in that moment is encrypted to the old
	// device only, as with any Matrix client. So Bob texts until the second
	// device reads one, and from then on every text reaches both.
	deadline := time.Now().Add(60 * time.Second)
	for i := 1; ; i++ {
		if time.Now().After(deadline) {
			t.Fatal("the second device never got the keys of a new message")
		}
		body := fmt.Sprintf("ping %d", i)
		alice.textFrom(bob, body)
		alice.WaitForMessage(room, ghost(bob), body)
		wait, cancel := context.WithTimeout(ctx(t), 3*time.Second)
		_, err := second.Client.WaitForMessage(wait, room, ghost(bob), body)
		cancel()
		if err == nil {
			break
		}
	}
	for _, body := range []string{"for both devices", "and again"} {
		alice.textFrom(bob, body)
		mustBeEncrypted(t, second.WaitForMessage(room, ghost(bob), body))
		mustBeEncrypted(t, alice.WaitForMessage(room, ghost(bob), body))
	}
}

func TestAMessageTheBridgeCannotDecryptFailsWithAStatusAndANotice(t *testing.T) {
	alice := newPerson(t)
	bob := uniqueNumber()
	room := alice.portalWith(bob)
	// A real Megolm message under a session whose key the bridge never
	// gets: what a client that failed to share its keys sends.
	lost, err := crypto.NewOutboundGroupSession(room, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	lost.Shared = true
	ciphertext, err := lost.Encrypt([]byte(`{"type":"m.room.message","room_id":"` + string(room) + `","content":{"msgtype":"m.text","body":"lost"}}`))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := alice.Matrix.SendMessageEvent(ctx(t), room, event.EventEncrypted, map[string]any{
		"algorithm":  id.AlgorithmMegolmV1,
		"ciphertext": string(ciphertext),
		"session_id": lost.ID(),
		"sender_key": "TGlPBcVxBtpoGeurhs/ofihGqT1FzgHWo3ZNrvSxkwM",
		"device_id":  alice.Matrix.DeviceID,
	})
	if err != nil {
		t.Fatal(err)
	}
	alice.Timeout = 90 * time.Second
	status := alice.WaitForEvent(room, func(e *event.Event) bool {
		c, ok := e.Content.Parsed.(*event.BeeperMessageStatusEventContent)
		return ok && e.Type == event.BeeperMessageStatus && c.RelatesTo.EventID == resp.EventID && c.Status == event.MessageStatusFail
	})
	if c := status.Content.Parsed.(*event.BeeperMessageStatusEventContent); c.Reason != event.MessageStatusUndecryptable {
		t.Errorf("the failure status gives reason %q, want %q", c.Reason, event.MessageStatusUndecryptable)
	}
	alice.WaitForMessage(room, bot(), "could not decrypt")
	if outs := env.Sim.Outbound(); len(outs) > 0 {
		for _, m := range outs {
			if m.To == bob {
				t.Errorf("something reached Bob from the undecryptable message: %q", m.Body)
			}
		}
	}
}
