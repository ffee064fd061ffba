package webhookchat

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/trestle-bridge/trestle/bridgev2"
	"github.com/trestle-bridge/trestle/bridgev2/networkid"
)

// Client is one logged-in service. The service pushes to the bridge, so
// there is no connection to keep, and its webhook URL lives in the
// service's own settings: the core's defaults for connecting and logging
// out fit.
type Client struct {
	network *Network
	login   *bridgev2.UserLogin
	meta    LoginMetadata
}

var (
	_ bridgev2.IdentifierResolver = (*Client)(nil)
	_ bridgev2.UserInfoProvider   = (*Client)(nil)
	_ bridgev2.EditHandler        = (*Client)(nil)
	_ bridgev2.ReactionHandler    = (*Client)(nil)
	_ bridgev2.RedactionHandler   = (*Client)(nil)
	_ bridgev2.MediaDownloader    = (*Client)(nil)
)

// send posts an outbound event for a Matrix event to the login's service.
func (c *Client) send(ctx context.Context, out *bridgev2.Outgoing, evt *Event) ([]byte, error) {
	evt.Chat, evt.IdempotencyKey = string(out.Portal.ID), out.SendToken
	return c.network.post(ctx, c.meta.SendURL, c.meta.Secret, evt)
}

// HandleMatrixMessage implements bridgev2.NetworkClient.
func (c *Client) HandleMatrixMessage(ctx context.Context, msg *bridgev2.MatrixMessage) (*bridgev2.MatrixMessageResponse, error) {
	out := &Event{Type: "message", Text: msg.Content.Body}
	if msg.ReplyTo != nil {
		out.ReplyTo = string(msg.ReplyTo.ID)
	}
	if content := msg.Content; content.URL != "" {
		mime := ""
		if content.Info != nil {
			mime = content.Info.MimeType
		}
		url, err := c.network.bridge.PublicMediaURL(content.URL, mime, content.GetFileName())
		if err != nil {
			return nil, bridgev2.NewError("The attachment has no usable Matrix URL.", err)
		}
		out.Text, out.Attachment = content.GetCaption(), &Attachment{URL: url, Mime: mime, Name: content.GetFileName()}
	}
	answer, err := c.send(ctx, &msg.Outgoing, out)
	if err != nil {
		return nil, err
	}
	var sent struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(answer, &sent)
	// A service that names the message nothing still knows its idempotency key.
	id := networkid.MessageID(cmp.Or(sent.ID, msg.SendToken))
	return &bridgev2.MatrixMessageResponse{Messages: []bridgev2.SentMessage{{ID: id}}}, nil
}

// HandleMatrixEdit implements bridgev2.EditHandler.
func (c *Client) HandleMatrixEdit(ctx context.Context, edit *bridgev2.MatrixEdit) error {
	_, err := c.send(ctx, &edit.Outgoing, &Event{Type: "edit", Target: string(edit.Target.ID), Text: edit.NewContent.Body})
	return err
}

// HandleMatrixReaction implements bridgev2.ReactionHandler.
func (c *Client) HandleMatrixReaction(ctx context.Context, r *bridgev2.MatrixReaction) (*bridgev2.MatrixReactionResponse, error) {
	_, err := c.send(ctx, &r.Outgoing, &Event{Type: "reaction", Target: string(r.Target.ID), Emoji: r.Emoji})
	return nil, err
}

// HandleMatrixReactionRemove implements bridgev2.ReactionHandler.
func (c *Client) HandleMatrixReactionRemove(ctx context.Context, r *bridgev2.MatrixReactionRemove) error {
	_, err := c.send(ctx, &r.Outgoing, &Event{Type: "reaction_remove", Target: string(r.Target.MessageID), Emoji: r.Target.Emoji})
	return err
}

// HandleMatrixRedaction implements bridgev2.RedactionHandler.
func (c *Client) HandleMatrixRedaction(ctx context.Context, r *bridgev2.MatrixRedaction) error {
	_, err := c.send(ctx, &r.Outgoing, &Event{Type: "delete", Target: string(r.Target.ID)})
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

// ResolveIdentifier implements bridgev2.IdentifierResolver: any chat ID is
// the DM with the user of that ID.
func (c *Client) ResolveIdentifier(ctx context.Context, identifier string) (*bridgev2.ResolvedIdentifier, error) {
	identifier = strings.TrimSpace(identifier)
	if identifier == "" {
		return nil, bridgev2.NewError("Give the service's chat ID to start a chat with.", nil)
	}
	user := ghostID(c.login.ID, identifier)
	return &bridgev2.ResolvedIdentifier{
		UserID:   user,
		Chat:     networkid.PortalKey{ID: networkid.PortalID(identifier), Receiver: c.login.ID},
		ChatInfo: &bridgev2.ChatInfo{IsDM: true, OtherUser: user},
	}, nil
}

// GetUserInfo implements bridgev2.UserInfoProvider: until the service
// gives a sender_name, a ghost is called by the service's user ID.
func (c *Client) GetUserInfo(_ context.Context, ghost *bridgev2.Ghost) (*bridgev2.UserInfo, error) {
	_, name, _ := strings.Cut(string(ghost.ID), ".")
	return &bridgev2.UserInfo{Name: &name}, nil
}
