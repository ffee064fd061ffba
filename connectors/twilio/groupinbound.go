package twilio

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/rs/zerolog"

	"github.com/trestle-bridge/trestle/bridgev2"
	"github.com/trestle-bridge/trestle/bridgev2/networkid"
)

// convMedia is one attachment of a Conversations message: the webhook's
// Media parameter is a JSON array of {Sid, ContentType, ...}, the REST
// message's media one of {sid, content_type, ...}. (encoding/json matches
// "Sid" and "sid" alike.)
type convMedia struct {
	Sid         string `json:"sid"`
	ContentType string `json:"ContentType"`
	// RESTType is content_type, as REST lists spell it.
	RESTType string `json:"content_type"`
}

// serveConversationEvent handles a Conversations webhook: a phone's text
// to a group, a participant joining or leaving it, or the delivery of the
// bridge's text to one phone (serveGroupDelivery). Texts are journalled
// before the 200, like SMS webhooks. Events of conversations that are not
// a group of one of this account's logged-in numbers are acknowledged and
// dropped.
func (cl *Client) serveConversationEvent(w http.ResponseWriter, r *http.Request, form url.Values) {
	convSID := form.Get("ConversationSid")
	if !conversationSIDPattern.MatchString(convSID) {
		http.Error(w, "ConversationSid is missing or malformed", http.StatusBadRequest)
		return
	}
	event := form.Get("EventType")
	if event == eventDeliveryUpdated {
		cl.serveGroupDelivery(w, r, form, convSID)
		return
	}
	if event != "onMessageAdded" && event != "onParticipantAdded" && event != "onParticipantRemoved" {
		writeAck(w)
		return
	}
	log := cl.log.With().Str("conversation_sid", convSID).Str("event_type", event).Logger()
	owner, parts, ok := cl.webhookGroupOwner(w, r, log, convSID)
	if !ok {
		return
	}
	phones, _ := owner.groupPhones(parts)
	var evt *bridgev2.RemoteEvent
	var err error
	if event == "onMessageAdded" {
		// Texts whose webhooks failed come first, as for one-to-one texts.
		owner.catchUpFirst(r.Context())
		if evt, err = owner.groupMessageEvent(r.Context(), form, convSID, phones); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if evt == nil {
			writeAck(w)
			return
		}
	} else {
		psid := form.Get("ParticipantSid")
		if !participantSIDPattern.MatchString(psid) {
			http.Error(w, "ParticipantSid is missing or malformed", http.StatusBadRequest)
			return
		}
		evt = &bridgev2.RemoteEvent{
			Kind:      bridgev2.RemoteChatInfo,
			ID:        networkid.MessageID(event + ":" + psid),
			Portal:    owner.groupKey(convSID),
			Timestamp: owner.conn.now(),
			ChatInfo:  &bridgev2.ChatInfo{Members: owner.groupInfo("", phones).Members},
		}
	}
	if _, err := owner.login.Ingest(r.Context(), evt); err != nil {
		log.Err(err).Msg("Could not journal a group event; catch-up will recover a text")
		owner.noteIngestFailed()
		http.Error(w, "could not store the event", http.StatusInternalServerError)
		return
	}
	if event == "onMessageAdded" {
		owner.noteHeard()
	}
	log.Debug().Str("login_id", string(owner.loginID)).Msg("Group event journalled")
	writeAck(w)
}

// webhookGroupOwner reads a webhook's group and finds the login it
// belongs to (see groupOwner). If it answered the webhook itself, it
// returns false: 500 when Twilio could not be asked (Twilio retries), 200
// for a group of no logged-in number.
func (cl *Client) webhookGroupOwner(w http.ResponseWriter, r *http.Request, log zerolog.Logger, convSID string) (*Client, []groupParticipant, bool) {
	parts, err := cl.rest.listParticipants(r.Context(), convSID)
	if err != nil {
		log.Err(err).Msg("Could not list a group's participants; Twilio will see a failed webhook")
		http.Error(w, "could not read the group", http.StatusInternalServerError)
		return nil, nil, false
	}
	owner := cl.groupOwner(parts)
	if owner == nil {
		log.Debug().Msg("Ignored a Conversations event of a conversation no logged-in number is the projected address of")
		writeAck(w)
		return nil, nil, false
	}
	return owner, parts, true
}

// groupOwner is the client of the login whose number the group texts
// from: this one, or another number of the same account (the account has
// one Conversations webhook, which the last login pointed at itself).
func (cl *Client) groupOwner(parts []groupParticipant) *Client {
	for _, p := range parts {
		if p.Projected == "" {
			continue
		}
		if p.Projected == cl.own {
			return cl
		}
		if other := cl.conn.client(idFromAddr(p.Projected)); other != nil && other.accountSID == cl.accountSID {
			return other
		}
	}
	return nil
}

// groupMessageEvent turns an onMessageAdded webhook into a message event
// of the group's portal, or nil for the bridge's own messages.
func (cl *Client) groupMessageEvent(ctx context.Context, form url.Values, convSID string, phones []string) (*bridgev2.RemoteEvent, error) {
	var media []convMedia
	if raw := form.Get("Media"); raw != "" {
		if err := json.Unmarshal([]byte(raw), &media); err != nil {
			return nil, errors.New("Media is not a JSON list of attachments")
		}
	}
	return cl.groupEvent(ctx, convSID, form.Get("MessageSid"), form.Get("Author"), form.Get("Body"), form.Get("ChatServiceSid"), media, phones)
}

// groupEvent makes the message event of a phone's text to a group, from a
// webhook or from the group's message list, or nil for the bridge's own
// messages. The first message of a group names its room after the
// Conversation's friendly name, else after its members.
func (cl *Client) groupEvent(ctx context.Context, convSID, sid, rawAuthor, body, service string, items []convMedia, phones []string) (*bridgev2.RemoteEvent, error) {
	if !convMessageSIDPattern.MatchString(sid) {
		return nil, errors.New("MessageSid is missing or malformed")
	}
	author, err := parseTwilioNumber(rawAuthor)
	if err != nil || author == cl.own {
		// The bridge's own identity (or another non-phone author): its
		// messages came from Matrix.
		return nil, nil
	}
	if len(items) > maxMedia || (len(items) > 0 && !chatServiceSIDPattern.MatchString(service)) {
		return nil, errors.New("Media is not a list of at most 10 attachments of a Conversation Service")
	}
	var media []mediaItem
	for _, it := range items {
		if !mediaSIDPattern.MatchString(it.Sid) {
			return nil, errors.New("a Media Sid is malformed")
		}
		ct := strings.TrimSpace(cmp.Or(it.ContentType, it.RESTType))
		if ct == "" {
			ct = "application/octet-stream"
		}
		media = append(media, mediaItem{URL: mcsContentURL(service, it.Sid), ContentType: ct})
	}
	key := cl.groupKey(convSID)
	info := &bridgev2.ChatInfo{Members: cl.groupInfo("", phones).Members}
	if portal, err := cl.conn.bridge.GetPortal(ctx, key); err == nil && portal.RoomID() == "" {
		name := ""
		if conv, err := cl.rest.fetchConversation(ctx, convSID); err == nil {
			name = deref(conv.FriendlyName)
		}
		info = cl.groupInfo(name, phones)
	}
	return &bridgev2.RemoteEvent{
		Kind:      bridgev2.RemoteMessage,
		ID:        networkid.MessageID(sid),
		Portal:    key,
		Sender:    bridgev2.EventSender{Sender: userIDFromAddr(author)},
		Timestamp: cl.conn.now(),
		Parts:     messageParts(sanitizeBody(body), media),
		ChatInfo:  info,
	}, nil
}
