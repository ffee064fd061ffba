package twilio

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"time"

	"github.com/trestle-bridge/trestle/bridgev2"
)

// catchUpGroups journals the phones' group texts of this login sent since
// floor, oldest first per group, as their webhooks would have: the groups
// the login has a portal for, and those created since floor (a phone may
// have started one while the bridge was away). Conversations traffic is
// not in the message log the one-to-one catch-up reads. It returns how
// many texts were new to the journal.
func (c *Client) catchUpGroups(ctx context.Context, floor time.Time) (int, error) {
	portals, err := c.conn.bridge.DB.Portals.GetAllForReceiver(ctx, c.loginID)
	if err != nil {
		return 0, err
	}
	known := map[string]bool{}
	for _, p := range portals {
		if isGroupPortal(p.ID) {
			known[string(p.ID)] = true
		}
	}
	convs, err := c.bgRest.listConversations(ctx)
	if err != nil {
		return 0, err
	}
	journalled := 0
	for i := range convs {
		cv := &convs[i]
		sid := deref(cv.Sid)
		if !conversationSIDPattern.MatchString(sid) || (!known[sid] && convTime(cv.DateCreated).Before(floor)) {
			continue
		}
		parts, err := c.bgRest.listParticipants(ctx, sid)
		if err != nil {
			return journalled, err
		}
		if c.groupOwner(parts) != c {
			continue
		}
		phones, _ := c.groupPhones(parts)
		msgs, err := c.bgRest.recentConvMessages(ctx, sid, recentGroupMessages)
		if err != nil {
			return journalled, err
		}
		slices.Reverse(msgs)
		for j := range msgs {
			m := &msgs[j]
			if convTime(m.DateCreated).Before(floor) {
				continue
			}
			var media []convMedia
			if m.Media != nil && len(*m.Media) > 0 {
				// twilio-go leaves media as decoded JSON; read it back in
				// the webhook's shape.
				raw, _ := json.Marshal(*m.Media)
				if err := json.Unmarshal(raw, &media); err != nil {
					c.log.Warn().Str("message_sid", deref(m.Sid)).Msg("Skipping a group message whose media list is unreadable")
					continue
				}
			}
			evt, err := c.groupEvent(ctx, sid, deref(m.Sid), deref(m.Author), deref(m.Body), deref(cv.ChatServiceSid), media, phones)
			if err != nil {
				c.log.Warn().Err(err).Str("message_sid", deref(m.Sid)).Msg("Skipping a malformed group message")
				continue
			}
			if evt == nil {
				continue
			}
			res, err := c.login.Ingest(ctx, evt)
			if err != nil {
				return journalled, err
			}
			if res == bridgev2.Journalled {
				journalled++
				c.log.Info().Str("message_sid", string(evt.ID)).Str("conversation_sid", sid).Msg("Recovered a group text from Twilio")
			}
		}
	}
	return journalled, nil
}

// groupCatchUpFatal reports whether a failed group catch-up must fail the
// whole catch-up (and so hold the watermark back): only when Twilio may
// answer on a retry. A refusal (an account without Conversations, say)
// must not stop one-to-one texts from being caught up.
func groupCatchUpFatal(err error) bool {
	var be *bridgev2.Error
	return !errors.As(err, &be) || be.Retriable
}
