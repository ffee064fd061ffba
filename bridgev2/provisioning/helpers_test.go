package provisioning_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"github.com/trestle-bridge/trestle/bridgev2/provisioning"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/bridgev2"
	"github.com/trestle-bridge/trestle/bridgev2/bridgeconfig"
	"github.com/trestle-bridge/trestle/bridgev2/bridgetest"
	"github.com/trestle-bridge/trestle/bridgev2/bridgetest/testnet"
	"github.com/trestle-bridge/trestle/bridgev2/networkid"
)

const testSecret = "provisioning-secret-for-tests-0123456789"

// Test users: alice and bob may log in, relay-level and outsiders may not.
const (
	alice    = id.UserID("@alice:example.com")
	bob      = id.UserID("@bob:example.com")
	relayer  = id.UserID("@someone:relay.example.com")
	outsider = id.UserID("@eve:elsewhere.org")
)

// env is a running bridge (the real core on bridgetest's fake homeserver)
// with the provisioning API served over HTTP.
type env struct {
	t      *testing.T
	h      *bridgetest.Harness
	api    *provisioning.API
	srv    *httptest.Server
	fx     *fixture
	tokens *fakeWhoami

	mu        sync.Mutex
	exchanges []exchange
}

// exchange is one request and its answer, for the conformance check.
type exchange struct {
	method, pattern string
	status          int
	body            []byte
}

type envOptions struct {
	// plainTestnet uses testnet as is (no contact list, no wait flow).
	plainTestnet bool
	// textOnly gives logins a client that can only send messages.
	textOnly  bool
	configure func(*bridgeconfig.Config)
	// idleTimeout, if set, replaces processIdleTimeout.
	idleTimeout time.Duration
}

func newEnv(t *testing.T, opts envOptions) *env {
	t.Helper()
	e := &env{t: t, fx: newFixture(), tokens: newFakeWhoami(t)}
	remote := testnet.NewRemote()
	factory := func() bridgev2.NetworkConnector {
		if opts.plainTestnet {
			return remote.Connector()
		}
		return &testConnector{Network: remote.Connector().(*testnet.Network), fx: e.fx, textOnly: opts.textOnly}
	}
	quiet := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel)
	e.h = bridgetest.New(t, factory, bridgetest.Options{Log: &quiet, Configure: func(c *bridgeconfig.Config) {
		c.Provisioning = bridgeconfig.Provisioning{Enabled: true, SharedSecret: testSecret}
		c.Homeserver.Address = e.tokens.srv.URL
		if opts.configure != nil {
			opts.configure(c)
		}
	}})
	e.api = provisioning.New(e.h.Bridge(), quiet.With().Str("component", "provisioning").Logger())
	if opts.idleTimeout != 0 {
		provisioning.SetIdleTimeout(e.api, opts.idleTimeout)
	}
	t.Cleanup(e.api.Close)
	mux := http.NewServeMux()
	e.api.Register(mux)
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	return e
}

// response is an API answer.
type response struct {
	status int
	header http.Header
	body   []byte
}

// object decodes the body as a JSON object.
func (r *response) object(t *testing.T) map[string]any {
	t.Helper()
	var out map[string]any
	if err := json.Unmarshal(r.body, &out); err != nil {
		t.Fatalf("response is not a JSON object: %v\n%s", err, r.body)
	}
	return out
}

// request is one API call; zero fields are left out.
type request struct {
	method string
	// path is relative to /_matrix/provision/ and may carry a query.
	path string
	// as is the user acted for with the shared secret (?user_id=).
	as id.UserID
	// token replaces the shared secret as bearer token; "-" sends none.
	token string
	body  any
	// rawBody is sent as is instead of body.
	rawBody []byte
}

func (e *env) do(req request) *response {
	e.t.Helper()
	u, err := url.Parse(e.srv.URL + provisioning.PathPrefix + req.path)
	if err != nil {
		e.t.Fatal(err)
	}
	if req.as != "" {
		q := u.Query()
		q.Set("user_id", string(req.as))
		u.RawQuery = q.Encode()
	}
	var body io.Reader
	switch {
	case req.rawBody != nil:
		body = bytes.NewReader(req.rawBody)
	case req.body != nil:
		raw, err := json.Marshal(req.body)
		if err != nil {
			e.t.Fatal(err)
		}
		body = bytes.NewReader(raw)
	}
	hr, err := http.NewRequestWithContext(e.h.Ctx(), req.method, u.String(), body)
	if err != nil {
		e.t.Fatal(err)
	}
	switch req.token {
	case "":
		hr.Header.Set("Authorization", "Bearer "+testSecret)
	case "-":
	default:
		hr.Header.Set("Authorization", "Bearer "+req.token)
	}
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		e.t.Fatalf("%s %s: %v", req.method, req.path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	pattern := provisioning.RoutePattern(e.api, hr)
	e.mu.Lock()
	e.exchanges = append(e.exchanges, exchange{method: req.method, pattern: pattern, status: resp.StatusCode, body: raw})
	e.mu.Unlock()
	return &response{status: resp.StatusCode, header: resp.Header, body: raw}
}

func (e *env) get(as id.UserID, path string) *response {
	e.t.Helper()
	return e.do(request{method: http.MethodGet, path: path, as: as})
}

func (e *env) post(as id.UserID, path string, body any) *response {
	e.t.Helper()
	return e.do(request{method: http.MethodPost, path: path, as: as, body: body})
}

// expect fails the test unless the answer has the status and, for errors,
// the errcode; it returns the decoded body.
func expect(t *testing.T, r *response, status int, errcode string) map[string]any {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body: %s", r.status, status, r.body)
	}
	body := r.object(t)
	if errcode != "" {
		if body["errcode"] != errcode {
			t.Fatalf("errcode %v, want %s; body: %s", body["errcode"], errcode, r.body)
		}
		if msg, _ := body["error"].(string); msg == "" {
			t.Fatalf("error response without a human message: %s", r.body)
		}
	}
	return body
}

// startLogin starts the token flow for user and returns the first step.
func (e *env) startLogin(user id.UserID) map[string]any {
	e.t.Helper()
	return expect(e.t, e.post(user, "v3/login/start/token", nil), http.StatusOK, "")
}

// submitStep posts a user_input answer to a step.
func (e *env) submitStep(user id.UserID, step map[string]any, input map[string]string) *response {
	e.t.Helper()
	return e.post(user, "v3/login/step/"+str(step["login_id"])+"/"+str(step["step_id"])+"/user_input", input)
}

// login runs the token flow over HTTP and returns the new login's ID.
func (e *env) login(user id.UserID, username string) string {
	e.t.Helper()
	step := e.startLogin(user)
	done := expect(e.t, e.submitStep(user, step, map[string]string{"username": username, "token": "secret"}), http.StatusOK, "")
	if done["type"] != "complete" {
		e.t.Fatalf("login did not complete: %v", done)
	}
	return str(done["complete"].(map[string]any)["user_login_id"])
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// fakeWhoami is the homeserver's /account/whoami: it knows a few access
// tokens and counts how often it is asked.
type fakeWhoami struct {
	srv   *httptest.Server
	calls atomic.Int64
	down  atomic.Bool

	mu     sync.Mutex
	owners map[string]id.UserID
}

func newFakeWhoami(t *testing.T) *fakeWhoami {
	f := &fakeWhoami{owners: map[string]id.UserID{}}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/_matrix/client/v3/account/whoami" {
			http.NotFound(w, r)
			return
		}
		f.calls.Add(1)
		if f.down.Load() {
			http.Error(w, "bad gateway", http.StatusBadGateway)
			return
		}
		f.mu.Lock()
		owner, ok := f.owners[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
		f.mu.Unlock()
		if !ok {
			writeTestJSON(w, http.StatusUnauthorized, map[string]string{"errcode": "M_UNKNOWN_TOKEN", "error": "Unknown access token"})
			return
		}
		writeTestJSON(w, http.StatusOK, map[string]any{"user_id": owner, "device_id": "DEVICE"})
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeWhoami) add(token string, owner id.UserID) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.owners[token] = owner
}

// fixture is the test connector's shared state, surviving bridge restarts.
type fixture struct {
	// release ends waiting display_and_wait steps with a login of that
	// username ("" fails the step).
	release chan string
	// cancelled counts LoginProcess.Cancel calls.
	cancelled atomic.Int64
}

func newFixture() *fixture { return &fixture{release: make(chan string, 1)} }

// testConnector is testnet plus what it lacks for these tests: a
// contact list, and a "wait" login flow with a display_and_wait step.
type testConnector struct {
	*testnet.Network
	fx       *fixture
	textOnly bool
}

func (c *testConnector) LoginFlows() []bridgev2.LoginFlow {
	return append(c.Network.LoginFlows(), bridgev2.LoginFlow{ID: "wait", Name: "Pairing code", Description: "Shows a code and waits."})
}

func (c *testConnector) CreateLogin(ctx context.Context, user *bridgev2.User, flowID string) (bridgev2.LoginProcess, error) {
	if flowID == "wait" {
		return &waitProcess{user: user, fx: c.fx}, nil
	}
	inner, err := c.Network.CreateLogin(ctx, user, flowID)
	if err != nil {
		return nil, err
	}
	return &countingProcess{LoginProcess: inner, fx: c.fx}, nil
}

func (c *testConnector) LoadLogin(ctx context.Context, login *bridgev2.UserLogin) (bridgev2.NetworkClient, error) {
	inner, err := c.Network.LoadLogin(ctx, login)
	if err != nil {
		return nil, err
	}
	if c.textOnly {
		return textOnlyClient{inner}, nil
	}
	return &contactsClient{Client: inner.(*testnet.Client)}, nil
}

// textOnlyClient hides every optional capability of a client.
type textOnlyClient struct {
	bridgev2.NetworkClient
}

// countingProcess is a testnet login process whose cancellation is seen.
type countingProcess struct {
	bridgev2.LoginProcess
	fx *fixture
}

func (p *countingProcess) Cancel() {
	p.fx.cancelled.Add(1)
	p.LoginProcess.Cancel()
}

// contactsClient is a testnet client with two contacts.
type contactsClient struct {
	*testnet.Client
}

func (c *contactsClient) GetContacts(ctx context.Context) ([]*bridgev2.ResolvedIdentifier, error) {
	var out []*bridgev2.ResolvedIdentifier
	for _, name := range []string{"carol", "dave"} {
		r, err := c.ResolveIdentifier(ctx, name)
		if err != nil {
			return nil, err
		}
		r.UserInfo.Identifiers = []string{"testnet:" + name}
		out = append(out, r)
	}
	return out, nil
}

// waitProcess shows a code, then waits for the test to release it.
type waitProcess struct {
	user *bridgev2.User
	fx   *fixture
}

func (p *waitProcess) Start(context.Context) (*bridgev2.LoginStep, error) {
	return &bridgev2.LoginStep{
		Type: bridgev2.LoginStepDisplayAndWait, StepID: "pairing", Instructions: "Enter the code on your other device.",
		Display: &bridgev2.LoginDisplayAndWaitParams{Type: "code", Data: "1234-5678"},
	}, nil
}

func (p *waitProcess) SubmitUserInput(context.Context, map[string]string) (*bridgev2.LoginStep, error) {
	return nil, errors.New("the wait flow asks for no input")
}

func (p *waitProcess) Wait(ctx context.Context) (*bridgev2.LoginStep, error) {
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case username := <-p.fx.release:
		if username == "" {
			return nil, bridgev2.NewError("The pairing code expired.", nil)
		}
		login, err := p.user.NewLogin(ctx, bridgev2.NewLoginParams{
			ID: networkid.UserLoginID(username), RemoteName: username, Metadata: &testnet.LoginMetadata{Token: "paired"},
		})
		if err != nil {
			return nil, err
		}
		return &bridgev2.LoginStep{
			Type: bridgev2.LoginStepComplete, StepID: "complete", Instructions: "Paired.",
			Complete: &bridgev2.LoginCompleteParams{UserLoginID: string(login.ID), UserLogin: login},
		}, nil
	}
}

func (p *waitProcess) Cancel() { p.fx.cancelled.Add(1) }

// writeTestJSON answers a fake homeserver request with a JSON body.
func writeTestJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}
