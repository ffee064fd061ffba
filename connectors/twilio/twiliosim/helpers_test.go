package twiliosim

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twilio/twilio-go/client"
	openapi "github.com/twilio/twilio-go/rest/api/v2010"
)

// Test numbers: two of ours, some of theirs.
const (
	ourNumber   = "+15005550006"
	ourNumber2  = "+15005550007"
	theirNumber = "+15551230001"
	otherPhone  = "+15551230002"
)

// testCtx returns a context that ends before the test's own deadline, so a
// wait that never comes true fails with a message instead of a panic.
func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// startSim starts a simulator with one account owning ourNumber (SMS+MMS).
func startSim(t *testing.T, opts Options) (*Server, *Account) {
	t.Helper()
	sim := New(opts)
	if err := sim.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(sim.Close)
	acct, err := sim.AddAccount("", "")
	if err != nil {
		t.Fatalf("AddAccount: %v", err)
	}
	if _, err := acct.AddNumber(ourNumber, Capabilities{SMS: true, MMS: true, Voice: true}); err != nil {
		t.Fatalf("AddNumber: %v", err)
	}
	return sim, acct
}

// twilioAPI returns a twilio-go API service authenticated as user:pass for
// accountSID, talking to the simulator: its transport rewrites the scheme and
// host of https://api.twilio.com to the simulator's.
func twilioAPI(t *testing.T, sim *Server, user, pass, accountSID string) *openapi.ApiService {
	t.Helper()
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	c := &client.Client{
		Credentials: client.NewCredentials(user, pass),
		HTTPClient: &http.Client{
			Transport: sim.Transport(tr),
			// twilio-go's own default: hand 3xx back to the caller.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			Timeout:       10 * time.Second,
		},
	}
	c.SetAccountSid(accountSID)
	return openapi.NewApiService(client.NewRequestHandler(c))
}

// accountAPI is twilioAPI with the account's own SID and token.
func accountAPI(t *testing.T, sim *Server, acct *Account) *openapi.ApiService {
	t.Helper()
	return twilioAPI(t, sim, acct.SID(), acct.AuthToken(), acct.SID())
}

// restError asserts err is a Twilio REST error with the given status and code.
func restError(t *testing.T, err error, status, code int) *client.TwilioRestError {
	t.Helper()
	var te *client.TwilioRestError
	if !errors.As(err, &te) {
		t.Fatalf("want Twilio REST error %d/%d, got %v", status, code, err)
	}
	if te.Status != status || te.Code != code {
		t.Fatalf("want Twilio REST error %d/%d, got %d/%d: %s", status, code, te.Status, te.Code, te.Message)
	}
	if want := "https://www.twilio.com/docs/errors/"; len(te.MoreInfo) <= len(want) || te.MoreInfo[:len(want)] != want {
		t.Fatalf("more_info = %q", te.MoreInfo)
	}
	return te
}

// received is one request the fake bridge got.
type received struct {
	Method string
	URL    string // full URL as requested
	Header http.Header
	Body   []byte
	Form   url.Values
}

// bridge is a fake bridge endpoint that records what the simulator sends.
type bridge struct {
	srv *httptest.Server

	mu      sync.Mutex
	got     []received
	changed chan struct{}
	status  int               // answer status, 200 by default
	files   map[string][]byte // /media/ path -> content served as image/png
}

func newBridge(t *testing.T) *bridge {
	t.Helper()
	b := &bridge{changed: make(chan struct{}), status: http.StatusOK, files: map[string][]byte{}}
	b.srv = httptest.NewServer(http.HandlerFunc(b.serve))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *bridge) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	form, _ := url.ParseQuery(string(body))
	if r.Method == http.MethodGet {
		form = r.URL.Query()
	}
	b.mu.Lock()
	data, isFile := b.files[r.URL.Path]
	status := b.status
	if !strings.HasPrefix(r.URL.Path, "/media/") {
		b.got = append(b.got, received{
			Method: r.Method, URL: "http://" + r.Host + r.URL.RequestURI(),
			Header: r.Header.Clone(), Body: body, Form: form,
		})
		close(b.changed)
		b.changed = make(chan struct{})
	}
	b.mu.Unlock()
	if strings.HasPrefix(r.URL.Path, "/media/") && !isFile {
		http.NotFound(w, r)
		return
	}
	if isFile {
		w.Header().Set("Content-Type", "image/png")
		_, _ = w.Write(data)
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, "<Response/>")
}

func (b *bridge) url(path string) string { return b.srv.URL + path }

func (b *bridge) setStatus(code int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.status = code
}

func (b *bridge) serveFile(path string, data []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.files[path] = data
}

func (b *bridge) requests() []received {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]received(nil), b.got...)
}

// waitRequests waits until the bridge got at least n requests.
func (b *bridge) waitRequests(t *testing.T, ctx context.Context, n int) []received {
	t.Helper()
	for {
		b.mu.Lock()
		got, ch := append([]received(nil), b.got...), b.changed
		b.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatalf("waiting for %d requests to the bridge, got %d: %v", n, len(got), ctx.Err())
		}
	}
}

// waitFor waits until the bridge got a request for which match holds.
func (b *bridge) waitFor(t *testing.T, ctx context.Context, match func(received) bool) received {
	t.Helper()
	for n := 1; ; n++ {
		got := b.waitRequests(t, ctx, n)
		if match(got[n-1]) {
			return got[n-1]
		}
	}
}

// rawGet performs an authenticated GET on the simulator without twilio-go,
// for what twilio-go hides (headers, redirects, exact bodies).
func rawGet(t *testing.T, sim *Server, path, user, pass string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, sim.URL()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	noRedirect := &http.Client{
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       10 * time.Second,
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// requestHandler returns a twilio-go request handler authenticated as acct
// whose transport sends every *.twilio.com request to the simulator, for
// the SDK services of the newer APIs (conversations, lookups, content...).
func requestHandler(t *testing.T, sim *Server, acct *Account) *client.RequestHandler {
	t.Helper()
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	c := &client.Client{
		Credentials: client.NewCredentials(acct.SID(), acct.AuthToken()),
		HTTPClient: &http.Client{
			Transport:     sim.Transport(tr),
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			Timeout:       10 * time.Second,
		},
	}
	c.SetAccountSid(acct.SID())
	return client.NewRequestHandler(c)
}
