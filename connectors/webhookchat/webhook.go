package webhookchat

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/trestle-bridge/trestle/bridgev2"
	"github.com/trestle-bridge/trestle/bridgev2/networkid"
)

// SignatureHeader carries the signature of a webhook body, in both
// directions; see Sign.
const SignatureHeader = "X-Webhookchat-Signature"

// Sign returns the SignatureHeader value for body: "sha256=" followed by
// the hex HMAC-SHA256 of the raw body keyed with the login's secret.
func Sign(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// Event is the JSON body of a webhook, in either direction.
type Event struct {
	// Type is "message", "edit", "reaction", "reaction_remove", "delete" or
	// "typing" (inbound only); the bridge also sends "ping" when logging in.
	Type string `json:"type"`
	// ID is the service's unique ID of an inbound event (for messages, the
	// message ID). It is required except for typing: a redelivery with
	// the same type and ID is recognised and bridged only once.
	ID         string `json:"id,omitempty"`
	Chat       string `json:"chat,omitempty"`
	ChatName   string `json:"chat_name,omitempty"`
	Sender     string `json:"sender,omitempty"`
	SenderName string `json:"sender_name,omitempty"`
	Text       string `json:"text,omitempty"`
	// Target is the message an edit, reaction, reaction removal or
	// deletion refers to.
	Target  string `json:"target,omitempty"`
	ReplyTo string `json:"reply_to,omitempty"`
	Emoji   string `json:"emoji,omitempty"`
	// TS is when the event happened, in Unix milliseconds; 0 means now.
	TS         int64       `json:"ts,omitempty"`
	Attachment *Attachment `json:"attachment,omitempty"`
	// IdempotencyKey (outbound) is the same for every retry of one Matrix
	// event: a service should act only once per key.
	IdempotencyKey string `json:"idempotency_key,omitempty"`
}

// Attachment is a file sent with a message; the receiver fetches it from
// URL, which must be http(s).
type Attachment struct {
	URL  string `json:"url"`
	Mime string `json:"mime,omitempty"`
	Name string `json:"name,omitempty"`
}

// typingTimeout is how long an inbound "typing" shows, since the protocol
// has no "stopped typing".
const typingTimeout = 10 * time.Second

// serveEvents receives a service's webhook. It answers 200 only once the
// event is journalled: anything else tells the service to deliver it again.
func (n *Network) serveEvents(w http.ResponseWriter, r *http.Request) {
	var client *Client
	if login := n.bridge.GetLogin(networkid.UserLoginID(r.PathValue("login"))); login != nil {
		client, _ = login.Client.(*Client)
	}
	if client == nil {
		reply(w, http.StatusNotFound, "There is no such login on this bridge.")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, n.config.MaxBody))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		reply(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("The body is larger than %d bytes.", n.config.MaxBody))
		return
	} else if err != nil {
		reply(w, http.StatusBadRequest, "The body could not be read.")
		return
	}
	if !hmac.Equal([]byte(Sign(client.meta.Secret, body)), []byte(strings.ToLower(r.Header.Get(SignatureHeader)))) {
		reply(w, http.StatusUnauthorized, "The "+SignatureHeader+" header is missing or wrong.")
		return
	}
	var evt Event
	if err := json.Unmarshal(body, &evt); err != nil {
		reply(w, http.StatusBadRequest, "The body is not a JSON event: "+err.Error())
		return
	}
	remote, err := client.toRemote(&evt)
	if err != nil {
		reply(w, http.StatusBadRequest, bridgev2.HumanMessage(err))
		return
	}
	if err := client.ingest(r.Context(), &evt, remote); err != nil {
		client.login.Log.Warn().Err(err).Str("remote_id", evt.ID).Msg("Could not take in a webhook event")
		reply(w, bridgev2.IngestHTTPStatus(err), "The bridge could not store the event; deliver it again.")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"ok":true}`))
}

func reply(w http.ResponseWriter, status int, sentence string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"ok": false, "error": sentence})
}

// toRemote checks an inbound event and converts it; its errors carry a
// sentence for the service's developer.
func (c *Client) toRemote(evt *Event) (*bridgev2.RemoteEvent, error) {
	if evt.Chat == "" || evt.Sender == "" {
		return nil, bridgev2.NewError("An event needs a chat and a sender.", nil)
	}
	if evt.ID == "" && evt.Type != "typing" {
		return nil, bridgev2.NewError("An event needs an id: it is how redeliveries are recognised.", nil)
	}
	remote := &bridgev2.RemoteEvent{
		Kind:   bridgev2.RemoteEventKind(evt.Type),
		ID:     networkid.MessageID(evt.ID),
		Portal: networkid.PortalKey{ID: networkid.PortalID(evt.Chat), Receiver: c.login.ID},
		Sender: bridgev2.EventSender{Sender: ghostID(c.login.ID, evt.Sender)},
		Target: networkid.MessageID(evt.Target),
		Emoji:  evt.Emoji,
	}
	if evt.TS > 0 {
		remote.Timestamp = time.UnixMilli(evt.TS)
	}
	switch remote.Kind {
	case bridgev2.RemoteMessage:
		part := bridgev2.MessagePart{Text: evt.Text}
		if a := evt.Attachment; a != nil {
			if !isHTTP(a.URL) {
				return nil, bridgev2.NewError("An attachment needs an http(s) url.", nil)
			}
			part.Media = &bridgev2.MediaRef{URL: a.URL, MimeType: a.Mime, Filename: a.Name}
		} else if evt.Text == "" {
			return nil, bridgev2.NewError("A message needs text or an attachment.", nil)
		}
		remote.Parts, remote.ReplyTo = []bridgev2.MessagePart{part}, networkid.MessageID(evt.ReplyTo)
		return remote, nil
	case bridgev2.RemoteTyping:
		remote.Typing = typingTimeout
		return remote, nil
	case bridgev2.RemoteEdit:
		remote.Parts = []bridgev2.MessagePart{{Text: evt.Text}}
	case bridgev2.RemoteReaction, bridgev2.RemoteReactionRemove:
		if evt.Emoji == "" {
			return nil, bridgev2.NewError(fmt.Sprintf("A %s needs an emoji.", evt.Type), nil)
		}
	case bridgev2.RemoteDelete:
	default:
		return nil, bridgev2.NewError(fmt.Sprintf("Unknown event type %q.", evt.Type), nil)
	}
	if evt.Target == "" {
		return nil, bridgev2.NewError(fmt.Sprintf("A %s needs a target message ID.", evt.Type), nil)
	}
	return remote, nil
}

func isHTTP(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// ingest hands an event to the core. Names travel with it: the sender's
// updates their ghost, the chat's names the room (and renames it when it
// changes), both applied by the core when it delivers the event.
func (c *Client) ingest(ctx context.Context, evt *Event, remote *bridgev2.RemoteEvent) error {
	if evt.SenderName != "" {
		remote.Sender.Info = &bridgev2.UserInfo{Name: &evt.SenderName}
	}
	if remote.Kind == bridgev2.RemoteMessage {
		remote.ChatInfo = &bridgev2.ChatInfo{}
		if evt.Chat == evt.Sender {
			remote.ChatInfo.IsDM, remote.ChatInfo.OtherUser = true, remote.Sender.Sender
		}
		if evt.ChatName != "" {
			remote.ChatInfo.Name = &evt.ChatName
		}
	}
	_, err := c.login.Ingest(ctx, remote)
	return err
}
