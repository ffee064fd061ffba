package twiliosim

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Message limits Twilio enforces at creation.
const (
	maxBodyChars = 1600
	maxMediaURLs = 10
)

// handleCreateMessage serves POST /Accounts/{AccountSid}/Messages.json. It
// validates as Twilio does, stores the message as queued (accepted for a
// Messaging Service) and leaves media fetching and delivery to a background
// worker, so the 201 comes back before any status callback.
func (s *Server) handleCreateMessage(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	form, apiErr := readForm(w, r)
	if apiErr != nil {
		writeAPIError(w, apiErr)
		return
	}
	req := createRequest{
		to: form.Get("To"), from: form.Get("From"), serviceSID: form.Get("MessagingServiceSid"),
		body: form.Get("Body"), mediaURLs: form["MediaUrl"], callback: form.Get("StatusCallback"),
		contentSID: form.Get("ContentSid"), contentVariables: form.Get("ContentVariables"),
		fallbackFrom: form.Get("FallbackFrom"),
	}
	if apiErr := req.validate(); apiErr != nil {
		writeAPIError(w, apiErr)
		return
	}

	s.mu.Lock()
	acct := s.accounts[rc.accountSID]
	m, apiErr := s.newOutboundLocked(acct, req)
	if apiErr != nil {
		s.mu.Unlock()
		writeAPIError(w, apiErr)
		return
	}
	acct.messages = append(acct.messages, m)
	acct.messageBySID[m.sid] = m
	resp := renderMessage(m)
	s.notifyLocked()
	s.mu.Unlock()

	s.startOutbound(acct.sid, m.sid)
	writeJSON(w, http.StatusCreated, resp)
}

// createRequest is a message create's parameters.
type createRequest struct {
	to, from, serviceSID, body string
	mediaURLs                  []string
	callback                   string
	contentSID                 string
	contentVariables           string
	fallbackFrom               string
}

// validate checks what can be checked without state, in Twilio's order.
func (c createRequest) validate() *apiError {
	toChannel, toBare := splitAddress(c.to)
	fromChannel, _ := splitAddress(c.from)
	switch {
	case c.to == "":
		return newAPIError(http.StatusBadRequest, CodeToRequired, "A 'To' phone number is required.")
	case c.from == "" && c.serviceSID == "":
		return newAPIError(http.StatusBadRequest, CodeFromRequired, "A 'From' phone number is required.")
	case c.body == "" && len(c.mediaURLs) == 0 && c.contentSID == "":
		return newAPIError(http.StatusBadRequest, CodeBodyRequired, "Message body is required.")
	case utf8.RuneCountInString(c.body) > maxBodyChars:
		return newAPIError(http.StatusBadRequest, CodeBodyTooLong, "The concatenated message body exceeds the %d character limit.", maxBodyChars)
	case len(c.mediaURLs) > maxMediaURLs:
		return newAPIError(http.StatusBadRequest, CodeTooManyMedia, "Too many media URLs: a message can have at most %d.", maxMediaURLs)
	case c.callback != "" && !isHTTPURL(c.callback):
		return newAPIError(http.StatusBadRequest, CodeInvalidStatusCallback, "The StatusCallback URL %s is not a valid URL.", c.callback)
	case isShortCode(c.to):
		// Twilio numbers cannot text short codes, Twilio's or anyone's.
		return newAPIError(http.StatusBadRequest, CodeToShortCode, "'To' number cannot be a Short Code: %s", c.to)
	case toChannel == ChannelRCS || !e164Pattern.MatchString(toBare):
		// Alphanumeric sender IDs send only; replies to them land here.
		return newAPIError(http.StatusBadRequest, CodeInvalidToNumber, "The 'To' number %s is not a valid phone number.", c.to)
	case c.from != "" && fromChannel != toChannel:
		return newAPIError(http.StatusBadRequest, CodeChannelMismatch, "Invalid From and To pair. From and To should be of the same channel")
	case c.to == c.from:
		return newAPIError(http.StatusBadRequest, CodeSameToFrom, "'To' and 'From' number cannot be the same: %s", c.to)
	case c.fallbackFrom != "" && c.serviceSID == "":
		return newAPIError(http.StatusBadRequest, CodeFallbackNeedsService, "'FallbackFrom' requires MessagingServiceSid")
	case c.contentSID != "" && !isSID(c.contentSID, prefixContent):
		return newAPIError(http.StatusBadRequest, CodeInvalidContentSID, "The ContentSid %s is invalid.", c.contentSID)
	}
	if _, ok := parseContentVariables(c.contentVariables); !ok {
		return newAPIError(http.StatusBadRequest, CodeInvalidContentVars, "The ContentVariables Parameter is invalid: it must be a JSON object of strings.")
	}
	for _, u := range c.mediaURLs {
		if !isHTTPURL(u) {
			return newAPIError(http.StatusBadRequest, CodeInvalidMediaURL, "Media urls: %s are invalid. Please use only valid http and https urls", u)
		}
	}
	return nil
}

// newOutboundLocked checks a create against the account and builds the
// message. Messaging Service messages are accepted with their sender still
// to choose; others are queued with the given one.
func (s *Server) newOutboundLocked(acct *account, c createRequest) (*message, *apiError) {
	channel, bareTo := splitAddress(c.to)
	if apiErr := s.checkSenderLocked(acct, c, channel); apiErr != nil {
		return nil, apiErr
	}
	if apiErr := checkRecipient(c.to, s.recipientLocked(bareTo)); apiErr != nil {
		return nil, apiErr
	}
	scope := c.serviceSID
	if scope == "" {
		scope = acct.optOutScope(c.from)
	}
	if channel == ChannelSMS && acct.optOuts[optOutKey{scope, c.to}] {
		return nil, newAPIError(http.StatusBadRequest, CodeUnsubscribed, "Attempt to send to unsubscribed recipient")
	}
	body := c.body
	if c.contentSID != "" {
		tmpl := acct.contentBySID(c.contentSID)
		if tmpl == nil {
			return nil, newAPIError(http.StatusBadRequest, CodeInvalidContentSID, "The ContentSid %s is invalid.", c.contentSID)
		}
		vars, _ := parseContentVariables(c.contentVariables)
		body = tmpl.render(vars)
	}
	now := s.nowLocked()
	prefix := prefixSMS
	if len(c.mediaURLs) > 0 {
		prefix = prefixMMS
	}
	m := &message{
		seq:              s.nextSeqLocked(),
		sid:              newSID(prefix),
		accountSID:       acct.sid,
		direction:        DirectionOutboundAPI,
		from:             c.from,
		to:               c.to,
		body:             body,
		serviceSID:       c.serviceSID,
		status:           StatusQueued,
		numSegments:      SegmentCount(body),
		numMedia:         len(c.mediaURLs),
		created:          now,
		updated:          now,
		statusCallback:   c.callback,
		mediaURLs:        c.mediaURLs,
		channel:          channel,
		contentSID:       c.contentSID,
		contentVariables: c.contentVariables,
		fallbackFrom:     c.fallbackFrom,
	}
	if cs := acct.senderByAddress(c.from); cs != nil {
		m.senderSID = cs.sid
	}
	switch {
	case c.serviceSID != "" && c.from == "":
		// A Messaging Service message is accepted first; the sender, and so
		// the segment count, are only known once it is queued.
		m.status, m.numSegments = StatusAccepted, 0
	case c.serviceSID == "":
		m.serviceSID = acct.serviceOf(c.from)
	}
	return m, nil
}

// checkSenderLocked checks the From address or Messaging Service against
// the account, for a message on channel.
func (s *Server) checkSenderLocked(acct *account, c createRequest, channel string) *apiError {
	hasMedia := len(c.mediaURLs) > 0
	if c.serviceSID != "" {
		svc, ok := acct.services[c.serviceSID]
		if !ok {
			return newAPIError(http.StatusBadRequest, CodeInvalidService, "The Messaging Service Sid %s is invalid.", c.serviceSID)
		}
		switch {
		case channel == ChannelWhatsApp && acct.serviceSender(svc, ChannelWhatsApp) == nil:
			return errNoChannel(c.to)
		case channel == ChannelSMS && len(svc.numbers) == 0:
			return newAPIError(http.StatusBadRequest, CodeServiceHasNoNumbers, "The Messaging Service contains no phone numbers.")
		}
		if c.fallbackFrom != "" && !slices.Contains(svc.numbers, c.fallbackFrom) {
			return newAPIError(http.StatusBadRequest, CodeFromNotOwned,
				"The From phone number %s is not a valid, SMS-capable inbound phone number or short code for your account.", c.fallbackFrom)
		}
		if c.from == "" {
			return nil
		}
	}
	if channel == ChannelWhatsApp {
		if cs := acct.senderByAddress(c.from); cs == nil || cs.channel != ChannelWhatsApp {
			return errNoChannel(c.from)
		}
		return nil
	}
	if !e164Pattern.MatchString(c.from) {
		return newAPIError(http.StatusBadRequest, CodeInvalidFromNumber, "The 'From' number %s is not a valid phone number, shortcode, or alphanumeric sender ID.", c.from)
	}
	n := acct.numberByE164(c.from)
	if n == nil || !n.caps.SMS || (hasMedia && !n.caps.MMS) {
		kind := "SMS"
		if hasMedia {
			kind = "MMS"
		}
		return newAPIError(http.StatusBadRequest, CodeFromNotOwned,
			"The From phone number %s is not a valid, %s-capable inbound phone number or short code for your account.", c.from, kind)
	}
	return nil
}

// errNoChannel is Twilio's answer for a channel address it has no sender
// for.
func errNoChannel(addr string) *apiError {
	return newAPIError(http.StatusBadRequest, CodeChannelNotFound, "Twilio could not find a Channel with the specified From address: %s", addr)
}

// checkRecipient applies the recipient's configured behaviour at creation.
func checkRecipient(to string, cfg RecipientConfig) *apiError {
	switch cfg.Behavior {
	case Unsubscribed:
		return newAPIError(http.StatusBadRequest, CodeUnsubscribed, "Attempt to send to unsubscribed recipient")
	case Landline:
		return newAPIError(http.StatusBadRequest, CodeNotMobile, "'To' number %s is not a valid mobile number", to)
	case InvalidNumber:
		return newAPIError(http.StatusBadRequest, CodeInvalidToNumber, "The 'To' number %s is not a valid phone number.", to)
	}
	return nil
}

// handleListMessages serves GET /Accounts/{AccountSid}/Messages.json, newest
// first, with Twilio's To, From and DateSent filters.
func (s *Server) handleListMessages(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	q := r.URL.Query()
	p, apiErr := parsePageParams(q)
	if apiErr != nil {
		writeAPIError(w, apiErr)
		return
	}
	var filters []queryParam
	for _, name := range []string{"To", "From", "DateSent", "DateSent<", "DateSent>"} {
		if q.Has(name) {
			filters = append(filters, queryParam{name, q.Get(name)})
		}
	}
	dates, apiErr := parseDayFilter(q, "DateSent")
	if apiErr != nil {
		writeAPIError(w, apiErr)
		return
	}
	to, from := plusFix(q.Get("To")), plusFix(q.Get("From"))

	s.mu.Lock()
	var matched []messageJSON
	for _, m := range s.accounts[rc.accountSID].sortedNewestFirst() {
		if (to != "" && m.to != to) || (from != "" && m.from != from) || !dates.match(m.sent) {
			continue
		}
		matched = append(matched, renderMessage(m))
	}
	s.mu.Unlock()

	sidOf := func(m messageJSON) string { return m.SID }
	pg, apiErr := paginate(matched, sidOf, p)
	if apiErr != nil {
		writeAPIError(w, apiErr)
		return
	}
	writeJSON(w, http.StatusOK, pageEnvelope(messagesURI(rc.accountSID), "messages", filters, p, pg, sidOf,
		func(m messageJSON) any { return m }))
}

// plusFix restores a '+' that arrived unescaped in a query (and so decoded
// to a space), which Twilio tolerates in phone number filters, channel
// addresses ("whatsapp: 1555...") included.
func plusFix(v string) string {
	channel, bare := splitAddress(v)
	if !strings.HasPrefix(bare, " ") {
		return v
	}
	bare = "+" + bare[1:]
	if channel == ChannelSMS {
		return bare
	}
	return channel + ":" + bare
}

// dayFilter is Twilio's date filtering by day: Name=D (that day),
// Name<=D (on or before) and Name>=D (on or after), in UTC. The parameters
// are spelled "Name", "Name<" and "Name>" because the '=' of "<=" is the
// query's own.
type dayFilter struct {
	on, notAfter, notBefore string // YYYY-MM-DD, "" when unset
}

// parseDayFilter reads the three forms of a date filter. Values may be
// YYYY-MM-DD or a full RFC 3339 timestamp (twilio-go sends those); only the
// UTC day counts.
func parseDayFilter(q url.Values, name string) (dayFilter, *apiError) {
	var f dayFilter
	for _, x := range []struct {
		param string
		dst   *string
	}{{name, &f.on}, {name + "<", &f.notAfter}, {name + ">", &f.notBefore}} {
		v := q.Get(x.param)
		if v == "" {
			continue
		}
		day, err := parseDay(v)
		if err != nil {
			return f, errBadParam("Invalid %s %q: expected YYYY-MM-DD", x.param, v)
		}
		*x.dst = day
	}
	return f, nil
}

// parseDay returns the UTC day of a YYYY-MM-DD or RFC 3339 value.
func parseDay(v string) (string, error) {
	if t, err := time.Parse(time.DateOnly, v); err == nil {
		return t.Format(time.DateOnly), nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return "", err
	}
	return t.UTC().Format(time.DateOnly), nil
}

// match reports whether t passes the filter. A null date (zero t) passes
// only an empty filter.
func (f dayFilter) match(t time.Time) bool {
	if f == (dayFilter{}) {
		return true
	}
	if t.IsZero() {
		return false
	}
	day := t.UTC().Format(time.DateOnly)
	return (f.on == "" || day == f.on) &&
		(f.notAfter == "" || day <= f.notAfter) &&
		(f.notBefore == "" || day >= f.notBefore)
}

// handleFetchMessage serves GET /Accounts/{AccountSid}/Messages/{Sid}.json.
func (s *Server) handleFetchMessage(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	s.mu.Lock()
	m := s.accounts[rc.accountSID].messageBySID[rc.params["Sid"]]
	var body messageJSON
	if m != nil {
		body = renderMessage(m)
	}
	s.mu.Unlock()
	if m == nil {
		writeAPIError(w, errNotFound(r.URL.Path))
		return
	}
	writeJSON(w, http.StatusOK, body)
}
