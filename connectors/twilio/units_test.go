package twilio

import (
	"math/rand/v2"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
	"maunium.net/go/mautrix/event"
)

func TestExampleConfigIsTheDefault(t *testing.T) {
	var root struct {
		Network Config `yaml:"network"`
	}
	if err := yaml.Unmarshal([]byte(ExampleConfig), &root); err != nil {
		t.Fatal(err)
	}
	want := DefaultConfig()
	if err := root.Network.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := want.Validate(); err != nil {
		t.Fatal(err)
	}
	root.Network.displayname, want.displayname = nil, nil
	if !reflect.DeepEqual(root.Network, want) {
		t.Fatalf("example %+v\ndefault %+v", root.Network, want)
	}
	// Every key of Config is documented.
	typ := reflect.TypeOf(Config{})
	for i := range typ.NumField() {
		if tag := typ.Field(i).Tag.Get("yaml"); tag != "" && !strings.Contains(ExampleConfig, "\n    "+tag+":") {
			t.Errorf("ExampleConfig lacks %s", tag)
		}
	}
}

func TestConfigValidationNamesTheKey(t *testing.T) {
	for key, mutate := range map[string]func(*Config){
		"network.max_send_rate":        func(c *Config) { c.MaxSendRate = -1 },
		"network.api_url":              func(c *Config) { c.APIURL = "ftp://x" },
		"network.edge":                 func(c *Config) { c.Edge = "dublin" },
		"network.default_region":       func(c *Config) { c.DefaultRegion = "XX" },
		"network.long_message":         func(c *Config) { c.LongMessage = "truncate" },
		"network.unsupported_actions":  func(c *Config) { c.UnsupportedActions = "ignore" },
		"network.backfill_limit":       func(c *Config) { c.BackfillLimit = -1 },
		"network.displayname_template": func(c *Config) { c.DisplaynameTemplate = "{{.Nope}}" },
		"network.request_timeout":      func(c *Config) { c.RequestTimeout = 0 },
		"network.max_webhook_body":     func(c *Config) { c.MaxWebhookBody = 10 },
		"network.lookup_refresh":       func(c *Config) { c.LookupRefresh = time.Minute },
	} {
		c := DefaultConfig()
		mutate(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%s: %v", key, err)
		}
	}
	c := DefaultConfig()
	c.MaxSendRate = -1
	if err := c.Validate(); err == nil || err.Error() != "network.max_send_rate must be >= 0" {
		t.Errorf("max_send_rate: %v", err)
	}
}

func TestNumberParsingAndNames(t *testing.T) {
	for in, want := range map[string]string{
		"(415) 555-0100": "+14155550100", "415.555.0100": "+14155550100", "+1 415 555 0100": "+14155550100",
		"14155550100": "+14155550100", "tel:+14155550100": "+14155550100", "+44 20 7946 0958": "+442079460958",
	} {
		got, err := parseUserNumber(in, "US", true)
		if err != nil || got != want {
			t.Errorf("%q -> %q %v, want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "hello", "123", "+1 415 555", "999999999999999999999", "+0123456789"} {
		if got, err := parseUserNumber(in, "US", true); err == nil {
			t.Errorf("%q accepted as %q", in, got)
		}
	}
	if got, err := parseUserNumber("020 7946 0958", "GB", true); err != nil || got != "+442079460958" {
		t.Errorf("GB national: %q %v", got, err)
	}
	names := numberNames("+14155550100")
	if names.International != "+1 415-555-0100" || names.National != "(415) 555-0100" || names.E164 != "+14155550100" {
		t.Errorf("names %+v", names)
	}
	c := DefaultConfig()
	c.DisplaynameTemplate = "{{.National}} (SMS)"
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := c.displayName("+14155550100"); got != "(415) 555-0100 (SMS)" {
		t.Errorf("displayname %q", got)
	}
	if e, err := e164FromID("14155550100"); err != nil || e != "+14155550100" || idFromAddr(e) != "14155550100" {
		t.Errorf("ID round trip: %q %v", e, err)
	}
	if _, err := e164FromID("+14155550100"); err == nil {
		t.Error("an ID with '+' accepted")
	}
}

// checkSplit asserts the splitting properties for one text.
func checkSplit(t *testing.T, text string, limit int) {
	t.Helper()
	chunks := splitText(text, limit)
	if strings.Join(chunks, "") != text {
		t.Fatalf("chunks do not rejoin to the text (limit %d): %q", limit, chunks)
	}
	for i, c := range chunks {
		if bodyUnits(c) > limit {
			t.Fatalf("chunk %d has %d units > %d", i, bodyUnits(c), limit)
		}
		if c == "" || !utf8.ValidString(c) && utf8.ValidString(text) {
			t.Fatalf("chunk %d is empty or broke a rune", i)
		}
		if i == 0 {
			continue
		}
		prev, _ := utf8.DecodeLastRuneInString(chunks[i-1])
		next, _ := utf8.DecodeRuneInString(c)
		if !unicode.IsSpace(prev) && !unicode.IsSpace(next) {
			// A cut inside a word is only allowed when the word alone
			// exceeds the limit.
			word := []rune(wordAround(chunks, i))
			if bodyUnits(string(word)) <= limit {
				t.Fatalf("cut inside the word %q between chunks %d and %d", string(word), i-1, i)
			}
		}
	}
}

// wordAround returns the whole word that spans the cut before chunk i.
func wordAround(chunks []string, i int) string {
	before := strings.Join(chunks[:i], "")
	after := strings.Join(chunks[i:], "")
	start := strings.LastIndexFunc(before, unicode.IsSpace) + 1
	end := strings.IndexFunc(after, unicode.IsSpace)
	if end < 0 {
		end = len(after)
	}
	return before[start:] + after[:end]
}

func TestSplitProperties(t *testing.T) {
	words := []string{"a", "hello", "wörld", "😀", "👍🏽", "日本語", "x", "supercalifragilistic", "\n", "  ", "é"}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 500 {
		var sb strings.Builder
		n := rng.IntN(400)
		for range n {
			sb.WriteString(words[rng.IntN(len(words))])
			if rng.IntN(3) > 0 {
				sb.WriteByte(' ')
			}
		}
		limit := 10 + rng.IntN(60)
		checkSplit(t, sb.String(), limit)
	}
	checkSplit(t, strings.Repeat("x", 5000), maxBodyUnits)
	checkSplit(t, strings.Repeat("😀", 1000), maxBodyUnits)
	checkSplit(t, strings.Repeat(" ", 3000), maxBodyUnits)
	checkSplit(t, strings.Repeat("word ", 1000), maxBodyUnits)
	if got := splitText("short", maxBodyUnits); len(got) != 1 || got[0] != "short" {
		t.Fatalf("short text split: %q", got)
	}
	// Paragraph breaks are preferred.
	text := strings.Repeat("a ", 500) + "\n" + strings.Repeat("b ", 500)
	if got := splitText(text, maxBodyUnits); !strings.HasSuffix(got[0], "\n") {
		t.Fatalf("did not cut at the line break: %q...", got[0][len(got[0])-10:])
	}
	// An emoji with a skin tone modifier stays whole when a word is cut.
	emoji := strings.Repeat("👍🏽", 10)
	for _, c := range splitText(emoji, 7) {
		if strings.HasPrefix(c, "🏽") {
			t.Fatalf("modifier separated from its emoji: %q", splitText(emoji, 7))
		}
	}
	bodies := smsBodies(strings.Repeat("word ", 1000))
	if len(bodies) != 4 || strings.HasSuffix(bodies[0], " ") {
		t.Fatalf("bodies: %d", len(bodies))
	}
}

func TestHTMLToText(t *testing.T) {
	for html, want := range map[string]string{
		`<b>bold</b> and <em>it</em> <del>gone</del> <code>x</code>`: "bold and it gone x",
		`<a href="https://example.com">https://example.com</a>`:      "https://example.com",
		`<a href="https://example.com/a">docs</a>`:                   "docs (https://example.com/a)",
		`<a href="https://matrix.to/#/@bob:example.com">Bob</a>: hi`: "Bob: hi",
		`<ol><li>one</li><li>two</li></ol>`:                          "1. one\n2. two",
		`<p>para 1</p><p>para 2</p>`:                                 "para 1\n\npara 2",
		`<blockquote>quoted</blockquote>reply`:                       "> quoted\nreply",
		`<pre><code class="language-go">x := 1\n</code></pre>`:       "x := 1\\n",
		`<span data-mx-spoiler="">secret</span>`:                     "[spoiler] secret",
		`<img src="mxc://a/b" alt=":cat:" data-mx-emoticon>`:         ":cat:",
		`line<br>break`: "line\nbreak",
	} {
		if got := htmlToText(html); got != want {
			t.Errorf("%s -> %q, want %q", html, got, want)
		}
	}
	reply := &event.MessageEventContent{MsgType: event.MsgText, Body: "> <@a:b> old\n\nnew", Format: event.FormatHTML,
		FormattedBody: "<mx-reply><blockquote>old</blockquote></mx-reply>new <b>text</b>"}
	reply.RelatesTo = (&event.RelatesTo{}).SetReplyTo("$old")
	if got := contentText(reply); got != "new text" {
		t.Errorf("reply fallback kept: %q", got)
	}
	reply.Format, reply.FormattedBody = "", ""
	if got := contentText(reply); got != "new" {
		t.Errorf("plain reply fallback kept: %q", got)
	}
}

func TestMediaAllowList(t *testing.T) {
	c := New()
	if err := c.cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{
		"https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1",
		"https://api.dublin.ie1.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1",
		"https://api.au1.twilio.com/x",
	} {
		if _, err := c.allowedMediaURL(u); err != nil {
			t.Errorf("%s refused: %v", u, err)
		}
	}
	for _, u := range []string{
		"http://api.twilio.com/x", "https://api.twilio.com.evil.com/x", "https://evil.com/api.twilio.com",
		"https://169.254.169.254/latest/meta-data", "https://localhost/x", "https://media.twilio.com/x",
		"https://user:pass@api.twilio.com/x", "https://api.twilio.com:8443/x", "file:///etc/passwd",
		"https://api.a.b.c.twilio.com/x", "not a url",
	} {
		if _, err := c.allowedMediaURL(u); err == nil {
			t.Errorf("%s allowed", u)
		}
	}
	c.cfg.APIURL = "http://127.0.0.1:8080"
	if err := c.cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.allowedMediaURL("http://127.0.0.1:8080/2010-04-01/x"); err != nil {
		t.Errorf("api_url host refused: %v", err)
	}
	if _, err := c.allowedMediaURL("http://127.0.0.1:9090/x"); err == nil {
		t.Error("other port allowed")
	}
}

func TestOutgoingMediaChecks(t *testing.T) {
	if mt, err := outgoingMedia("", "photo.JPG", 1000); err != nil || mt != "image/jpeg" {
		t.Errorf("guess from name: %q %v", mt, err)
	}
	if _, err := outgoingMedia("image/webp", "x.webp", 10); err == nil {
		t.Error("webp accepted")
	}
	if _, err := outgoingMedia("image/png", "x.png", 5<<20+1); err == nil {
		t.Error("oversize accepted")
	}
	if mediaFilename("image/jpeg", 1) != "MMS image 1.jpg" || mediaFilename("text/vcard", 2) != "MMS contact card 2.vcf" ||
		mediaFilename("application/x-unknown-thing", 3) != "MMS file 3.bin" {
		t.Error("filenames")
	}
}

func TestSignatureURLIgnoresHeaders(t *testing.T) {
	rt, ok := parseRoute("15005550006/status/" + url.PathEscape("tok/en"))
	if !ok || rt.kind != "status" || rt.token != "tok/en" || rt.loginID != "15005550006" {
		t.Fatalf("route %+v", rt)
	}
	for _, bad := range []string{"", "x/incoming", "15005550006", "15005550006/other", "15005550006/status/", "1/2/3/4"} {
		if _, ok := parseRoute(bad); ok {
			t.Errorf("%q parsed", bad)
		}
	}
}
