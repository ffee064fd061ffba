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
	"maunium.net/go/mautrix/event"

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
	From  contact // a number, WhatsApp address, short code or sender ID
	To    contact
	Body  string
	Media []mediaItem
	// ReplyTo is the message a WhatsApp text replies to
	// (OriginalRepliedMessageSid).
	ReplyTo string
	// GeoURI is a location a WhatsApp contact shared.
	GeoURI string
	// RCS marks a reply over RCS ("rcs:+E164" to "rcs:<agent>"), which
	// belongs to the SMS chat with the number; ServiceSID is the
	// Messaging Service whose RCS sender it was written to.
	RCS        bool
	ServiceSID string
	// OptOut is Twilio's OptOutType (STOP, START, HELP) of an SMS, or "".
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
	if from, ok := strings.CutPrefix(form.Get("From"), rcsPrefix); ok {
		if in.From.addr, err = parseTwilioNumber(from); err != nil || !strings.HasPrefix(form.Get("To"), rcsPrefix) {
			return nil, errors.New("an RCS message must come from rcs:+E164 and go to an rcs: sender")
		}
		in.RCS, in.ServiceSID = true, form.Get("MessagingServiceSid")
	} else if in.From, err = parseSenderAddress(form.Get("From")); err != nil {
		return nil, errors.New("From is not a phone number, WhatsApp address, short code or alphanumeric sender ID")
	}
	// An RCS message's To is the agent, not a number; its Messaging
	// Service says whose it is.
	if !in.RCS {
		if in.To, err = parseTwilioAddress(form.Get("To")); err != nil {
			return nil, errors.New("To is not an E.164 phone number or WhatsApp address")
		}
	}
	if in.From.whatsapp != in.To.whatsapp {
		return nil, errors.New("From and To are not on the same channel")
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
	if in.From.whatsapp {
		parseWhatsAppFields(in, form)
	} else {
		switch v := strings.ToUpper(form.Get("OptOutType")); v {
		case optOutStop, optOutStart, optOutHelp:
			in.OptOut = v
		}
	}
	return in, nil
}

// parseWhatsAppFields reads what only WhatsApp webhooks carry: the message
// replied to and a shared location. Malformed values are left out rather
// than refusing the text they came with.
func parseWhatsAppFields(in *inboundForm, form url.Values) {
	if sid := form.Get("OriginalRepliedMessageSid"); messageSIDPattern.MatchString(sid) {
		in.ReplyTo = sid
	}
	lat, errLat := strconv.ParseFloat(form.Get("Latitude"), 64)
	lon, errLon := strconv.ParseFloat(form.Get("Longitude"), 64)
	if errLat != nil || errLon != nil || lat < -90 || lat > 90 || lon < -180 || lon > 180 {
		return
	}
	in.GeoURI = "geo:" + strconv.FormatFloat(lat, 'f', -1, 64) + "," + strconv.FormatFloat(lon, 'f', -1, 64)
	var place []string
	for _, k := range []string{"Label", "Address"} {
		if v := strings.TrimSpace(sanitizeBody(form.Get(k))); v != "" {
			place = append(place, v)
		}
	}
	if len(place) == 0 {
		place = []string{"Shared location"}
	}
	in.Body = strings.Join(place, ", ")
}

// inboundParts are the Matrix parts of a validated inbound message.
func (in *inboundForm) parts() []bridgev2.MessagePart {
	if in.GeoURI == "" {
		return chatParts(in.From, in.Body, in.Media)
	}
	meta, _ := json.Marshal(&MessageMetadata{Snippet: snippet("[location] " + in.Body)})
	return []bridgev2.MessagePart{{Type: event.MsgLocation, Text: in.Body, GeoURI: in.GeoURI, Metadata: meta}}
}

// sanitizeBody replaces invalid UTF-8, which a carrier can produce and which
// must not reach JSON or Matrix as is.
func sanitizeBody(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }

// chatParts builds the parts of a message from k, the same whether it came
// by webhook or from the log (catch-up and history), so either way the core
// sees the same parts.
func chatParts(k contact, body string, media []mediaItem) []bridgev2.MessagePart {
	if k.whatsapp && len(media) == 1 && body != "" {
		// A WhatsApp attachment carries its text as a caption: one
		// Matrix event, as the contact sent it.
		parts := messageParts("", media)
		parts[0].Text = body
		parts[0].Metadata, _ = json.Marshal(&MessageMetadata{Snippet: snippet(body)})
		return parts
	}
	return messageParts(body, media)
}

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
	log := cl.log.With().Str("message_sid", in.SID).Str("remote_id", string(in.From.portalID())).Logger()
	if in.RCS {
		if cl.serviceSID == "" || in.ServiceSID != cl.serviceSID || cl.whatsappOnly {
			log.Warn().Msg("Rejected an RCS webhook for another Messaging Service")
			http.Error(w, "MessagingServiceSid is not the service of this login", http.StatusBadRequest)
			return
		}
	} else if in.To.address() != cl.ownAddress(in.To) {
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
		Sender:    bridgev2.EventSender{Sender: in.From.userID()},
		Timestamp: now,
		Parts:     withOptOutNotice(in.parts(), in.OptOut),
		ReplyTo:   networkid.MessageID(in.ReplyTo),
		ChatInfo:  cl.inboundChatInfo(r.Context(), in.From, now),
	}
	res, err := cl.login.Ingest(r.Context(), evt)
	if err != nil {
		log.Err(err).Msg("Could not journal an inbound message; catch-up will recover it")
		cl.noteIngestFailed()
		http.Error(w, "could not store the message", http.StatusInternalServerError)
		return
	}
	cl.noteHeard()
	// After the text is journalled, never before: a lookup must not delay it.
	cl.refreshContact(in.From)
	log.Debug().Bool("duplicate", res == bridgev2.Duplicate).Int("media", len(in.Media)).Msg("Inbound message journalled")
	writeAck(w)
}
