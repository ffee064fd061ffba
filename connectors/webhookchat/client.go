package webhookchat

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"maunium.net/go/mautrix/event"

	"github.com/trestle-bridge/trestle/bridgev2"
	"github.com/trestle-bridge/trestle/bridgev2/networkid"
)

// Client is one logged-in service.
type Client struct {
	network *Network
	login   *bridgev2.UserLogin
	meta    LoginMetadata
}

var (
	_ bridgev2.NetworkClient    = (*Client)(nil)
	_ bridgev2.EditHandler      = (*Client)(nil)
	_ bridgev2.ReactionHandler  = (*Client)(nil)
	_ bridgev2.RedactionHandler = (*Client)(nil)
	_ bridgev2.MediaDownloader  = (*Client)(nil)
)

// Connect implements bridgev2.NetworkClient. The service pushes to the
// bridge, so there is no connection to open; failed sends speak for
// themselves in message statuses.
func (c *Client) Connect(ctx context.Context) {
	c.login.SetState(ctx, bridgev2.BridgeState{StateEvent: bridgev2.StateConnected})
}

// Disconnect implements bridgev2.NetworkClient.
func (c *Client) Disconnect() {}

// LogoutRemote implements bridgev2.NetworkClient. The webhook URL lives in
// the service's own settings, out of the bridge's reach; once the login is
// gone, its deliveries get 404.
func (c *Client) LogoutRemote(context.Context) {}

// send posts an outbound event to the login's service.
func (c *Client) send(ctx context.Context, evt *Event) ([]byte, error) {
	return c.network.post(ctx, c.meta.SendURL, c.meta.Secret, evt)
}

// HandleMatrixMessage implements bridgev2.NetworkClient.
func (c *Client) HandleMatrixMessage(ctx context.Context, msg *bridgev2.MatrixMessage) (*bridgev2.MatrixMessageResponse, error) {
	out := &Event{Type: "message", Chat: string(msg.Portal.ID), Text: msg.Content.Body, IdempotencyKey: msg.SendToken}
	if msg.ReplyTo != nil {
		out.ReplyTo = string(msg.ReplyTo.ID)
	}
	if msg.Content.URL != "" {
		if err := c.attach(out, msg.Content); err != nil {
			return nil, err
		}
	}
	answer, err := c.send(ctx, out)
	if err != nil {
		return nil, err
	}
	var sent struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(answer, &sent)
	if sent.ID == "" {
		// The service took the message but named it nothing; its
		// idempotency key is the one ID both sides know.
		sent.ID = msg.SendToken
	}
	return &bridgev2.MatrixMessageResponse{Messages: []bridgev2.SentMessage{{ID: networkid.MessageID(sent.ID)}}}, nil
}

// attach turns Matrix media into an attachment the service fetches from
// the bridge's public media URL.
func (c *Client) attach(out *Event, content *event.MessageEventContent) error {
	// Body is the file name, unless FileName is set: then Body is a caption.
	name, mime := content.Body, ""
	out.Text = ""
	if content.FileName != "" && content.FileName != content.Body {
		name, out.Text = content.FileName, content.Body
	}
	if content.Info != nil {
		mime = content.Info.MimeType
	}
	url, err := c.network.bridge.PublicMediaURL(content.URL, mime, name)
	if err != nil {
		return bridgev2.NewError("The attachment has no usable Matrix URL.", err)
	}
	out.Attachment = &Attachment{URL: url, Mime: mime, Name: name}
	return nil
}

// HandleMatrixEdit implements bridgev2.EditHandler.
func (c *Client) HandleMatrixEdit(ctx context.Context, edit *bridgev2.MatrixEdit) error {
	_, err := c.send(ctx, &Event{Type: "edit", Chat: string(edit.Portal.ID), Target: string(edit.Target.ID),
		Text: edit.NewContent.Body, IdempotencyKey: string(edit.Event.ID)})
	return err
}

// HandleMatrixReaction implements bridgev2.ReactionHandler.
func (c *Client) HandleMatrixReaction(ctx context.Context, r *bridgev2.MatrixReaction) (*bridgev2.MatrixReactionResponse, error) {
	_, err := c.send(ctx, &Event{Type: "reaction", Chat: string(r.Portal.ID), Target: string(r.Target.ID),
		Emoji: r.Emoji, IdempotencyKey: string(r.Event.ID)})
	return nil, err
}

// HandleMatrixReactionRemove implements bridgev2.ReactionHandler.
func (c *Client) HandleMatrixReactionRemove(ctx context.Context, r *bridgev2.MatrixReactionRemove) error {
	_, err := c.send(ctx, &Event{Type: "reaction_remove", Chat: string(r.Portal.ID), Target: string(r.Target.MessageID),
		Emoji: r.Target.Emoji, IdempotencyKey: string(r.Event.ID)})
	return err
}

// HandleMatrixRedaction implements bridgev2.RedactionHandler.
func (c *Client) HandleMatrixRedaction(ctx context.Context, r *bridgev2.MatrixRedaction) error {
	_, err := c.send(ctx, &Event{Type: "delete", Chat: string(r.Portal.ID), Target: string(r.Target.ID),
		IdempotencyKey: string(r.Event.ID)})
	return err
}

// DownloadMedia implements bridgev2.MediaDownloader: attachments are
// fetched from the URL the service gave, refusing early what is too large
// for the bridge (which also stops reading at its limit).
func (c *Client) DownloadMedia(ctx context.Context, ref *bridgev2.MediaRef) (io.ReadCloser, *bridgev2.MediaInfo, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ref.URL, nil)
	if err != nil || !isHTTP(ref.URL) {
		return nil, nil, bridgev2.NewError("The attachment URL is not a valid http(s) URL.", err)
	}
	resp, err := c.network.do(req)
	if err != nil {
		return nil, nil, err
	}
	if limit := c.network.bridge.Config.Bridge.MaxMediaSize; resp.ContentLength > limit {
		resp.Body.Close()
		return nil, nil, bridgev2.NewError(fmt.Sprintf("The attachment is larger than the bridge's limit of %d MB.", limit>>20), bridgev2.ErrMediaTooLarge)
	}
	// The service's word over its file host's guess.
	mime := cmp.Or(ref.MimeType, resp.Header.Get("Content-Type"))
	return resp.Body, &bridgev2.MediaInfo{MimeType: mime, Filename: ref.Filename, Size: resp.ContentLength}, nil
}

// ResolveIdentifier implements bridgev2.NetworkClient: any chat ID is the
// DM with the user of that ID.
func (c *Client) ResolveIdentifier(ctx context.Context, identifier string) (*bridgev2.ResolvedIdentifier, error) {
	identifier = strings.TrimSpace(identifier)
	if identifier == "" {
		return nil, bridgev2.NewError("Give the service's chat ID to start a chat with.", nil)
	}
	user := ghostID(c.login.ID, identifier)
	name, err := c.userName(ctx, user)
	if err != nil {
		return nil, err
	}
	return &bridgev2.ResolvedIdentifier{
		UserID: user, UserInfo: &bridgev2.UserInfo{Name: &name},
		Chat:     networkid.PortalKey{ID: networkid.PortalID(identifier), Receiver: c.login.ID},
		ChatInfo: &bridgev2.ChatInfo{IsDM: true, OtherUser: user},
	}, nil
}

// GetChatInfo implements bridgev2.NetworkClient. Inbound messages and
// ResolveIdentifier carry chat info already, so this is a fallback: a DM
// by the rule of ResolveIdentifier, with the chat_name last received.
func (c *Client) GetChatInfo(ctx context.Context, portal *bridgev2.Portal) (*bridgev2.ChatInfo, error) {
	info := &bridgev2.ChatInfo{IsDM: true, OtherUser: ghostID(portal.Receiver, string(portal.ID))}
	name, err := c.network.bridge.DB.KV.Get(ctx, nameKey("chat", string(portal.Receiver)+"/"+string(portal.ID)))
	if err != nil {
		return nil, err
	}
	if name != "" {
		info.Name = &name
	}
	return info, nil
}

// GetUserInfo implements bridgev2.NetworkClient.
func (c *Client) GetUserInfo(ctx context.Context, ghost *bridgev2.Ghost) (*bridgev2.UserInfo, error) {
	name, err := c.userName(ctx, ghost.ID)
	if err != nil {
		return nil, err
	}
	return &bridgev2.UserInfo{Name: &name}, nil
}

// userName is the name the service last sent for a user, or the user's ID.
func (c *Client) userName(ctx context.Context, user networkid.UserID) (string, error) {
	name, err := c.network.bridge.DB.KV.Get(ctx, nameKey("user", string(user)))
	if name == "" {
		_, name, _ = strings.Cut(string(user), ".")
	}
	return name, err
}
