package twilio

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	openapi "github.com/twilio/twilio-go/rest/api/v2010"

	"github.com/trestle-bridge/trestle/bridgev2"
	"github.com/trestle-bridge/trestle/bridgev2/database"
	"github.com/trestle-bridge/trestle/bridgev2/networkid"
)

// progressTTL is how long the parts already sent of an unfinished send are
// remembered in memory for its retry.
const progressTTL = 24 * time.Hour

// sentPart is one created message.
type sentPart struct {
	SID     string
	Created time.Time
}

// sendProgress is what is known to have been sent of one Matrix event, so
// that a retry (the core's, after a failure on part 3 of 4) sends only what
// is missing.
type sendProgress struct {
	sent []sentPart
	// doubtSince is set when the last attempt failed without telling
	// whether Twilio created the message (a timeout, a 500): the next
	// attempt first looks for it in the log.
	doubtSince time.Time
	touched    time.Time
}

// progressKey identifies a send across the core's retries and restarts.
func progressKey(msg *bridgev2.MatrixMessage) string {
	if msg.SendToken != "" {
		return "token:" + msg.SendToken
	}
	if msg.Event != nil {
		return "event:" + string(msg.Event.ID)
	}
	return ""
}

// takeProgress returns the progress of key (a fresh one if none) and
// forgets stale entries.
func (c *Client) takeProgress(key string) *sendProgress {
	c.pendingMu.Lock()
	defer c.pendingMu.Unlock()
	now := c.conn.now()
	for k, p := range c.pending {
		if now.Sub(p.touched) > progressTTL {
			delete(c.pending, k)
		}
	}
	if p := c.pending[key]; p != nil && key != "" {
		return p
	}
	return &sendProgress{}
}

// keepProgress remembers an unfinished send for its retry.
func (c *Client) keepProgress(key string, p *sendProgress) {
	if key == "" {
		return
	}
	c.pendingMu.Lock()
	defer c.pendingMu.Unlock()
	p.touched = c.conn.now()
	c.pending[key] = p
}

// dropProgress forgets a send that finished or failed for good.
func (c *Client) dropProgress(key string) {
	c.pendingMu.Lock()
	defer c.pendingMu.Unlock()
	delete(c.pending, key)
}

// sendParts creates the plan's messages in order, resuming after the parts
// an earlier attempt already sent, and reconciling first if that attempt
// ended in doubt. Each create waits for the login's rate limiter.
func (c *Client) sendParts(ctx context.Context, key, sendToken string, plan *sendPlan) ([]sentPart, error) {
	prog := c.takeProgress(key)
	if !prog.doubtSince.IsZero() {
		found, err := c.findParts(ctx, plan, prog.sent, prog.doubtSince.Add(-time.Minute))
		if err != nil {
			c.keepProgress(key, prog)
			return nil, err
		}
		prog.sent = append(prog.sent, found...)
		prog.doubtSince = time.Time{}
	}
	for i := len(prog.sent); i < len(plan.parts); i++ {
		if c.limiter != nil {
			if err := c.limiter.Wait(ctx); err != nil {
				c.keepProgress(key, prog)
				return nil, err
			}
		}
		started := c.conn.now()
		m, err := c.rest.createMessage(ctx, c.createParams(plan.remote, plan.parts[i], sendToken))
		if err != nil {
			var be *bridgev2.Error
			if errors.As(err, &be) && be.Retriable || ctx.Err() != nil {
				if re := asRestError(err); re != nil && re.Ambiguous || ctx.Err() != nil {
					prog.doubtSince = started
				}
				c.keepProgress(key, prog)
				return nil, err
			}
			c.dropProgress(key)
			if i > 0 {
				return nil, bridgev2.NewError(fmt.Sprintf("Only %d of the %d parts of this long message were sent. %s", i, len(plan.parts), bridgev2.HumanMessage(err)), err)
			}
			return nil, err
		}
		created := parseTwilioTime(m.DateCreated)
		if created.IsZero() {
			created = started
		}
		prog.sent = append(prog.sent, sentPart{SID: deref(m.Sid), Created: created})
		c.log.Debug().Str("message_sid", deref(m.Sid)).Str("remote_id", idFromE164(plan.remote)).
			Int("part", i).Int("parts", len(plan.parts)).Msg("Sent message to Twilio")
	}
	c.dropProgress(key)
	return prog.sent, nil
}

// FindSent looks in Twilio's log for the messages an interrupted send of
// msg created after since. It returns them when all parts are there; when
// only the first few are, it remembers those (so the next
// HandleMatrixMessage sends the rest) and returns nil.
//
// Messages are matched on recipient, sender and exact body (and whether an
// attachment was sent), oldest first, skipping messages the bridge already
// mapped to other events. The bound: a create that timed out after Twilio
// accepted it, but that does not yet appear in the list (Twilio's log lags
// by moments) may be sent twice; and a queued message (no date_sent yet) is
// only found if it is among the 50 newest messages to that recipient.
func (c *Client) FindSent(ctx context.Context, msg *bridgev2.MatrixMessage, since time.Time) (*bridgev2.MatrixMessageResponse, error) {
	plan, err := c.planMessage(msg)
	if err != nil {
		// A message that cannot be planned was never sent.
		return nil, nil
	}
	key := progressKey(msg)
	prog := c.takeProgress(key)
	found, err := c.findParts(ctx, plan, prog.sent, since)
	if err != nil {
		return nil, err
	}
	prog.sent = append(prog.sent, found...)
	prog.doubtSince = time.Time{}
	if len(prog.sent) == len(plan.parts) {
		c.dropProgress(key)
		return plan.response(prog.sent), nil
	}
	if len(prog.sent) > 0 {
		c.keepProgress(key, prog)
	}
	return nil, nil
}

// findParts finds, in the log, the parts of plan after the already sent
// ones, in order, created at or after since.
func (c *Client) findParts(ctx context.Context, plan *sendPlan, already []sentPart, since time.Time) ([]sentPart, error) {
	if len(already) >= len(plan.parts) {
		return nil, nil
	}
	candidates, err := c.recentOutbound(ctx, plan.remote, since)
	if err != nil {
		return nil, err
	}
	used := map[string]bool{}
	after := since
	for _, s := range already {
		used[s.SID] = true
		if s.Created.After(after) {
			after = s.Created
		}
	}
	var found []sentPart
	for i := len(already); i < len(plan.parts); i++ {
		part := plan.parts[i]
		match := -1
		for j := range candidates {
			m := &candidates[j]
			sid := deref(m.Sid)
			created := parseTwilioTime(m.DateCreated)
			hasMedia := deref(m.NumMedia) != "" && deref(m.NumMedia) != "0"
			if used[sid] || created.Before(after) || deref(m.Body) != part.Body || hasMedia != (part.MediaURL != "") {
				continue
			}
			if mapped, err := c.isMapped(ctx, sid); err != nil {
				return nil, err
			} else if mapped {
				used[sid] = true
				continue
			}
			match = j
			break
		}
		if match < 0 {
			break
		}
		m := &candidates[match]
		used[deref(m.Sid)] = true
		after = parseTwilioTime(m.DateCreated)
		found = append(found, sentPart{SID: deref(m.Sid), Created: after})
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
	dated, err := c.rest.listMessages(ctx, base().SetDateSentAfter(since.UTC()), 200, 0)
	if err != nil {
		return nil, err
	}
	newest, err := c.rest.listMessages(ctx, base(), 50, 50)
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
