package twiliosim

import (
	"crypto/subtle"
	"net/http"
	"slices"
	"strings"
)

// route is one REST operation. pattern is the path template exactly as the
// OpenAPI file spells it, so the conformance test can look it up; a segment
// may hold one {Param} with a literal prefix or suffix ("{Sid}.json").
type route struct {
	// api is the product the route belongs to; it names the OpenAPI file
	// the route is checked against.
	api     api
	method  string
	pattern string
	// accountParam names the path parameter holding the account SID. The
	// v1 and v2 APIs have none: the credentials name the account.
	accountParam string
	// anyParamValue lets path parameters hold any text without '/', not
	// only SIDs: Lookup's {PhoneNumber}.
	anyParamValue bool
	// mainKeyOnly: Twilio refuses Standard API keys on this route.
	mainKeyOnly bool
	// queryParams and formFields are the parameters the handler reads; the
	// conformance test checks they are the spec's names.
	queryParams []string
	formFields  []string
	// specExempt, when set, says why the route is not in the OpenAPI file.
	specExempt string
	handle     func(w http.ResponseWriter, r *http.Request, rc *reqCtx)
}

// reqCtx is what a handler knows about an authenticated request.
type reqCtx struct {
	params     map[string]string
	accountSID string
}

// allRoutes is every route of every product. Order matters only where
// patterns overlap: none do, because captured SIDs must be alphanumeric (and
// so never include ".json") and the v1 products that share /v1/Services use
// different path shapes below it.
func (s *Server) allRoutes() []route {
	return slices.Concat(
		s.restRoutes(),
		s.conversationRoutes(),
		s.mediaContentRoutes(),
		s.messagingRoutes(),
		s.senderRoutes(),
		s.contentRoutes(),
		s.lookupRoutes(),
	)
}

// restRoutes is the table of everything the simulator serves under
// /2010-04-01.
func (s *Server) restRoutes() []route {
	return []route{
		{method: http.MethodGet, pattern: "/2010-04-01/Accounts/{Sid}.json", accountParam: "Sid", mainKeyOnly: true,
			handle: s.handleFetchAccount},
		{method: http.MethodGet, pattern: "/2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers.json", accountParam: "AccountSid",
			queryParams: []string{"PhoneNumber", "FriendlyName", "Beta", "Origin", "PageSize", "Page", "PageToken"},
			handle:      s.handleListNumbers},
		{method: http.MethodGet, pattern: "/2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers/{Sid}.json", accountParam: "AccountSid",
			handle: s.handleFetchNumber},
		{method: http.MethodPost, pattern: "/2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers/{Sid}.json", accountParam: "AccountSid",
			formFields: numberUpdateFields, handle: s.handleUpdateNumber},
		{method: http.MethodPost, pattern: "/2010-04-01/Accounts/{AccountSid}/Messages.json", accountParam: "AccountSid",
			formFields: []string{"To", "From", "MessagingServiceSid", "Body", "MediaUrl", "StatusCallback", "ContentSid", "ContentVariables", "FallbackFrom"},
			handle:     s.handleCreateMessage},
		{method: http.MethodGet, pattern: "/2010-04-01/Accounts/{AccountSid}/Messages.json", accountParam: "AccountSid",
			queryParams: []string{"To", "From", "DateSent", "DateSent<", "DateSent>", "PageSize", "Page", "PageToken"},
			handle:      s.handleListMessages},
		{method: http.MethodGet, pattern: "/2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json", accountParam: "AccountSid",
			handle: s.handleFetchMessage},
		{method: http.MethodGet, pattern: "/2010-04-01/Accounts/{AccountSid}/Messages/{MessageSid}/Media.json", accountParam: "AccountSid",
			queryParams: []string{"DateCreated", "DateCreated<", "DateCreated>", "PageSize", "Page", "PageToken"},
			handle:      s.handleListMedia},
		{method: http.MethodGet, pattern: "/2010-04-01/Accounts/{AccountSid}/Messages/{MessageSid}/Media/{Sid}.json", accountParam: "AccountSid",
			handle: s.handleFetchMedia},
		{method: http.MethodGet, pattern: "/2010-04-01/Accounts/{AccountSid}/Messages/{MessageSid}/Media/{Sid}", accountParam: "AccountSid",
			specExempt: "media content URL: Twilio serves it (basic auth, redirect to its CDN) but the OpenAPI file only describes the .json metadata",
			handle:     s.handleMediaContent},
	}
}

// route dispatches a request: the CDN without auth, the REST API with it.
func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	if key, ok := strings.CutPrefix(r.URL.Path, cdnPrefix); ok {
		s.handleCDN(w, r, key)
		return
	}
	rt, params, pathMatched := s.findRoute(r)
	switch {
	case rt != nil:
		accountSID, apiErr := s.authenticate(r, rt, params)
		if apiErr != nil {
			writeAPIError(w, apiErr)
			return
		}
		rt.handle(w, r, &reqCtx{params: params, accountSID: accountSID})
	case pathMatched:
		writeAPIError(w, newAPIError(http.StatusMethodNotAllowed, CodeMethodNotAllowed, "Method not allowed"))
	default:
		writeAPIError(w, errNotFound(r.URL.Path))
	}
}

// findRoute returns the route serving the request and its path parameters.
// pathMatched reports a path that some route serves with another method.
func (s *Server) findRoute(r *http.Request) (rt *route, params map[string]string, pathMatched bool) {
	for i := range s.routes {
		params, ok := matchPattern(s.routes[i].pattern, r.URL.Path, s.routes[i].anyParamValue)
		if !ok {
			continue
		}
		pathMatched = true
		if s.routes[i].method == r.Method {
			return &s.routes[i], params, true
		}
	}
	return nil, nil, pathMatched
}

// matchPattern matches a path against a route pattern and returns the
// captured parameters. Captured values must be non-empty and alphanumeric,
// which every SID is, unless anyValue allows any text.
func matchPattern(pattern, path string, anyValue bool) (map[string]string, bool) {
	ps := strings.Split(pattern, "/")
	xs := strings.Split(path, "/")
	if len(ps) != len(xs) {
		return nil, false
	}
	var params map[string]string
	for i, seg := range ps {
		open := strings.IndexByte(seg, '{')
		if open < 0 {
			if seg != xs[i] {
				return nil, false
			}
			continue
		}
		end := strings.IndexByte(seg, '}')
		prefix, name, suffix := seg[:open], seg[open+1:end], seg[end+1:]
		v, ok := strings.CutPrefix(xs[i], prefix)
		if !ok {
			return nil, false
		}
		if v, ok = strings.CutSuffix(v, suffix); !ok || v == "" || (!anyValue && !alphanumeric(v)) {
			return nil, false
		}
		if params == nil {
			params = map[string]string{}
		}
		params[name] = v
	}
	return params, true
}

// authenticate checks basic auth and returns the account the request acts
// for. Twilio accepts the account SID with its auth token or an API key SID
// with its secret. On the 2010-04-01 API the account is in the path, and
// credentials that are valid but belong to another account get the same
// 401/20003 Twilio gives ("credentials scoped to the wrong account"), as
// does a Standard API key on /Accounts. The v1 and v2 APIs act for the
// account the credentials belong to.
func (s *Server) authenticate(r *http.Request, rt *route, params map[string]string) (string, *apiError) {
	user, pass, ok := r.BasicAuth()
	if !ok {
		return "", errUnauthorized()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var principal string
	switch {
	case strings.HasPrefix(user, prefixAccount):
		acct, ok := s.accounts[user]
		if !ok || !secretEqual(pass, acct.authToken) {
			return "", errUnauthorized()
		}
		principal = acct.sid
	case strings.HasPrefix(user, prefixAPIKey):
		key, ok := s.keys[user]
		if !ok || !secretEqual(pass, key.Secret) {
			return "", errUnauthorized()
		}
		if rt.mainKeyOnly && key.Kind != APIKeyMain {
			return "", errUnauthorized()
		}
		principal = key.accountSID
	default:
		return "", errUnauthorized()
	}
	if rt.accountParam != "" && principal != params[rt.accountParam] {
		return "", errUnauthorized()
	}
	return principal, nil
}

// secretEqual compares secrets in constant time; habits from production code
// are worth keeping in test equipment too.
func secretEqual(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// handleFetchAccount serves GET /Accounts/{Sid}.json.
func (s *Server) handleFetchAccount(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	s.mu.Lock()
	body := renderAccount(s.accounts[rc.accountSID])
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, body)
}
