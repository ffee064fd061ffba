package twilio

import (
	"context"
	"errors"

	"github.com/trestle-bridge/trestle/bridgev2"
	"github.com/trestle-bridge/trestle/bridgev2/database"
)

// SMS has no edits, reactions or deletions. With network.unsupported_actions
// "fallback", edits and reactions are sent as readable texts; with
// "refuse", they fail with a sentence. Nothing is ever dropped silently.

// HandleMatrixEdit sends "Edit: <new text>" (fallback) or refuses.
func (c *Client) HandleMatrixEdit(ctx context.Context, edit *bridgev2.MatrixEdit) error {
	if c.conn.cfg.UnsupportedActions == ActionsRefuse {
		return bridgev2.UnsupportedError("SMS messages cannot be edited once sent.")
	}
	remote, err := e164FromID(string(edit.Portal.ID))
	if err != nil {
		return bridgev2.NewError("This chat is not with a phone number.", err)
	}
	text := contentText(edit.NewContent)
	plan, err := c.planText(remote, "Edit: "+text, "", snippet(text))
	if err != nil {
		return err
	}
	_, err = c.sendParts(ctx, "edit:"+string(edit.Event.ID), "", plan)
	return err
}

// HandleMatrixReaction sends `Reacted 👍 to "<snippet>"` (fallback) or
// refuses.
func (c *Client) HandleMatrixReaction(ctx context.Context, reaction *bridgev2.MatrixReaction) (*bridgev2.MatrixReactionResponse, error) {
	if c.conn.cfg.UnsupportedActions == ActionsRefuse {
		return nil, bridgev2.UnsupportedError("Reactions cannot be sent as SMS.")
	}
	text := "Reacted " + reaction.Emoji + " to " + quoted(targetSnippet(reaction.Target))
	if err := c.sendNotice(ctx, reaction.Portal, "react:"+string(reaction.Event.ID), text); err != nil {
		return nil, err
	}
	return &bridgev2.MatrixReactionResponse{}, nil
}

// HandleMatrixReactionRemove sends `Removed reaction 👍 from "<snippet>"`
// (fallback) or refuses.
func (c *Client) HandleMatrixReactionRemove(ctx context.Context, removal *bridgev2.MatrixReactionRemove) error {
	if c.conn.cfg.UnsupportedActions == ActionsRefuse {
		return bridgev2.UnsupportedError("Reactions cannot be removed over SMS.")
	}
	var target *database.Message
	if r := removal.Target; r != nil {
		msg, err := c.conn.bridge.DB.Messages.GetPart(ctx, c.loginID, r.MessageID, r.MessagePartID)
		if err != nil && !errors.Is(err, database.ErrNotFound) {
			return bridgev2.RetriableError("Could not read the message mapping.", err)
		}
		target = msg
	}
	emoji := ""
	if removal.Target != nil {
		emoji = removal.Target.Emoji
	}
	text := "Removed reaction " + emoji + " from " + quoted(targetSnippet(target))
	return c.sendNotice(ctx, removal.Portal, "unreact:"+string(removal.Event.ID), text)
}

// HandleMatrixRedaction always refuses: a sent SMS cannot be unsent, and
// pretending otherwise would mislead the sender.
func (c *Client) HandleMatrixRedaction(ctx context.Context, redaction *bridgev2.MatrixRedaction) error {
	return bridgev2.UnsupportedError("SMS messages cannot be deleted once sent.")
}

// quoted puts a snippet in quotes, or names the message vaguely.
func quoted(s string) string {
	if s == "" {
		return "a message"
	}
	return "\"" + s + "\""
}

// sendNotice sends a fallback text to the portal's number.
func (c *Client) sendNotice(ctx context.Context, portal *bridgev2.Portal, key, text string) error {
	remote, err := e164FromID(string(portal.ID))
	if err != nil {
		return bridgev2.NewError("This chat is not with a phone number.", err)
	}
	plan, err := c.planText(remote, text, "", "")
	if err != nil {
		return err
	}
	_, err = c.sendParts(ctx, key, "", plan)
	return err
}
