package twiliosim

import (
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"time"
)

// The Media Content Service (mcs.us1.twilio.com/v1), where Conversations
// keeps message media. Twilio's helper libraries do not cover it and the
// OpenAPI files of shared/twilio do not describe it; the shape follows the
// Conversations Media resource documentation
// (twilio.com/docs/conversations/api/media-resource):
//
//	POST /v1/Services/{ChatServiceSid}/Media          upload: the raw bytes with their Content-Type,
//	                                                  or multipart/form-data with one file part
//	GET  /v1/Services/{ChatServiceSid}/Media/{Sid}    metadata, with links.content_direct_temporary
//	GET  /v1/Services/{ChatServiceSid}/Media/{Sid}/Content   the bytes (307 to the CDN)
//
// links.content_direct_temporary is an unauthenticated URL on the
// simulator's CDN, like the pre-signed URL Twilio hands out.

// mcsMedia is one media file of a Conversation Service. Guarded by
// Server.mu.
type mcsMedia struct {
	sid             string
	serviceSID      string
	accountSID      string
	contentType     string
	filename        string
	data            []byte
	author          string
	messageSID      string
	conversationSID string
	created         time.Time
	cdnKey          string
}

func (s *Server) mediaContentRoutes() []route {
	exempt := "Media Content Service: not in shared/twilio's OpenAPI files; shape from Twilio's Media resource documentation"
	return []route{
		{api: apiMediaContent, method: http.MethodPost, pattern: "/v1/Services/{ChatServiceSid}/Media", specExempt: exempt, handle: s.handleUploadMedia},
		{api: apiMediaContent, method: http.MethodGet, pattern: "/v1/Services/{ChatServiceSid}/Media/{Sid}", specExempt: exempt, handle: s.handleFetchMCSMedia},
		{api: apiMediaContent, method: http.MethodGet, pattern: "/v1/Services/{ChatServiceSid}/Media/{Sid}/Content", specExempt: exempt, handle: s.handleMCSContent},
	}
}

// mcsMediaFields are the properties Twilio documents for a Media resource,
// in its order; mediaJSON emits exactly these.
var mcsMediaFields = []string{
	"sid", "service_sid", "date_created", "date_upload_updated", "date_updated", "links", "size",
	"content_type", "filename", "author", "category", "message_sid", "channel_sid", "url",
}

type mcsMediaJSON struct {
	SID               string            `json:"sid"`
	ServiceSID        string            `json:"service_sid"`
	DateCreated       string            `json:"date_created"`
	DateUploadUpdated string            `json:"date_upload_updated"`
	DateUpdated       string            `json:"date_updated"`
	Links             map[string]string `json:"links"`
	Size              int               `json:"size"`
	ContentType       string            `json:"content_type"`
	Filename          *string           `json:"filename"`
	Author            string            `json:"author"`
	Category          string            `json:"category"`
	MessageSID        *string           `json:"message_sid"`
	ChannelSID        *string           `json:"channel_sid"`
	URL               string            `json:"url"`
}

func renderMCSMedia(base string, md *mcsMedia) mcsMediaJSON {
	path := "/v1/Services/" + md.serviceSID + "/Media/" + md.sid
	return mcsMediaJSON{
		SID: md.sid, ServiceSID: md.serviceSID,
		DateCreated: formatISO(md.created), DateUploadUpdated: formatISO(md.created), DateUpdated: formatISO(md.created),
		Links: map[string]string{"content": path + "/Content", "content_direct_temporary": base + cdnPrefix + md.cdnKey},
		Size:  len(md.data), ContentType: md.contentType, Filename: optString(md.filename),
		Author: cmpOr(md.author, "system"), Category: "media",
		MessageSID: optString(md.messageSID), ChannelSID: optString(md.conversationSID), URL: path,
	}
}

// storeMCSMediaLocked keeps a file in the account's Conversation Service
// and publishes it on the CDN.
func (s *Server) storeMCSMediaLocked(acct *account, f MediaFile, author string) *mcsMedia {
	md := &mcsMedia{
		sid: newSID(prefixMedia), serviceSID: acct.chatServiceSID, accountSID: acct.sid,
		contentType: f.ContentType, filename: f.Filename, data: f.Data, author: author,
		created: s.nowLocked(), cdnKey: s.publishLocked(f.ContentType, f.Data),
	}
	acct.mcs[md.sid] = md
	s.notifyLocked()
	return md
}

// handleUploadMedia serves POST /v1/Services/{ChatServiceSid}/Media.
func (s *Server) handleUploadMedia(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	f, apiErr := readUpload(w, r)
	if apiErr != nil {
		writeAPIError(w, apiErr)
		return
	}
	s.mu.Lock()
	acct := s.accounts[rc.accountSID]
	if rc.params["ChatServiceSid"] != acct.chatServiceSID {
		s.mu.Unlock()
		writeAPIError(w, errNotFound(r.URL.Path))
		return
	}
	md := s.storeMCSMediaLocked(acct, f, "")
	body := renderMCSMedia(s.baseURL, md)
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, body)
}

// readUpload reads an MCS upload: the request body with its Content-Type,
// or the first file part of a multipart/form-data body (which also names
// the file).
func readUpload(w http.ResponseWriter, r *http.Request) (MediaFile, *apiError) {
	body := http.MaxBytesReader(w, r.Body, maxMediaBytes)
	mediaType, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		return MediaFile{}, errBadParam("Media upload needs a Content-Type: %v", err)
	}
	if mediaType != "multipart/form-data" {
		data, err := io.ReadAll(body)
		if err != nil {
			return MediaFile{}, errBadParam("Reading the upload: %v", err)
		}
		return MediaFile{ContentType: mediaType, Data: data}, nil
	}
	mr := multipart.NewReader(body, params["boundary"])
	for {
		part, err := mr.NextPart()
		if err != nil {
			return MediaFile{}, errBadParam("The multipart upload holds no file")
		}
		if part.FileName() == "" {
			continue
		}
		data, err := io.ReadAll(part)
		if err != nil {
			return MediaFile{}, errBadParam("Reading the upload: %v", err)
		}
		ct := part.Header.Get("Content-Type")
		if ct == "" {
			ct = "application/octet-stream"
		}
		return MediaFile{ContentType: ct, Data: data, Filename: part.FileName()}, nil
	}
}

// lookupMCSMediaLocked returns the media named by the path, or nil.
func (s *Server) lookupMCSMediaLocked(rc *reqCtx) *mcsMedia {
	md := s.accounts[rc.accountSID].mcs[rc.params["Sid"]]
	if md == nil || md.serviceSID != rc.params["ChatServiceSid"] {
		return nil
	}
	return md
}

// handleFetchMCSMedia serves GET /v1/Services/{ChatServiceSid}/Media/{Sid}.
func (s *Server) handleFetchMCSMedia(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	s.mu.Lock()
	defer s.mu.Unlock()
	md := s.lookupMCSMediaLocked(rc)
	if md == nil {
		writeAPIError(w, errNotFound(r.URL.Path))
		return
	}
	writeJSON(w, http.StatusOK, renderMCSMedia(s.baseURL, md))
}

// handleMCSContent serves GET /v1/Services/{ChatServiceSid}/Media/{Sid}/Content
// with a redirect to the CDN, at the address the client reached.
func (s *Server) handleMCSContent(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	s.mu.Lock()
	md := s.lookupMCSMediaLocked(rc)
	var key string
	if md != nil {
		key = md.cdnKey
	}
	s.mu.Unlock()
	if md == nil {
		writeAPIError(w, errNotFound(r.URL.Path))
		return
	}
	redirectToCDN(w, r, key)
}
