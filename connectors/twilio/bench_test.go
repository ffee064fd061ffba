package twilio

import (
	"net/url"
	"strings"
	"testing"

	"github.com/twilio/twilio-go/client"

	"github.com/trestle-bridge/trestle/connectors/twilio/twiliosim"
)

// Hot paths per message. Run with:
// go test -run '^$' -bench . -benchmem ./connectors/twilio/

// BenchmarkWebhookParseAndVerify is what every incoming text costs before
// it is journalled: form parsing, field validation, signature check.
func BenchmarkWebhookParseAndVerify(b *testing.B) {
	const token = "benchauthtoken0000000000000000001"
	const target = "https://bridge.example.com/_trestle/twilio/14155550000/incoming"
	form := url.Values{
		"MessageSid": {"SM0123456789abcdef0123456789abcdef"}, "AccountSid": {"AC0123456789abcdef0123456789abcdef"},
		"From": {"+14155550100"}, "To": {"+14155550000"}, "Body": {"Hi, running ten minutes late, see you soon"},
		"NumMedia": {"0"}, "ApiVersion": {"2010-04-01"}, "SmsStatus": {"received"}, "NumSegments": {"1"},
	}
	body := form.Encode()
	sig := twiliosim.Signature(token, target, form)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		parsed, err := url.ParseQuery(body)
		if err != nil {
			b.Fatal(err)
		}
		in, err := parseInboundForm(parsed)
		if err != nil {
			b.Fatal(err)
		}
		params := make(map[string]string, len(parsed))
		for k, v := range parsed {
			params[k] = v[0]
		}
		v := client.NewRequestValidator(token)
		if !v.Validate(target, params, sig) {
			b.Fatal("signature did not verify")
		}
		_ = messageParts(in.Body, in.Media)
	}
}

// BenchmarkMatrixHTMLToSMS is the conversion of a formatted Matrix message
// to SMS text.
func BenchmarkMatrixHTMLToSMS(b *testing.B) {
	html := `<p>Hello <strong>Bob</strong>, see <a href="https://example.com/x">the plan</a>:</p><ul><li>one</li><li>two</li></ul><blockquote>quoted</blockquote>`
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if htmlToText(html) == "" {
			b.Fatal("empty")
		}
	}
}

// BenchmarkSplitLongText splits a 2,000-character message for SMS.
func BenchmarkSplitLongText(b *testing.B) {
	text := strings.Repeat("lorem ipsum dolor sit amet ", 75)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if len(splitText(text, 1600)) < 2 {
			b.Fatal("not split")
		}
	}
}
