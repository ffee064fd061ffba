package twilio

import (
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParseInboundForm feeds arbitrary webhook bodies to the form parser:
// it must never panic, and whatever it accepts must be well-formed.
func FuzzParseInboundForm(f *testing.F) {
	f.Add("MessageSid=SM0123456789abcdef0123456789abcdef&From=%2B14155550100&To=%2B15005550006&Body=hi&NumMedia=0")
	f.Add("MessageSid=MM0123456789abcdef0123456789abcdef&From=%2B14155550100&To=%2B15005550006&NumMedia=1&MediaUrl0=https%3A%2F%2Fapi.twilio.com%2Fm&MediaContentType0=image%2Fjpeg")
	f.Add("MessageSid=SM0123456789abcdef0123456789abcdef&From=whatsapp%3A%2B14155550100&To=whatsapp%3A%2B15005550006&Latitude=52.37&Longitude=4.9&Label=Dam&OriginalRepliedMessageSid=SM0123456789abcdef0123456789abcdee")
	f.Add("MessageSid=SM0123456789abcdef0123456789abcdef&From=whatsapp%3A%2B14155550100&To=%2B15005550006")
	f.Add("MessageSid=SM0123456789abcdef0123456789abcdef&From=rcs%3A%2B14155550100&To=rcs%3Aour_agent&MessagingServiceSid=MG0123456789abcdef0123456789abcdef&Body=hi")
	f.Add("NumMedia=-1")
	f.Add("Body=%FF%FE")
	f.Add("")
	f.Fuzz(func(t *testing.T, body string) {
		form, err := url.ParseQuery(body)
		if err != nil {
			return
		}
		in, err := parseInboundForm(form)
		if err != nil {
			return
		}
		// A sender is a phone number, or (off WhatsApp) a short code or an
		// alphanumeric sender ID.
		fromOK := (in.From.kind == senderPhone && e164Pattern.MatchString(in.From.addr)) ||
			(!in.From.whatsapp && in.From.kind == senderShortCode && shortCodePattern.MatchString(in.From.addr)) ||
			(!in.From.whatsapp && in.From.kind == senderAlpha && isAlphaSender(in.From.addr))
		if !messageSIDPattern.MatchString(in.SID) || !fromOK || (!in.RCS && !e164Pattern.MatchString(in.To.addr)) || in.From.whatsapp != in.To.whatsapp {
			t.Fatalf("accepted malformed IDs: %+v", in)
		}
		if len(in.Media) > maxMedia || !utf8.ValidString(in.Body) {
			t.Fatalf("accepted bad media or body: %+v", in)
		}
		if in.GeoURI != "" && (!in.From.whatsapp || !strings.HasPrefix(in.GeoURI, "geo:")) {
			t.Fatalf("accepted a location off WhatsApp or malformed: %+v", in)
		}
		parts := in.parts()
		if len(parts) == 0 && (in.Body != "" || len(in.Media) > 0) {
			t.Fatal("content without parts")
		}
		for _, m := range in.Media {
			if !strings.HasPrefix(m.URL, "http") || m.ContentType == "" {
				t.Fatalf("bad media %+v", m)
			}
		}
	})
}

// FuzzParseUserNumber feeds arbitrary input to the number parser: no panic,
// and any accepted number is E.164 that parses back to itself.
func FuzzParseUserNumber(f *testing.F) {
	for _, s := range []string{"(415) 555-0100", "+44 20 7946 0958", "14155550100", "tel:+1", "", "++1", "+1 (", "0000000000000000"} {
		f.Add(s, "US")
	}
	f.Add("020 7946 0958", "GB")
	f.Fuzz(func(t *testing.T, input, region string) {
		for _, valid := range []bool{true, false} {
			e164, err := parseUserNumber(input, region, valid)
			if err != nil {
				continue
			}
			if !e164Pattern.MatchString(e164) {
				t.Fatalf("%q -> %q is not E.164", input, e164)
			}
			again, err := parseUserNumber(e164, "", valid)
			if err != nil || again != e164 {
				t.Fatalf("%q -> %q does not parse back (%q, %v)", input, e164, again, err)
			}
			if back, err := e164FromID(idFromAddr(e164)); err != nil || back != e164 {
				t.Fatalf("ID round trip of %q: %q %v", e164, back, err)
			}
		}
	})
}

// FuzzSplitText checks the splitting properties on arbitrary text.
func FuzzSplitText(f *testing.F) {
	f.Add(strings.Repeat("hello world ", 200), 160)
	f.Add(strings.Repeat("😀", 50), 7)
	f.Add("a\u0301b\u200dc", 2)
	f.Fuzz(func(t *testing.T, text string, limit int) {
		if limit < 2 || limit > 2000 || !utf8.ValidString(text) {
			return
		}
		checkSplit(t, text, limit)
	})
}
