package twilio

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"time"

	conversations "github.com/twilio/twilio-go/rest/conversations/v1"

	"github.com/trestle-bridge/trestle/bridgev2"
	"github.com/trestle-bridge/trestle/bridgev2/networkid"
)

// catchUpGroups journals the phones' group texts of this login sent since
// floor, oldest first per group, as their webhooks would have: the groups
// the login has a portal for, and those created since floor (a phone may
// have started one while the bridge was away). Conversations traffic is
// not in the message log the one-to-one catch-up reads. Each group costs
// one listing of its newest texts, and one of its participants when one
// of them is new to the journal. The account's list of Conversations may
// be one another login read less than maxAge ago (see recentFetches). It
// returns how many texts were new, and when the listing it read started:
// a group created after that is not in it, so the watermark must not pass
// it.
func (c *Client) catchUpGroups(ctx context.Context, floor time.Time, maxAge time.Duration) (int, time.Time, error) {
	listed := c.conn.now()
	portals, err := c.conn.bridge.DB.Portals.GetAllForReceiver(ctx, c.loginID)
	if err != nil {
		return 0, listed, err
	}
	known := map[string]bool{}
	for _, p := range portals {
		if isGroupPortal(p.ID) {
			known[string(p.ID)] = true
		}
	}
	creds := c.bgRest.creds
	key := accountKey(creds.AccountSID, creds.User+":"+creds.Pass)
	convs, listed, err := c.conn.groups.get(key, c.conn.now, maxAge, func() ([]conversations.ConversationsV1Conversation, error) {
		return c.bgRest.listConversations(ctx)
	})
	if err != nil {
		return 0, listed, err
	}
	journalled := 0
	for i := range convs {
		cv := &convs[i]
		sid := deref(cv.Sid)
		if !conversationSIDPattern.MatchString(sid) || (!known[sid] && convTime(cv.DateCreated).Before(floor)) {
			continue
		}
		msgs, err := c.bgRest.recentConvMessages(ctx, sid, recentGroupMessages)
		if err != nil {
			return journalled, listed, err
		}
		slices.Reverse(msgs)
		var fresh []conversations.ConversationsV1ConversationMessage
		for j := range msgs {
			m := &msgs[j]
			if convTime(m.DateCreated).Before(floor) || deref(m.Author) == c.own {
				continue
			}
			// What came by webhook, or was caught up before, is skipped
			// before the group's participants are read.
			if seen, err := c.login.HasIngested(ctx, networkid.MessageID(deref(m.Sid))); err != nil {
				return journalled, listed, err
			} else if !seen {
				fresh = append(fresh, *m)
			}
		}
		if len(fresh) == 0 {
			continue
		}
		parts, err := c.bgRest.listParticipants(ctx, sid)
		if err != nil {
			return journalled, listed, err
		}
		if c.groupOwner(parts) != c {
			continue
		}
		phones, _ := c.groupPhones(parts)
		msgs = fresh
		for j := range msgs {
			m := &msgs[j]
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
				return journalled, listed, err
			}
			if res == bridgev2.Journalled {
				journalled++
				c.log.Info().Str("message_sid", string(evt.ID)).Str("conversation_sid", sid).Msg("Recovered a group text from Twilio")
			}
		}
	}
	return journalled, listed, nil
}

// groupCatchUpFatal reports whether a failed group catch-up must fail the
// whole catch-up (and so hold the watermark back): only when Twilio may
// answer on a retry. A refusal (an account without Conversations, say)
// must not stop one-to-one texts from being caught up.
func groupCatchUpFatal(err error) bool {
	var be *bridgev2.Error
	return !errors.As(err, &be) || be.Retriable
}
