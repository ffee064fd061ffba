package twiliosim

import (
	"cmp"
	"maps"
	"net/http"
	"slices"
	"strings"
)

// Every REST request the simulator receives for a route it serves is
// counted, by account and endpoint, whatever the answer: a request a fault
// answered with 429 still cost the bridge a call, and Twilio's rate limits
// and the bridge's documented costs count it too. Requests refused by an
// Outage never reached "Twilio" and are not counted.

// APICallCount is how often one account called one endpoint.
type APICallCount struct {
	// Account is the account the request named (in its path, or by its
	// credentials' user name); "" when it named none.
	Account string
	// Endpoint is the method, Twilio's host for the product and the route's
	// path template, e.g.
	// "POST api.twilio.com/2010-04-01/Accounts/{AccountSid}/Messages.json"
	// or "GET lookups.twilio.com/v2/PhoneNumbers/{PhoneNumber}".
	Endpoint string
	// Count is the number of requests.
	Count int
}

// callKey indexes the call counters.
type callKey struct{ account, endpoint string }

// endpointName is how call counts name a route's operation.
func endpointName(rt *route) string {
	return rt.method + " " + apis[rt.api].host + rt.pattern
}

// countCall counts a request for rt. Called without mu held.
func (s *Server) countCall(r *http.Request, rt *route, params map[string]string) {
	if rt == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[callKey{s.requestAccountLocked(r, rt, params), endpointName(rt)}]++
}

// requestAccountLocked is the account a request is for, without checking
// its credentials: the path's account on the 2010-04-01 API, else the
// account of the basic-auth user (an account SID or an API key's owner).
func (s *Server) requestAccountLocked(r *http.Request, rt *route, params map[string]string) string {
	if rt != nil && rt.accountParam != "" {
		return params[rt.accountParam]
	}
	if acct := pathAccount(r.URL.Path); acct != "" {
		return acct
	}
	user, _, _ := r.BasicAuth()
	switch {
	case strings.HasPrefix(user, prefixAccount):
		return user
	case strings.HasPrefix(user, prefixAPIKey):
		return s.keys[user].accountSID
	}
	return ""
}

// trackInflight counts a request being served until the returned func runs.
func (s *Server) trackInflight() (done func()) {
	s.mu.Lock()
	s.inflight++
	s.peakInflight = max(s.peakInflight, s.inflight)
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		s.inflight--
		s.mu.Unlock()
	}
}

// PeakConcurrentCalls returns the most REST requests the simulator was
// serving at once since the last ResetAPICalls: what a client's
// concurrency looks like from Twilio's side (with a FaultDelay, each request
// takes a while).
func (s *Server) PeakConcurrentCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peakInflight
}

// APICalls returns every call count, ordered by account then endpoint.
func (s *Server) APICalls() []APICallCount {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]APICallCount, 0, len(s.calls))
	for k, n := range s.calls {
		out = append(out, APICallCount{Account: k.account, Endpoint: k.endpoint, Count: n})
	}
	slices.SortFunc(out, func(a, b APICallCount) int {
		return cmp.Or(cmp.Compare(a.Account, b.Account), cmp.Compare(a.Endpoint, b.Endpoint))
	})
	return out
}

// ResetAPICalls sets every call count back to zero, e.g. at the start of
// the hour a test measures.
func (s *Server) ResetAPICalls() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.calls)
	s.peakInflight = s.inflight
}

// APICalls returns the account's call counts by endpoint (see
// APICallCount.Endpoint).
func (a *Account) APICalls() map[string]int {
	a.s.mu.Lock()
	defer a.s.mu.Unlock()
	out := map[string]int{}
	for k, n := range a.s.calls {
		if k.account == a.sid {
			out[k.endpoint] += n
		}
	}
	return out
}

// APICallTotal returns how many REST calls the account has made since the
// last ResetAPICalls.
func (a *Account) APICallTotal() int {
	total := 0
	for n := range maps.Values(a.APICalls()) {
		total += n
	}
	return total
}
