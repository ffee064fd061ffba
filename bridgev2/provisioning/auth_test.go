package provisioning_test

import (
	"github.com/trestle-bridge/trestle/bridgev2/provisioning"
	"net/http"
	"testing"

	"github.com/trestle-bridge/trestle/bridgev2/bridgeconfig"
)

func TestAuthRefusals(t *testing.T) {
	e := newEnv(t, envOptions{})
	cases := []struct {
		name    string
		req     request
		status  int
		errcode string
	}{
		{"no token", request{token: "-", as: alice}, http.StatusUnauthorized, "M_MISSING_TOKEN"},
		{"wrong secret", request{token: "not-the-secret-0123456789", as: alice}, http.StatusUnauthorized, "M_UNKNOWN_TOKEN"},
		{"secret without user_id", request{}, http.StatusBadRequest, "M_MISSING_PARAM"},
		{"invalid user_id", request{as: "alice"}, http.StatusBadRequest, "M_INVALID_PARAM"},
		{"relay-level user", request{as: relayer}, http.StatusForbidden, "M_FORBIDDEN"},
		{"user without permission", request{as: outsider}, http.StatusForbidden, "M_FORBIDDEN"},
		{"bridge bot", request{as: "@bridgebot:example.com"}, http.StatusForbidden, "M_FORBIDDEN"},
		{"ghost", request{as: "@test_carol:example.com"}, http.StatusForbidden, "M_FORBIDDEN"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.req.method, tc.req.path = http.MethodGet, "v3/whoami"
			expect(t, e.do(tc.req), tc.status, tc.errcode)
		})
	}
	// Refusals happen before any work: a refused user cannot start a login.
	tc := request{method: http.MethodPost, path: "v3/login/start/token", as: relayer}
	expect(t, e.do(tc), http.StatusForbidden, "M_FORBIDDEN")
	if n := provisioning.OpenProcesses(e.api); n != 0 {
		t.Fatalf("%d login processes after refused starts", n)
	}
}

func TestMatrixTokenAuth(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.tokens.add("alice-access-token", alice)
	e.tokens.add("relay-access-token", relayer)

	// The token alone names the user; user_id, if given, must match it.
	body := expect(t, e.do(request{method: http.MethodGet, path: "v3/login/flows", token: "alice-access-token"}), http.StatusOK, "")
	if flows, _ := body["flows"].([]any); len(flows) == 0 {
		t.Fatalf("no flows: %v", body)
	}
	expect(t, e.do(request{method: http.MethodGet, path: "v3/whoami", token: "alice-access-token", as: alice}), http.StatusOK, "")
	expect(t, e.do(request{method: http.MethodGet, path: "v3/whoami", token: "alice-access-token", as: bob}), http.StatusUnauthorized, "M_UNKNOWN_TOKEN")
	// Answers are cached: three requests, one check.
	if n := e.tokens.calls.Load(); n != 1 {
		t.Fatalf("homeserver asked %d times, want 1 (cached)", n)
	}

	expect(t, e.do(request{method: http.MethodGet, path: "v3/whoami", token: "unknown-token"}), http.StatusUnauthorized, "M_UNKNOWN_TOKEN")
	expect(t, e.do(request{method: http.MethodGet, path: "v3/whoami", token: "unknown-token"}), http.StatusUnauthorized, "M_UNKNOWN_TOKEN")
	if n := e.tokens.calls.Load(); n != 2 {
		t.Fatalf("homeserver asked %d times, want 2 (invalid tokens cached too)", n)
	}
	// A valid token does not lift the permission check.
	expect(t, e.do(request{method: http.MethodGet, path: "v3/whoami", token: "relay-access-token"}), http.StatusForbidden, "M_FORBIDDEN")

	// When the homeserver cannot answer, nothing is cached.
	e.tokens.down.Store(true)
	expect(t, e.do(request{method: http.MethodGet, path: "v3/whoami", token: "new-token"}), http.StatusInternalServerError, "M_UNKNOWN")
	e.tokens.down.Store(false)
	e.tokens.add("new-token", bob)
	body = expect(t, e.do(request{method: http.MethodGet, path: "v3/logins", token: "new-token"}), http.StatusOK, "")
	if ids, _ := body["login_ids"].([]any); len(ids) != 0 {
		t.Fatalf("bob has logins: %v", body)
	}
}

func TestShortSecretDisablesSecretAuth(t *testing.T) {
	const short = "too-short-12345"
	e := newEnv(t, envOptions{configure: func(c *bridgeconfig.Config) { c.Provisioning.SharedSecret = short }})
	// A guessable secret is not accepted: it is just an unknown Matrix token.
	expect(t, e.do(request{method: http.MethodGet, path: "v3/whoami", as: alice, token: short}), http.StatusUnauthorized, "M_UNKNOWN_TOKEN")
}

func TestCORSAndUnknownEndpoints(t *testing.T) {
	e := newEnv(t, envOptions{})
	// Browsers preflight without credentials.
	r := e.do(request{method: http.MethodOptions, path: "v3/whoami", token: "-"})
	if r.status != http.StatusOK || r.header.Get("Access-Control-Allow-Origin") != "*" ||
		r.header.Get("Access-Control-Allow-Headers") == "" {
		t.Fatalf("preflight: %d %v", r.status, r.header)
	}
	r = e.get(alice, "v3/whoami")
	if r.header.Get("Access-Control-Allow-Origin") != "*" || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("headers: %v", r.header)
	}
	expect(t, e.get(alice, "v3/nonexistent"), http.StatusNotFound, "M_UNRECOGNIZED")
	r = e.post(alice, "v3/whoami", nil)
	expect(t, r, http.StatusMethodNotAllowed, "M_UNRECOGNIZED")
	if r.header.Get("Allow") != http.MethodGet {
		t.Fatalf("Allow: %q", r.header.Get("Allow"))
	}
	expect(t, e.get(alice, "v3/login/start/token"), http.StatusMethodNotAllowed, "M_UNRECOGNIZED")
}

func TestRegisterOnlyWhenEnabled(t *testing.T) {
	e := newEnv(t, envOptions{configure: func(c *bridgeconfig.Config) { c.Provisioning.Enabled = false }})
	// Register did nothing, so the mux has no handler for the API at all.
	if r := e.get(alice, "v3/whoami"); r.status != http.StatusNotFound {
		t.Fatalf("status %d with provisioning disabled: %s", r.status, r.body)
	}
}
