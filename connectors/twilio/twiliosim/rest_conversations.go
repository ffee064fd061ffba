package twiliosim

import (
	"net/http"
	"slices"
)

// The Conversations REST subset. Shapes follow the schemas of
// twilio_conversations_v1.json (conversations.v1.conversation,
// ...conversation_participant, ...conversation_message,
// ...conversation_message_receipt, ...conversation_scoped_webhook,
// conversations.v1.configuration and ...configuration_webhook); errors use
// the same body as the 2010-04-01 API, as twilio-go's conversations/v1
// client expects (it parses them as TwilioRestError).

// CodeUniqueNameTaken is Twilio's answer to a duplicate UniqueName.
const CodeUniqueNameTaken = 50353

func (s *Server) conversationRoutes() []route {
	page := []string{"PageSize", "Page", "PageToken"}
	const c = apiConversations
	return []route{
		{api: c, method: http.MethodGet, pattern: "/v1/Configuration", handle: s.handleFetchConvConfig},
		{api: c, method: http.MethodGet, pattern: "/v1/Configuration/Webhooks", handle: s.handleFetchGlobalWebhook},
		{api: c, method: http.MethodPost, pattern: "/v1/Configuration/Webhooks",
			formFields: []string{"Method", "Filters", "PreWebhookUrl", "PostWebhookUrl", "Target"}, handle: s.handleUpdateGlobalWebhook},
		{api: c, method: http.MethodPost, pattern: "/v1/Conversations",
			formFields: []string{"FriendlyName", "UniqueName", "MessagingServiceSid", "Attributes"}, handle: s.handleCreateConversation},
		{api: c, method: http.MethodGet, pattern: "/v1/Conversations", queryParams: append([]string{"State"}, page...), handle: s.handleListConversations},
		{api: c, method: http.MethodGet, pattern: "/v1/Conversations/{Sid}", handle: s.handleFetchConversation},
		{api: c, method: http.MethodDelete, pattern: "/v1/Conversations/{Sid}", handle: s.handleDeleteConversation},
		{api: c, method: http.MethodPost, pattern: "/v1/Conversations/{ConversationSid}/Participants",
			formFields: []string{"Identity", "MessagingBinding.Address", "MessagingBinding.ProxyAddress", "MessagingBinding.ProjectedAddress", "Attributes"},
			handle:     s.handleCreateParticipant},
		{api: c, method: http.MethodGet, pattern: "/v1/Conversations/{ConversationSid}/Participants", queryParams: page, handle: s.handleListParticipants},
		{api: c, method: http.MethodGet, pattern: "/v1/Conversations/{ConversationSid}/Participants/{Sid}", handle: s.handleFetchParticipant},
		{api: c, method: http.MethodDelete, pattern: "/v1/Conversations/{ConversationSid}/Participants/{Sid}", handle: s.handleDeleteParticipant},
		{api: c, method: http.MethodPost, pattern: "/v1/Conversations/{ConversationSid}/Messages",
			formFields: []string{"Author", "Body", "Attributes", "MediaSid", "ContentSid", "ContentVariables"}, handle: s.handleCreateConvMessage},
		{api: c, method: http.MethodGet, pattern: "/v1/Conversations/{ConversationSid}/Messages", queryParams: append([]string{"Order"}, page...), handle: s.handleListConvMessages},
		{api: c, method: http.MethodGet, pattern: "/v1/Conversations/{ConversationSid}/Messages/{Sid}", handle: s.handleFetchConvMessage},
		{api: c, method: http.MethodGet, pattern: "/v1/Conversations/{ConversationSid}/Messages/{MessageSid}/Receipts", queryParams: page, handle: s.handleListReceipts},
		{api: c, method: http.MethodPost, pattern: "/v1/Conversations/{ConversationSid}/Webhooks",
			formFields: []string{"Target", "Configuration.Url", "Configuration.Method", "Configuration.Filters"}, handle: s.handleCreateConvWebhook},
		{api: c, method: http.MethodGet, pattern: "/v1/Conversations/{ConversationSid}/Webhooks", queryParams: page, handle: s.handleListConvWebhooks},
		{api: c, method: http.MethodDelete, pattern: "/v1/Conversations/{ConversationSid}/Webhooks/{Sid}", handle: s.handleDeleteConvWebhook},
	}
}

// JSON shapes. Every declared property is emitted, null where Twilio has
// no value. URLs are absolute, on the simulator's address.

type convConfigJSON struct {
	AccountSID                 string            `json:"account_sid"`
	DefaultChatServiceSID      string            `json:"default_chat_service_sid"`
	DefaultMessagingServiceSID *string           `json:"default_messaging_service_sid"`
	DefaultInactiveTimer       *string           `json:"default_inactive_timer"`
	DefaultClosedTimer         *string           `json:"default_closed_timer"`
	URL                        string            `json:"url"`
	Links                      map[string]string `json:"links"`
}

type globalWebhookJSON struct {
	AccountSID     string   `json:"account_sid"`
	Method         string   `json:"method"`
	Filters        []string `json:"filters"`
	PreWebhookURL  *string  `json:"pre_webhook_url"`
	PostWebhookURL *string  `json:"post_webhook_url"`
	Target         string   `json:"target"`
	URL            string   `json:"url"`
}

type conversationJSON struct {
	AccountSID          string            `json:"account_sid"`
	ChatServiceSID      string            `json:"chat_service_sid"`
	MessagingServiceSID *string           `json:"messaging_service_sid"`
	SID                 string            `json:"sid"`
	FriendlyName        *string           `json:"friendly_name"`
	UniqueName          *string           `json:"unique_name"`
	Attributes          string            `json:"attributes"`
	State               string            `json:"state"`
	DateCreated         string            `json:"date_created"`
	DateUpdated         string            `json:"date_updated"`
	Timers              map[string]string `json:"timers"`
	URL                 string            `json:"url"`
	Links               map[string]string `json:"links"`
	Bindings            map[string]any    `json:"bindings"`
}

type bindingJSON struct {
	Type             string `json:"type"`
	Address          string `json:"address,omitempty"`
	ProxyAddress     string `json:"proxy_address,omitempty"`
	ProjectedAddress string `json:"projected_address,omitempty"`
}

type participantJSON struct {
	AccountSID           string       `json:"account_sid"`
	ConversationSID      string       `json:"conversation_sid"`
	SID                  string       `json:"sid"`
	Identity             *string      `json:"identity"`
	Attributes           string       `json:"attributes"`
	MessagingBinding     *bindingJSON `json:"messaging_binding"`
	RoleSID              string       `json:"role_sid"`
	DateCreated          string       `json:"date_created"`
	DateUpdated          string       `json:"date_updated"`
	URL                  string       `json:"url"`
	LastReadMessageIndex *int         `json:"last_read_message_index"`
	LastReadTimestamp    *string      `json:"last_read_timestamp"`
}

type convMediaJSON struct {
	SID         string `json:"sid"`
	Size        int    `json:"size"`
	ContentType string `json:"content_type"`
	Filename    string `json:"filename"`
}

type convMessageJSON struct {
	AccountSID      string            `json:"account_sid"`
	ConversationSID string            `json:"conversation_sid"`
	SID             string            `json:"sid"`
	Index           int               `json:"index"`
	Author          string            `json:"author"`
	Body            *string           `json:"body"`
	Media           []convMediaJSON   `json:"media"`
	Attributes      string            `json:"attributes"`
	ParticipantSID  *string           `json:"participant_sid"`
	DateCreated     string            `json:"date_created"`
	DateUpdated     string            `json:"date_updated"`
	URL             string            `json:"url"`
	Delivery        map[string]any    `json:"delivery"`
	Links           map[string]string `json:"links"`
	ContentSID      *string           `json:"content_sid"`
}

type receiptJSON struct {
	AccountSID        string `json:"account_sid"`
	ConversationSID   string `json:"conversation_sid"`
	SID               string `json:"sid"`
	MessageSID        string `json:"message_sid"`
	ChannelMessageSID string `json:"channel_message_sid"`
	ParticipantSID    string `json:"participant_sid"`
	Status            string `json:"status"`
	ErrorCode         int    `json:"error_code"`
	DateCreated       string `json:"date_created"`
	DateUpdated       string `json:"date_updated"`
	URL               string `json:"url"`
}

type convWebhookJSON struct {
	SID             string         `json:"sid"`
	AccountSID      string         `json:"account_sid"`
	ConversationSID string         `json:"conversation_sid"`
	Target          string         `json:"target"`
	URL             string         `json:"url"`
	Configuration   map[string]any `json:"configuration"`
	DateCreated     string         `json:"date_created"`
	DateUpdated     string         `json:"date_updated"`
}

func conversationURL(base, sid string) string { return base + "/v1/Conversations/" + sid }

func renderConversation(base string, acct *account, c *conversation) conversationJSON {
	url := conversationURL(base, c.sid)
	return conversationJSON{
		AccountSID: acct.sid, ChatServiceSID: acct.chatServiceSID, MessagingServiceSID: optString(c.serviceSID),
		SID: c.sid, FriendlyName: optString(c.friendlyName), UniqueName: optString(c.uniqueName),
		Attributes: c.attributes, State: c.state, DateCreated: formatISO(c.created), DateUpdated: formatISO(c.updated),
		Timers: map[string]string{}, URL: url, Bindings: map[string]any{},
		Links: map[string]string{
			"participants": url + "/Participants", "messages": url + "/Messages",
			"webhooks": url + "/Webhooks", "export": url + "/Export",
		},
	}
}

func renderParticipant(base string, acct *account, c *conversation, p *participant) participantJSON {
	out := participantJSON{
		AccountSID: acct.sid, ConversationSID: c.sid, SID: p.sid, Identity: optString(p.identity),
		Attributes: p.attributes, RoleSID: acct.roleSID, DateCreated: formatISO(p.created), DateUpdated: formatISO(p.updated),
		URL: conversationURL(base, c.sid) + "/Participants/" + p.sid,
	}
	if p.address != "" || p.projected != "" {
		channel, _ := splitAddress(cmpOr(p.address, p.projected))
		out.MessagingBinding = &bindingJSON{Type: channel, Address: p.address, ProxyAddress: p.proxy, ProjectedAddress: p.projected}
	}
	return out
}

func renderConvMessage(base string, acct *account, c *conversation, m *convMessage) convMessageJSON {
	url := conversationURL(base, c.sid) + "/Messages/" + m.sid
	out := convMessageJSON{
		AccountSID: acct.sid, ConversationSID: c.sid, SID: m.sid, Index: m.index, Author: m.author,
		Body: optString(m.body), Attributes: m.attributes, ParticipantSID: optString(m.participantSID),
		DateCreated: formatISO(m.created), DateUpdated: formatISO(m.updated), URL: url,
		Links:      map[string]string{"delivery_receipts": url + "/Receipts", "channel_metadata": url + "/ChannelMetadata"},
		ContentSID: optString(m.contentSID),
	}
	for _, md := range m.media {
		out.Media = append(out.Media, convMediaJSON{SID: md.sid, Size: len(md.data), ContentType: md.contentType, Filename: md.filename})
	}
	if len(m.receipts) > 0 {
		out.Delivery = deliverySummary(m.receipts)
	}
	return out
}

// deliverySummary is a message's delivery object: per status, whether
// all, some or none of the copies reached it.
func deliverySummary(receipts []*receipt) map[string]any {
	reached := map[string][]string{
		StatusSent:        {StatusSent, StatusDelivered, StatusRead, StatusUndelivered},
		StatusDelivered:   {StatusDelivered, StatusRead},
		StatusRead:        {StatusRead},
		StatusFailed:      {StatusFailed},
		StatusUndelivered: {StatusUndelivered},
	}
	out := map[string]any{"total": len(receipts)}
	for status, states := range reached {
		n := 0
		for _, r := range receipts {
			if slices.Contains(states, r.status) {
				n++
			}
		}
		switch {
		case n == 0:
			out[status] = "none"
		case n == len(receipts):
			out[status] = "all"
		default:
			out[status] = "some"
		}
	}
	return out
}

func renderReceipt(base string, acct *account, c *conversation, m *convMessage, r *receipt) receiptJSON {
	return receiptJSON{
		AccountSID: acct.sid, ConversationSID: c.sid, SID: r.sid, MessageSID: m.sid,
		ChannelMessageSID: r.channelMessageSID, ParticipantSID: r.participantSID,
		Status: cmpOr(r.status, StatusSent), ErrorCode: r.errorCode,
		DateCreated: formatISO(r.created), DateUpdated: formatISO(r.updated),
		URL: conversationURL(base, c.sid) + "/Messages/" + m.sid + "/Receipts/" + r.sid,
	}
}

func renderConvWebhook(base string, acct *account, c *conversation, wh *convWebhook) convWebhookJSON {
	return convWebhookJSON{
		SID: wh.sid, AccountSID: acct.sid, ConversationSID: c.sid, Target: "webhook",
		URL:           conversationURL(base, c.sid) + "/Webhooks/" + wh.sid,
		Configuration: map[string]any{"url": wh.url, "method": wh.method, "filters": wh.filters},
		DateCreated:   formatISO(wh.created), DateUpdated: formatISO(wh.created),
	}
}

func renderGlobalWebhook(base string, acct *account) globalWebhookJSON {
	g := acct.convWebhook
	return globalWebhookJSON{
		AccountSID: acct.sid, Method: g.method, Filters: cloneOrEmpty(g.filters),
		PreWebhookURL: optString(g.preURL), PostWebhookURL: optString(g.postURL), Target: g.target,
		URL: base + "/v1/Configuration/Webhooks",
	}
}

// cloneOrEmpty renders a nil list as [] rather than null.
func cloneOrEmpty(xs []string) []string {
	if xs == nil {
		return []string{}
	}
	return slices.Clone(xs)
}

// newConversationLocked creates a conversation of the account's default
// service.
func (s *Server) newConversationLocked(acct *account, friendlyName, uniqueName, serviceSID string) *conversation {
	now := s.nowLocked()
	c := &conversation{
		seq: s.nextSeqLocked(), sid: newSID(prefixConversation), accountSID: acct.sid, serviceSID: serviceSID,
		friendlyName: friendlyName, uniqueName: uniqueName, attributes: "{}", state: "active", created: now, updated: now,
	}
	acct.conversations = append(acct.conversations, c)
	s.notifyLocked()
	return c
}

// lookupConversation finds the conversation of the path, or writes 404.
// Called with mu held.
func lookupConversation(w http.ResponseWriter, r *http.Request, acct *account, sid string) *conversation {
	c := acct.conversationBySID(sid)
	if c == nil {
		writeAPIError(w, errNotFound(r.URL.Path))
	}
	return c
}

// handleFetchConvConfig serves GET /v1/Configuration.
func (s *Server) handleFetchConvConfig(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	s.mu.Lock()
	defer s.mu.Unlock()
	acct := s.accounts[rc.accountSID]
	var defaultService string
	if svcs := acct.sortedServices(); len(svcs) > 0 {
		defaultService = svcs[0].sid
	}
	inactive, closed := "PT1M", "PT10M"
	writeJSON(w, http.StatusOK, convConfigJSON{
		AccountSID: acct.sid, DefaultChatServiceSID: acct.chatServiceSID, DefaultMessagingServiceSID: optString(defaultService),
		DefaultInactiveTimer: &inactive, DefaultClosedTimer: &closed, URL: s.baseURL + "/v1/Configuration",
		Links: map[string]string{
			"service":  s.baseURL + "/v1/Services/" + acct.chatServiceSID + "/Configuration",
			"webhooks": s.baseURL + "/v1/Configuration/Webhooks",
		},
	})
}

// handleFetchGlobalWebhook serves GET /v1/Configuration/Webhooks.
func (s *Server) handleFetchGlobalWebhook(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	s.mu.Lock()
	defer s.mu.Unlock()
	writeJSON(w, http.StatusOK, renderGlobalWebhook(s.baseURL, s.accounts[rc.accountSID]))
}

// handleUpdateGlobalWebhook serves POST /v1/Configuration/Webhooks.
func (s *Server) handleUpdateGlobalWebhook(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	form, apiErr := readForm(w, r)
	if apiErr != nil {
		writeAPIError(w, apiErr)
		return
	}
	if apiErr := checkUpdateForm(form, []string{"Method"}, []string{"PreWebhookUrl", "PostWebhookUrl"}, nil); apiErr != nil {
		writeAPIError(w, apiErr)
		return
	}
	if v := form.Get("Target"); form.Has("Target") && v != "webhook" && v != "flex" {
		writeAPIError(w, errBadParam("Target must be webhook or flex, not %q", v))
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	acct := s.accounts[rc.accountSID]
	g := &acct.convWebhook
	set := func(field string, dst *string) {
		if form.Has(field) {
			*dst = form.Get(field)
		}
	}
	set("Method", &g.method)
	set("Target", &g.target)
	set("PreWebhookUrl", &g.preURL)
	set("PostWebhookUrl", &g.postURL)
	if form.Has("Filters") {
		g.filters = slices.Clone(form["Filters"])
	}
	s.notifyLocked()
	writeJSON(w, http.StatusOK, renderGlobalWebhook(s.baseURL, acct))
}

// handleCreateConversation serves POST /v1/Conversations.
func (s *Server) handleCreateConversation(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	form, apiErr := readForm(w, r)
	if apiErr != nil {
		writeAPIError(w, apiErr)
		return
	}
	s.mu.Lock()
	acct := s.accounts[rc.accountSID]
	svc, unique := form.Get("MessagingServiceSid"), form.Get("UniqueName")
	if _, ok := acct.services[svc]; svc != "" && !ok {
		s.mu.Unlock()
		writeAPIError(w, newAPIError(http.StatusBadRequest, CodeInvalidConversationMG, "Invalid messaging service SID %s", svc))
		return
	}
	if unique != "" && slices.ContainsFunc(acct.conversations, func(c *conversation) bool { return c.uniqueName == unique }) {
		s.mu.Unlock()
		writeAPIError(w, newAPIError(http.StatusConflict, CodeUniqueNameTaken, "Conversation with provided unique name already exists"))
		return
	}
	c := s.newConversationLocked(acct, form.Get("FriendlyName"), unique, svc)
	if form.Has("Attributes") {
		c.attributes = form.Get("Attributes")
	}
	body := renderConversation(s.baseURL, acct, c)
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, body)
}

// handleListConversations serves GET /v1/Conversations, oldest first.
func (s *Server) handleListConversations(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	q := r.URL.Query()
	state := q.Get("State")
	var filters []queryParam
	if q.Has("State") {
		filters = append(filters, queryParam{"State", state})
	}
	listResources(s, w, r, "conversations", filters, func() (out []conversationJSON, _ bool) {
		acct := s.accounts[rc.accountSID]
		for _, c := range acct.conversations {
			if state == "" || c.state == state {
				out = append(out, renderConversation(s.baseURL, acct, c))
			}
		}
		return out, true
	}, func(v conversationJSON) string { return v.SID })
}

// handleFetchConversation serves GET /v1/Conversations/{Sid}.
func (s *Server) handleFetchConversation(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	s.mu.Lock()
	defer s.mu.Unlock()
	acct := s.accounts[rc.accountSID]
	if c := lookupConversation(w, r, acct, rc.params["Sid"]); c != nil {
		writeJSON(w, http.StatusOK, renderConversation(s.baseURL, acct, c))
	}
}

// handleDeleteConversation serves DELETE /v1/Conversations/{Sid}.
func (s *Server) handleDeleteConversation(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	s.mu.Lock()
	acct := s.accounts[rc.accountSID]
	c := lookupConversation(w, r, acct, rc.params["Sid"])
	if c == nil {
		s.mu.Unlock()
		return
	}
	var pending []pendingEvent
	if webhookEnabled(r) {
		pending = s.eventRequestsLocked(acct, c, EventConversationRemoved, sourceAPI, conversationForm(c))
	}
	s.removeConversationLocked(acct, c)
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
	s.sendEventsInBackground(rc.accountSID, pending)
}

// handleCreateParticipant serves POST /v1/Conversations/{ConversationSid}/Participants.
func (s *Server) handleCreateParticipant(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	form, apiErr := readForm(w, r)
	if apiErr != nil {
		writeAPIError(w, apiErr)
		return
	}
	np := newParticipant{
		identity: form.Get("Identity"), address: form.Get("MessagingBinding.Address"),
		proxy: form.Get("MessagingBinding.ProxyAddress"), projected: form.Get("MessagingBinding.ProjectedAddress"),
		attributes: form.Get("Attributes"),
	}
	s.mu.Lock()
	acct := s.accounts[rc.accountSID]
	c := lookupConversation(w, r, acct, rc.params["ConversationSid"])
	if c == nil {
		s.mu.Unlock()
		return
	}
	if apiErr := checkParticipantLocked(acct, c, np); apiErr != nil {
		s.mu.Unlock()
		writeAPIError(w, apiErr)
		return
	}
	p := s.addParticipantLocked(c, np)
	var pending []pendingEvent
	if webhookEnabled(r) {
		pending = s.eventRequestsLocked(acct, c, EventParticipantAdded, sourceAPI, participantForm(p))
	}
	body := renderParticipant(s.baseURL, acct, c, p)
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, body)
	s.sendEventsInBackground(rc.accountSID, pending)
}

// handleListParticipants serves GET /v1/Conversations/{ConversationSid}/Participants.
func (s *Server) handleListParticipants(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	listInConversation(s, w, r, rc, "participants", nil, func(acct *account, c *conversation) (out []participantJSON, _ bool) {
		for _, p := range c.participants {
			out = append(out, renderParticipant(s.baseURL, acct, c, p))
		}
		return out, true
	}, func(v participantJSON) string { return v.SID })
}

// listInConversation is listResources for the resources of the path's
// conversation; collect runs with the conversation found.
func listInConversation[T any](s *Server, w http.ResponseWriter, r *http.Request, rc *reqCtx, key string, filters []queryParam,
	collect func(acct *account, c *conversation) ([]T, bool), sidOf func(T) string) {
	listResources(s, w, r, key, filters, func() ([]T, bool) {
		acct := s.accounts[rc.accountSID]
		c := acct.conversationBySID(rc.params["ConversationSid"])
		if c == nil {
			return nil, false
		}
		return collect(acct, c)
	}, sidOf)
}

// lookupInConversation finds the path's conversation and, with find, a
// resource of it; it writes a 404 when either is missing. Called with mu
// held.
func lookupInConversation[T any](w http.ResponseWriter, r *http.Request, acct *account, rc *reqCtx, find func(*conversation) *T) (*conversation, *T) {
	c := lookupConversation(w, r, acct, rc.params["ConversationSid"])
	if c == nil {
		return nil, nil
	}
	x := find(c)
	if x == nil {
		writeAPIError(w, errNotFound(r.URL.Path))
		return nil, nil
	}
	return c, x
}

// lookupParticipant finds the path's participant, or writes a 404.
func lookupParticipant(w http.ResponseWriter, r *http.Request, acct *account, rc *reqCtx) (*conversation, *participant) {
	return lookupInConversation(w, r, acct, rc, func(c *conversation) *participant { return c.participantBySID(rc.params["Sid"]) })
}

// handleFetchParticipant serves GET /v1/Conversations/{ConversationSid}/Participants/{Sid}.
func (s *Server) handleFetchParticipant(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	s.mu.Lock()
	defer s.mu.Unlock()
	acct := s.accounts[rc.accountSID]
	if c, p := lookupParticipant(w, r, acct, rc); p != nil {
		writeJSON(w, http.StatusOK, renderParticipant(s.baseURL, acct, c, p))
	}
}

// handleDeleteParticipant serves DELETE /v1/Conversations/{ConversationSid}/Participants/{Sid}.
func (s *Server) handleDeleteParticipant(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	s.mu.Lock()
	acct := s.accounts[rc.accountSID]
	c, p := lookupParticipant(w, r, acct, rc)
	if p == nil {
		s.mu.Unlock()
		return
	}
	s.removeParticipantLocked(c, p)
	var pending []pendingEvent
	if webhookEnabled(r) {
		pending = s.eventRequestsLocked(acct, c, EventParticipantRemoved, sourceAPI, participantForm(p))
	}
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
	s.sendEventsInBackground(rc.accountSID, pending)
}

// handleCreateConvMessage serves POST /v1/Conversations/{ConversationSid}/Messages.
// In a group, the author must be a participant (the bridge's identity);
// the message then goes to every phone from the projected number.
func (s *Server) handleCreateConvMessage(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	form, apiErr := readForm(w, r)
	if apiErr != nil {
		writeAPIError(w, apiErr)
		return
	}
	author, body, mediaSIDs := cmpOr(form.Get("Author"), "system"), form.Get("Body"), form["MediaSid"]
	contentSID, contentVars := form.Get("ContentSid"), form.Get("ContentVariables")
	vars, ok := parseContentVariables(contentVars)
	switch {
	case body == "" && len(mediaSIDs) == 0 && contentSID == "":
		writeAPIError(w, errBadParam("A message needs a Body, a MediaSid or a ContentSid"))
		return
	case len(mediaSIDs) > maxMediaPerMessage:
		writeAPIError(w, errBadParam("A message can have at most %d media", maxMediaPerMessage))
		return
	case !ok:
		writeAPIError(w, newAPIError(http.StatusBadRequest, CodeInvalidContentVars, "The ContentVariables Parameter is invalid: it must be a JSON object of strings."))
		return
	}
	s.mu.Lock()
	acct := s.accounts[rc.accountSID]
	c := lookupConversation(w, r, acct, rc.params["ConversationSid"])
	if c == nil {
		s.mu.Unlock()
		return
	}
	if c.isGroup() && c.authorParticipant(author) == nil {
		s.mu.Unlock()
		writeAPIError(w, newAPIError(http.StatusBadRequest, CodeAuthorNotInGroup,
			"Message author should be among Group MMS participants: %q is not a participant of %s", author, c.sid))
		return
	}
	var media []*mcsMedia
	for _, sid := range mediaSIDs {
		md := acct.mcs[sid]
		if md == nil || md.messageSID != "" {
			s.mu.Unlock()
			writeAPIError(w, errBadParam("Media %s was not uploaded to this service, or already belongs to a message", sid))
			return
		}
		media = append(media, md)
	}
	if contentSID != "" {
		tmpl := acct.contentBySID(contentSID)
		if tmpl == nil {
			s.mu.Unlock()
			writeAPIError(w, newAPIError(http.StatusBadRequest, CodeInvalidContentSID, "The ContentSid %s is invalid.", contentSID))
			return
		}
		body = tmpl.render(vars)
	}
	m := s.addMessageLocked(c, author, body, form.Get("Attributes"), contentSID, sourceAPI, media)
	var pending []pendingEvent
	if webhookEnabled(r) {
		pending = s.eventRequestsLocked(acct, c, EventMessageAdded, sourceAPI, messageForm(m))
	}
	out := renderConvMessage(s.baseURL, acct, c, m)
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, out)
	s.sendEventsInBackground(rc.accountSID, pending)
	s.deliverConversationMessage(rc.accountSID, c, m)
}

// handleListConvMessages serves GET /v1/Conversations/{ConversationSid}/Messages,
// oldest first unless Order=desc.
func (s *Server) handleListConvMessages(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	q := r.URL.Query()
	order := q.Get("Order")
	if order != "" && order != "asc" && order != "desc" {
		writeAPIError(w, errBadParam("Order must be asc or desc, not %q", order))
		return
	}
	var filters []queryParam
	if q.Has("Order") {
		filters = append(filters, queryParam{"Order", order})
	}
	listInConversation(s, w, r, rc, "messages", filters, func(acct *account, c *conversation) (out []convMessageJSON, _ bool) {
		for _, m := range c.messages {
			out = append(out, renderConvMessage(s.baseURL, acct, c, m))
		}
		if order == "desc" {
			slices.Reverse(out)
		}
		return out, true
	}, func(v convMessageJSON) string { return v.SID })
}

// lookupConvMessage finds the message the path parameter param names, or
// writes a 404.
func lookupConvMessage(w http.ResponseWriter, r *http.Request, acct *account, rc *reqCtx, param string) (*conversation, *convMessage) {
	return lookupInConversation(w, r, acct, rc, func(c *conversation) *convMessage { return c.messageBySID(rc.params[param]) })
}

// handleFetchConvMessage serves GET /v1/Conversations/{ConversationSid}/Messages/{Sid}.
func (s *Server) handleFetchConvMessage(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	s.mu.Lock()
	defer s.mu.Unlock()
	acct := s.accounts[rc.accountSID]
	if c, m := lookupConvMessage(w, r, acct, rc, "Sid"); m != nil {
		writeJSON(w, http.StatusOK, renderConvMessage(s.baseURL, acct, c, m))
	}
}

// handleListReceipts serves GET .../Messages/{MessageSid}/Receipts.
func (s *Server) handleListReceipts(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	listInConversation(s, w, r, rc, "delivery_receipts", nil, func(acct *account, c *conversation) ([]receiptJSON, bool) {
		m := c.messageBySID(rc.params["MessageSid"])
		if m == nil {
			return nil, false
		}
		var out []receiptJSON
		for _, rcpt := range m.receipts {
			out = append(out, renderReceipt(s.baseURL, acct, c, m, rcpt))
		}
		return out, true
	}, func(v receiptJSON) string { return v.SID })
}

// handleCreateConvWebhook serves POST /v1/Conversations/{ConversationSid}/Webhooks.
// Only the webhook target is simulated (not Studio or triggers).
func (s *Server) handleCreateConvWebhook(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	form, apiErr := readForm(w, r)
	if apiErr != nil {
		writeAPIError(w, apiErr)
		return
	}
	method := cmpOr(form.Get("Configuration.Method"), "POST")
	switch {
	case form.Get("Target") != "webhook":
		writeAPIError(w, errBadParam("Target must be webhook (the simulator does not run Studio or triggers), not %q", form.Get("Target")))
		return
	case !isHTTPURL(form.Get("Configuration.Url")):
		writeAPIError(w, errBadParam("Configuration.Url %q is not a valid http or https URL", form.Get("Configuration.Url")))
		return
	case method != "GET" && method != "POST":
		writeAPIError(w, errBadParam("Configuration.Method must be GET or POST, not %q", method))
		return
	}
	s.mu.Lock()
	acct := s.accounts[rc.accountSID]
	c := lookupConversation(w, r, acct, rc.params["ConversationSid"])
	if c == nil {
		s.mu.Unlock()
		return
	}
	wh := &convWebhook{
		sid: newSID(prefixWebhook), url: form.Get("Configuration.Url"), method: method,
		filters: cloneOrEmpty(form["Configuration.Filters"]), created: s.nowLocked(),
	}
	c.webhooks = append(c.webhooks, wh)
	s.notifyLocked()
	body := renderConvWebhook(s.baseURL, acct, c, wh)
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, body)
}

// handleListConvWebhooks serves GET /v1/Conversations/{ConversationSid}/Webhooks.
func (s *Server) handleListConvWebhooks(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	listInConversation(s, w, r, rc, "webhooks", nil, func(acct *account, c *conversation) (out []convWebhookJSON, _ bool) {
		for _, wh := range c.webhooks {
			out = append(out, renderConvWebhook(s.baseURL, acct, c, wh))
		}
		return out, true
	}, func(v convWebhookJSON) string { return v.SID })
}

// handleDeleteConvWebhook serves DELETE /v1/Conversations/{ConversationSid}/Webhooks/{Sid}.
func (s *Server) handleDeleteConvWebhook(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := lookupConversation(w, r, s.accounts[rc.accountSID], rc.params["ConversationSid"])
	if c == nil {
		return
	}
	i := slices.IndexFunc(c.webhooks, func(wh *convWebhook) bool { return wh.sid == rc.params["Sid"] })
	if i < 0 {
		writeAPIError(w, errNotFound(r.URL.Path))
		return
	}
	c.webhooks = slices.Delete(c.webhooks, i, i+1)
	s.notifyLocked()
	w.WriteHeader(http.StatusNoContent)
}
