package twiliosim

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/twilio/twilio-go/client"
	openapi "github.com/twilio/twilio-go/rest/api/v2010"
)

// send creates a message through twilio-go and returns its SID.
func send(t *testing.T, api *openapi.ApiService, to, body, callback string, media ...string) string {
	t.Helper()
	p := (&openapi.CreateMessageParams{}).SetTo(to).SetFrom(ourNumber)
	if body != "" {
		p.SetBody(body)
	}
	if callback != "" {
		p.SetStatusCallback(callback)
	}
	if len(media) > 0 {
		p.SetMediaUrl(media)
	}
	m, err := api.CreateMessage(p)
	if err != nil {
		t.Fatalf("CreateMessage: %v", err)
	}
	return *m.Sid
}

func TestOutboundDeliveredWithSignedCallbacksInOrder(t *testing.T) {
	sim, acct := startSim(t, Options{})
	b := newBridge(t)
	api := accountAPI(t, sim, acct)
	callback := b.url("/status?msg=1")
	sid := send(t, api, theirNumber, "hello", callback)

	done, err := sim.WaitMessage(testCtx(t), sid, nil)
	if err != nil {
		t.Fatal(err)
	}
	if done.Status != StatusDelivered || !slices.Equal(done.CallbackStatuses(), []string{"sent", "delivered"}) {
		t.Fatalf("message = %+v", done)
	}
	for _, c := range done.Callbacks {
		if c.Response.StatusCode != http.StatusOK || c.Err != "" {
			t.Fatalf("callback answer not recorded: %+v", c)
		}
	}
	got := b.requests()
	if len(got) != 2 {
		t.Fatalf("bridge got %d callbacks", len(got))
	}
	v := client.NewRequestValidator(acct.AuthToken())
	for i, status := range []string{"sent", "delivered"} {
		r := got[i]
		if r.URL != callback || r.Header.Get("User-Agent") != "TwilioProxy/1.1" {
			t.Fatalf("callback %d: %s %v", i, r.URL, r.Header)
		}
		if !v.ValidateBody(r.URL, r.Body, r.Header.Get("X-Twilio-Signature")) {
			t.Fatalf("callback %d signature invalid", i)
		}
		want := map[string]string{
			"MessageSid": sid, "SmsSid": sid, "MessageStatus": status, "SmsStatus": status,
			"AccountSid": acct.SID(), "From": ourNumber, "To": theirNumber, "ApiVersion": "2010-04-01",
		}
		for k, val := range want {
			if r.Form.Get(k) != val {
				t.Fatalf("callback %d: %s = %q, want %q", i, k, r.Form.Get(k), val)
			}
		}
		if len(r.Form) != len(want) {
			t.Fatalf("callback %d has unexpected fields: %v", i, r.Form)
		}
	}
	m, err := api.FetchMessage(sid, nil)
	if err != nil || *m.Status != StatusDelivered || m.DateSent == nil || m.ErrorCode != nil {
		t.Fatalf("stored message = %+v, %v", m, err)
	}
}

func TestOutboundMediaIsFetched(t *testing.T) {
	sim, acct := startSim(t, Options{})
	b := newBridge(t)
	img := []byte("\x89PNG outbound")
	b.serveFile("/media/a.png", img)
	api := accountAPI(t, sim, acct)
	sid := send(t, api, theirNumber, "", b.url("/status"), b.url("/media/a.png"))

	done, err := sim.WaitMessage(testCtx(t), sid, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(done.Media) != 1 || done.Media[0].StatusCode != 200 || done.Media[0].ContentType != "image/png" ||
		!bytes.Equal(done.Media[0].Data, img) || done.Status != StatusDelivered {
		t.Fatalf("message = %+v", done)
	}
	list, err := api.ListMedia(sid, nil)
	if err != nil || len(list) != 1 || *list[0].ContentType != "image/png" {
		t.Fatalf("ListMedia: %v %v", list, err)
	}
	resp := rawGet(t, sim, strings.TrimSuffix(*list[0].Uri, ".json"), acct.SID(), acct.AuthToken())
	if resp.StatusCode != http.StatusTemporaryRedirect {
		t.Fatalf("media content: %d", resp.StatusCode)
	}
}

func TestOutboundMediaFetchFailureFailsTheMessage(t *testing.T) {
	sim, acct := startSim(t, Options{})
	b := newBridge(t)
	b.serveFile("/media/ok.png", []byte("ok"))
	api := accountAPI(t, sim, acct)

	for _, tc := range []struct {
		name  string
		media string
	}{
		{"404", b.url("/media/missing.png")},
		{"connection refused", "http://127.0.0.1:1/nothing.png"},
		{"non-loopback target refused by the safety dialer", "http://198.51.100.7/x.png"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sid := send(t, api, theirNumber, "pic", b.url("/status"), b.url("/media/ok.png"), tc.media)
			done, err := sim.WaitMessage(testCtx(t), sid, nil)
			if err != nil {
				t.Fatal(err)
			}
			if done.Status != StatusFailed || done.ErrorCode != CodeHTTPRetrievalFailure || len(done.Media) != 2 ||
				done.Media[0].Err != "" || done.Media[1].Err == "" {
				t.Fatalf("message = %+v", done)
			}
			if !slices.Equal(done.CallbackStatuses(), []string{"failed"}) {
				t.Fatalf("callbacks = %v", done.CallbackStatuses())
			}
			f := done.Callbacks[0].Request.Form
			if f.Get("ErrorCode") != strconv.Itoa(CodeHTTPRetrievalFailure) || f.Get("ErrorMessage") == "" {
				t.Fatalf("failed callback form = %v", f)
			}
			m, err := api.FetchMessage(sid, nil)
			if err != nil || *m.Status != StatusFailed || *m.ErrorCode != CodeHTTPRetrievalFailure || m.DateSent != nil {
				t.Fatalf("stored = %+v %v", m, err)
			}
		})
	}
	if strings.Contains(sim.Outbound()[2].Media[1].Err, "non-loopback") == false {
		t.Fatalf("safety dialer error not reported: %q", sim.Outbound()[2].Media[1].Err)
	}
}

func TestRecipientBehaviours(t *testing.T) {
	sim, acct := startSim(t, Options{})
	b := newBridge(t)
	api := accountAPI(t, sim, acct)
	for _, tc := range []struct {
		name      string
		cfg       RecipientConfig
		status    string
		code      int
		callbacks []string
	}{
		{"default delivers", RecipientConfig{}, StatusDelivered, 0, []string{"sent", "delivered"}},
		{"undeliverable default code", RecipientConfig{Behavior: Undeliverable}, StatusUndelivered, CodeUnreachable, []string{"sent", "undelivered"}},
		{"undeliverable landline", RecipientConfig{Behavior: Undeliverable, ErrorCode: CodeLandline}, StatusUndelivered, CodeLandline, []string{"sent", "undelivered"}},
		{"filtered", RecipientConfig{Behavior: Undeliverable, ErrorCode: CodeFiltered}, StatusUndelivered, CodeFiltered, []string{"sent", "undelivered"}},
		{"fail to send", RecipientConfig{Behavior: FailToSend, ErrorCode: CodeUnknownDestination}, StatusFailed, CodeUnknownDestination, []string{"failed"}},
		{"out of order", RecipientConfig{Callbacks: CallbacksOutOfOrder}, StatusDelivered, 0, []string{"delivered", "sent"}},
		{"duplicated", RecipientConfig{Callbacks: CallbacksDuplicated}, StatusDelivered, 0, []string{"sent", "sent", "delivered", "delivered"}},
		{"none", RecipientConfig{Callbacks: CallbacksNone}, StatusDelivered, 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			to := "+1555999" + strconv.Itoa(1000+len(sim.Outbound()))
			sim.SetRecipient(to, tc.cfg)
			sid := send(t, api, to, "hi", b.url("/status"))
			done, err := sim.WaitMessage(testCtx(t), sid, nil)
			if err != nil {
				t.Fatal(err)
			}
			if done.Status != tc.status || done.ErrorCode != tc.code || !slices.Equal(done.CallbackStatuses(), tc.callbacks) {
				t.Fatalf("status %s code %d callbacks %v", done.Status, done.ErrorCode, done.CallbackStatuses())
			}
			for _, c := range done.Callbacks {
				got := c.Request.Form.Get("ErrorCode")
				if (c.Status == StatusUndelivered || c.Status == StatusFailed) != (got != "") {
					t.Fatalf("%s callback ErrorCode = %q", c.Status, got)
				}
				if got != "" && got != strconv.Itoa(tc.code) {
					t.Fatalf("ErrorCode = %s, want %d", got, tc.code)
				}
			}
			m, err := api.FetchMessage(sid, nil)
			if err != nil || *m.Status != tc.status {
				t.Fatalf("stored = %+v %v", m, err)
			}
			if tc.code != 0 && (m.ErrorCode == nil || *m.ErrorCode != tc.code || m.ErrorMessage == nil) {
				t.Fatalf("stored error = %v %v", m.ErrorCode, m.ErrorMessage)
			}
			if (tc.status == StatusFailed) != (m.DateSent == nil) {
				t.Fatalf("date_sent = %v for %s", m.DateSent, tc.status)
			}
		})
	}
}

func TestCallbackAnswersAreRecorded(t *testing.T) {
	sim, acct := startSim(t, Options{})
	b := newBridge(t)
	b.setStatus(http.StatusInternalServerError)
	sid := send(t, accountAPI(t, sim, acct), theirNumber, "hi", b.url("/status"))
	done, err := sim.WaitMessage(testCtx(t), sid, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range done.Callbacks {
		if c.Response.StatusCode != http.StatusInternalServerError {
			t.Fatalf("callback %s answer %d", c.Status, c.Response.StatusCode)
		}
	}
	// Twilio does not retry callbacks: the status still moved on.
	if done.Status != StatusDelivered || len(done.Callbacks) != 2 {
		t.Fatalf("message = %+v", done)
	}
}

func TestPauseOutboundHoldsMessagesQueued(t *testing.T) {
	sim, acct := startSim(t, Options{})
	b := newBridge(t)
	api := accountAPI(t, sim, acct)
	sim.PauseOutbound()
	sid := send(t, api, theirNumber, "later", b.url("/status"))
	m, err := api.FetchMessage(sid, nil)
	if err != nil || *m.Status != StatusQueued {
		t.Fatalf("paused message = %+v %v", m, err)
	}
	if n := len(b.requests()); n != 0 {
		t.Fatalf("%d callbacks while paused", n)
	}
	sim.ResumeOutbound()
	if _, err := sim.WaitMessage(testCtx(t), sid, func(m OutboundMessage) bool { return m.Status == StatusDelivered && m.Done }); err != nil {
		t.Fatal(err)
	}
	b.waitRequests(t, testCtx(t), 2)
}

func TestWaitOutboundHonoursContext(t *testing.T) {
	sim, _ := startSim(t, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := sim.WaitOutbound(ctx, func(all []OutboundMessage) bool { return len(all) > 0 }); !errors.Is(err, context.Canceled) {
		t.Fatalf("WaitOutbound on a cancelled context: %v", err)
	}
}
