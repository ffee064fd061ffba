package provisioning_test

import (
	"encoding/json"
	"github.com/trestle-bridge/trestle/bridgev2/provisioning"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// Answers provisioning.yaml does not describe, which the API gives on
// purpose: refusals of users without permission (403, as mautrix bridges
// answer too), oversized bodies (413) and requests that are malformed in
// ways the spec has no code for (400 M_BAD_JSON for JSON of the wrong
// shape, M_MISSING_PARAM / M_INVALID_PARAM for user_id). They must still
// be Matrix-style errors.
var undeclaredErrors = map[int][]string{
	http.StatusBadRequest:            {"M_BAD_JSON", "M_MISSING_PARAM", "M_INVALID_PARAM"},
	http.StatusForbidden:             {"M_FORBIDDEN"},
	http.StatusRequestEntityTooLarge: {"M_TOO_LARGE"},
}

// extraProperties are properties the spec does not declare but that
// managers written before it rely on; mautrix bridges send them too.
var extraProperties = map[string]bool{
	"$.logins[].state_event": true,
	"$.logins[].state_ts":    true,
}

// TestConformance runs every route through success and failure and checks
// each answer against provisioning.yaml: the route must exist there with
// that method, and the body must match the schema of the declared
// response (required properties present, types, enums, no undeclared
// properties).
func TestConformance(t *testing.T) {
	spec := loadProvisioningSpec(t)
	e := newEnv(t, envOptions{})

	for _, rt := range provisioning.RouteTable(e.api) {
		if spec.operation("/"+rt.Path, rt.Method) == nil {
			t.Errorf("route %s /%s is not in provisioning.yaml", rt.Method, rt.Path)
		}
	}

	exerciseEveryRoute(t, e)

	validated := map[string]bool{}
	for _, x := range e.exchanges {
		if x.pattern == provisioning.PathPrefix {
			continue // unknown endpoints, not routes
		}
		method, path := specPath(x.pattern)
		op := spec.operation(path, method)
		if op == nil {
			t.Errorf("%s: not in the spec", x.pattern)
			continue
		}
		var body any
		if err := json.Unmarshal(x.body, &body); err != nil {
			t.Errorf("%s → %d: body is not JSON: %s", x.pattern, x.status, x.body)
			continue
		}
		if x.status >= 400 && !isMatrixError(body) {
			t.Errorf("%s → %d: not a Matrix error body: %s", x.pattern, x.status, x.body)
			continue
		}
		schema, declared := spec.responseSchema(op, x.status)
		if errcode, _ := body.(map[string]any)["errcode"].(string); x.status >= 400 &&
			slices.Contains(undeclaredErrors[x.status], errcode) {
			continue // a deliberate extension, checked above as an error body
		}
		if !declared {
			t.Errorf("%s → %d: status not declared in the spec: %s", x.pattern, x.status, x.body)
			continue
		}
		errs := spec.validate(schema, body, "$", func(p string) bool { return extraProperties[normalizePath(p)] })
		for _, err := range errs {
			t.Errorf("%s → %d: %s\nbody: %s", x.pattern, x.status, err, x.body)
		}
		validated[method+" "+path] = true
	}
	for _, rt := range provisioning.RouteTable(e.api) {
		if key := rt.Method + " /" + rt.Path; !validated[key] {
			t.Errorf("%s: no answer was checked against the spec", key)
		}
	}
}

// exerciseEveryRoute calls each route at least once, successfully where
// the connector allows, and with the common failures.
func exerciseEveryRoute(t *testing.T, e *env) {
	t.Helper()
	// Before logging in.
	e.get(alice, "v3/whoami")
	e.do(request{method: http.MethodGet, path: "v3/whoami", token: "-"})
	e.do(request{method: http.MethodGet, path: "v3/whoami", as: alice, token: "unknown"})
	e.get(relayer, "v3/whoami")
	e.get(alice, "v3/login/flows")
	e.get(alice, "v3/logins")
	e.get(alice, "v3/contacts")

	// Logins: user_input, failure, display_and_wait, malformed input.
	e.h.ManagementRoom(alice)
	e.login(alice, "alicenet")
	step := e.startLogin(alice)
	e.submitStep(alice, step, map[string]string{"username": "x", "token": "bad"})
	e.post(alice, "v3/login/step/gone/credentials/user_input", map[string]string{})
	step = e.startLogin(alice)
	base := "v3/login/step/" + str(step["login_id"]) + "/"
	e.post(alice, base+"wrong/user_input", map[string]string{})
	e.do(request{method: http.MethodPost, path: base + "credentials/user_input", as: alice, rawBody: []byte("nope")})
	e.do(request{method: http.MethodPost, path: base + "credentials/user_input", as: alice, rawBody: []byte(`{"token": 1}`)})
	e.post(alice, base+"credentials/cookies", map[string]string{})
	e.post(alice, base+"credentials/webauthn", map[string]string{})
	e.post(alice, base+"credentials/cancel", nil)
	e.post(alice, base+"credentials/display_and_wait", nil)
	huge := `{"x": "` + strings.Repeat("a", provisioning.MaxBodySize) + `"}`
	e.do(request{method: http.MethodPost, path: base + "credentials/user_input", as: alice, rawBody: []byte(huge)})
	e.post(alice, "v3/login/cancel/"+str(step["login_id"]), nil)
	e.post(alice, "v3/login/cancel/gone", nil)
	e.post(alice, "v3/login/start/nonexistent", nil)
	wait := e.post(alice, "v3/login/start/wait", nil).object(t)
	go func() {
		time.Sleep(20 * time.Millisecond)
		e.fx.release <- "paired"
	}()
	e.post(alice, "v3/login/step/"+str(wait["login_id"])+"/pairing/display_and_wait", nil)
	e.get(alice, "v3/whoami")
	e.get(alice, "v3/logins")

	// Chats.
	e.get(alice, "v3/contacts")
	e.get(alice, "v3/contacts?login_id=nobody")
	e.get(alice, "v3/resolve_identifier/carol")
	e.get(alice, "v3/resolve_identifier/Not%20Valid")
	e.post(alice, "v3/create_dm/carol", nil)
	e.post(alice, "v3/create_dm/Not%20Valid", nil)
	e.post(alice, "v3/search_users", map[string]string{"query": "carol"})
	e.post(alice, "v3/create_group/group", map[string]any{})
	e.post(alice, "v3/create_group/group", map[string]any{"participants": []string{"carol", "dave"}})
	e.get(alice, "v3/contacts")

	// Logouts.
	e.post(bob, "v3/logout/alicenet", nil)
	e.post(alice, "v3/logout/alicenet", nil)
	e.post(alice, "v3/logout/all", nil)
}

func isMatrixError(body any) bool {
	m, ok := body.(map[string]any)
	if !ok {
		return false
	}
	errcode, _ := m["errcode"].(string)
	msg, _ := m["error"].(string)
	return strings.HasPrefix(errcode, "M_") && msg != ""
}
