package twiliosim

import (
	"context"
	"fmt"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"
)

// FaultKind is what a fault does to the requests it matches.
type FaultKind int

const (
	// FaultRateLimit answers 429 with Retry-After and code 20429.
	FaultRateLimit FaultKind = iota + 1
	// FaultServerError answers 500 with code 20500.
	FaultServerError
	// FaultUnavailable answers 503 with code 20503.
	FaultUnavailable
	// FaultDelay waits Fault.Delay, then serves the request normally. The
	// wait ends early if the client gives up.
	FaultDelay
	// FaultHang never answers: it holds the request until the client gives
	// up or the Server closes.
	FaultHang
	// FaultBadCredentials answers 401 with code 20003 whatever the
	// credentials, as if the auth token had been revoked.
	FaultBadCredentials
)

// Fault is a rule for answering matching requests abnormally. Method,
// Path and Account narrow which requests match; empty means any.
type Fault struct {
	// Kind is what the fault does.
	Kind FaultKind
	// Method matches the HTTP method exactly.
	Method string
	// Path is a path.Match pattern on the URL path, where * stands for one
	// path segment: "/2010-04-01/Accounts/*/Messages.json",
	// "/v1/Conversations/*/Messages", "/v2/PhoneNumbers/*".
	Path string
	// Account matches the account the request is for: the account SID in
	// the path on the 2010-04-01 API, the credentials' account on the
	// others.
	Account string
	// Times is how many matching requests the fault affects; 0 means all
	// of them until it is removed.
	Times int
	// RetryAfter is the Retry-After of FaultRateLimit (default 1 s; sent in
	// whole seconds, rounded up).
	RetryAfter time.Duration
	// Delay is the wait of FaultDelay.
	Delay time.Duration
}

// faultRule is an injected fault and how often it fired.
type faultRule struct {
	Fault
	// webhook, when set, makes the rule a webhook fault: it applies to
	// requests the simulator sends, never to requests it serves.
	webhook *WebhookFault
	hits    int
}

// FaultHandle controls one injected fault.
type FaultHandle struct {
	s    *Server
	rule *faultRule
}

// InjectFault adds a fault rule. Rules are tried in the order they were
// added; the first that matches (and has uses left) applies.
func (s *Server) InjectFault(f Fault) *FaultHandle {
	r := &faultRule{Fault: f}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, r)
	return &FaultHandle{s: s, rule: r}
}

// Remove deletes the fault rule.
func (h *FaultHandle) Remove() {
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	for i, r := range h.s.faults {
		if r == h.rule {
			h.s.faults = append(h.s.faults[:i], h.s.faults[i+1:]...)
			return
		}
	}
}

// Hits returns how many requests the fault has affected so far.
func (h *FaultHandle) Hits() int {
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	return h.rule.hits
}

// WaitHits waits until the fault has affected at least n requests, e.g. to
// know that a hung request is being held or that a client retried.
func (h *FaultHandle) WaitHits(ctx context.Context, n int) error {
	for {
		h.s.mu.Lock()
		hits, changed := h.rule.hits, h.s.changed
		h.s.mu.Unlock()
		if hits >= n {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("twiliosim: waiting for %d fault hits, got %d: %w", n, hits, ctx.Err())
		}
	}
}

// ClearFaults removes every fault rule, webhook faults included.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

// matches reports whether the rule applies to the request, which is for
// account.
func (r *faultRule) matches(req *http.Request, account string) bool {
	if r.webhook != nil || (r.Times > 0 && r.hits >= r.Times) {
		return false
	}
	if r.Method != "" && r.Method != req.Method {
		return false
	}
	if r.Path != "" {
		if ok, err := path.Match(r.Path, req.URL.Path); err != nil || !ok {
			return false
		}
	}
	return r.Account == "" || r.Account == account
}

// pathAccount extracts the account SID from a REST path, or "".
func pathAccount(p string) string {
	rest, ok := strings.CutPrefix(p, "/2010-04-01/Accounts/")
	if !ok {
		return ""
	}
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		rest = rest[:i]
	}
	return strings.TrimSuffix(rest, ".json")
}

// applyFault answers the request, which rt serves (nil when none does), if
// a fault matches it, and reports whether it did. FaultDelay waits and then
// lets the request through.
func (s *Server) applyFault(w http.ResponseWriter, r *http.Request, rt *route, params map[string]string) bool {
	s.mu.Lock()
	account := s.requestAccountLocked(r, rt, params)
	var rule *faultRule
	for _, f := range s.faults {
		if f.matches(r, account) {
			rule = f
			break
		}
	}
	if rule == nil {
		s.mu.Unlock()
		return false
	}
	rule.hits++
	f := rule.Fault
	s.notifyLocked()
	s.mu.Unlock()

	switch f.Kind {
	case FaultRateLimit:
		wait := f.RetryAfter
		if wait <= 0 {
			wait = time.Second
		}
		secs := int((wait + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		writeAPIError(w, newAPIError(http.StatusTooManyRequests, CodeTooManyRequests, "Too Many Requests"))
	case FaultServerError:
		writeAPIError(w, newAPIError(http.StatusInternalServerError, CodeInternalError, "Internal Server Error"))
	case FaultUnavailable:
		writeAPIError(w, newAPIError(http.StatusServiceUnavailable, CodeServiceUnavailable, "Service Unavailable"))
	case FaultBadCredentials:
		writeAPIError(w, errUnauthorized())
	case FaultDelay:
		t := time.NewTimer(f.Delay)
		defer t.Stop()
		select {
		case <-t.C:
			return false
		case <-r.Context().Done():
		case <-s.ctx.Done():
		}
		// The client left or the simulator is closing: nobody to answer.
		panic(http.ErrAbortHandler)
	case FaultHang:
		select {
		case <-r.Context().Done():
		case <-s.ctx.Done():
		}
		panic(http.ErrAbortHandler)
	default:
		writeAPIError(w, newAPIError(http.StatusInternalServerError, CodeInternalError, "twiliosim: unknown fault kind %d", f.Kind))
	}
	return true
}
