package twilio

import (
	"context"
	"errors"
	"slices"
	"time"

	openapi "github.com/twilio/twilio-go/rest/api/v2010"

	"github.com/trestle-bridge/trestle/bridgev2"
	"github.com/trestle-bridge/trestle/bridgev2/database"
	"github.com/trestle-bridge/trestle/bridgev2/networkid"
)

// planFor is what an Outgoing event became (or becomes) on Twilio; nil
// for events that are never sent (deletions).
func (c *Client) planFor(ctx context.Context, out bridgev2.OutgoingEvent) (*sendPlan, error) {
	switch e := out.(type) {
	case *bridgev2.MatrixMessage:
		return c.planMessage(e)
	case *bridgev2.MatrixEdit:
		return c.planEdit(e)
	case *bridgev2.MatrixReaction:
		return c.planReaction(e)
	case *bridgev2.MatrixReactionRemove:
		return c.planReactionRemove(ctx, e)
	default:
		return nil, nil
	}
}

// FindSent looks in Twilio's log for the messages an interrupted send of
// out created after since, beyond those its Progress already records, and
// records each it finds. It reports whether every part is there; if not,
// the core sends again and the send resumes after the recorded parts.
//
// Messages are matched on recipient, sender and exact body (and whether an
// attachment was sent), oldest first, skipping messages the bridge already
// mapped to other events. The bound: a create that timed out after Twilio
// accepted it, but that does not yet appear in the list (Twilio's log lags
// by moments) may be sent twice; and a queued message (no date_sent yet) is
// only found if it is among the 50 newest messages to that recipient.
func (c *Client) FindSent(ctx context.Context, out bridgev2.OutgoingEvent, since time.Time) (bool, error) {
	plan, err := c.planFor(ctx, out)
	if err != nil || plan == nil {
		// What cannot be planned was never sent.
		return false, nil
	}
	progress := out.Base().Progress
	find := c.findParts
	if plan.conversation != "" {
		find = c.findGroupParts
	}
	found, err := find(ctx, plan, progress.Sent(), since)
	if err != nil {
		return false, err
	}
	for _, m := range found {
		if err := progress.Record(ctx, m); err != nil {
			return false, err
		}
	}
	return progress.Count() >= len(plan.parts), nil
}

// findParts finds, in the log, the parts of plan after the already sent
// ones, in order, created at or after since.
func (c *Client) findParts(ctx context.Context, plan *sendPlan, already []bridgev2.SentMessage, since time.Time) ([]bridgev2.SentMessage, error) {
	if len(already) >= len(plan.parts) {
		return nil, nil
	}
	msgs, err := c.recentOutbound(ctx, plan.remote, since)
	if err != nil {
		return nil, err
	}
	candidates := make([]sentCandidate, len(msgs))
	for i := range msgs {
		m := &msgs[i]
		candidates[i] = sentCandidate{
			sid: deref(m.Sid), created: parseTwilioTime(m.DateCreated), body: deref(m.Body),
			hasMedia: deref(m.NumMedia) != "" && deref(m.NumMedia) != "0",
		}
	}
	return c.matchParts(ctx, plan, already, since, candidates)
}

// sentCandidate is a message of the login's that may be a part of an
// interrupted send.
type sentCandidate struct {
	sid      string
	created  time.Time
	body     string
	hasMedia bool
}

// matchParts matches the parts of plan after the already sent ones, in
// order, to candidates (oldest first) created at or after since.
func (c *Client) matchParts(ctx context.Context, plan *sendPlan, already []bridgev2.SentMessage, since time.Time, candidates []sentCandidate) ([]bridgev2.SentMessage, error) {
	used := map[string]bool{}
	after := since
	for _, s := range already {
		used[string(s.ID)] = true
		if s.Timestamp.After(after) {
			after = s.Timestamp
		}
	}
	var found []bridgev2.SentMessage
	for i := len(already); i < len(plan.parts); i++ {
		part := plan.parts[i]
		match := -1
		for j := range candidates {
			m := &candidates[j]
			if used[m.sid] || m.created.Before(after) || m.body != part.Body || m.hasMedia != part.hasMedia() {
				continue
			}
			if mapped, err := c.isMapped(ctx, m.sid); err != nil {
				return nil, err
			} else if mapped {
				used[m.sid] = true
				continue
			}
			match = j
			break
		}
		if match < 0 {
			break
		}
		m := &candidates[match]
		used[m.sid] = true
		after = m.created
		found = append(found, plan.sentMessage(i, m.sid, after))
	}
	return found, nil
}

// recentOutbound lists this login's messages to remote created since then,
// oldest first: those sent since that day (Twilio filters by day), plus the
// newest page without a date filter, for queued ones without a date_sent.
func (c *Client) recentOutbound(ctx context.Context, remote string, since time.Time) ([]openapi.ApiV2010Message, error) {
	base := func() *openapi.ListMessageParams {
		p := (&openapi.ListMessageParams{}).SetTo(remote)
		if c.serviceSID == "" {
			p.SetFrom(c.own)
		}
		return p
	}
	dated, _, err := c.rest.listMessages(ctx, base().SetDateSentAfter(since.UTC()), 200, 0, time.Time{})
	if err != nil {
		return nil, err
	}
	newest, _, err := c.rest.listMessages(ctx, base(), 50, 50, time.Time{})
	if err != nil {
		return nil, err
	}
	type entry struct {
		m   openapi.ApiV2010Message
		pos int
	}
	seen := map[string]bool{}
	var entries []entry
	for i, m := range append(dated, newest...) {
		sid := deref(m.Sid)
		if seen[sid] || parseTwilioTime(m.DateCreated).Before(since) {
			continue
		}
		if deref(m.Direction) == directionInbound ||
			(deref(m.From) != c.own && (c.serviceSID == "" || deref(m.MessagingServiceSid) != c.serviceSID)) {
			continue
		}
		seen[sid] = true
		entries = append(entries, entry{m, i})
	}
	// Oldest first; within one second, the lists' newest-first order.
	slices.SortStableFunc(entries, func(a, b entry) int {
		if d := parseTwilioTime(a.m.DateCreated).Compare(parseTwilioTime(b.m.DateCreated)); d != 0 {
			return d
		}
		return b.pos - a.pos
	})
	out := make([]openapi.ApiV2010Message, len(entries))
	for i, e := range entries {
		out[i] = e.m
	}
	return out, nil
}

// isMapped reports whether a message SID is already bridged (to another
// Matrix event), so a second identical text is not mistaken for the first.
func (c *Client) isMapped(ctx context.Context, sid string) (bool, error) {
	_, err := c.conn.bridge.DB.Messages.GetFirstPart(ctx, c.loginID, networkid.MessageID(sid))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, database.ErrNotFound):
		return false, nil
	default:
		return false, bridgev2.RetriableError("Could not read the message mapping.", err)
	}
}
