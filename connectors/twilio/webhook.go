package twilio

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/twilio/twilio-go/client"

	"github.com/trestle-bridge/trestle/bridgev2"
	"github.com/trestle-bridge/trestle/bridgev2/networkid"
)

// emptyTwiML is the answer to an inbound message webhook: "nothing to
// reply", sent only once the message is journalled.
const emptyTwiML = `<?xml version="1.0" encoding="UTF-8"?><Response></Response>`

// maxMedia is Twilio's limit of attachments per message.
const maxMedia = 10

// HTTPHandler serves Twilio's webhooks under the connector's path prefix:
//
//	POST {prefix}{loginID}/incoming           incoming SMS/MMS
//	POST {prefix}{loginID}/status/{sendToken} status callbacks of sends
//	POST {prefix}{loginID}/conversations      Conversations events (group MMS)
//
// Every request must carry a valid X-Twilio-Signature, computed with the
// login's auth token over the public URL built from
// appservice.public_address (never from Host or X-Forwarded-* headers).
func (c *Connector) HTTPHandler() http.Handler {
	return http.HandlerFunc(c.serveWebhook)
}

// webhookRoute is a parsed webhook path.
type webhookRoute struct {
	loginID string
	kind    string // "incoming", "status" or "conversations"
	token   string // status callbacks only
	rel     string // the escaped path below the prefix, for the signed URL
}

// parseRoute splits the escaped path below the prefix.
func parseRoute(rel string) (webhookRoute, bool) {
	parts := strings.Split(rel, "/")
	rt := webhookRoute{rel: rel}
	switch {
	case len(parts) == 2 && (parts[1] == "incoming" || parts[1] == "conversations"):
		rt.kind = parts[1]
	case len(parts) == 3 && parts[1] == "status" && parts[2] != "":
		tok, err := url.PathUnescape(parts[2])
		if err != nil || len(tok) > 256 {
			return rt, false
		}
		rt.kind, rt.token = "status", tok
	default:
		return rt, false
	}
	rt.loginID = parts[0]
	return rt, isDigits(rt.loginID) && len(rt.loginID) <= 15
}

func (c *Connector) serveWebhook(w http.ResponseWriter, r *http.Request) {
	if c.bridge == nil {
		http.Error(w, "bridge not started", http.StatusServiceUnavailable)
		return
	}
	rel, ok := strings.CutPrefix(r.URL.EscapedPath(), c.bridge.NetworkPathPrefix())
	if !ok {
		http.NotFound(w, r)
		return
	}
	route, ok := parseRoute(rel)
	if !ok {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "webhooks must be POSTed", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, c.cfg.MaxWebhookBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "could not read the request body", http.StatusBadRequest)
		return
	}
	if ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || ct != "application/x-www-form-urlencoded" {
		http.Error(w, "expected an application/x-www-form-urlencoded body", http.StatusBadRequest)
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		http.Error(w, "the body is not a valid form", http.StatusBadRequest)
		return
	}
	cl := c.client(route.loginID)
	if cl == nil {
		http.Error(w, "no such login", http.StatusNotFound)
		return
	}
	if !c.validSignature(cl, route, r, form) {
		cl.log.Warn().Str("path", r.URL.Path).Msg("Rejected a webhook with a missing or wrong X-Twilio-Signature")
		http.Error(w, "invalid X-Twilio-Signature", http.StatusForbidden)
		return
	}
	if form.Get("AccountSid") != cl.accountSID {
		cl.log.Warn().Msg("Rejected a signed webhook for another account")
		http.Error(w, "AccountSid does not match this login", http.StatusForbidden)
		return
	}
	switch route.kind {
	case "incoming":
		cl.serveIncoming(w, r, form)
	case "conversations":
		cl.serveConversationEvent(w, r, form)
	default:
		cl.serveStatus(w, r, form, route.token)
	}
}

// validSignature checks X-Twilio-Signature with the login's auth token
// against the public URL of the request.
func (c *Connector) validSignature(cl *Client, route webhookRoute, r *http.Request, form url.Values) bool {
	sig := r.Header.Get("X-Twilio-Signature")
	if sig == "" {
		return false
	}
	fullURL := c.bridge.NetworkPublicURL(route.rel)
	if r.URL.RawQuery != "" {
		fullURL += "?" + r.URL.RawQuery
	}
	params := make(map[string]string, len(form))
	for k, v := range form {
		if len(v) != 1 {
			// Twilio never repeats a parameter; the validator would only
			// sign the first value, so a repeat could smuggle a second one.
			return false
		}
		params[k] = v[0]
	}
	validator := client.NewRequestValidator(cl.authToken)
	return validator.Validate(fullURL, params, sig)
}

// inboundForm is a validated incoming-message webhook.
type inboundForm struct {
	SID   string
	From  string // E.164, a short code or an alphanumeric sender ID
	To    string // E.164
	Body  string
	Media []mediaItem
	// OptOut is Twilio's OptOutType (STOP, START, HELP), or "".
	OptOut string
}

// mediaItem is one attachment of an inbound message.
type mediaItem struct {
	URL         string
	ContentType string
}

// parseInboundForm validates an incoming-message webhook's fields. Errors
// are sentences for Twilio's debugger.
func parseInboundForm(form url.Values) (*inboundForm, error) {
	in := &inboundForm{SID: form.Get("MessageSid")}
	if !messageSIDPattern.MatchString(in.SID) {
		return nil, errors.New("MessageSid is missing or malformed")
	}
	var err error
	if in.From, _, err = parseSender(form.Get("From")); err != nil {
		return nil, errors.New("From is not a phone number, short code or alphanumeric sender ID")
	}
	if in.To, err = parseTwilioNumber(form.Get("To")); err != nil {
		return nil, errors.New("To is not an E.164 phone number")
	}
	n := 0
	if v := form.Get("NumMedia"); v != "" {
		if n, err = strconv.Atoi(v); err != nil || n < 0 || n > maxMedia {
			return nil, fmt.Errorf("NumMedia must be between 0 and %d", maxMedia)
		}
	}
	for i := range n {
		u := form.Get("MediaUrl" + strconv.Itoa(i))
		parsed, err := url.Parse(u)
		if u == "" || err != nil || (parsed.Scheme != "https" && parsed.Scheme != "http") || parsed.Host == "" {
			return nil, fmt.Errorf("MediaUrl%d is missing or not an http(s) URL", i)
		}
		ct := strings.TrimSpace(form.Get("MediaContentType" + strconv.Itoa(i)))
		if _, _, err := mime.ParseMediaType(ct); err != nil {
			ct = "application/octet-stream"
		}
		in.Media = append(in.Media, mediaItem{URL: u, ContentType: ct})
	}
	in.Body = sanitizeBody(form.Get("Body"))
	switch v := strings.ToUpper(form.Get("OptOutType")); v {
	case optOutStop, optOutStart, optOutHelp:
		in.OptOut = v
	}
	return in, nil
}

// sanitizeBody replaces invalid UTF-8, which a carrier can produce and which
// must not reach JSON or Matrix as is.
func sanitizeBody(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }

// messageParts builds the parts of an inbound message: one per attachment
// ("media0", ...), then the text ("text"); a text without attachments is the
// single part "". Every part carries a snippet for later quotes.
func messageParts(body string, media []mediaItem) []bridgev2.MessagePart {
	snip := snippet(body)
	if snip == "" && len(media) > 0 {
		snip = "[" + mediaKind(media[0].ContentType) + "]"
	}
	meta, _ := json.Marshal(&MessageMetadata{Snippet: snip})
	if len(media) == 0 {
		return []bridgev2.MessagePart{{Type: "m.text", Text: body, Metadata: meta}}
	}
	parts := make([]bridgev2.MessagePart, 0, len(media)+1)
	for i, m := range media {
		parts = append(parts, bridgev2.MessagePart{
			ID:       networkid.PartID("media" + strconv.Itoa(i)),
			Media:    &bridgev2.MediaRef{URL: m.URL, MimeType: m.ContentType, Filename: mediaFilename(m.ContentType, i+1)},
			Metadata: meta,
		})
	}
	if body != "" {
		parts = append(parts, bridgev2.MessagePart{ID: "text", Type: "m.text", Text: body, Metadata: meta})
	}
	return parts
}

// serveIncoming journals an inbound message and answers with empty TwiML
// once it is committed; on failure it answers 500 and lets catch-up
// recover the message from the log.
func (cl *Client) serveIncoming(w http.ResponseWriter, r *http.Request, form url.Values) {
	in, err := parseInboundForm(form)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	log := cl.log.With().Str("message_sid", in.SID).Str("remote_id", idFromAddr(in.From)).Logger()
	if in.To != cl.own {
		log.Warn().Msg("Rejected an inbound webhook addressed to another number")
		http.Error(w, "To is not the number of this login", http.StatusBadRequest)
		return
	}
	cl.catchUpFirst(r.Context())
	now := cl.conn.now()
	if err := cl.recordOptOut(r.Context(), in.OptOut, in.From); err != nil {
		log.Err(err).Msg("Could not store an opt-out; catch-up will recover the text")
		cl.noteIngestFailed()
		http.Error(w, "could not store the message", http.StatusInternalServerError)
		return
	}
	evt := &bridgev2.RemoteEvent{
		Kind:      bridgev2.RemoteMessage,
		ID:        networkid.MessageID(in.SID),
		Portal:    cl.portalKey(in.From),
		Sender:    bridgev2.EventSender{Sender: userIDFromAddr(in.From)},
		Timestamp: now,
		Parts:     withOptOutNotice(messageParts(in.Body, in.Media), in.OptOut),
		ChatInfo:  cl.chatInfo(in.From),
	}
	res, err := cl.login.Ingest(r.Context(), evt)
	if err != nil {
		log.Err(err).Msg("Could not journal an inbound message; catch-up will recover it")
		cl.noteIngestFailed()
		http.Error(w, "could not store the message", http.StatusInternalServerError)
		return
	}
	cl.noteHeard()
	log.Debug().Bool("duplicate", res == bridgev2.Duplicate).Int("media", len(in.Media)).Msg("Inbound message journalled")
	writeAck(w)
}
