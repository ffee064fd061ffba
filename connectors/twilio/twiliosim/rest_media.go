package twiliosim

import (
	"net/http"
	"strconv"
	"time"
)

// cdnPrefix is where media content lives without auth, like the S3 URLs
// Twilio's media URLs redirect to.
const cdnPrefix = "/cdn/"

// cdnFile is what the CDN serves under one key.
type cdnFile struct {
	contentType string
	data        []byte
}

// publishLocked puts a file on the CDN and returns its unguessable key.
func (s *Server) publishLocked(contentType string, data []byte) string {
	key := randomHex(16)
	s.cdn[key] = cdnFile{contentType: contentType, data: data}
	return key
}

// handleListMedia serves GET /Accounts/{AccountSid}/Messages/{MessageSid}/Media.json.
func (s *Server) handleListMedia(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	q := r.URL.Query()
	p, apiErr := parsePageParams(q)
	if apiErr != nil {
		writeAPIError(w, apiErr)
		return
	}
	var filters []queryParam
	for _, name := range []string{"DateCreated", "DateCreated<", "DateCreated>"} {
		if q.Has(name) {
			filters = append(filters, queryParam{name, q.Get(name)})
		}
	}
	dates, apiErr := parseDayFilter(q, "DateCreated")
	if apiErr != nil {
		writeAPIError(w, apiErr)
		return
	}
	messageSID := rc.params["MessageSid"]

	s.mu.Lock()
	m := s.accounts[rc.accountSID].messageBySID[messageSID]
	var matched []mediaJSON
	if m != nil {
		for _, md := range m.media {
			if dates.match(md.created) {
				matched = append(matched, renderMedia(md))
			}
		}
	}
	s.mu.Unlock()
	if m == nil {
		writeAPIError(w, errNotFound(r.URL.Path))
		return
	}

	sidOf := func(md mediaJSON) string { return md.SID }
	pg, apiErr := paginate(matched, sidOf, p)
	if apiErr != nil {
		writeAPIError(w, apiErr)
		return
	}
	writeJSON(w, http.StatusOK, pageEnvelope(mediaListURI(rc.accountSID, messageSID), "media_list", filters, p, pg, sidOf,
		func(md mediaJSON) any { return md }))
}

// lookupMedia finds a media file of a message of the account and returns a
// copy of what a handler needs, or false.
func (s *Server) lookupMedia(accountSID, messageSID, sid string) (mediaJSON, string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.accounts[accountSID].messageBySID[messageSID]
	if m == nil {
		return mediaJSON{}, "", false
	}
	md := m.mediaBySID(sid)
	if md == nil {
		return mediaJSON{}, "", false
	}
	return renderMedia(md), md.cdnKey, true
}

// handleFetchMedia serves GET .../Messages/{MessageSid}/Media/{Sid}.json.
func (s *Server) handleFetchMedia(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	body, _, ok := s.lookupMedia(rc.accountSID, rc.params["MessageSid"], rc.params["Sid"])
	if !ok {
		writeAPIError(w, errNotFound(r.URL.Path))
		return
	}
	writeJSON(w, http.StatusOK, body)
}

// handleMediaContent serves GET .../Messages/{MessageSid}/Media/{Sid}: like
// Twilio with HTTP basic auth enforced for media, it checks credentials (the
// router did) and redirects to an unauthenticated CDN URL.
func (s *Server) handleMediaContent(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	_, key, ok := s.lookupMedia(rc.accountSID, rc.params["MessageSid"], rc.params["Sid"])
	if !ok {
		writeAPIError(w, errNotFound(r.URL.Path))
		return
	}
	redirectToCDN(w, r, key)
}

// redirectToCDN answers with a redirect to the CDN's copy of a file. The
// CDN is this same server, at whatever address the client reached.
func redirectToCDN(w http.ResponseWriter, r *http.Request, key string) {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	http.Redirect(w, r, scheme+"://"+r.Host+cdnPrefix+key, http.StatusTemporaryRedirect)
}

// handleCDN serves media bytes by their unguessable key, without auth.
func (s *Server) handleCDN(w http.ResponseWriter, r *http.Request, key string) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	s.mu.Lock()
	f, ok := s.cdn[key]
	contentType, data := f.contentType, f.data
	s.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(data)
	}
}

// storeMediaLocked attaches a media file to a message and publishes it on
// the CDN.
func (s *Server) storeMediaLocked(m *message, f MediaFile, created time.Time) *media {
	md := &media{
		sid:         newSID(prefixMedia),
		parentSID:   m.sid,
		accountSID:  m.accountSID,
		contentType: f.ContentType,
		filename:    f.Filename,
		data:        f.Data,
		created:     created,
		cdnKey:      s.publishLocked(f.ContentType, f.Data),
	}
	m.media = append(m.media, md)
	return md
}
