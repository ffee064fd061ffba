package twiliosim

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Options configures a Server. The zero value is ready to use.
type Options struct {
	// Addr is the loopback address Start listens on. It defaults to
	// "127.0.0.1:0" (a free port). Anything that is not a loopback address
	// makes Start fail.
	Addr string

	// BaseURL is the URL the simulator is reachable at, used in the media
	// URLs it puts into webhooks. Start sets it when it is empty; set it when
	// you serve the Server through your own listener (httptest.NewServer).
	BaseURL string

	// Now is the simulator's clock, used for every timestamp it records. It
	// defaults to time.Now. It is called with the state lock held, so it must
	// not call back into the Server.
	Now func() time.Time

	// TargetTimeout bounds each webhook, status callback and media fetch the
	// simulator makes. It defaults to 15 s, Twilio's webhook timeout.
	TargetTimeout time.Duration

	// AllowNonLoopbackTargets lets the simulator send webhooks and callbacks
	// and fetch media from non-loopback addresses. Off by default so that a
	// test can never make it talk to the outside world.
	AllowNonLoopbackTargets bool
}

// Server is the simulator. It implements http.Handler, so it can be mounted
// anywhere, and Start serves it on a loopback port of its own. All methods
// are safe for concurrent use.
type Server struct {
	opts   Options
	routes []route
	client *http.Client // for webhooks, callbacks and media fetches

	// ctx is cancelled by Close; background work and hanging faults end then.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu               sync.Mutex // guards the state below; never held across I/O
	now              func() time.Time
	baseURL          string
	seq              int64
	accounts         map[string]*account
	keys             map[string]apiKeyEntry // by key SID
	numbers          map[string]*phoneNumber
	cdn              map[string]cdnFile // by key
	recipients       map[string]RecipientConfig
	webhooks         map[string]*WebhookRequest // last webhook per inbound message SID
	faults           []*faultRule
	outage           Outage
	paused           chan struct{} // non-nil while outbound processing is held; closed to release
	changed          chan struct{} // closed and replaced on every state change
	defaultRecipient RecipientConfig
	calls            map[callKey]int
	inflight         int                   // REST requests being served now
	peakInflight     int                   // most REST requests served at once since ResetAPICalls
	lookups          map[string]LookupInfo // by E.164
	lookupCounts     map[string]int        // by E.164
	stopping         bool                  // set by Close; no new background work starts

	lmu      sync.Mutex // guards the listener state below
	addr     string     // concrete listen address once started
	httpSrv  *http.Server
	listener net.Listener
	conns    map[net.Conn]struct{}
	closed   bool
}

// apiKeyEntry is an API key with the account it belongs to.
type apiKeyEntry struct {
	APIKey
	accountSID string
}

// New returns a simulator with no accounts. Call Start to serve it on a
// loopback port, or mount it as an http.Handler.
func New(opts Options) *Server {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.TargetTimeout <= 0 {
		opts.TargetTimeout = 15 * time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		opts:         opts,
		ctx:          ctx,
		cancel:       cancel,
		now:          opts.Now,
		baseURL:      strings.TrimRight(opts.BaseURL, "/"),
		accounts:     map[string]*account{},
		keys:         map[string]apiKeyEntry{},
		numbers:      map[string]*phoneNumber{},
		cdn:          map[string]cdnFile{},
		recipients:   map[string]RecipientConfig{},
		webhooks:     map[string]*WebhookRequest{},
		calls:        map[callKey]int{},
		lookups:      map[string]LookupInfo{},
		lookupCounts: map[string]int{},
		changed:      make(chan struct{}),
		conns:        map[net.Conn]struct{}{},
	}
	s.routes = s.allRoutes()
	s.client = newTargetClient(opts.TargetTimeout, opts.AllowNonLoopbackTargets)
	return s
}

// Start serves the simulator on Options.Addr, which must be a loopback
// address (default 127.0.0.1 with a free port). It returns once the listener
// is open; URL then tells where.
func (s *Server) Start() error {
	addr := s.opts.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	addr, err := loopbackAddr(addr)
	if err != nil {
		return err
	}
	s.lmu.Lock()
	defer s.lmu.Unlock()
	if s.closed {
		return errors.New("twiliosim: Start after Close")
	}
	if s.httpSrv != nil {
		return errors.New("twiliosim: already started")
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("twiliosim: listening on %s: %w", addr, err)
	}
	s.addr = l.Addr().String()
	s.httpSrv = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		ConnState:         s.trackConn,
	}
	s.serveLocked(l)

	s.mu.Lock()
	if s.baseURL == "" {
		s.baseURL = "http://" + s.addr
	}
	s.mu.Unlock()
	return nil
}

// serveLocked serves on l in the background. Called with lmu held.
func (s *Server) serveLocked(l net.Listener) {
	s.listener = l
	srv := s.httpSrv
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		// Serve returns when the listener closes (outage or Close); both are
		// deliberate, so the error carries nothing to report.
		_ = srv.Serve(l)
	}()
}

// trackConn remembers open connections so a "connection refused" outage can
// also cut the keep-alive connections clients already hold.
func (s *Server) trackConn(c net.Conn, state http.ConnState) {
	s.lmu.Lock()
	defer s.lmu.Unlock()
	switch state {
	case http.StateNew:
		s.conns[c] = struct{}{}
	case http.StateClosed, http.StateHijacked:
		delete(s.conns, c)
	}
}

// URL returns the simulator's base URL, e.g. http://127.0.0.1:41234: what a
// client uses instead of https://api.twilio.com. It is empty before Start
// unless Options.BaseURL was set.
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.baseURL
}

// Close stops serving, ends background work (outbound processing, hanging
// faults) and waits for it. It is safe to call more than once.
func (s *Server) Close() {
	s.lmu.Lock()
	s.closed = true
	if s.httpSrv != nil {
		// Close, not Shutdown: a test tearing down must not wait for a
		// request that a hang fault holds.
		_ = s.httpSrv.Close()
	}
	s.lmu.Unlock()
	s.mu.Lock()
	s.stopping = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	s.client.CloseIdleConnections()
}

// loopbackAddr checks that addr is host:port with a loopback host and returns
// it with "localhost" replaced by 127.0.0.1, so that name resolution can never
// bind anything else.
func loopbackAddr(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("twiliosim: listen address %q: %w", addr, err)
	}
	if host == "localhost" {
		return net.JoinHostPort("127.0.0.1", port), nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return "", fmt.Errorf("twiliosim: refusing to listen on %q: the simulator is test equipment and binds loopback addresses only", addr)
	}
	return addr, nil
}

// Outage makes the whole simulator unavailable, for outage tests.
type Outage int

const (
	// OutageNone serves normally.
	OutageNone Outage = iota
	// OutageRefuse closes the listener and every open connection, so new
	// connections are refused. When the Server is mounted as a handler
	// instead of started, requests are aborted without a response.
	OutageRefuse
	// OutageUnavailable answers every request with 503 and code 20503.
	OutageUnavailable
)

// SetOutage switches the outage mode. Going back to OutageNone after
// OutageRefuse listens again on the same address.
func (s *Server) SetOutage(o Outage) error {
	s.mu.Lock()
	prev := s.outage
	s.outage = o
	s.mu.Unlock()

	s.lmu.Lock()
	defer s.lmu.Unlock()
	if s.httpSrv == nil || s.closed {
		return nil
	}
	switch {
	case o == OutageRefuse && s.listener != nil:
		_ = s.listener.Close()
		s.listener = nil
		for c := range s.conns {
			_ = c.Close()
		}
	case o != OutageRefuse && prev == OutageRefuse && s.listener == nil:
		l, err := net.Listen("tcp", s.addr)
		if err != nil {
			return fmt.Errorf("twiliosim: listening again on %s after outage: %w", s.addr, err)
		}
		s.serveLocked(l)
	}
	return nil
}

// ServeHTTP serves the simulated Twilio API, the media CDN and the faults
// and outages that tests configured. To drop a connection (OutageRefuse, a
// hang or delay the client gave up on) it panics with http.ErrAbortHandler,
// as net/http handlers do; call it through an http.Server, not directly.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	outage := s.outage
	s.mu.Unlock()
	switch outage {
	case OutageRefuse:
		// A handler cannot refuse a connection; dropping it is the closest.
		panic(http.ErrAbortHandler)
	case OutageUnavailable:
		writeAPIError(w, newAPIError(http.StatusServiceUnavailable, CodeServiceUnavailable, "Service Unavailable"))
		return
	}
	rt, params, _ := s.findRoute(r)
	s.countCall(r, rt, params)
	if rt != nil {
		defer s.trackInflight()()
	}
	if s.applyFault(w, r, rt, params) {
		return
	}
	s.route(w, r)
}

// goBackground runs f as background work that Close ends and waits for.
func (s *Server) goBackground(f func(ctx context.Context)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping {
		return
	}
	// Added under mu, which Close takes before Wait: no Add races the Wait.
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f(s.ctx)
	}()
}

// notifyLocked wakes everyone waiting for a state change. Called with mu held.
func (s *Server) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// nextSeqLocked returns the next creation sequence number.
func (s *Server) nextSeqLocked() int64 {
	s.seq++
	return s.seq
}

// SetClock replaces the simulator's clock; see Options.Now. Tests use it to
// record history at chosen times.
func (s *Server) SetClock(now func() time.Time) {
	if now == nil {
		now = time.Now
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = now
}

// nowLocked is the simulator's clock in UTC, truncated to seconds as Twilio's
// RFC 2822 timestamps are.
func (s *Server) nowLocked() time.Time {
	return s.now().UTC().Truncate(time.Second)
}
