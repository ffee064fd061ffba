package provisioning

import (
	"net/http"
	"time"

	"github.com/trestle-bridge/trestle/bridgev2"
)

// Hooks for the tests in package provisioning_test.

// Limits the tests check.
const (
	MaxBodySize         = maxBodySize
	MaxProcessesPerUser = maxProcessesPerUser
)

// Route is one served endpoint, for the conformance tests.
type Route struct{ Method, Path string }

// RouteTable lists the served endpoints.
func RouteTable(a *API) []Route {
	var out []Route
	for _, r := range routeTable(a) {
		out = append(out, Route{Method: r.method, Path: r.path})
	}
	return out
}

// OpenProcesses counts the login processes in progress.
func OpenProcesses(a *API) int {
	a.processesMu.Lock()
	defer a.processesMu.Unlock()
	return len(a.processes)
}

// SetIdleTimeout shortens how long an idle login process lives.
func SetIdleTimeout(a *API, d time.Duration) { a.idleTimeout = d }

// RoutePattern is the pattern of the route that serves r.
func RoutePattern(a *API, r *http.Request) string {
	_, pattern := a.routes.Handler(r)
	return pattern
}

// WaitingTurns is how many requests wait on a login process, or -1.
func WaitingTurns(a *API, user *bridgev2.User, processID string) int {
	p := a.getProcess(user, processID)
	if p == nil {
		return -1
	}
	return len(p.turn)
}
