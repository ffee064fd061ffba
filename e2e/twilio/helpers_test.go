package twilio_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/connectors/twilio/twiliosim"
	"github.com/trestle-bridge/trestle/internal/matrixtest"
)

var counter atomic.Int64

// person is a Matrix user of the bridge with a Twilio account of their own.
type person struct {
	t *testing.T
	*matrixtest.T
	ID      id.UserID
	Mgmt    id.RoomID
	Account *twiliosim.Account
	// Number is the person's Twilio number, E.164.
	Number string
}

func bot() id.UserID { return id.NewUserID("twiliobot", "localhost") }

// ghost is the Matrix ID of a remote phone number's puppet.
func ghost(e164 string) id.UserID {
	return id.NewUserID("twilio_"+strings.TrimPrefix(e164, "+"), "localhost")
}

// uniqueNumber returns a fresh valid US number for this test run.
func uniqueNumber() string {
	return fmt.Sprintf("+1415555%04d", counter.Add(1)%10000)
}

// national is how a person in the US writes a +1 number: "(415) 555-0123".
func national(e164 string) string {
	d := strings.TrimPrefix(e164, "+1")
	return "(" + d[:3] + ") " + d[3:6] + "-" + d[6:]
}

// international is how the bridge shows a +1 number: "+1 415-555-0123".
func international(e164 string) string {
	d := strings.TrimPrefix(e164, "+1")
	return "+1 " + d[:3] + "-" + d[3:6] + "-" + d[6:]
}

// webhookURL is where Twilio posts texts to a logged-in number: the
// connector builds it from appservice.public_address, the network ID and the
// login ID (the number's digits).
func webhookURL(e164 string) string {
	return env.BridgeURL + "/_trestle/twilio/" + strings.TrimPrefix(e164, "+") + "/incoming"
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	return c
}

// secrets are every credential handed to the bridge or generated for it,
// for the log scan at the end of the run.
var secrets struct {
	sync.Mutex
	byName map[string]string
}

// rememberSecret records a secret the bridge's log must never contain.
func rememberSecret(name, value string) {
	secrets.Lock()
	defer secrets.Unlock()
	if secrets.byName == nil {
		secrets.byName = map[string]string{}
	}
	secrets.byName[name] = value
}

// rememberAccount records an account's auth token, and the basic-auth
// header value made from it, as secrets.
func rememberAccount(a *twiliosim.Account) {
	rememberCredentials("auth token of "+a.SID(), a.SID(), a.AuthToken())
}

// rememberCredentials records a REST password and its basic-auth form.
func rememberCredentials(name, user, pass string) {
	rememberSecret(name, pass)
	rememberSecret(name+" (basic auth)", base64.StdEncoding.EncodeToString([]byte(user+":"+pass)))
}

// newPerson creates a Matrix account and a Twilio account with the given
// SMS numbers (one fresh number if none are given), and opens the DM with
// the bridge bot.
func newPerson(t *testing.T, numbers ...string) *person {
	t.Helper()
	n := counter.Add(1)
	localpart := fmt.Sprintf("user%d", n)
	cli, err := env.NewUser(ctx(t), localpart, "password-"+localpart)
	if err != nil {
		t.Fatal(err)
	}
	p := &person{t: t, T: matrixtest.StartForTest(t, cli, matrixtest.Options{AutoJoin: true}), ID: cli.UserID}
	p.Account, err = env.Sim.AddAccount("", "")
	if err != nil {
		t.Fatal(err)
	}
	rememberAccount(p.Account)
	if len(numbers) == 0 {
		numbers = []string{uniqueNumber()}
	}
	for _, num := range numbers {
		if _, err := p.Account.AddNumber(num, twiliosim.Capabilities{SMS: true, MMS: true}); err != nil {
			t.Fatal(err)
		}
	}
	p.Number = numbers[0]
	p.Mgmt = p.DM(bot())
	p.WaitForMessage(p.Mgmt, bot(), "management room")
	return p
}

// command sends a command in the management room and returns the bot's
// reply containing want.
func (p *person) command(text, want string) *event.Event {
	p.t.Helper()
	sent := p.Send(p.Mgmt, text)
	return p.WaitForMessageAfter(p.Mgmt, sent, bot(), want)
}

// loginOptions are the optional answers of the login dialogue.
type loginOptions struct {
	// APIKey, if set, is given for REST calls instead of the auth token.
	APIKey *twiliosim.APIKey
	// Service, if set, is the Messaging Service to send through.
	Service string
	// Choose answers the number question, for accounts with several.
	Choose string
}

// login logs in through the bot as a person would: send "login", answer
// its two questions. choose answers the number question if the account
// has several numbers.
func (p *person) login(choose string) {
	p.t.Helper()
	p.loginWith(loginOptions{Choose: choose})
}

// loginWith is login with the optional answers: with an API key or a
// Messaging Service it is "login advanced", which asks for them.
func (p *person) loginWith(opts loginOptions) {
	p.t.Helper()
	last := "Logged in"
	if opts.Choose != "" {
		last = "phone number"
	}
	if opts.APIKey == nil && opts.Service == "" {
		p.command("login", "send your **Account SID**")
		p.command(p.Account.SID(), "auth token")
		p.command(p.Account.AuthToken(), last)
	} else {
		p.command("login advanced", "send your **Account SID**")
		p.command(p.Account.SID(), "auth token")
		p.command(p.Account.AuthToken(), "API key SID")
		if opts.APIKey != nil {
			p.command(opts.APIKey.SID, "API key secret")
			p.command(opts.APIKey.Secret, "Messaging Service SID")
		} else {
			p.command("-", "API key secret")
			p.command("-", "Messaging Service SID")
		}
		service := "-"
		if opts.Service != "" {
			service = opts.Service
		}
		p.command(service, last)
	}
	if opts.Choose != "" {
		p.command(opts.Choose, "Logged in")
	}
}

// portalFor waits for the invite to the portal with a remote number and
// for the person to have joined it.
func (p *person) portalFor(remote string) id.RoomID {
	p.t.Helper()
	return p.portalWith(ghost(remote))
}

// portalWith waits for the invite to the portal a ghost opened and for the
// person to have joined it.
func (p *person) portalWith(ghostID id.UserID) id.RoomID {
	p.t.Helper()
	inv := p.WaitForInvite(func(inv *matrixtest.Invite) bool { return inv.Sender == ghostID })
	p.WaitForMembership(inv.RoomID, p.ID, event.MembershipJoin)
	return inv.RoomID
}

// chatWith has remote text the person and returns the portal room, once
// the text arrived in it.
func (p *person) chatWith(remote string) id.RoomID {
	p.t.Helper()
	greeting := "Hello from " + remote
	p.textFrom(remote, greeting)
	room := p.portalFor(remote)
	p.WaitForMessage(room, ghost(remote), greeting)
	return room
}

// text sends an SMS from a remote phone to the person's number and
// returns the simulator's result.
func (p *person) textFrom(remote, body string, media ...twiliosim.MediaFile) twiliosim.InboundResult {
	p.t.Helper()
	res, err := env.Sim.SendInbound(ctx(p.t), twiliosim.InboundMessage{From: remote, To: p.Number, Body: body, Media: media})
	if err != nil {
		p.t.Fatal(err)
	}
	if res.Response.StatusCode != http.StatusOK {
		p.t.Fatalf("the bridge answered the webhook of %q with %d: %s", body, res.Response.StatusCode, res.Response.Body)
	}
	return res
}

// messages returns the m.room.message events the person has seen in a room,
// oldest first.
func (p *person) messages(room id.RoomID) []*event.Event {
	var out []*event.Event
	for _, evt := range p.Events(room) {
		if evt.Type == event.EventMessage {
			out = append(out, evt)
		}
	}
	return out
}

// bodiesFrom returns the bodies of the messages sender sent in a room.
func (p *person) bodiesFrom(room id.RoomID, sender id.UserID) []string {
	var out []string
	for _, evt := range p.messages(room) {
		if evt.Sender == sender {
			out = append(out, evt.Content.AsMessage().Body)
		}
	}
	return out
}

// statuses returns the message status events about eventID seen so far.
func (p *person) statuses(room id.RoomID, eventID id.EventID) []*event.BeeperMessageStatusEventContent {
	var out []*event.BeeperMessageStatusEventContent
	for _, evt := range p.Events(room) {
		if evt.Type != event.BeeperMessageStatus {
			continue
		}
		if c, ok := evt.Content.Parsed.(*event.BeeperMessageStatusEventContent); ok && c.RelatesTo.EventID == eventID {
			out = append(out, c)
		}
	}
	return out
}

// waitOutbound waits for a message the bridge sent through Twilio.
func waitOutbound(t *testing.T, cond func(twiliosim.OutboundMessage) bool) twiliosim.OutboundMessage {
	t.Helper()
	var found twiliosim.OutboundMessage
	_, err := env.Sim.WaitOutbound(ctx(t), func(all []twiliosim.OutboundMessage) bool {
		for _, m := range all {
			if cond(m) {
				found = m
				return true
			}
		}
		return false
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// outboundTo returns the messages the bridge sent to a number, oldest first.
func outboundTo(remote string) []twiliosim.OutboundMessage {
	var out []twiliosim.OutboundMessage
	for _, m := range env.Sim.Outbound() {
		if m.To == remote {
			out = append(out, m)
		}
	}
	return out
}

// waitStatus waits for a message status event about eventID.
func (p *person) waitStatus(room id.RoomID, eventID id.EventID, pred func(*event.BeeperMessageStatusEventContent) bool) *event.BeeperMessageStatusEventContent {
	p.t.Helper()
	evt := p.WaitForEvent(room, func(e *event.Event) bool {
		if e.Type != event.BeeperMessageStatus {
			return false
		}
		c, ok := e.Content.Parsed.(*event.BeeperMessageStatusEventContent)
		return ok && c.RelatesTo.EventID == eventID && pred(c)
	})
	return evt.Content.Parsed.(*event.BeeperMessageStatusEventContent)
}

// isSent accepts the success status of a send, before any delivery report.
func isSent(c *event.BeeperMessageStatusEventContent) bool {
	return c.Status == event.MessageStatusSuccess && (c.DeliveredToUsers == nil || len(*c.DeliveredToUsers) == 0)
}

// isDeliveredTo accepts a success status that names user as a recipient.
func isDeliveredTo(user id.UserID) func(*event.BeeperMessageStatusEventContent) bool {
	return func(c *event.BeeperMessageStatusEventContent) bool {
		if c.Status != event.MessageStatusSuccess || c.DeliveredToUsers == nil {
			return false
		}
		for _, u := range *c.DeliveredToUsers {
			if u == user {
				return true
			}
		}
		return false
	}
}

// isFailure accepts a permanent failure status.
func isFailure(c *event.BeeperMessageStatusEventContent) bool {
	return c.Status == event.MessageStatusFail
}

// postWebhook posts a form to the bridge as Twilio would, with the given
// X-Twilio-Signature (none if empty), and returns the HTTP status.
func postWebhook(t *testing.T, target string, form url.Values, signature string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx(t), http.MethodPost, target, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("User-Agent", "TwilioProxy/1.1")
	if signature != "" {
		req.Header.Set("X-Twilio-Signature", signature)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// newMessageSID makes a SID of the shape Twilio gives texts.
func newMessageSID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return "SM" + hex.EncodeToString(b)
}

// inboundForm is the form of an incoming-text webhook, as Twilio sends it.
func inboundForm(acct *twiliosim.Account, from, to, body string) url.Values {
	f := url.Values{}
	f.Set("MessageSid", newMessageSID())
	f.Set("SmsSid", f.Get("MessageSid"))
	f.Set("SmsMessageSid", f.Get("MessageSid"))
	f.Set("AccountSid", acct.SID())
	f.Set("From", from)
	f.Set("To", to)
	f.Set("Body", body)
	f.Set("NumMedia", "0")
	f.Set("NumSegments", "1")
	f.Set("SmsStatus", "received")
	f.Set("ApiVersion", "2010-04-01")
	return f
}

// testPNG encodes a w×h PNG with a gradient, so every file is different.
func testPNG(t *testing.T, w, h int) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, gradient(w, h)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// testJPEG encodes a w×h JPEG with a gradient.
func testJPEG(t *testing.T, w, h int) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, gradient(w, h), &jpeg.Options{Quality: 80}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gradient(w, h int) image.Image {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{R: uint8(x * 255 / w), G: uint8(y * 255 / h), B: uint8((x + y) % 256), A: 255})
		}
	}
	return img
}

// postLoggedWebhook posts, correctly signed, the webhook of a text that so
// far only reached the account's log (InboundMessage.LogOnly): a webhook
// that was still on its way. It returns the HTTP status.
func (p *person) postLoggedWebhook(sid string) int {
	p.t.Helper()
	for _, m := range p.Account.Messages() {
		if m.SID != sid {
			continue
		}
		form := inboundForm(p.Account, m.From, m.To, m.Body)
		for _, k := range []string{"MessageSid", "SmsSid", "SmsMessageSid"} {
			form.Set(k, sid)
		}
		target := webhookURL(m.To)
		return postWebhook(p.t, target, form, twiliosim.Signature(p.Account.AuthToken(), target, form))
	}
	p.t.Fatalf("no message %s in the account's log", sid)
	return 0
}
