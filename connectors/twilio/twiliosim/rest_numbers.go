package twiliosim

import (
	"net/http"
	"net/url"
	"strings"
)

// numberUpdateFields are the IncomingPhoneNumber update fields the simulator
// applies. Twilio ignores parameters it does not know, and so does the
// simulator with the spec's other fields (address, bundle, trunk...).
var numberUpdateFields = []string{
	"FriendlyName",
	"SmsUrl", "SmsMethod", "SmsFallbackUrl", "SmsFallbackMethod",
	"StatusCallback", "StatusCallbackMethod",
	"VoiceUrl", "VoiceMethod", "VoiceFallbackUrl", "VoiceFallbackMethod", "VoiceCallerIdLookup",
}

// handleListNumbers serves GET /Accounts/{AccountSid}/IncomingPhoneNumbers.json.
func (s *Server) handleListNumbers(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	q := r.URL.Query()
	p, apiErr := parsePageParams(q)
	if apiErr != nil {
		writeAPIError(w, apiErr)
		return
	}
	var filters []queryParam
	for _, name := range []string{"FriendlyName", "Beta", "PhoneNumber", "Origin"} {
		if q.Has(name) {
			filters = append(filters, queryParam{name, q.Get(name)})
		}
	}
	// A '+' sent unescaped arrives as a space; Twilio reads it as '+'.
	phoneFilter := q.Get("PhoneNumber")
	if strings.HasPrefix(phoneFilter, " ") {
		phoneFilter = "+" + phoneFilter[1:]
	}
	friendly, origin := q.Get("FriendlyName"), q.Get("Origin")
	// The simulator's numbers are never beta: Beta=true matches none.
	betaOnly := q.Get("Beta") == "true"

	s.mu.Lock()
	var matched []numberJSON
	for _, n := range s.accounts[rc.accountSID].numbers {
		switch {
		case phoneFilter != "" && !matchPhoneFilter(phoneFilter, n.e164),
			friendly != "" && friendly != n.friendlyName,
			origin != "" && origin != "twilio",
			betaOnly:
			continue
		}
		matched = append(matched, renderNumber(n))
	}
	s.mu.Unlock()

	sidOf := func(n numberJSON) string { return n.SID }
	pg, apiErr := paginate(matched, sidOf, p)
	if apiErr != nil {
		writeAPIError(w, apiErr)
		return
	}
	writeJSON(w, http.StatusOK, pageEnvelope(numbersURI(rc.accountSID), "incoming_phone_numbers", filters, p, pg, sidOf,
		func(n numberJSON) any { return n }))
}

// matchPhoneFilter implements Twilio's PhoneNumber filter: a partial number
// matched anywhere in the E.164 string, '*' standing for any digit.
func matchPhoneFilter(filter, e164 string) bool {
	for i := 0; i+len(filter) <= len(e164); i++ {
		ok := true
		for j := 0; j < len(filter); j++ {
			c := e164[i+j]
			if filter[j] != c && !(filter[j] == '*' && '0' <= c && c <= '9') {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// handleFetchNumber serves GET /Accounts/{AccountSid}/IncomingPhoneNumbers/{Sid}.json.
func (s *Server) handleFetchNumber(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	s.mu.Lock()
	n := s.accounts[rc.accountSID].numberBySID(rc.params["Sid"])
	var body numberJSON
	if n != nil {
		body = renderNumber(n)
	}
	s.mu.Unlock()
	if n == nil {
		writeAPIError(w, errNotFound(r.URL.Path))
		return
	}
	writeJSON(w, http.StatusOK, body)
}

// handleUpdateNumber serves POST /Accounts/{AccountSid}/IncomingPhoneNumbers/{Sid}.json.
func (s *Server) handleUpdateNumber(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	form, apiErr := readForm(w, r)
	if apiErr != nil {
		writeAPIError(w, apiErr)
		return
	}
	if apiErr := checkUpdateForm(form,
		[]string{"SmsMethod", "SmsFallbackMethod", "StatusCallbackMethod", "VoiceMethod", "VoiceFallbackMethod"},
		[]string{"SmsUrl", "SmsFallbackUrl", "StatusCallback", "VoiceUrl", "VoiceFallbackUrl"},
		[]string{"VoiceCallerIdLookup"}); apiErr != nil {
		writeAPIError(w, apiErr)
		return
	}

	s.mu.Lock()
	n := s.accounts[rc.accountSID].numberBySID(rc.params["Sid"])
	if n == nil {
		s.mu.Unlock()
		writeAPIError(w, errNotFound(r.URL.Path))
		return
	}
	set := func(field string, dst *string) {
		if form.Has(field) {
			*dst = form.Get(field)
		}
	}
	set("FriendlyName", &n.friendlyName)
	set("SmsUrl", &n.smsURL)
	set("SmsMethod", &n.smsMethod)
	set("SmsFallbackUrl", &n.smsFallbackURL)
	set("SmsFallbackMethod", &n.smsFallbackMethod)
	set("StatusCallback", &n.statusCallback)
	set("StatusCallbackMethod", &n.statusCallbackMethod)
	set("VoiceUrl", &n.voiceURL)
	set("VoiceMethod", &n.voiceMethod)
	set("VoiceFallbackUrl", &n.voiceFallbackURL)
	set("VoiceFallbackMethod", &n.voiceFallbackMethod)
	if form.Has("VoiceCallerIdLookup") {
		n.voiceCallerIDLookup = form.Get("VoiceCallerIdLookup") == "true"
	}
	n.updated = s.nowLocked()
	body := renderNumber(n)
	s.notifyLocked()
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, body)
}

// checkUpdateForm checks an update's HTTP methods (GET or POST), URLs
// (absolute http or https; empty clears) and booleans.
func checkUpdateForm(form url.Values, methods, urls, bools []string) *apiError {
	for _, f := range methods {
		if v := form.Get(f); form.Has(f) && v != "GET" && v != "POST" {
			return errBadParam("%s must be GET or POST, not %q", f, v)
		}
	}
	for _, f := range urls {
		if v := form.Get(f); v != "" && !isHTTPURL(v) {
			return errBadParam("%s %q is not a valid http or https URL", f, v)
		}
	}
	for _, f := range bools {
		if v := form.Get(f); form.Has(f) && v != "true" && v != "false" {
			return errBadParam("%s must be true or false, not %q", f, v)
		}
	}
	return nil
}

// maxFormBytes bounds request bodies; real requests are a few kilobytes.
const maxFormBytes = 1 << 20

// readForm parses a POST body as Twilio does: form-encoded parameters only
// (query parameters of a POST are not parameters).
func readForm(w http.ResponseWriter, r *http.Request) (url.Values, *apiError) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		return nil, errBadParam("Unable to parse request body: %v", err)
	}
	return r.PostForm, nil
}

// isHTTPURL reports whether s is an absolute http or https URL.
func isHTTPURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}
