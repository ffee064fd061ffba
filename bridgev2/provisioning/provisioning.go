// Package provisioning serves the provisioning HTTP API under
// /_matrix/provision/v3/, compatible with the one of mautrix-go's bridgev2
// (described by its provisioning.yaml), so bridge managers written for
// mautrix bridges work with Trestle bridges unchanged.
//
// Every request acts for one Matrix user: either an integration manager
// holding provisioning.shared_secret names the user with ?user_id=, or the
// user presents their own Matrix access token, which is checked with the
// homeserver. A user only ever sees their own logins and login processes.
package provisioning

import (
	"net/http"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/trestle-bridge/trestle/bridgev2"
	"github.com/trestle-bridge/trestle/bridgev2/bridgeconfig"
)

// PathPrefix is where the API is mounted.
const PathPrefix = "/_matrix/provision/"

const (
	// maxBodySize bounds request bodies: the largest legitimate one is a
	// login form, a few hundred bytes.
	maxBodySize = 64 * 1024
	// processIdleTimeout is how long an HTTP login process may sit unused
	// before it is cancelled; a person filling in a form is done well
	// before that.
	processIdleTimeout = 30 * time.Minute
	// finishedGrace keeps a completed login process around briefly so a
	// client whose connection dropped on the last step can retry it with
	// its txn_id and still learn the outcome.
	finishedGrace = time.Minute
	// maxProcessesPerUser bounds the login processes one user can keep
	// open; starting another cancels their oldest.
	maxProcessesPerUser = 5
	// minSecretLength is the shortest shared secret accepted; a shorter one
	// is guessable and disables shared-secret auth.
	minSecretLength = 16
)

// API is the provisioning API of one bridge. Create it with New and mount
// it with Register.
type API struct {
	bridge *bridgev2.Bridge
	config bridgeconfig.Provisioning
	log    zerolog.Logger
	// routes is the inner router; Register mounts it under PathPrefix.
	routes *http.ServeMux
	// secret is the shared secret, or nil when shared-secret auth is off.
	secret []byte
	tokens *tokenChecker

	processesMu sync.Mutex
	processes   map[string]*loginProcess
	// idleTimeout and grace are processIdleTimeout and finishedGrace,
	// shortened by tests.
	idleTimeout time.Duration
	grace       time.Duration
}

// New builds the provisioning API of b from b.Config.Provisioning.
func New(b *bridgev2.Bridge, log zerolog.Logger) *API {
	a := &API{
		bridge:      b,
		config:      b.Config.Provisioning,
		log:         log,
		routes:      http.NewServeMux(),
		tokens:      newTokenChecker(b.Config.Homeserver.Address),
		processes:   make(map[string]*loginProcess),
		idleTimeout: processIdleTimeout,
		grace:       finishedGrace,
	}
	switch secret := a.config.SharedSecret; {
	case !a.config.Enabled:
	case bridgeconfig.IsPlaceholderToken(secret):
		a.log.Warn().Msg("provisioning.shared_secret is not set: only Matrix access tokens are accepted")
	case len(secret) < minSecretLength:
		a.log.Warn().Int("min_length", minSecretLength).Msg("provisioning.shared_secret is too short to be safe: only Matrix access tokens are accepted")
	default:
		a.secret = []byte(secret)
	}
	for _, rt := range append(routeTable(a), extensionRoutes(a)...) {
		a.routes.Handle(rt.method+" "+PathPrefix+rt.path, a.authed(rt.handle))
	}
	a.routes.HandleFunc(PathPrefix, a.unrecognized)
	return a
}

// Register mounts the API on mux under PathPrefix if provisioning.enabled
// is set; otherwise it does nothing, so the routes 404 like any unknown
// path.
func (a *API) Register(mux *http.ServeMux) {
	if !a.config.Enabled {
		a.log.Debug().Msg("Provisioning API disabled")
		return
	}
	mux.Handle(PathPrefix, a.Handler())
	a.log.Info().Str("path", PathPrefix+"v3/").Msg("Provisioning API enabled")
}

// Handler returns the API with its middleware (CORS, body limit, access
// log), for callers that mount it themselves.
func (a *API) Handler() http.Handler {
	return a.middleware(a.routes)
}

// Close cancels every login process in progress; call it when the bridge
// stops.
func (a *API) Close() {
	a.processesMu.Lock()
	procs := make([]*loginProcess, 0, len(a.processes))
	for _, p := range a.processes {
		procs = append(procs, p)
	}
	a.processesMu.Unlock()
	for _, p := range procs {
		a.endProcess(p, "bridge stopping")
	}
}

// route is one endpoint. path is relative to PathPrefix, in
// http.ServeMux syntax.
type route struct {
	method string
	path   string
	handle authedHandler
}

// routeTable lists every endpoint served, in the order of provisioning.yaml.
// Tests check each against that file.
func routeTable(a *API) []route {
	return []route{
		{http.MethodGet, "v3/whoami", a.getWhoami},
		{http.MethodGet, "v3/login/flows", a.getLoginFlows},
		{http.MethodGet, "v3/logins", a.getLogins},
		{http.MethodPost, "v3/login/start/{flowID}", a.postLoginStart},
		{http.MethodPost, "v3/login/step/{loginProcessID}/{stepID}/user_input", a.postStepUserInput},
		{http.MethodPost, "v3/login/step/{loginProcessID}/{stepID}/cookies", a.postStepUnsupportedType},
		{http.MethodPost, "v3/login/step/{loginProcessID}/{stepID}/webauthn", a.postStepUnsupportedType},
		{http.MethodPost, "v3/login/step/{loginProcessID}/{stepID}/display_and_wait", a.postStepDisplayAndWait},
		{http.MethodPost, "v3/login/step/{loginProcessID}/{stepID}/cancel", a.postStepCancel},
		{http.MethodPost, "v3/login/cancel/{loginProcessID}", a.postLoginCancel},
		{http.MethodPost, "v3/logout/{loginID}", a.postLogout},
		{http.MethodGet, "v3/contacts", a.getContacts},
		{http.MethodPost, "v3/search_users", a.postSearchUsers},
		{http.MethodGet, "v3/resolve_identifier/{identifier}", a.getResolveIdentifier},
		{http.MethodPost, "v3/create_dm/{identifier}", a.postCreateDM},
		{http.MethodPost, "v3/create_group/{type}", a.postCreateGroup},
	}
}

// extensionRoutes lists endpoints beyond provisioning.yaml, answered in
// the same style (Matrix error bodies, ?login_id=).
func extensionRoutes(a *API) []route {
	return []route{
		{http.MethodGet, "v3/capabilities", a.getCapabilities},
	}
}
