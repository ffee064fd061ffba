package webhookchat

import (
	"cmp"
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
		status := http.StatusInternalServerError
		if errors.Is(err, bridgev2.ErrShuttingDown) {
			status = http.StatusServiceUnavailable
		}
		reply(w, status, "The bridge could not store the event; deliver it again.")
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

// ingest hands an event to the core. The names it carries are stored first,
// because the core asks GetUserInfo and GetChatInfo for them only when it
// delivers the event, possibly after a restart; a change of name is passed
// on to a room or ghost that already exists.
func (c *Client) ingest(ctx context.Context, evt *Event, remote *bridgev2.RemoteEvent) error {
	if remote.Kind == bridgev2.RemoteTyping {
		_, err := c.login.Ingest(ctx, remote)
		return err
	}
	kv := c.network.bridge.DB.KV
	userKey, chatKey := nameKey("user", string(remote.Sender.Sender)), nameKey("chat", string(c.login.ID)+"/"+evt.Chat)
	if oldSender, err := kv.Get(ctx, userKey); err != nil {
		return err
	} else if evt.SenderName != "" && evt.SenderName != oldSender {
		if err := kv.Set(ctx, userKey, evt.SenderName); err != nil {
			return err
		}
	}
	oldChat, err := kv.Get(ctx, chatKey)
	if err != nil {
		return err
	}
	chatRenamed := evt.ChatName != "" && evt.ChatName != oldChat
	if remote.Kind == bridgev2.RemoteMessage { // the kind of event that creates rooms
		remote.ChatInfo = &bridgev2.ChatInfo{}
		if evt.Chat == evt.Sender {
			remote.ChatInfo.IsDM, remote.ChatInfo.OtherUser = true, remote.Sender.Sender
		}
		if name := cmp.Or(evt.ChatName, oldChat); name != "" {
			remote.ChatInfo.Name = &name
		}
	}
	if chatRenamed {
		// Ordered before the event on the portal's lane; skipped by the core
		// if the room does not exist yet, which remote.ChatInfo then names.
		rename := &bridgev2.RemoteEvent{Kind: bridgev2.RemoteChatInfo, Portal: remote.Portal,
			Timestamp: remote.Timestamp, ChatInfo: &bridgev2.ChatInfo{Name: &evt.ChatName}}
		if _, err := c.login.Ingest(ctx, rename); err != nil {
			return err
		}
	}
	if _, err := c.login.Ingest(ctx, remote); err != nil {
		return err
	}
	if chatRenamed {
		// Only now: had the rename not been journalled, a redelivery must try again.
		if err := kv.Set(ctx, chatKey, evt.ChatName); err != nil {
			return err
		}
	}
	if evt.SenderName != "" {
		c.renameGhost(ctx, remote.Sender.Sender, evt.SenderName)
	}
	return nil
}

// renameGhost applies a display name to a ghost that is already on Matrix
// under another name. A ghost that is not gets its name from GetUserInfo
// when the core registers it. There is no journalled event for profile
// changes, so a failure here is only logged: the next event retries.
func (c *Client) renameGhost(ctx context.Context, id networkid.UserID, name string) {
	b := c.network.bridge
	// The stored row, not the shared Ghost, whose fields the core changes under its own lock.
	if row, err := b.DB.Ghosts.Get(ctx, id); err != nil || !row.Registered || row.Name == name {
		return
	}
	ghost, err := b.GetGhost(ctx, id)
	if err == nil {
		err = ghost.UpdateInfo(ctx, c.login, &bridgev2.UserInfo{Name: &name})
	}
	if err != nil {
		c.login.Log.Warn().Err(err).Str("ghost", string(id)).Msg("Could not rename ghost")
	}
}

// nameKey is where a remote name is kept in the bridge's key-value table.
func nameKey(kind, id string) string { return "webhookchat:" + kind + "_name:" + id }
