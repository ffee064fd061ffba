package twilio

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	conversations "github.com/twilio/twilio-go/rest/conversations/v1"

	"github.com/trestle-bridge/trestle/bridgev2"
)

// recentGroupMessages bounds what FindSent reads of a group: its newest
// messages, which an interrupted send is among.
const recentGroupMessages = 50

// sendGroupPlan posts the plan's messages to the group's Conversation as
// the login's number, in order, after those earlier attempts created,
// recording each as soon as Twilio took it. Attachments are uploaded to
// the Conversation Service's media store first.
func (c *Client) sendGroupPlan(ctx context.Context, out *bridgev2.Outgoing, plan *sendPlan) error {
	chatService := ""
	for i := out.Progress.Count(); i < len(plan.parts); i++ {
		part := plan.parts[i]
		params := (&conversations.CreateConversationMessageParams{}).SetAuthor(c.own)
		if out.SendToken != "" {
			params.SetAttributes(groupAttributes(out.SendToken))
		}
		if part.Body != "" {
			params.SetBody(part.Body)
		}
		if part.Upload != nil {
			if chatService == "" {
				conv, err := c.rest.fetchConversation(ctx, plan.conversation)
				if err != nil {
					return err
				}
				if chatService = deref(conv.ChatServiceSid); !chatServiceSIDPattern.MatchString(chatService) {
					return bridgev2.NewError("Twilio did not say where the group's attachments are stored.", nil)
				}
			}
			mediaSID, err := c.uploadAttachment(ctx, chatService, part.Upload)
			if err != nil {
				return err
			}
			params.SetMediaSid(mediaSID)
		}
		if c.limiter != nil {
			if err := c.limiter.Wait(ctx); err != nil {
				return err
			}
		}
		started := c.conn.now()
		m, err := c.rest.createConvMessage(ctx, plan.conversation, params)
		if err != nil {
			var be *bridgev2.Error
			if i > 0 && errors.As(err, &be) && !be.Retriable {
				return bridgev2.NewError(fmt.Sprintf("Only %d of the %d parts of this long message were sent. %s", i, len(plan.parts), bridgev2.HumanMessage(err)), err)
			}
			return err
		}
		created := convTime(m.DateCreated)
		if created.IsZero() {
			created = started
		}
		if err := out.Progress.Record(ctx, plan.sentMessage(i, deref(m.Sid), created)); err != nil {
			return err
		}
		c.log.Debug().Str("message_sid", deref(m.Sid)).Str("conversation_sid", plan.conversation).
			Int("part", i).Int("parts", len(plan.parts)).Msg("Sent group message to Twilio")
	}
	return nil
}

// uploadAttachment fetches a Matrix attachment and stores it in Twilio's
// media store, returning its media SID.
func (c *Client) uploadAttachment(ctx context.Context, chatService string, up *uploadMedia) (string, error) {
	body, _, err := c.conn.bridge.Matrix.Download(ctx, up.MXC)
	if err != nil {
		return "", bridgev2.RetriableError("The attachment could not be fetched from Matrix.", err)
	}
	defer body.Close()
	data, err := io.ReadAll(io.LimitReader(body, maxOutgoingMediaBytes+1))
	if err != nil {
		return "", bridgev2.RetriableError("The attachment could not be fetched from Matrix.", err)
	}
	if len(data) > maxOutgoingMediaBytes {
		return "", bridgev2.NewError("The attachment is larger than 5 MB, the most MMS allows.", nil)
	}
	return c.rest.uploadMedia(ctx, chatService, up.MimeType, up.Filename, data)
}

// findGroupParts finds, among the group's newest messages, the parts of
// plan after the already sent ones that the login's number posted at or
// after since.
func (c *Client) findGroupParts(ctx context.Context, plan *sendPlan, already []bridgev2.SentMessage, since time.Time) ([]bridgev2.SentMessage, error) {
	if len(already) >= len(plan.parts) {
		return nil, nil
	}
	// Conversations times have whole seconds.
	since = since.Truncate(time.Second)
	msgs, err := c.rest.recentConvMessages(ctx, plan.conversation, recentGroupMessages)
	if err != nil {
		return nil, err
	}
	var candidates []sentCandidate
	for i := range msgs {
		m := &msgs[i]
		created := convTime(m.DateCreated)
		if deref(m.Author) != c.own || created.Before(since) {
			continue
		}
		candidates = append(candidates, sentCandidate{
			sid: deref(m.Sid), created: created, body: deref(m.Body),
			hasMedia: m.Media != nil && len(*m.Media) > 0,
		})
	}
	// The list is newest first; matching goes oldest first.
	slices.Reverse(candidates)
	return c.matchParts(ctx, plan, already, since, candidates)
}
