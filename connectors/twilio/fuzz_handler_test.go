package twilio

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/event"

	"github.com/trestle-bridge/trestle/bridgev2/bridgetest"
	"github.com/trestle-bridge/trestle/connectors/twilio/twiliosim"
)

// FuzzWebhookHandler drives the connector's real HTTP handler, with a
// logged-in number behind it, with arbitrary paths, bodies and content
// types, optionally carrying a valid signature so that the fuzzer gets past
// the signature check into parsing and journalling. Whatever comes in, the
// handler answers with a deliberate status, quickly, and never panics.
func FuzzWebhookHandler(f *testing.F) {
	valid := url.Values{
		"MessageSid": {"SM0123456789abcdef0123456789abcdef"}, "AccountSid": {"ACx"}, "From": {theirNumber},
		"To": {ourNumber}, "Body": {"hi"}, "NumMedia": {"0"},
	}
	mms := url.Values{
		"MessageSid": {"MM0123456789abcdef0123456789abcdef"}, "AccountSid": {"ACx"}, "From": {theirNumber},
		"To": {ourNumber}, "Body": {""}, "NumMedia": {"1"}, "MediaUrl0": {"https://evil.example/x"}, "MediaContentType0": {"image/jpeg"},
	}
	status := url.Values{"MessageSid": {"SM0123456789abcdef0123456789abcdef"}, "MessageStatus": {"delivered"}, "AccountSid": {"ACx"}, "To": {theirNumber}}
	login := idFromAddr(ourNumber)
	for _, seed := range []struct {
		rel, body, ct string
		sign          bool
	}{
		{login + "/incoming", valid.Encode(), "application/x-www-form-urlencoded", true},
		{login + "/incoming", mms.Encode(), "application/x-www-form-urlencoded", true},
		{login + "/status/tok", status.Encode(), "application/x-www-form-urlencoded", true},
		{login + "/status/%2e%2e", status.Encode(), "application/x-www-form-urlencoded; charset=utf-8", true},
		{login + "/incoming", valid.Encode(), "application/x-www-form-urlencoded", false},
		{login + "/incoming?x=1", "Body=%ff%fe&From=&NumMedia=-1", "application/x-www-form-urlencoded", true},
		{"../../_trestle/ready", "", "text/plain", false},
		{"99999999999999999999/incoming", "a=b", "application/x-www-form-urlencoded", true},
		{login + "/incoming", "%%%", "application/x-www-form-urlencoded", true},
	} {
		f.Add(seed.rel, []byte(seed.body), seed.ct, seed.sign)
	}

	sim, acct := twiliosim.StartForTest(f, ourNumber)
	// The test log writer may not be used from inside a fuzz target.
	quiet := zerolog.Nop()
	h := bridgetest.New(f, newTestConnector, bridgetest.Options{Log: &quiet,
		NetworkConfig: "api_url: " + sim.URL() + "\nrequest_timeout: 2s\nmax_send_rate: 0\nbackfill_limit: 0\n"})
	ul, err := h.TryLogin(alice, map[string]string{"account_sid": acct.SID(), "auth_token": acct.AuthToken()})
	if err != nil {
		f.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for twClient(ul).catchUps.Load() == 0 {
		if time.Now().After(deadline) {
			f.Fatal("the login never caught up")
		}
		time.Sleep(5 * time.Millisecond)
	}
	handler := h.Network().(*Connector).HTTPHandler()
	prefix := h.Bridge().NetworkPathPrefix()

	f.Fuzz(func(t *testing.T, rel string, body []byte, contentType string, sign bool) {
		target, err := url.Parse(prefix + rel)
		if err != nil || target.Host != "" || target.Scheme != "" || !strings.HasPrefix(target.Path, "/") {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		// The URL as parsed, not re-read from a request line: a fuzzed
		// query may hold what a request line cannot.
		newRequest := func(body string) *http.Request {
			req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/", strings.NewReader(body))
			req.URL, req.RequestURI = target, target.RequestURI()
			req.Header.Set("Content-Type", contentType)
			return req
		}
		req := newRequest(string(body))
		if sign {
			form, err := url.ParseQuery(string(body))
			if err != nil {
				form = nil
			}
			if form != nil && form.Get("AccountSid") == "ACx" {
				form.Set("AccountSid", acct.SID())
				req = newRequest(form.Encode())
			}
			signed := strings.TrimRight(h.URL, "/") + req.URL.EscapedPath()
			if req.URL.RawQuery != "" {
				signed += "?" + req.URL.RawQuery
			}
			req.Header.Set("X-Twilio-Signature", twiliosim.Signature(acct.AuthToken(), signed, form))
		}
		rec := httptest.NewRecorder()
		start := time.Now()
		handler.ServeHTTP(rec, req)
		if d := time.Since(start); d > 8*time.Second {
			t.Fatalf("the handler took %v", d)
		}
		switch rec.Code {
		case http.StatusOK, http.StatusBadRequest, http.StatusForbidden, http.StatusNotFound,
			http.StatusMethodNotAllowed, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("answered %d %q to %s %q", rec.Code, rec.Body.String(), target, body)
		}
		if rec.Code != http.StatusOK && rec.Body.Len() == 0 {
			t.Fatalf("a refusal (%d) without a reason", rec.Code)
		}
	})
}

// FuzzMatrixToSMS converts arbitrary Matrix messages (HTML formatted body,
// plain body, reply or not) to SMS text and splits it into bodies: no
// panic, valid UTF-8 stays valid, and the bodies respect Twilio's limit.
func FuzzMatrixToSMS(f *testing.F) {
	for _, seed := range []struct {
		html, plain string
		reply       bool
	}{
		{"<b>bold</b> and <i>italic</i> with <a href=\"https://example.com\">a link</a>", "bold and italic", false},
		{"<mx-reply><blockquote>quoted</blockquote></mx-reply>the answer", "> quoted\n\nthe answer", true},
		{"<ul><li>one</li><li>two<ol><li>nested</li></ol></li></ul><hr><pre><code>code\n</code></pre>", "", false},
		{"<span data-mx-spoiler=\"why\">secret</span> <img alt=\"😀\" src=\"mxc://x/y\"> <a href=\"https://matrix.to/#/@bob:x\">Bob</a>", "", false},
		{"<table><tr><td>" + strings.Repeat("<div>", 200) + "deep" + strings.Repeat("</div>", 200) + "</td></tr></table>", "", false},
		{"unclosed <b><i>tags &amp; &#x1F600; &bogus; <", "", false},
		{strings.Repeat("word ", 400), "", false},
		{"\xff\xfe<p>invalid</p>", "\x00", true},
	} {
		f.Add(seed.html, seed.plain, seed.reply)
	}
	f.Fuzz(func(t *testing.T, html, plain string, reply bool) {
		content := &event.MessageEventContent{MsgType: event.MsgText, Body: plain}
		if html != "" {
			content.Format, content.FormattedBody = event.FormatHTML, html
		}
		if reply {
			content.RelatesTo = (&event.RelatesTo{}).SetReplyTo("$target")
		}
		start := time.Now()
		text := contentText(content)
		if utf8.ValidString(html) && utf8.ValidString(plain) && !utf8.ValidString(text) {
			t.Fatalf("valid input became invalid UTF-8: %q", text)
		}
		bodies := smsBodies(text)
		for i, b := range bodies {
			if bodyUnits(b) > maxBodyUnits || b == "" || b != strings.TrimSpace(b) {
				t.Fatalf("body %d of %d is empty, untrimmed or over the limit (%d units)", i, len(bodies), bodyUnits(b))
			}
		}
		if strings.TrimSpace(text) != "" && len(bodies) == 0 {
			t.Fatalf("text %q produced no bodies", text)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("conversion took %v", d)
		}
	})
}
