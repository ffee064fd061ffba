package twiliosim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"
)

// The Content API (content.twilio.com/v1) subset a bridge needs for
// WhatsApp templates: listing templates with their WhatsApp approval
// (Content, ContentAndApprovals, ApprovalRequests) and sending one with
// ContentSid and ContentVariables on the Messages API. Templates are
// twilio/text only; tests create them with AddContent.

// WhatsApp approval statuses of a template.
const (
	ApprovalUnsubmitted = "unsubmitted"
	ApprovalPending     = "pending"
	ApprovalApproved    = "approved"
	ApprovalRejected    = "rejected"
)

// ContentTemplate is a Content API template as a test defines it.
type ContentTemplate struct {
	// FriendlyName names the template; required.
	FriendlyName string
	// Language is its language code, "en" by default.
	Language string
	// Body is the twilio/text body, with {{1}}-style placeholders.
	Body string
	// Variables are the placeholders' sample values, used for variables a
	// send does not give.
	Variables map[string]string
	// Approval is the WhatsApp approval status, ApprovalUnsubmitted when
	// empty. Only approved templates may open a conversation outside the
	// 24-hour window.
	Approval string
	// Category is the WhatsApp category, "UTILITY" by default.
	Category string
	// RejectionReason goes with ApprovalRejected.
	RejectionReason string
}

// content is a stored template. Guarded by Server.mu.
type content struct {
	ContentTemplate
	sid        string
	accountSID string
	created    time.Time
	updated    time.Time
}

// placeholderPattern finds {{name}} in a template body.
var placeholderPattern = regexp.MustCompile(`\{\{\s*([A-Za-z0-9_]+)\s*\}\}`)

// AddContent creates a template and returns its SID (HX...).
func (a *Account) AddContent(t ContentTemplate) (string, error) {
	if t.FriendlyName == "" {
		return "", fmt.Errorf("twiliosim: a content template needs a FriendlyName")
	}
	t.Language = cmpOr(t.Language, "en")
	t.Approval = cmpOr(t.Approval, ApprovalUnsubmitted)
	t.Category = cmpOr(t.Category, "UTILITY")
	vars := map[string]string{}
	for k, v := range t.Variables {
		vars[k] = v
	}
	t.Variables = vars
	a.s.mu.Lock()
	defer a.s.mu.Unlock()
	now := a.s.nowLocked()
	c := &content{ContentTemplate: t, sid: newSID(prefixContent), accountSID: a.sid, created: now, updated: now}
	acct := a.s.accounts[a.sid]
	acct.contents = append(acct.contents, c)
	a.s.notifyLocked()
	return c.sid, nil
}

// SetContentApproval changes a template's WhatsApp approval status, as
// WhatsApp's review eventually does.
func (a *Account) SetContentApproval(sid, status string) error {
	a.s.mu.Lock()
	defer a.s.mu.Unlock()
	c := a.s.accounts[a.sid].contentBySID(sid)
	if c == nil {
		return fmt.Errorf("twiliosim: content %s of account %s: %w", sid, a.sid, ErrNotFound)
	}
	c.Approval = status
	c.updated = a.s.nowLocked()
	a.s.notifyLocked()
	return nil
}

// contentBySID returns the account's template with that SID, or nil.
func (a *account) contentBySID(sid string) *content {
	for _, c := range a.contents {
		if c.sid == sid {
			return c
		}
	}
	return nil
}

// parseContentVariables reads ContentVariables: a JSON object of strings.
func parseContentVariables(raw string) (map[string]string, bool) {
	if raw == "" {
		return nil, true
	}
	var vars map[string]string
	if err := json.Unmarshal([]byte(raw), &vars); err != nil {
		return nil, false
	}
	return vars, true
}

// render fills the template's placeholders from vars, falling back to the
// template's sample values.
func (c *content) render(vars map[string]string) string {
	return placeholderPattern.ReplaceAllStringFunc(c.Body, func(m string) string {
		name := placeholderPattern.FindStringSubmatch(m)[1]
		if v, ok := vars[name]; ok {
			return v
		}
		return c.Variables[name]
	})
}

func (s *Server) contentRoutes() []route {
	return []route{
		{api: apiContent, method: http.MethodGet, pattern: "/v1/Content",
			queryParams: []string{"PageSize", "Page", "PageToken"}, handle: s.handleListContent},
		{api: apiContent, method: http.MethodGet, pattern: "/v1/Content/{Sid}", handle: s.handleFetchContent},
		{api: apiContent, method: http.MethodGet, pattern: "/v1/ContentAndApprovals",
			queryParams: []string{"PageSize", "Page", "PageToken"}, handle: s.handleListContentAndApprovals},
		{api: apiContent, method: http.MethodGet, pattern: "/v1/Content/{Sid}/ApprovalRequests", handle: s.handleFetchApprovals},
	}
}

// The JSON shapes follow content.v1.content, content.v1.content_and_approvals
// and content.v1.content.approval_fetch. Timestamps are RFC 3339 here.

func formatISO(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// contentBaseJSON is what a template and a template with approvals share.
type contentBaseJSON struct {
	DateCreated  string            `json:"date_created"`
	DateUpdated  string            `json:"date_updated"`
	SID          string            `json:"sid"`
	AccountSID   string            `json:"account_sid"`
	FriendlyName string            `json:"friendly_name"`
	Language     string            `json:"language"`
	Variables    map[string]string `json:"variables"`
	Types        map[string]any    `json:"types"`
}

type contentJSON struct {
	contentBaseJSON
	URL   string            `json:"url"`
	Links map[string]string `json:"links"`
}

type contentApprovalsJSON struct {
	contentBaseJSON
	ApprovalRequests approvalJSON `json:"approval_requests"`
}

type approvalJSON struct {
	Type                string `json:"type,omitempty"`
	Name                string `json:"name"`
	Category            string `json:"category"`
	ContentType         string `json:"content_type"`
	Status              string `json:"status"`
	RejectionReason     string `json:"rejection_reason"`
	AllowCategoryChange bool   `json:"allow_category_change"`
}

type approvalFetchJSON struct {
	SID        string       `json:"sid"`
	AccountSID string       `json:"account_sid"`
	WhatsApp   approvalJSON `json:"whatsapp"`
	URL        string       `json:"url"`
}

func renderContentBase(c *content) contentBaseJSON {
	return contentBaseJSON{
		DateCreated: formatISO(c.created), DateUpdated: formatISO(c.updated),
		SID: c.sid, AccountSID: c.accountSID, FriendlyName: c.FriendlyName, Language: c.Language,
		Variables: c.Variables, Types: map[string]any{"twilio/text": map[string]string{"body": c.Body}},
	}
}

func renderContent(base string, c *content) contentJSON {
	url := base + "/v1/Content/" + c.sid
	return contentJSON{
		contentBaseJSON: renderContentBase(c), URL: url,
		Links: map[string]string{"approval_create": url + "/ApprovalRequests/whatsapp", "approval_fetch": url + "/ApprovalRequests"},
	}
}

// renderApproval is the template's WhatsApp approval request; an
// unsubmitted template has empty name, category and content type, as in
// Twilio's own example.
func renderApproval(c *content) approvalJSON {
	if c.Approval == ApprovalUnsubmitted {
		return approvalJSON{Status: ApprovalUnsubmitted, AllowCategoryChange: true}
	}
	return approvalJSON{
		Name: strings.ToLower(strings.ReplaceAll(c.FriendlyName, " ", "_")), Category: c.Category,
		ContentType: "twilio/text", Status: c.Approval, RejectionReason: c.RejectionReason, AllowCategoryChange: true,
	}
}

// handleListContent serves GET /v1/Content.
func (s *Server) handleListContent(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	listResources(s, w, r, "contents", nil, func() (out []contentJSON, _ bool) {
		for _, c := range s.accounts[rc.accountSID].contents {
			out = append(out, renderContent(s.baseURL, c))
		}
		return out, true
	}, func(c contentJSON) string { return c.SID })
}

// handleListContentAndApprovals serves GET /v1/ContentAndApprovals.
func (s *Server) handleListContentAndApprovals(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	listResources(s, w, r, "contents", nil, func() (out []contentApprovalsJSON, _ bool) {
		for _, c := range s.accounts[rc.accountSID].contents {
			out = append(out, contentApprovalsJSON{contentBaseJSON: renderContentBase(c), ApprovalRequests: renderApproval(c)})
		}
		return out, true
	}, func(c contentApprovalsJSON) string { return c.SID })
}

// handleFetchContent serves GET /v1/Content/{Sid}.
func (s *Server) handleFetchContent(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	s.mu.Lock()
	c := s.accounts[rc.accountSID].contentBySID(rc.params["Sid"])
	var body contentJSON
	if c != nil {
		body = renderContent(s.baseURL, c)
	}
	s.mu.Unlock()
	if c == nil {
		writeAPIError(w, errNotFound(r.URL.Path))
		return
	}
	writeJSON(w, http.StatusOK, body)
}

// handleFetchApprovals serves GET /v1/Content/{Sid}/ApprovalRequests.
func (s *Server) handleFetchApprovals(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	s.mu.Lock()
	c := s.accounts[rc.accountSID].contentBySID(rc.params["Sid"])
	var body approvalFetchJSON
	if c != nil {
		wa := renderApproval(c)
		wa.Type = "whatsapp"
		body = approvalFetchJSON{SID: c.sid, AccountSID: c.accountSID, WhatsApp: wa, URL: s.baseURL + "/v1/Content/" + c.sid + "/ApprovalRequests"}
	}
	s.mu.Unlock()
	if c == nil {
		writeAPIError(w, errNotFound(r.URL.Path))
		return
	}
	writeJSON(w, http.StatusOK, body)
}
