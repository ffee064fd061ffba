package twiliosim

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
)

// Transport returns an http.RoundTripper for test clients (twilio-go's
// client.Client.HTTPClient, say) that sends every request for twilio.com or
// one of its subdomains, https://api.twilio.com above all, to the simulator
// instead, over plain HTTP. Other requests go to base (http.DefaultTransport
// when nil). Since twilio-go hard-codes https://api.twilio.com, this is the
// simplest way to point it at the simulator in a test, and it guarantees a
// misdirected request never reaches the real Twilio.
func (s *Server) Transport(base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &simTransport{s: s, base: base}
}

type simTransport struct {
	s    *Server
	base http.RoundTripper
}

// RoundTrip rewrites Twilio URLs to the simulator's.
func (t *simTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	host := r.URL.Hostname()
	if host != "twilio.com" && !strings.HasSuffix(host, ".twilio.com") {
		return t.base.RoundTrip(r)
	}
	target, err := url.Parse(t.s.URL())
	if err != nil || target.Host == "" {
		// Not started and no BaseURL: fail rather than reach Twilio.
		return nil, &url.Error{Op: r.Method, URL: r.URL.String(), Err: errNoURL}
	}
	r = r.Clone(r.Context())
	r.URL.Scheme = target.Scheme
	r.URL.Host = target.Host
	r.Host = target.Host
	return t.base.RoundTrip(r)
}

// errNoURL is returned by Transport before the simulator has a URL.
var errNoURL = errors.New("twiliosim: simulator has no URL: call Start or set Options.BaseURL")
