package rig

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
)

// Balancer is the load balancer in front of several bridge processes of one
// bridge, as a two-node deployment has: it spreads requests (homeserver
// transactions, Twilio webhooks, media fetches) over the processes in turn,
// with no stickiness, and passes a request on to the next process when one
// refuses the connection (it was killed), as a load balancer's passive
// health check does. Answers, including errors, are passed back as they are.
type Balancer struct {
	server *httptest.Server
	client *http.Client

	mu       sync.Mutex
	backends []string
	next     atomic.Uint64
}

// NewBalancer listens on addr (host:port) and forwards to the backends'
// base URLs.
func NewBalancer(addr string, backends ...string) (*Balancer, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	b := &Balancer{backends: backends, client: &http.Client{
		// The balancer passes redirects back rather than following them.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
	b.server = &httptest.Server{Listener: l, Config: &http.Server{Handler: b}}
	b.server.Start()
	return b, nil
}

// URL is the balancer's address.
func (b *Balancer) URL() string { return b.server.URL }

// Close stops the balancer.
func (b *Balancer) Close() { b.server.Close() }

// ServeHTTP forwards one request.
func (b *Balancer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "could not read the request", http.StatusBadRequest)
		return
	}
	b.mu.Lock()
	backends := append([]string(nil), b.backends...)
	b.mu.Unlock()
	start := int(b.next.Add(1))
	for i := range backends {
		target := backends[(start+i)%len(backends)]
		req, err := http.NewRequestWithContext(r.Context(), r.Method, target+r.URL.RequestURI(), bytes.NewReader(body))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		req.Header = r.Header.Clone()
		resp, err := b.client.Do(req)
		var opErr *net.OpError
		if errors.As(err, &opErr) && opErr.Op == "dial" {
			continue // that process is down: the next one takes it
		}
		if err != nil {
			http.Error(w, "backend failed: "+err.Error(), http.StatusBadGateway)
			return
		}
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
		_ = resp.Body.Close()
		return
	}
	http.Error(w, "no bridge process is up", http.StatusBadGateway)
}
