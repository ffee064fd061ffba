package twiliosim

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Webhook faults act on the requests the simulator sends the bridge
// (incoming-message webhooks, status callbacks, Conversations webhooks),
// the way the network between Twilio and a bridge fails: a proxy, DNS or
// TLS that cannot be passed, a bridge that does not answer in time. The
// message behind a webhook that never arrives stays in the account's log,
// as on Twilio, which does not retry; a bridge can only find it by listing.

// WebhookKind is what a request the simulator sends the bridge is.
type WebhookKind int

const (
	// WebhookIncoming is an incoming-message webhook (SMS, MMS, WhatsApp,
	// RCS) to a number's sms_url, a sender's or a service's inbound URL.
	WebhookIncoming WebhookKind = iota + 1
	// WebhookStatusCallback is a message status callback.
	WebhookStatusCallback
	// WebhookConversation is a Conversations event (onMessageAdded...).
	WebhookConversation
)

// WebhookFaultKind is what a webhook fault does.
type WebhookFaultKind int

const (
	// WebhookUnreachable: the request never reaches the bridge, as when
	// DNS, TLS or a proxy fails; the simulator records a connection error.
	WebhookUnreachable WebhookFaultKind = iota + 1
	// WebhookTimeout: the request never reaches the bridge and Twilio gives
	// up on it as timed out (without the simulator waiting).
	WebhookTimeout
	// WebhookProxyError: a proxy in front of the bridge answers 502 Bad
	// Gateway without passing the request on.
	WebhookProxyError
	// WebhookDelay: the request reaches the bridge after WebhookFault.Delay.
	WebhookDelay
)

// Errors a webhook that a fault stopped fails with (wrapped).
var (
	ErrWebhookUnreachable = errors.New("twiliosim: webhook target unreachable (injected fault)")
	ErrWebhookTimeout     = errors.New("twiliosim: webhook timed out (injected fault)")
)

// WebhookFault is a rule for failing requests the simulator sends.
type WebhookFault struct {
	// Kind is what the fault does.
	Kind WebhookFaultKind
	// Webhooks narrows the fault to these kinds of request; empty means
	// all of them.
	Webhooks []WebhookKind
	// URLPrefix narrows it to targets whose URL starts so; "" means any.
	URLPrefix string
	// Times is how many requests the fault affects; 0 means all of them
	// until it is removed.
	Times int
	// Delay is the wait of WebhookDelay.
	Delay time.Duration
}

// InjectWebhookFault adds a webhook fault. Like REST faults, rules are
// tried in the order they were added and the first that matches applies;
// the handle removes it and counts the requests it affected.
func (s *Server) InjectWebhookFault(f WebhookFault) *FaultHandle {
	r := &faultRule{webhook: &f}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, r)
	return &FaultHandle{s: s, rule: r}
}

// BlackHoleWebhooks makes every webhook and callback unreachable until the
// returned handle is removed: the bridge hears nothing while messages keep
// arriving in the log.
func (s *Server) BlackHoleWebhooks() *FaultHandle {
	return s.InjectWebhookFault(WebhookFault{Kind: WebhookUnreachable})
}

// webhookRuleLocked returns the first webhook fault matching a request of
// kind to target, counting the hit, or nil.
func (s *Server) webhookRuleLocked(kind WebhookKind, target string) *WebhookFault {
	for _, r := range s.faults {
		f := r.webhook
		if f == nil || (f.Times > 0 && r.hits >= f.Times) ||
			(len(f.Webhooks) > 0 && !slices.Contains(f.Webhooks, kind)) || !strings.HasPrefix(target, f.URLPrefix) {
			continue
		}
		r.hits++
		s.notifyLocked()
		return f
	}
	return nil
}

// deliver sends a webhook of kind to the bridge, unless a webhook fault
// stops or delays it.
func (s *Server) deliver(ctx context.Context, kind WebhookKind, req *WebhookRequest) (WebhookResponse, error) {
	s.mu.Lock()
	f := s.webhookRuleLocked(kind, req.URL)
	s.mu.Unlock()
	if f == nil {
		return s.send(ctx, req)
	}
	switch f.Kind {
	case WebhookUnreachable:
		return WebhookResponse{}, fmt.Errorf("twiliosim: %s %s: %w", req.Method, req.URL, ErrWebhookUnreachable)
	case WebhookTimeout:
		return WebhookResponse{}, fmt.Errorf("twiliosim: %s %s: %w", req.Method, req.URL, ErrWebhookTimeout)
	case WebhookProxyError:
		h := http.Header{}
		h.Set("Content-Type", "text/plain")
		return WebhookResponse{StatusCode: http.StatusBadGateway, Header: h, Body: []byte("Bad Gateway")}, nil
	case WebhookDelay:
		t := time.NewTimer(f.Delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return WebhookResponse{}, fmt.Errorf("twiliosim: delayed webhook to %s: %w", req.URL, ctx.Err())
		}
	}
	return s.send(ctx, req)
}
