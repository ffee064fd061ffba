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
// Fallback texts are sent like messages: with the event's send token, their
// parts recorded in the journal, and reconciled by FindSent.

// HandleMatrixEdit sends "Edit: <new text>" (fallback) or refuses.
func (c *Client) HandleMatrixEdit(ctx context.Context, edit *bridgev2.MatrixEdit) error {
	plan, err := c.planEdit(edit)
	if err != nil {
		return err
	}
	return c.sendPlan(ctx, &edit.Outgoing, plan)
}

// HandleMatrixReaction sends `Reacted 👍 to "<snippet>"` (fallback) or
// refuses.
func (c *Client) HandleMatrixReaction(ctx context.Context, reaction *bridgev2.MatrixReaction) (*bridgev2.MatrixReactionResponse, error) {
	plan, err := c.planReaction(reaction)
	if err != nil {
		return nil, err
	}
	return &bridgev2.MatrixReactionResponse{}, c.sendPlan(ctx, &reaction.Outgoing, plan)
}

// HandleMatrixReactionRemove sends `Removed reaction 👍 from "<snippet>"`
// (fallback) or refuses.
func (c *Client) HandleMatrixReactionRemove(ctx context.Context, removal *bridgev2.MatrixReactionRemove) error {
	plan, err := c.planReactionRemove(ctx, removal)
	if err != nil {
		return err
	}
	return c.sendPlan(ctx, &removal.Outgoing, plan)
}

// HandleMatrixRedaction always refuses: a sent SMS cannot be unsent, and
// pretending otherwise would mislead the sender.
func (c *Client) HandleMatrixRedaction(ctx context.Context, redaction *bridgev2.MatrixRedaction) error {
	return bridgev2.UnsupportedError("SMS messages cannot be deleted once sent.")
}

func (c *Client) planEdit(edit *bridgev2.MatrixEdit) (*sendPlan, error) {
	if c.conn.cfg.UnsupportedActions == ActionsRefuse {
		return nil, bridgev2.UnsupportedError("SMS messages cannot be edited once sent.")
	}
	text := contentText(edit.NewContent)
	return c.planFallback(edit.Portal, "Edit: "+text, snippet(text))
}

func (c *Client) planReaction(reaction *bridgev2.MatrixReaction) (*sendPlan, error) {
	if c.conn.cfg.UnsupportedActions == ActionsRefuse {
		return nil, bridgev2.UnsupportedError("Reactions cannot be sent as SMS.")
	}
	return c.planFallback(reaction.Portal, "Reacted "+reaction.Emoji+" to "+quoted(targetSnippet(reaction.Target)), "")
}

func (c *Client) planReactionRemove(ctx context.Context, removal *bridgev2.MatrixReactionRemove) (*sendPlan, error) {
	if c.conn.cfg.UnsupportedActions == ActionsRefuse {
		return nil, bridgev2.UnsupportedError("Reactions cannot be removed over SMS.")
	}
	var target *database.Message
	emoji := ""
	if r := removal.Target; r != nil {
		// The reaction's message is read while planning, so the text (and
		// what FindSent looks for) is the same on every attempt.
		msg, err := c.conn.bridge.DB.Messages.GetPart(ctx, c.loginID, r.MessageID, r.MessagePartID)
		if err != nil && !errors.Is(err, database.ErrNotFound) {
			return nil, bridgev2.RetriableError("Could not read the message mapping.", err)
		}
		target, emoji = msg, r.Emoji
	}
	return c.planFallback(removal.Portal, "Removed reaction "+emoji+" from "+quoted(targetSnippet(target)), "")
}

// planFallback plans a fallback text to the portal's number or group.
func (c *Client) planFallback(portal *bridgev2.Portal, text, snip string) (*sendPlan, error) {
	target, err := chatTarget(portal)
	if err != nil {
		return nil, err
	}
	return c.planText(target, text, outPart{}, snip)
}

// quoted puts a snippet in quotes, or names the message vaguely.
func quoted(s string) string {
	if s == "" {
		return "a message"
	}
	return "\"" + s + "\""
}
