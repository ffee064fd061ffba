package matrixtest

import (
	"context"
	"fmt"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// DM opens a direct chat with user the way Element does: a private room
// created with is_direct, the user invited, the room recorded in m.direct.
// It returns once user has joined, so a bridge bot is ready to answer.
func (c *Client) DM(ctx context.Context, user id.UserID) (id.RoomID, error) {
	resp, err := c.Matrix.CreateRoom(ctx, &mautrix.ReqCreateRoom{
		Preset:   "trusted_private_chat",
		IsDirect: true,
		Invite:   []id.UserID{user},
	})
	if err != nil {
		return "", fmt.Errorf("%s creating a DM with %s: %w", c.UserID, user, err)
	}
	if err := c.addDirect(ctx, user, resp.RoomID); err != nil {
		return resp.RoomID, err
	}
	if _, err := c.WaitForMembership(ctx, resp.RoomID, user, event.MembershipJoin); err != nil {
		return resp.RoomID, fmt.Errorf("%s's DM with %s: the invitee did not join: %w", c.UserID, user, err)
	}
	return resp.RoomID, nil
}

// addDirect records roomID as a DM with user in the m.direct account data.
func (c *Client) addDirect(ctx context.Context, user id.UserID, roomID id.RoomID) error {
	direct := event.DirectChatsEventContent{}
	// A missing m.direct is the normal state of a new account.
	_ = c.Matrix.GetAccountData(ctx, event.AccountDataDirectChats.Type, &direct)
	direct[user] = append(direct[user], roomID)
	if err := c.Matrix.SetAccountData(ctx, event.AccountDataDirectChats.Type, direct); err != nil {
		return fmt.Errorf("%s recording the DM %s with %s in m.direct: %w", c.UserID, roomID, user, err)
	}
	return nil
}

// Join joins a room, typically one the client was invited to.
func (c *Client) Join(ctx context.Context, roomID id.RoomID) error {
	if _, err := c.Matrix.JoinRoomByID(ctx, roomID); err != nil {
		return fmt.Errorf("%s joining %s: %w", c.UserID, roomID, err)
	}
	return nil
}

// Leave leaves a room.
func (c *Client) Leave(ctx context.Context, roomID id.RoomID) error {
	if _, err := c.Matrix.LeaveRoom(ctx, roomID); err != nil {
		return fmt.Errorf("%s leaving %s: %w", c.UserID, roomID, err)
	}
	return nil
}

// Send sends a plain text message (m.text).
func (c *Client) Send(ctx context.Context, roomID id.RoomID, text string) (id.EventID, error) {
	return c.SendMessage(ctx, roomID, &event.MessageEventContent{MsgType: event.MsgText, Body: text})
}

// SendNotice sends an m.notice, the message type bots use.
func (c *Client) SendNotice(ctx context.Context, roomID id.RoomID, text string) (id.EventID, error) {
	return c.SendMessage(ctx, roomID, &event.MessageEventContent{MsgType: event.MsgNotice, Body: text})
}

// SendEmote sends an m.emote, what "/me waves" produces.
func (c *Client) SendEmote(ctx context.Context, roomID id.RoomID, text string) (id.EventID, error) {
	return c.SendMessage(ctx, roomID, &event.MessageEventContent{MsgType: event.MsgEmote, Body: text})
}

// SendHTML sends a formatted text message with plain as its body and html as
// its formatted_body.
func (c *Client) SendHTML(ctx context.Context, roomID id.RoomID, plain, html string) (id.EventID, error) {
	return c.SendMessage(ctx, roomID, &event.MessageEventContent{
		MsgType:       event.MsgText,
		Body:          plain,
		Format:        event.FormatHTML,
		FormattedBody: html,
	})
}

// SendReply sends a text message replying to the event to.
func (c *Client) SendReply(ctx context.Context, roomID id.RoomID, to id.EventID, text string) (id.EventID, error) {
	content := &event.MessageEventContent{MsgType: event.MsgText, Body: text}
	content.RelatesTo = (&event.RelatesTo{}).SetReplyTo(to)
	return c.SendMessage(ctx, roomID, content)
}

// Edit replaces the text of the message target with newText (an m.replace
// relation carrying m.new_content, with the "* " fallback body).
func (c *Client) Edit(ctx context.Context, roomID id.RoomID, target id.EventID, newText string) (id.EventID, error) {
	content := &event.MessageEventContent{MsgType: event.MsgText, Body: newText}
	content.SetEdit(target)
	return c.SendMessage(ctx, roomID, content)
}

// SendImage uploads data and sends it as an m.image.
func (c *Client) SendImage(ctx context.Context, roomID id.RoomID, data []byte, contentType, fileName string) (id.EventID, error) {
	return c.SendMedia(ctx, roomID, event.MsgImage, data, contentType, fileName)
}

// SendMedia uploads data and sends it as a media message of msgType
// (m.image, m.file, m.audio or m.video) with its size and MIME type.
func (c *Client) SendMedia(ctx context.Context, roomID id.RoomID, msgType event.MessageType, data []byte, contentType, fileName string) (id.EventID, error) {
	up, err := c.Matrix.UploadBytesWithName(ctx, data, contentType, fileName)
	if err != nil {
		return "", fmt.Errorf("%s uploading %s (%d bytes): %w", c.UserID, fileName, len(data), err)
	}
	return c.SendMessage(ctx, roomID, &event.MessageEventContent{
		MsgType:  msgType,
		Body:     fileName,
		FileName: fileName,
		URL:      up.ContentURI.CUString(),
		Info:     &event.FileInfo{MimeType: contentType, Size: len(data)},
	})
}

// React sends a reaction (an m.annotation) with key, usually an emoji, to
// the event target.
func (c *Client) React(ctx context.Context, roomID id.RoomID, target id.EventID, key string) (id.EventID, error) {
	resp, err := c.Matrix.SendReaction(ctx, roomID, target, key)
	if err != nil {
		return "", fmt.Errorf("%s reacting %q to %s: %w", c.UserID, key, target, err)
	}
	return resp.EventID, nil
}

// Redact redacts (deletes) the event target, with an optional reason.
func (c *Client) Redact(ctx context.Context, roomID id.RoomID, target id.EventID, reason string) (id.EventID, error) {
	resp, err := c.Matrix.RedactEvent(ctx, roomID, target, mautrix.ReqRedact{Reason: reason})
	if err != nil {
		return "", fmt.Errorf("%s redacting %s: %w", c.UserID, target, err)
	}
	return resp.EventID, nil
}

// MarkRead sends a public read receipt (m.read) for eventID.
func (c *Client) MarkRead(ctx context.Context, roomID id.RoomID, eventID id.EventID) error {
	if err := c.Matrix.SendReceipt(ctx, roomID, eventID, event.ReceiptTypeRead, nil); err != nil {
		return fmt.Errorf("%s marking %s read: %w", c.UserID, eventID, err)
	}
	return nil
}

// SetTyping starts or stops the typing notification in a room.
func (c *Client) SetTyping(ctx context.Context, roomID id.RoomID, typing bool) error {
	if _, err := c.Matrix.UserTyping(ctx, roomID, typing, 30*time.Second); err != nil {
		return fmt.Errorf("%s setting typing=%v: %w", c.UserID, typing, err)
	}
	return nil
}

// SendMessage sends any m.room.message content.
func (c *Client) SendMessage(ctx context.Context, roomID id.RoomID, content *event.MessageEventContent) (id.EventID, error) {
	return c.SendEvent(ctx, roomID, event.EventMessage, content)
}

// SendEvent sends a message event of any type with any JSON content.
func (c *Client) SendEvent(ctx context.Context, roomID id.RoomID, evtType event.Type, content any) (id.EventID, error) {
	sendType, sendContent, err := c.sealFor(ctx, roomID, evtType, content)
	if err != nil {
		return "", err
	}
	resp, err := c.Matrix.SendMessageEvent(ctx, roomID, sendType, sendContent)
	if err != nil {
		return "", fmt.Errorf("%s sending %s to %s: %w", c.UserID, evtType.Type, roomID, err)
	}
	return resp.EventID, nil
}
