package reliability_test

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/connectors/twilio/twiliosim"
)

// hostile is the setting of the hostile-input tests: a logged-in person
// with a portal, and ways to talk to the bridge as an attacker would.
type hostile struct {
	w     *world
	alice *person
	bob   string
	room  id.RoomID
	// hookURL is the signed (public) URL of alice's incoming webhook.
	hookURL string
}

// newSID returns a well-formed message SID.
func newSID(prefix string) string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// form is a well-formed incoming-message webhook from bob to alice.
func (h *hostile) form(text string) url.Values {
	f := url.Values{}
	f.Set("MessageSid", newSID("SM"))
	f.Set("SmsSid", f.Get("MessageSid"))
	f.Set("AccountSid", h.alice.Account.SID())
	f.Set("From", h.bob)
	f.Set("To", h.alice.Number)
	f.Set("Body", text)
	f.Set("NumMedia", "0")
	return f
}

// post sends a webhook-shaped request and returns the status and body.
func post(t *testing.T, target string, contentType string, body io.Reader, header http.Header) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, target, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, strings.TrimSpace(string(data))
}

// webhook posts form to target, signed with token (unsigned if "").
func webhook(t *testing.T, target string, form url.Values, signature string) (int, string) {
	t.Helper()
	h := http.Header{}
	if signature != "" {
		h.Set("X-Twilio-Signature", signature)
	}
	return post(t, target, "application/x-www-form-urlencoded", strings.NewReader(form.Encode()), h)
}

// journalRows counts everything the bridge has journalled in either
// direction.
func (w *world) journalRows() int {
	db := w.db()
	return w.count(db, "SELECT COUNT(*) FROM inbound_event") + w.count(db, "SELECT COUNT(*) FROM outbound_event")
}

// TestHostileWebhooksAreRefusedAndStoreNothing sends webhooks and status
// callbacks that are unsigned, forged, replayed with an altered body, meant
// for another account or number, malformed or oversized. Each is refused
// with a clear status and a sentence, nothing is journalled, and the bridge
// keeps running.
func TestHostileWebhooksAreRefusedAndStoreNothing(t *testing.T) {
	w := newWorld(t, nil)
	alice := w.newPerson("alice")
	alice.login()
	h := &hostile{w: w, alice: alice, bob: w.number()}
	h.room = alice.openPortal(h.bob, "hi")
	var err error
	if h.hookURL, err = alice.Account.SMSURL(alice.Number); err != nil {
		t.Fatal(err)
	}
	token := alice.Account.AuthToken()
	statusURL := strings.TrimSuffix(h.hookURL, "incoming") + "status/sometoken"
	sign := func(target string, f url.Values) string { return twiliosim.Signature(token, target, f) }

	signedForm := h.form("original text")
	altered := h.form("altered text")
	altered.Set("MessageSid", signedForm.Get("MessageSid"))
	otherAccount := h.form("for another account")
	otherAccount.Set("AccountSid", "AC"+strings.Repeat("0", 32))
	otherNumber := h.form("for another number")
	otherNumber.Set("To", w.number())
	status := url.Values{"MessageSid": {newSID("SM")}, "MessageStatus": {"delivered"}, "AccountSid": {alice.Account.SID()},
		"To": {h.bob}, "From": {alice.Number}}
	big := h.form(strings.Repeat("x", 70<<10))

	for _, tc := range []struct {
		name        string
		target      string
		form        url.Values
		signature   string
		contentType string
		want        int
		says        string
	}{
		{"unsigned webhook", h.hookURL, h.form("unsigned"), "", "", http.StatusForbidden, "X-Twilio-Signature"},
		{"webhook signed with another token", h.hookURL, h.form("forged"), twiliosim.Signature("not-the-token", h.hookURL, h.form("forged")), "", http.StatusForbidden, "X-Twilio-Signature"},
		{"signature replayed with an altered body", h.hookURL, altered, sign(h.hookURL, signedForm), "", http.StatusForbidden, "X-Twilio-Signature"},
		{"signature of another URL", h.hookURL, h.form("wrong url"), sign(statusURL, h.form("wrong url")), "", http.StatusForbidden, "X-Twilio-Signature"},
		{"unsigned status callback", statusURL, status, "", "", http.StatusForbidden, "X-Twilio-Signature"},
		{"forged status callback", statusURL, status, twiliosim.Signature("not-the-token", statusURL, status), "", http.StatusForbidden, "X-Twilio-Signature"},
		{"signed webhook for another account", h.hookURL, otherAccount, sign(h.hookURL, otherAccount), "", http.StatusForbidden, "AccountSid"},
		{"signed webhook to another number", h.hookURL, otherNumber, sign(h.hookURL, otherNumber), "", http.StatusBadRequest, "To is not the number"},
		{"webhook for an unknown login", strings.Replace(h.hookURL, "/"+strings.TrimPrefix(alice.Number, "+")+"/", "/19995550100/", 1), h.form("nobody"), "x", "", http.StatusNotFound, "no such login"},
		{"oversized webhook body", h.hookURL, big, sign(h.hookURL, big), "", http.StatusRequestEntityTooLarge, "too large"},
		{"JSON instead of a form", h.hookURL, h.form("json"), "x", "application/json", http.StatusBadRequest, "form"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := w.journalRows()
			hdr := http.Header{}
			if tc.signature != "" {
				hdr.Set("X-Twilio-Signature", tc.signature)
			}
			ct := tc.contentType
			if ct == "" {
				ct = "application/x-www-form-urlencoded"
			}
			code, answer := post(t, tc.target, ct, strings.NewReader(tc.form.Encode()), hdr)
			if code != tc.want || !strings.Contains(answer, tc.says) {
				t.Errorf("answered %d %q, want %d mentioning %q", code, answer, tc.want, tc.says)
			}
			if after := w.journalRows(); after != before {
				t.Errorf("a refused request left %d journal rows", after-before)
			}
		})
	}

	// Signed, but broken: each refused with the reason, nothing stored.
	for _, tc := range []struct {
		name string
		edit func(url.Values)
		says string
	}{
		{"no MessageSid", func(f url.Values) { f.Del("MessageSid") }, "MessageSid"},
		{"MessageSid with a path in it", func(f url.Values) { f.Set("MessageSid", "SM../../etc/passwd") }, "MessageSid"},
		{"From in a national format", func(f url.Values) { f.Set("From", "(415) 555-0100") }, "From is not a phone number"},
		{"From with a letter", func(f url.Values) { f.Set("From", "+1415555010O") }, "From is not a phone number"},
		{"From with spaces", func(f url.Values) { f.Set("From", "+1 415 555 0100") }, "From is not a phone number"},
		{"From with an international prefix", func(f url.Values) { f.Set("From", "0014155550100") }, "From is not a phone number"},
		{"From empty", func(f url.Values) { f.Set("From", "") }, "From is not a phone number"},
		{"NumMedia out of range", func(f url.Values) { f.Set("NumMedia", "99") }, "NumMedia"},
		{"NumMedia not a number", func(f url.Values) { f.Set("NumMedia", "1e3") }, "NumMedia"},
		{"media URL with file scheme", func(f url.Values) {
			f.Set("NumMedia", "1")
			f.Set("MediaUrl0", "file:///etc/passwd")
			f.Set("MediaContentType0", "image/jpeg")
		}, "MediaUrl0"},
		{"media URL missing", func(f url.Values) { f.Set("NumMedia", "1") }, "MediaUrl0"},
	} {
		t.Run("signed but "+tc.name, func(t *testing.T) {
			f := h.form("broken: " + tc.name)
			tc.edit(f)
			before := w.journalRows()
			code, answer := webhook(t, h.hookURL, f, sign(h.hookURL, f))
			if code != http.StatusBadRequest || !strings.Contains(answer, tc.says) {
				t.Errorf("answered %d %q, want 400 mentioning %q", code, answer, tc.says)
			}
			if after := w.journalRows(); after != before {
				t.Errorf("a refused request left %d journal rows", after-before)
			}
		})
	}
	// Nothing of it reached the portal.
	alice.textFrom(h.bob, "still here")
	alice.WaitForMessage(h.room, ghost(h.bob), "still here")
	for _, e := range alice.Events(h.room) {
		if b := body(e); e.Sender == ghost(h.bob) && e.Type == event.EventMessage && b != "hi" && b != "still here" {
			t.Errorf("a refused webhook reached Matrix: %q", b)
		}
	}
	w.assertHealthy()
}

// TestHostileAppserviceRequestsAreRefusedAndStoreNothing talks to the
// appservice API without the homeserver token, with a wrong one, and with
// malformed, mistyped and oversized transactions.
func TestHostileAppserviceRequestsAreRefusedAndStoreNothing(t *testing.T) {
	w := newWorld(t, nil)
	alice := w.newPerson("alice")
	alice.login()
	bob := w.number()
	room := alice.openPortal(bob, "hi")
	cfg, err := w.env.Files.LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	txn := func() string { n++; return w.env.BridgeURL + "/_matrix/app/v1/transactions/hostile-" + strconv.Itoa(n) }
	put := func(target, token string, body io.Reader) (int, string) {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPut, target, body)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return resp.StatusCode, string(data)
	}
	validEvent := `{"event_id":"$hostile-%d","room_id":"` + string(room) + `","sender":"` + string(alice.ID) +
		`","type":"m.room.message","origin_server_ts":1,"content":{"msgtype":"m.text","body":"smuggled"}}`
	valid := `{"events":[` + strings.Replace(validEvent, "%d", "1", 1) + `]}`

	for _, tc := range []struct {
		name  string
		token string
		body  io.Reader
		want  int
		says  string
	}{
		{"no homeserver token", "", strings.NewReader(valid), http.StatusUnauthorized, "M_UNAUTHORIZED"},
		{"wrong homeserver token", "not-the-hs-token", strings.NewReader(valid), http.StatusForbidden, "M_FORBIDDEN"},
		{"the appservice token instead", cfg.AppService.ASToken, strings.NewReader(valid), http.StatusForbidden, "M_FORBIDDEN"},
		{"bad JSON", cfg.AppService.HSToken, strings.NewReader(`{"events":[`), http.StatusBadRequest, "M_NOT_JSON"},
		{"events of the wrong type", cfg.AppService.HSToken, strings.NewReader(`{"events":"all of them"}`), http.StatusBadRequest, "M_NOT_JSON"},
		{"a body over 64 MiB", cfg.AppService.HSToken, io.MultiReader(strings.NewReader(`{"events":[`), io.LimitReader(spaces{}, 65<<20)), http.StatusRequestEntityTooLarge, "M_TOO_LARGE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := w.journalRows()
			code, answer := put(txn(), tc.token, tc.body)
			if code != tc.want || !strings.Contains(answer, tc.says) {
				t.Errorf("answered %d %s, want %d with %s", code, answer, tc.want, tc.says)
			}
			if after := w.journalRows(); after != before {
				t.Errorf("a refused transaction left %d journal rows", after-before)
			}
		})
	}
	// Well-formed transactions of broken events: acknowledged (or the
	// homeserver would resend them forever), skipped, nothing stored.
	for _, tc := range []struct{ name, events string }{
		{"event fields of the wrong types", `[{"event_id":5,"room_id":["x"],"sender":{},"type":"m.room.message","content":"text"}]`},
		{"content of the wrong type", `[{"event_id":"$c1","room_id":"` + string(room) + `","sender":"` + string(alice.ID) + `","type":"m.room.message","content":{"msgtype":7,"body":["a"]}}]`},
		{"no event ID", `[{"room_id":"` + string(room) + `","sender":"` + string(alice.ID) + `","type":"m.room.message","content":{"msgtype":"m.text","body":"x"}}]`},
		{"nulls and scalars", `[null, 1, "x", {}]`},
		{"a sender without permission", `[{"event_id":"$c2","room_id":"` + string(room) + `","sender":"@mallory:elsewhere.example","type":"m.room.message","content":{"msgtype":"m.text","body":"x"}}]`},
		{"nesting deeper than any decoder allows", `[{"event_id":"$c3","room_id":"` + string(room) + `","sender":"` + string(alice.ID) + `","type":"m.room.message","content":{"msgtype":"m.text","body":"x","x":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}}]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := w.journalRows()
			code, answer := put(txn(), cfg.AppService.HSToken, strings.NewReader(`{"events":`+tc.events+`}`))
			if code != http.StatusOK && code != http.StatusBadRequest {
				t.Errorf("answered %d %s, want 200 (skipped) or 400", code, answer)
			}
			if after := w.journalRows(); after != before {
				t.Errorf("a broken event left %d journal rows", after-before)
			}
		})
	}
	if n := countBodies(w.env.Sim.Outbound(), "smuggled"); n != 0 {
		t.Errorf("a refused transaction's text reached Twilio %d times", n)
	}
	w.assertHealthy()
}

// spaces is an endless reader of blanks, to make huge bodies cheaply.
type spaces struct{}

func (spaces) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	return len(p), nil
}

// TestOversizedMediaIsRefusedWithAClearStatus sends a 6 MB image from
// Matrix (MMS allows 5 MB) and receives an MMS whose image exceeds
// bridge.max_media_size (set to 1 MB here).
func TestOversizedMediaIsRefusedWithAClearStatus(t *testing.T) {
	w := newWorld(t, map[string]any{"bridge.max_media_size": 1 << 20})
	alice := w.newPerson("alice")
	alice.login()
	bob := w.number()
	room := alice.openPortal(bob, "hi")

	t.Run("outgoing image over 5 MB", func(t *testing.T) {
		evt := alice.SendImage(room, bytes.Repeat([]byte{0x89}, 6<<20), "image/png", "huge.png")
		st := alice.waitStatus(room, evt, func(c *event.BeeperMessageStatusEventContent) bool {
			return c.Status == event.MessageStatusFail
		})
		if !strings.Contains(st.Message, "MMS allows at most 5 MB") {
			t.Errorf("failure status says %q, want it to name the 5 MB limit", st.Message)
		}
		alice.WaitForMessageAfter(room, evt, bot(), "MMS allows at most 5 MB")
		for _, m := range w.env.Sim.Outbound() {
			if len(m.MediaURLs) > 0 {
				t.Errorf("the refused image was sent: %+v", m.MediaURLs)
			}
		}
	})
	t.Run("incoming image over the bridge's limit", func(t *testing.T) {
		alice.textFrom(bob, "look at this", twiliosim.MediaFile{ContentType: "image/jpeg", Data: bytes.Repeat([]byte{0xff}, 2<<20)})
		alice.WaitForMessage(room, ghost(bob), "look at this")
		notice := alice.WaitForMessage(room, ghost(bob), "could not be bridged")
		if b := body(notice); !strings.Contains(b, "image/jpeg") || !strings.Contains(b, "limit of 1 MB") {
			t.Errorf("notice %q should name the missing attachment and the limit", b)
		}
	})
	w.assertHealthy()
}

// TestUnusualTextSurvivesBothWays sends texts with right-to-left marks,
// zero-width joiners, emoji sequences, combining marks, NUL and invalid
// UTF-8 both ways: each arrives once, intact, except that invalid bytes
// become U+FFFD.
func TestUnusualTextSurvivesBothWays(t *testing.T) {
	w := newWorld(t, nil)
	alice := w.newPerson("alice")
	alice.login()
	bob := w.number()
	room := alice.openPortal(bob, "hi")
	texts := []struct{ sent, arrives string }{
		{"مرحبا بالعالم \u202egnp.exe", "مرحبا بالعالم \u202egnp.exe"},
		{"family 👨\u200d👩\u200d👧\u200d👦 flag 🇺🇦 skin 👋🏽", "family 👨\u200d👩\u200d👧\u200d👦 flag 🇺🇦 skin 👋🏽"},
		{"zero\u200bwidth\ufeffchars e\u0301 Z̷̢͓a̵l̶g̴o", "zero\u200bwidth\ufeffchars e\u0301 Z̷̢͓a̵l̶g̴o"},
		{"invalid \xff\xfe bytes", "invalid \ufffd bytes"},
		{"nul \x00 inside", "nul \x00 inside"},
	}
	for _, tc := range texts {
		alice.textFrom(bob, tc.sent)
	}
	alice.textFrom(bob, "end of unusual texts")
	alice.WaitForMessage(room, ghost(bob), "end of unusual texts")
	tl, err := timeline(w.ctx(), alice.Matrix, room)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range texts {
		n := 0
		for _, e := range tl {
			if e.Sender == ghost(bob) && body(e) == tc.arrives {
				n++
			}
		}
		if n != 1 {
			t.Errorf("inbound %q is in the room %d times as %q, want once", tc.sent, n, tc.arrives)
		}
	}
	for _, tc := range texts[:3] {
		alice.Send(room, tc.sent)
	}
	if _, err := w.env.Sim.WaitOutbound(w.ctx(), func(all []twiliosim.OutboundMessage) bool {
		return countBodies(all, texts[0].sent, texts[1].sent, texts[2].sent) >= 3
	}); err != nil {
		t.Fatalf("unusual outbound texts did not reach Twilio intact: %v", err)
	}
	w.assertHealthy()
}

// TestMediaURLsOutsideTwilioAreNeverFetched sends signed webhooks whose
// MediaUrl points at another host in various disguises. The text arrives
// with a notice that the attachment was not fetched, and the other host
// never sees a request (which would carry the account's credentials).
func TestMediaURLsOutsideTwilioAreNeverFetched(t *testing.T) {
	w := newWorld(t, nil)
	alice := w.newPerson("alice")
	alice.login()
	bob := w.number()
	room := alice.openPortal(bob, "hi")
	hookURL, err := alice.Account.SMSURL(alice.Number)
	if err != nil {
		t.Fatal(err)
	}
	var hits atomic.Int64
	other := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		rw.Header().Set("Content-Type", "image/jpeg")
		_, _ = rw.Write([]byte("not for the bridge"))
	}))
	defer other.Close()
	otherHost := strings.TrimPrefix(other.URL, "http://")
	simHost := strings.TrimPrefix(w.env.Sim.URL(), "http://")
	h := &hostile{w: w, alice: alice, bob: bob}
	accepted := 0
	for i, mediaURL := range []string{
		other.URL + "/2010-04-01/Accounts/" + alice.Account.SID() + "/Messages/MM0/Media/ME0",
		"http://" + simHost + "@" + otherHost + "/x",
		"https://api.twilio.com@" + otherHost + "/x",
		other.URL + "/../" + simHost + "/x",
		"http://" + otherHost + "\\@" + simHost + "/x",
		"https://api.twilio.com.evil.example/x",
		"http://[::1]:" + other.URL[strings.LastIndex(other.URL, ":")+1:] + "/x",
		"https://api.twilio.com:8443/x",
	} {
		text := "media trick " + strconv.Itoa(i)
		f := h.form(text)
		f.Set("NumMedia", "1")
		f.Set("MediaUrl0", mediaURL)
		f.Set("MediaContentType0", "image/jpeg")
		code, answer := webhook(t, hookURL, f, twiliosim.Signature(alice.Account.AuthToken(), hookURL, f))
		switch code {
		case http.StatusOK:
			// The attachment's notice comes first, then the text.
			alice.WaitForMessage(room, ghost(bob), text)
			accepted++
		case http.StatusBadRequest:
			// Refused outright as not an http(s) URL: as good.
			t.Logf("MediaUrl %q refused: %s", mediaURL, answer)
		default:
			t.Errorf("MediaUrl %q: webhook answered %d %q", mediaURL, code, answer)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the other host was asked %d times", n)
	}
	notices := 0
	for _, e := range alice.Events(room) {
		if strings.Contains(body(e), "does not point at Twilio, so the bridge did not fetch it") {
			notices++
		}
	}
	if notices != accepted {
		t.Errorf("%d notices for %d texts whose attachment was not fetched", notices, accepted)
	}
	w.assertHealthy()
}

// TestPhoneNumbersInOddFormats opens chats by typing numbers the way people
// write them: each is understood or refused with a sentence that says how
// to write it.
func TestPhoneNumbersInOddFormats(t *testing.T) {
	w := newWorld(t, nil)
	alice := w.newPerson("alice")
	alice.login()
	for _, tc := range []struct{ typed, says string }{
		{"(415) 555-0142", "Opened a chat with +1 415-555-0142"},
		{"415.555.0143", "Opened a chat with +1 415-555-0143"},
		{"+1 415 555 0144", "Opened a chat with +1 415-555-0144"},
		{"tel:+14155550145", "Opened a chat with +1 415-555-0145"},
		{"+44 20 7946 0958", "Opened a chat with +44 20 7946 0958"},
		{"++1", "is not a valid phone number"},
		{"12", "is not a valid phone number"},
		{"+1 415 555 01", "is not a valid phone number"},
		{"٤١٥٥٥٥٠١٤٦", ""},
		{"+1\u202e4155550147", ""},
		{"'; DROP TABLE portal; --", "is not a valid phone number"},
		{alice.Number, "own number"},
	} {
		reply := alice.command("start-chat "+tc.typed, tc.says)
		if tc.says == "" && !strings.Contains(body(reply), "Opened a chat") && !strings.Contains(body(reply), "not a valid phone number") {
			t.Errorf("start-chat %q: unclear reply %q", tc.typed, body(reply))
		}
	}
	w.assertHealthy()
}
