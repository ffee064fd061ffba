package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trestle-bridge/trestle/connectors/twilio/twiliosim"
)

const (
	testNumber = "+14155550100" // the user's Twilio number
	testPhone  = "+14155550101" // a phone texting it
)

// pngBytes is a 1x1 PNG, for MMS.
var pngBytes = []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\xcf\xc0\xf0\x1f\x00\x05\x00\x01\xff\x89\x99=\x1d\x00\x00\x00\x00IEND\xaeB`\x82")

// fakeBridge stands in for the bridge's side of Twilio: it takes webhooks
// and status callbacks, and serves media for outgoing MMS.
type fakeBridge struct {
	*httptest.Server
	mu       sync.Mutex
	webhooks []url.Values
}

func newFakeBridge(t *testing.T) *fakeBridge {
	fb := &fakeBridge{}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /incoming", func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		fb.mu.Lock()
		fb.webhooks = append(fb.webhooks, r.PostForm)
		fb.mu.Unlock()
		w.Header().Set("Content-Type", "text/xml")
		_, _ = io.WriteString(w, "<Response/>")
	})
	mux.HandleFunc("POST /status", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("GET /media/dot.png", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/png")
		_, _ = w.Write(pngBytes)
	})
	fb.Server = httptest.NewServer(mux)
	t.Cleanup(fb.Close)
	return fb
}

func (fb *fakeBridge) received() []url.Values {
	fb.mu.Lock()
	defer fb.mu.Unlock()
	return slices.Clone(fb.webhooks)
}

// phoneRig is the phone API on an in-process simulator whose number's
// webhook points at a fake bridge.
type phoneRig struct {
	t      *testing.T
	sim    *twiliosim.Server
	acct   *twiliosim.Account
	bridge *fakeBridge
	page   *httptest.Server
}

func newPhoneRig(t *testing.T) *phoneRig {
	t.Helper()
	sim, acct := twiliosim.StartForTest(t, testNumber)
	fb := newFakeBridge(t)
	if err := acct.SetSMSURL(testNumber, fb.URL+"/incoming"); err != nil {
		t.Fatal(err)
	}
	n := newNotifier()
	phone := newPhoneSide(sim, acct, testNumber, n)
	ctx, cancel := context.WithCancel(context.Background())
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		phone.watch(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-watched
	})
	page := httptest.NewServer(newPageHandler(pageInfo{TwilioNumber: testNumber}, phone, nil))
	t.Cleanup(page.Close)
	return &phoneRig{t: t, sim: sim, acct: acct, bridge: fb, page: page}
}

// get fetches a JSON API path into out and returns the status code.
func (r *phoneRig) get(path string, out any) int {
	r.t.Helper()
	resp, err := http.Get(r.page.URL + path)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			r.t.Fatalf("GET %s: decoding: %v", path, err)
		}
	}
	return resp.StatusCode
}

// post sends a JSON body and returns the status code and error message.
func (r *phoneRig) post(path string, body any) (int, string) {
	r.t.Helper()
	data, _ := json.Marshal(body)
	resp, err := http.Post(r.page.URL+path, "application/json", bytes.NewReader(data))
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	var e apiError
	_ = json.NewDecoder(resp.Body).Decode(&e)
	return resp.StatusCode, e.Error
}

// text sends a text from a phone through the page, with optional PNGs.
func (r *phoneRig) text(from, body string, pngs int) (int, sendResult, string) {
	r.t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	_ = mw.WriteField("from", from)
	_ = mw.WriteField("body", body)
	for i := range pngs {
		// No Content-Type: the page must sniff it, as for a browser that
		// sends none.
		fw, _ := mw.CreateFormFile("media", fmt.Sprintf("dot%d.png", i))
		_, _ = fw.Write(pngBytes)
	}
	_ = mw.Close()
	resp, err := http.Post(r.page.URL+"/api/phone/send", mw.FormDataContentType(), &buf)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var res sendResult
	var e apiError
	_ = json.Unmarshal(data, &res)
	_ = json.Unmarshal(data, &e)
	return resp.StatusCode, res, e.Error
}

// sendAsBridge creates a message through the simulator's REST API, as the
// bridge does for a Matrix message, and returns Twilio's answer.
func (r *phoneRig) sendAsBridge(to, body string, mediaURL string) (int, map[string]any) {
	r.t.Helper()
	from := testNumber
	if strings.HasPrefix(to, whatsappPrefix) {
		from = whatsappPrefix + testNumber
	}
	form := url.Values{"To": {to}, "From": {from}, "Body": {body}, "StatusCallback": {r.bridge.URL + "/status"}}
	if mediaURL != "" {
		form.Set("MediaUrl", mediaURL)
	}
	req, _ := http.NewRequest(http.MethodPost, r.sim.URL()+"/2010-04-01/Accounts/"+r.acct.SID()+"/Messages.json", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(r.acct.SID(), r.acct.AuthToken())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// waitState long-polls the phone's state until cond holds, as the page does.
func (r *phoneRig) waitState(phone string, cond func(phoneState) bool) phoneState {
	r.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var st phoneState
	for since := uint64(0); time.Now().Before(deadline); since = st.Version {
		r.get(fmt.Sprintf("/api/phone?number=%s&since=%d", url.QueryEscape(phone), since), &st)
		if cond(st) {
			return st
		}
	}
	r.t.Fatalf("phone state never matched; last: %+v", st)
	return st
}

func TestPhoneTextReachesTheBridgeAndShowsInTheConversation(t *testing.T) {
	r := newPhoneRig(t)
	var st phoneState
	if code := r.get("/api/phone?number="+url.QueryEscape(testPhone), &st); code != http.StatusOK {
		t.Fatalf("state: HTTP %d", code)
	}
	if len(st.Messages) != 0 || st.TwilioNumber != testNumber || st.Behavior != "deliver" || !slices.Equal(st.Phones, SuggestedPhones) {
		t.Fatalf("empty conversation: %+v", st)
	}

	// People type numbers with spaces and punctuation.
	code, res, msg := r.text("+1 (415) 555-0101", "Hello there", 0)
	if code != http.StatusOK || res.Webhook != "the bridge answered HTTP 200" {
		t.Fatalf("send: HTTP %d %+v %s", code, res, msg)
	}
	got := r.bridge.received()
	if len(got) != 1 || got[0].Get("From") != testPhone || got[0].Get("To") != testNumber || got[0].Get("Body") != "Hello there" {
		t.Fatalf("the bridge got %v", got)
	}
	st = r.waitState(testPhone, func(st phoneState) bool { return len(st.Messages) == 1 })
	m := st.Messages[0]
	if !m.FromPhone || m.Body != "Hello there" || m.Status != twiliosim.StatusReceived || m.SID != res.SID || m.Webhook != res.Webhook {
		t.Fatalf("message: %+v", m)
	}

	// Another phone's conversation does not include it.
	r.get("/api/phone?number="+url.QueryEscape("+14155550102"), &st)
	if len(st.Messages) != 0 {
		t.Fatalf("another phone sees %+v", st.Messages)
	}
}

func TestAWhatsAppPhoneWritesToTheWhatsAppSenderAndSeesTheReply(t *testing.T) {
	r := newPhoneRig(t)
	if _, err := r.acct.AddWhatsAppSender(testNumber, "Sandbox"); err != nil {
		t.Fatal(err)
	}
	const wa = "whatsapp:+14155550103"
	code, res, msg := r.text("whatsapp:+1 415 555 0103", "Hi on WhatsApp", 0)
	if code != http.StatusOK || res.Webhook != "the bridge answered HTTP 200" {
		t.Fatalf("send: HTTP %d %+v %s", code, res, msg)
	}
	got := r.bridge.received()
	if len(got) != 1 || got[0].Get("From") != wa || got[0].Get("To") != "whatsapp:"+testNumber {
		t.Fatalf("the bridge got %v", got)
	}
	if code, out := r.sendAsBridge(wa, "Hi back", ""); code != http.StatusCreated {
		t.Fatalf("reply: HTTP %d %v", code, out)
	}
	st := r.waitState(wa, func(st phoneState) bool { return len(st.Messages) == 2 })
	if !st.Messages[0].FromPhone || st.Messages[1].FromPhone || st.Messages[1].Body != "Hi back" {
		t.Fatalf("the WhatsApp conversation: %+v", st.Messages)
	}
	var sms phoneState
	r.get("/api/phone?number="+url.QueryEscape("+14155550103"), &sms)
	if len(sms.Messages) != 0 {
		t.Fatalf("the same number's SMS conversation shows %+v", sms.Messages)
	}
}

func TestPhoneMMSCarriesTheImageAndServesItBack(t *testing.T) {
	r := newPhoneRig(t)
	code, res, msg := r.text(testPhone, "", 2)
	if code != http.StatusOK {
		t.Fatalf("send: HTTP %d %s", code, msg)
	}
	hook := r.bridge.received()[0]
	if hook.Get("NumMedia") != "2" || hook.Get("MediaContentType0") != "image/png" {
		t.Fatalf("webhook: %v", hook)
	}
	st := r.waitState(testPhone, func(st phoneState) bool { return len(st.Messages) == 1 })
	media := st.Messages[0].Media
	if len(media) != 2 || media[0].ContentType != "image/png" {
		t.Fatalf("media: %+v", media)
	}
	resp, err := http.Get(r.page.URL + media[1].URL)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Equal(data, pngBytes) || resp.Header.Get("Content-Type") != "image/png" {
		t.Fatalf("media %s: HTTP %d %q, %d bytes", media[1].URL, resp.StatusCode, resp.Header.Get("Content-Type"), len(data))
	}
	// Bytes from outside must never run as part of the page.
	if !strings.HasPrefix(resp.Header.Get("Content-Security-Policy"), "sandbox") || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("media headers: %v", resp.Header)
	}
	if code := r.get(fmt.Sprintf("/api/phone/media?sid=%s&i=2", res.SID), nil); code != http.StatusNotFound {
		t.Fatalf("missing media: HTTP %d", code)
	}
}

func TestPhoneShowsWhatTheBridgeSentWithItsStatusesAndMedia(t *testing.T) {
	r := newPhoneRig(t)
	code, out := r.sendAsBridge(testPhone, "Hi from Matrix", r.bridge.URL+"/media/dot.png")
	if code != http.StatusCreated {
		t.Fatalf("create: HTTP %d %v", code, out)
	}
	st := r.waitState(testPhone, func(st phoneState) bool {
		return len(st.Messages) == 1 && st.Messages[0].Status == twiliosim.StatusDelivered
	})
	m := st.Messages[0]
	if m.FromPhone || m.Body != "Hi from Matrix" || m.SID != out["sid"] {
		t.Fatalf("message: %+v", m)
	}
	if want := []string{"queued", "sent", "delivered"}; !slices.Equal(m.Trail, want) {
		t.Fatalf("trail %v, want %v", m.Trail, want)
	}
	if len(m.Media) != 1 || len(m.MediaErrors) != 0 {
		t.Fatalf("media %+v, errors %v", m.Media, m.MediaErrors)
	}
	resp, err := http.Get(r.page.URL + m.Media[0].URL)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Equal(data, pngBytes) {
		t.Fatalf("the page served %d bytes, not the %d Twilio fetched", len(data), len(pngBytes))
	}
}

func TestPhoneReportsMediaTwilioCouldNotFetch(t *testing.T) {
	r := newPhoneRig(t)
	r.sendAsBridge(testPhone, "broken picture", r.bridge.URL+"/media/missing.png")
	st := r.waitState(testPhone, func(st phoneState) bool {
		return len(st.Messages) == 1 && st.Messages[0].Status == twiliosim.StatusFailed
	})
	m := st.Messages[0]
	if m.ErrorCode != twiliosim.CodeHTTPRetrievalFailure || m.Error == "" || len(m.MediaErrors) != 1 || !strings.Contains(m.MediaErrors[0], "404") {
		t.Fatalf("message: %+v", m)
	}
}

func TestPhoneBehaviours(t *testing.T) {
	r := newPhoneRig(t)
	unreachable, unsubscribed := "+14155550102", "+447700900123"
	if code, msg := r.post("/api/phone/behavior", map[string]string{"number": unreachable, "behavior": "unreachable"}); code != http.StatusOK {
		t.Fatalf("set unreachable: HTTP %d %s", code, msg)
	}
	if code, msg := r.post("/api/phone/behavior", map[string]string{"number": unsubscribed, "behavior": "unsubscribed"}); code != http.StatusOK {
		t.Fatalf("set unsubscribed: HTTP %d %s", code, msg)
	}

	r.sendAsBridge(unreachable, "are you there?", "")
	st := r.waitState(unreachable, func(st phoneState) bool {
		return len(st.Messages) == 1 && st.Messages[0].Status == twiliosim.StatusUndelivered
	})
	m := st.Messages[0]
	if st.Behavior != "unreachable" || m.ErrorCode != twiliosim.CodeUnreachable || m.Error != "unreachable destination handset" ||
		!slices.Equal(m.Trail, []string{"queued", "sent", "undelivered"}) {
		t.Fatalf("unreachable: behaviour %q, %+v", st.Behavior, m)
	}

	// Twilio refuses to create a message to a phone that replied STOP.
	code, out := r.sendAsBridge(unsubscribed, "hello?", "")
	if code != http.StatusBadRequest || out["code"] != float64(twiliosim.CodeUnsubscribed) {
		t.Fatalf("unsubscribed: HTTP %d %v", code, out)
	}
	r.get("/api/phone?number="+url.QueryEscape(unsubscribed), &st)
	if st.Behavior != "unsubscribed" || len(st.Messages) != 0 {
		t.Fatalf("unsubscribed state: %+v", st)
	}

	// And back to normal.
	r.post("/api/phone/behavior", map[string]string{"number": unreachable, "behavior": "deliver"})
	r.sendAsBridge(unreachable, "back?", "")
	r.waitState(unreachable, func(st phoneState) bool {
		return len(st.Messages) == 2 && st.Messages[1].Status == twiliosim.StatusDelivered
	})

	if code, _ := r.post("/api/phone/behavior", map[string]string{"number": unreachable, "behavior": "on fire"}); code != http.StatusBadRequest {
		t.Fatalf("unknown behaviour: HTTP %d", code)
	}
}

func TestPhoneHoldKeepsMessagesQueuedUntilReleased(t *testing.T) {
	r := newPhoneRig(t)
	if code, msg := r.post("/api/phone/hold", map[string]bool{"hold": true}); code != http.StatusOK {
		t.Fatalf("hold: HTTP %d %s", code, msg)
	}
	r.sendAsBridge(testPhone, "wait for it", "")
	st := r.waitState(testPhone, func(st phoneState) bool { return len(st.Messages) == 1 })
	if !st.Held || st.Messages[0].Status != twiliosim.StatusQueued {
		t.Fatalf("held: %+v", st)
	}

	// A long poll with the current version waits, and answers as soon as
	// the release moves the message on.
	type answer struct {
		st  phoneState
		err error
	}
	answered := make(chan answer, 1)
	go func() {
		var next phoneState
		resp, err := http.Get(fmt.Sprintf("%s/api/phone?number=%s&since=%d", r.page.URL, url.QueryEscape(testPhone), st.Version))
		if err == nil {
			err = json.NewDecoder(resp.Body).Decode(&next)
			resp.Body.Close()
		}
		answered <- answer{next, err}
	}()
	select {
	case a := <-answered:
		t.Fatalf("the long poll answered before anything changed: %+v %v", a.st, a.err)
	case <-time.After(200 * time.Millisecond):
	}
	r.post("/api/phone/hold", map[string]bool{"hold": false})
	select {
	case a := <-answered:
		if a.err != nil || a.st.Version <= st.Version {
			t.Fatalf("long poll: %+v %v", a.st, a.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the long poll did not answer the change")
	}
	r.waitState(testPhone, func(st phoneState) bool {
		return !st.Held && st.Messages[0].Status == twiliosim.StatusDelivered
	})
}

func TestPhoneRefusesBadInput(t *testing.T) {
	r := newPhoneRig(t)
	for _, tc := range []struct {
		from, body string
		want       string
	}{
		{"1234", "hi", "not a phone number"},
		{testNumber, "hi", "your own Twilio number"},
		{testPhone, "  ", "type a text"},
	} {
		code, _, msg := r.text(tc.from, tc.body, 0)
		if code != http.StatusBadRequest || !strings.Contains(msg, tc.want) {
			t.Errorf("text from %q %q: HTTP %d %q, want 400 %q", tc.from, tc.body, code, msg, tc.want)
		}
	}
	if code := r.get("/api/phone?number=n%40pe", nil); code != http.StatusBadRequest {
		t.Errorf("state of a non-number: HTTP %d", code)
	}
	if got := r.bridge.received(); len(got) != 0 {
		t.Errorf("the bridge got %v", got)
	}
}

func TestNormalizePhone(t *testing.T) {
	for in, want := range map[string]string{
		"+14155550101":               "+14155550101",
		"+1 (415) 555-0101":          "+14155550101",
		"415.555.0101":               "+14155550101",
		"+44 7700 900123":            "+447700900123",
		"\u00a0+33612345678 ":        "+33612345678",
		"+0123456789":                "",
		"0101":                       "",
		"+1415555010a":               "",
		"+1234567890123456":          "",
		"whatsapp:+1 (415) 555-0103": "whatsapp:+14155550103",
		"whatsapp:0101":              "",
		"whatsapp:GOOGLE":            "",
		"whatsapp:89363":             "",
		"89363":                      "89363",
		"GOOGLE":                     "GOOGLE",
		"TWELVELETTER":               "",
		"1234567":                    "",
	} {
		got, err := normalizePhone(in, testNumber)
		if got != want || (err != nil) != (want == "") {
			t.Errorf("normalizePhone(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestPageServesItsFilesAndGuardsTheAPI(t *testing.T) {
	r := newPhoneRig(t)
	for _, path := range []string{"/", "/app.js", "/style.css"} {
		resp, err := http.Get(r.page.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'self'") {
			t.Errorf("%s: HTTP %d, CSP %q", path, resp.StatusCode, resp.Header.Get("Content-Security-Policy"))
		}
	}
	var info pageInfo
	r.get("/api/info", &info)
	if info.TwilioNumber != testNumber || info.MatrixEnabled || !slices.Equal(info.SuggestedPhones, SuggestedPhones) {
		t.Errorf("info: %+v", info)
	}
	if code := r.get("/api/matrix", nil); code != http.StatusNotFound && code != http.StatusMethodNotAllowed {
		t.Errorf("Matrix API without a Matrix side: HTTP %d", code)
	}

	// Another website open in the browser may not act as the user...
	req, _ := http.NewRequest(http.MethodPost, r.page.URL+"/api/phone/hold", strings.NewReader(`{"hold":true}`))
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	req.Header.Set("Origin", "https://evil.example")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site POST: %v %v", resp, err)
	}
	// ...nor read the page through a rebound DNS name.
	req, _ = http.NewRequest(http.MethodGet, r.page.URL+"/api/info", nil)
	req.Host = "evil.example"
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("foreign Host: %v %v", resp, err)
	}
}

func TestListenLoopback(t *testing.T) {
	if _, _, err := listenLoopback("0.0.0.0:0"); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Errorf("0.0.0.0: %v", err)
	}
	if _, _, err := listenLoopback("example.com:80"); err == nil {
		t.Error("a host name other than localhost was accepted")
	}
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	l, note, err := listenLoopback(taken.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.Addr().String() == taken.Addr().String() || !strings.Contains(note, "taken") {
		t.Errorf("fallback: listening on %s, note %q", l.Addr(), note)
	}
	l2, note, err := listenLoopback("localhost:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	if host, _, _ := net.SplitHostPort(l2.Addr().String()); host != "127.0.0.1" || note != "" {
		t.Errorf("localhost: listening on %s, note %q", l2.Addr(), note)
	}
}

func TestPhoneGroupTextReachesTheBridgeAndShowsTheGroupsTexts(t *testing.T) {
	r := newPhoneRig(t)
	const other = "+14155550102"
	// The bridge's Conversations webhook, as a login sets it.
	form := url.Values{"PostWebhookUrl": {r.bridge.URL + "/incoming"}, "Method": {"POST"}, "Filters": {"onMessageAdded"}}
	req, _ := http.NewRequest(http.MethodPost, r.sim.URL()+"/v1/Configuration/Webhooks", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(r.acct.SID(), r.acct.AuthToken())
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("setting the Conversations webhook: %v %v", resp, err)
	}

	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	_ = mw.WriteField("from", testPhone)
	_ = mw.WriteField("body", "hi both")
	_ = mw.WriteField("group", "(415) 555-0102")
	_ = mw.Close()
	resp, err := http.Post(r.page.URL+"/api/phone/send", mw.FormDataContentType(), &buf)
	if err != nil {
		t.Fatal(err)
	}
	var res sendResult
	_ = json.NewDecoder(resp.Body).Decode(&res)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || res.Webhook != "the bridge answered HTTP 200" {
		t.Fatalf("group send: %d %+v", resp.StatusCode, res)
	}
	group, ok := r.acct.FindGroup(testNumber, testPhone, other)
	if !ok {
		t.Fatalf("no group on Twilio: %+v", r.acct.Conversations())
	}
	if got := r.bridge.received(); len(got) != 1 || got[0].Get("EventType") != "onMessageAdded" || got[0].Get("Body") != "hi both" {
		t.Fatalf("the bridge got %v", got)
	}
	// The other phone sees the text, from its author, in the group.
	st := r.waitState(other, func(st phoneState) bool { return len(st.Messages) == 1 })
	if m := st.Messages[0]; m.FromPhone || m.Author != testPhone || !slices.Equal(m.Group, []string{testPhone}) || m.Body != "hi both" {
		t.Fatalf("the other phone shows %+v", m)
	}
	// The other phone answers the group.
	if _, err := r.sim.SendGroupText(context.Background(), twiliosim.GroupText{ConversationSID: group.SID, From: other, Body: "hello"}); err != nil {
		t.Fatal(err)
	}
	st = r.waitState(testPhone, func(st phoneState) bool { return len(st.Messages) == 2 })
	if m := st.Messages[0]; !m.FromPhone || m.Webhook != "the bridge answered HTTP 200" || !slices.Equal(m.Group, []string{other}) {
		t.Fatalf("the phone's own group text shows %+v", m)
	}
	if m := st.Messages[1]; m.Author != other || m.Body != "hello" {
		t.Fatalf("the other phone's group text shows %+v", m)
	}
	// The bridge's text to the group shows with its delivery to the phone.
	form = url.Values{"Author": {testNumber}, "Body": {"from Matrix"}}
	req, _ = http.NewRequest(http.MethodPost, r.sim.URL()+"/v1/Conversations/"+group.SID+"/Messages", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(r.acct.SID(), r.acct.AuthToken())
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("the bridge's group text: %v %v", resp, err)
	}
	st = r.waitState(testPhone, func(st phoneState) bool {
		return len(st.Messages) == 3 && st.Messages[2].Status == twiliosim.StatusDelivered
	})
	if m := st.Messages[2]; m.FromPhone || m.Author != "" || m.Body != "from Matrix" {
		t.Fatalf("the bridge's group text shows %+v", m)
	}
}
