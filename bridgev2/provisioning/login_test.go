package provisioning_test

import (
	"github.com/trestle-bridge/trestle/bridgev2/provisioning"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/trestle-bridge/trestle/bridgev2/bridgetest/testnet"
)

func TestLoginListLogout(t *testing.T) {
	e := newEnv(t, envOptions{})
	flows := expect(t, e.get(alice, "v3/login/flows"), http.StatusOK, "")["flows"].([]any)
	if first := flows[0].(map[string]any); first["id"] != "token" || first["name"] == "" {
		t.Fatalf("flows: %v", flows)
	}

	step := e.startLogin(alice)
	if step["type"] != "user_input" || step["step_id"] != "credentials" || str(step["login_id"]) == "" || str(step["txn_id"]) == "" {
		t.Fatalf("first step: %v", step)
	}
	fields := step["user_input"].(map[string]any)["fields"].([]any)
	if len(fields) != 2 || fields[1].(map[string]any)["type"] != "password" {
		t.Fatalf("fields: %v", fields)
	}
	done := expect(t, e.submitStep(alice, step, map[string]string{"username": "alicenet", "token": "s3cret"}), http.StatusOK, "")
	if done["type"] != "complete" || done["login_id"] != step["login_id"] ||
		done["complete"].(map[string]any)["user_login_id"] != "alicenet" {
		t.Fatalf("last step: %v", done)
	}
	login := e.h.Bridge().GetLogin("alicenet")
	if login == nil || login.UserMXID != alice {
		t.Fatalf("login not created for alice: %+v", login)
	}
	if meta, ok := login.Metadata.(*testnet.LoginMetadata); !ok || meta.Token != "s3cret" {
		t.Fatalf("login metadata: %#v", login.Metadata)
	}

	ids := expect(t, e.get(alice, "v3/logins"), http.StatusOK, "")["login_ids"].([]any)
	if len(ids) != 1 || ids[0] != "alicenet" {
		t.Fatalf("login_ids: %v", ids)
	}
	if ids := expect(t, e.get(bob, "v3/logins"), http.StatusOK, "")["login_ids"].([]any); len(ids) != 0 {
		t.Fatalf("bob sees logins: %v", ids)
	}

	// Bob can neither see nor log out Alice's login.
	expect(t, e.post(bob, "v3/logout/alicenet", nil), http.StatusNotFound, "M_NOT_FOUND")
	if e.h.Bridge().GetLogin("alicenet") == nil {
		t.Fatal("bob logged out alice's login")
	}
	expect(t, e.post(alice, "v3/logout/alicenet", nil), http.StatusOK, "")
	if e.h.Bridge().GetLogin("alicenet") != nil {
		t.Fatal("login still loaded after logout")
	}
	if ids := expect(t, e.get(alice, "v3/logins"), http.StatusOK, "")["login_ids"].([]any); len(ids) != 0 {
		t.Fatalf("login_ids after logout: %v", ids)
	}
	expect(t, e.post(alice, "v3/logout/alicenet", nil), http.StatusNotFound, "M_NOT_FOUND")
}

func TestLogoutAll(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.login(alice, "one")
	e.login(alice, "two")
	e.login(bob, "bobs")
	expect(t, e.post(alice, "v3/logout/all", nil), http.StatusOK, "")
	if len(e.h.User(alice).Logins()) != 0 {
		t.Fatal("alice still has logins")
	}
	if e.h.Bridge().GetLogin("bobs") == nil {
		t.Fatal("logout/all reached another user's login")
	}
}

func TestLoginStepFailureEndsProcess(t *testing.T) {
	e := newEnv(t, envOptions{})
	step := e.startLogin(alice)
	body := expect(t, e.submitStep(alice, step, map[string]string{"username": "alicenet", "token": "bad"}),
		http.StatusInternalServerError, "M_UNKNOWN")
	// The connector's own sentence reaches the manager.
	if body["error"] != "The test network rejected that token." {
		t.Fatalf("error: %v", body["error"])
	}
	// As the spec says, the login has failed and must be restarted.
	expect(t, e.submitStep(alice, step, map[string]string{"username": "alicenet", "token": "good"}), http.StatusNotFound, "M_NOT_FOUND")
	waitFor(t, "the process to be cancelled", func() bool { return e.fx.cancelled.Load() == 1 })
	if e.h.Bridge().GetLogin("alicenet") != nil {
		t.Fatal("a refused login was created")
	}
}

func TestLoginStepChecks(t *testing.T) {
	e := newEnv(t, envOptions{})
	step := e.startLogin(alice)
	pid := str(step["login_id"])
	base := "v3/login/step/" + pid + "/"

	// Another user cannot reach the process at all.
	expect(t, e.submitStep(bob, step, map[string]string{"username": "bobnet", "token": "x"}), http.StatusNotFound, "M_NOT_FOUND")
	expect(t, e.post(bob, "v3/login/cancel/"+pid, nil), http.StatusNotFound, "M_NOT_FOUND")
	expect(t, e.post(bob, base+"credentials/cancel", nil), http.StatusNotFound, "M_NOT_FOUND")
	expect(t, e.post(alice, "v3/login/step/nonexistent/credentials/user_input", map[string]string{}), http.StatusNotFound, "M_NOT_FOUND")

	// Wrong step, transaction or type: the process survives.
	expect(t, e.post(alice, base+"other/user_input", map[string]string{}), http.StatusBadRequest, "M_BAD_STATE")
	expect(t, e.post(alice, base+"credentials/user_input?txn_id=stale", map[string]string{}), http.StatusBadRequest, "M_BAD_STATE")
	expect(t, e.post(alice, base+"credentials/display_and_wait", nil), http.StatusBadRequest, "M_BAD_STATE")
	expect(t, e.post(alice, base+"credentials/cookies", map[string]string{}), http.StatusBadRequest, "M_BAD_STATE")
	expect(t, e.post(alice, base+"credentials/webauthn", map[string]string{}), http.StatusBadRequest, "M_BAD_STATE")
	expect(t, e.post(alice, base+"credentials/cancel", nil), http.StatusBadRequest, "M_BAD_STATE")

	// Malformed bodies.
	expect(t, e.do(request{method: http.MethodPost, path: base + "credentials/user_input", as: alice, rawBody: []byte(`{"username":`)}),
		http.StatusBadRequest, "M_NOT_JSON")
	body := expect(t, e.do(request{method: http.MethodPost, path: base + "credentials/user_input", as: alice, rawBody: []byte(`{"username": "x", "token": 12345}`)}),
		http.StatusBadRequest, "M_BAD_JSON")
	if strings.Contains(str(body["error"]), "12345") {
		t.Fatalf("error echoes the submitted value: %v", body["error"])
	}
	expect(t, e.do(request{method: http.MethodPost, path: base + "credentials/user_input", as: alice, rawBody: []byte(`[]`)}),
		http.StatusBadRequest, "M_BAD_JSON")
	huge := `{"username": "` + strings.Repeat("a", provisioning.MaxBodySize) + `"}`
	expect(t, e.do(request{method: http.MethodPost, path: base + "credentials/user_input", as: alice, rawBody: []byte(huge)}),
		http.StatusRequestEntityTooLarge, "M_TOO_LARGE")

	// After all that, the right submission with the right txn_id works.
	done := expect(t, e.post(alice, base+"credentials/user_input?txn_id="+str(step["txn_id"]),
		map[string]string{"username": "alicenet", "token": "t", "injected": "ignored"}), http.StatusOK, "")
	if done["type"] != "complete" {
		t.Fatalf("step: %v", done)
	}

	// A retry of the same submission (its answer lost) gets the outcome
	// again instead of a second login attempt.
	again := expect(t, e.post(alice, base+"credentials/user_input?txn_id="+str(step["txn_id"]), map[string]string{"username": "other", "token": "t"}), http.StatusOK, "")
	if again["txn_id"] != done["txn_id"] || again["type"] != "complete" {
		t.Fatalf("retry answered %v, want %v", again, done)
	}
	if e.h.Bridge().GetLogin("other") != nil {
		t.Fatal("the retry ran the step again")
	}
	expect(t, e.post(alice, base+"complete/user_input", map[string]string{}), http.StatusBadRequest, "M_BAD_STATE")
}

func TestLoginStartChecks(t *testing.T) {
	e := newEnv(t, envOptions{})
	expect(t, e.post(alice, "v3/login/start/nonexistent", nil), http.StatusNotFound, "M_NOT_FOUND")
	e.login(bob, "bobnet")
	// Re-login of someone else's login is refused like a missing one.
	expect(t, e.post(alice, "v3/login/start/token?login_id=bobnet", nil), http.StatusNotFound, "M_NOT_FOUND")
}

func TestCancelLogin(t *testing.T) {
	e := newEnv(t, envOptions{})
	step := e.startLogin(alice)
	pid := str(step["login_id"])
	if body := expect(t, e.post(alice, "v3/login/cancel/"+pid, nil), http.StatusOK, ""); len(body) != 0 {
		t.Fatalf("cancel answered %v, want {}", body)
	}
	waitFor(t, "the process to be cancelled", func() bool { return e.fx.cancelled.Load() == 1 })
	expect(t, e.submitStep(alice, step, map[string]string{"username": "a", "token": "b"}), http.StatusNotFound, "M_NOT_FOUND")
	expect(t, e.post(alice, "v3/login/cancel/"+pid, nil), http.StatusNotFound, "M_NOT_FOUND")
}

func TestDisplayAndWait(t *testing.T) {
	e := newEnv(t, envOptions{})
	step := expect(t, e.post(alice, "v3/login/start/wait", nil), http.StatusOK, "")
	display := step["display_and_wait"].(map[string]any)
	if step["type"] != "display_and_wait" || display["type"] != "code" || display["data"] != "1234-5678" {
		t.Fatalf("step: %v", step)
	}
	path := "v3/login/step/" + str(step["login_id"]) + "/pairing/display_and_wait"
	// The call blocks until the code is used on the other side.
	go func() {
		time.Sleep(50 * time.Millisecond)
		e.fx.release <- "paired"
	}()
	done := expect(t, e.post(alice, path, nil), http.StatusOK, "")
	if done["type"] != "complete" || done["complete"].(map[string]any)["user_login_id"] != "paired" {
		t.Fatalf("step: %v", done)
	}
	// The client lost that answer and asks again, without a txn_id.
	again := expect(t, e.post(alice, path, nil), http.StatusOK, "")
	if again["txn_id"] != done["txn_id"] {
		t.Fatalf("retry: %v", again)
	}
	if n := e.fx.cancelled.Load(); n != 0 {
		t.Fatalf("completed process cancelled %d times", n)
	}

	// A wait that fails fails the login with the connector's sentence.
	step = expect(t, e.post(alice, "v3/login/start/wait", nil), http.StatusOK, "")
	e.fx.release <- ""
	body := expect(t, e.post(alice, "v3/login/step/"+str(step["login_id"])+"/pairing/display_and_wait", nil), http.StatusInternalServerError, "M_UNKNOWN")
	if body["error"] != "The pairing code expired." {
		t.Fatalf("error: %v", body)
	}
}

func TestCancelInterruptsWait(t *testing.T) {
	e := newEnv(t, envOptions{})
	step := expect(t, e.post(alice, "v3/login/start/wait", nil), http.StatusOK, "")
	pid := str(step["login_id"])
	result := make(chan *response, 1)
	go func() { result <- e.post(alice, "v3/login/step/"+pid+"/pairing/display_and_wait", nil) }()
	waitFor(t, "the wait to start", func() bool {
		return provisioning.WaitingTurns(e.api, e.h.User(alice), pid) == 1
	})
	expect(t, e.post(alice, "v3/login/cancel/"+pid, nil), http.StatusOK, "")
	expect(t, <-result, http.StatusNotFound, "M_NOT_FOUND")
	waitFor(t, "the process to be cancelled", func() bool { return e.fx.cancelled.Load() == 1 })
}

func TestReloginAsAnotherAccountLogsOutTheOld(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.login(alice, "oldacct")
	step := expect(t, e.post(alice, "v3/login/start/token?login_id=oldacct", nil), http.StatusOK, "")
	expect(t, e.submitStep(alice, step, map[string]string{"username": "newacct", "token": "t"}), http.StatusOK, "")
	if e.h.Bridge().GetLogin("oldacct") != nil || e.h.Bridge().GetLogin("newacct") == nil {
		t.Fatal("the replaced login was not logged out")
	}
	// Re-login as the same account keeps it.
	step = expect(t, e.post(alice, "v3/login/start/token?login_id=newacct", nil), http.StatusOK, "")
	expect(t, e.submitStep(alice, step, map[string]string{"username": "newacct", "token": "t2"}), http.StatusOK, "")
	if e.h.Bridge().GetLogin("newacct") == nil {
		t.Fatal("re-login of the same account logged it out")
	}
}

func TestIdleProcessesExpire(t *testing.T) {
	e := newEnv(t, envOptions{idleTimeout: 100 * time.Millisecond})
	step := e.startLogin(alice)
	waitFor(t, "the idle process to be cancelled", func() bool { return e.fx.cancelled.Load() == 1 })
	expect(t, e.submitStep(alice, step, map[string]string{"username": "late", "token": "t"}), http.StatusNotFound, "M_NOT_FOUND")
}

func TestTooManyProcesses(t *testing.T) {
	e := newEnv(t, envOptions{})
	first := e.startLogin(alice)
	for range provisioning.MaxProcessesPerUser {
		e.startLogin(alice)
	}
	e.startLogin(bob)
	waitFor(t, "the oldest process to be cancelled", func() bool { return e.fx.cancelled.Load() == 1 })
	expect(t, e.submitStep(alice, first, map[string]string{"username": "a", "token": "t"}), http.StatusNotFound, "M_NOT_FOUND")
}

func TestCloseCancelsProcesses(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.startLogin(alice)
	e.startLogin(bob)
	e.api.Close()
	waitFor(t, "both processes to be cancelled", func() bool { return e.fx.cancelled.Load() == 2 })
}

// waitFor polls cond for up to five seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
