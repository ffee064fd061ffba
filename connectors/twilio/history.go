package twilio

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	openapi "github.com/twilio/twilio-go/rest/api/v2010"

	"github.com/trestle-bridge/trestle/bridgev2"
	"github.com/trestle-bridge/trestle/bridgev2/networkid"
)

// logSkewMargin is how far behind the start of a complete listing the
// catch-up watermark stays: the watermark is compared with Twilio's
// timestamps, which come from another clock, and a message Twilio stamped a
// little before the listing may not be listed yet. The next catch-up lists
// that margin again; what it finds twice is a duplicate and costs nothing.
const logSkewMargin = 5 * time.Minute

// catchUpPageSize is the page size of catch-up listings, Twilio's largest,
// so that a busy number costs as few calls as possible.
const catchUpPageSize = 1000

// Twilio's list directions.
const (
	directionInbound = "inbound"
)

// parseTwilioTime reads Twilio's RFC 2822 timestamps.
func parseTwilioTime(s *string) time.Time {
	if s == nil || *s == "" {
		return time.Time{}
	}
	for _, layout := range []string{time.RFC1123Z, time.RFC1123, time.RFC3339} {
		if t, err := time.Parse(layout, *s); err == nil {
			return t
		}
	}
	return time.Time{}
}

// messageTime is when a listed message happened: sent, else created.
func messageTime(m *openapi.ApiV2010Message) time.Time {
	if t := parseTwilioTime(m.DateSent); !t.IsZero() {
		return t
	}
	return parseTwilioTime(m.DateCreated)
}

// noteIngestFailed records a webhook that could not be journalled and asks
// for a catch-up, which recovers it from the message log.
func (c *Client) noteIngestFailed() {
	c.wmMu.Lock()
	c.failGen++
	c.wmMu.Unlock()
	c.wake()
}

// saveWatermark persists the watermark if it moved (or always, with force,
// as the connection loop ends). Only the leader writes the login: a
// standby's copy may be older than the stored row, so its watermark waits
// until it leads.
func (c *Client) saveWatermark(ctx context.Context, force bool) {
	if !c.conn.bridge.Leading() {
		return
	}
	c.wmMu.Lock()
	wm, dirty := c.watermark, c.wmDirty
	c.wmDirty = false
	c.wmMu.Unlock()
	if !dirty && !force {
		return
	}
	c.persistMu.Lock()
	defer c.persistMu.Unlock()
	if c.retired || !wm.After(c.meta.CatchUpSince) {
		return
	}
	c.meta.CatchUpSince = wm
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := c.login.Save(ctx); err != nil {
		c.log.Warn().Err(err).Msg("Could not save the catch-up watermark")
		c.wmMu.Lock()
		c.wmDirty = true
		c.wmMu.Unlock()
	}
}

// catchUp journals every inbound message of the number logged since the
// watermark, oldest first, exactly as its webhook would have: Twilio never
// resends a webhook that failed, and one that never reached the bridge (a
// proxy, DNS or TLS failure) leaves no trace here, so the log is the only
// way to recover it. Messages journalled before come back as duplicates
// and cost nothing. The connection loop runs it at connect, after a failed
// webhook and every network.reconcile_interval. Only a catch-up moves the
// watermark, and only once the whole span since it was listed and
// journalled: a webhook that does arrive proves nothing about the ones
// before it.
// Group texts, which are not in that log, are caught up after them (see
// catchUpGroups).
//
// A routine catch-up (start-up, the periodic reconcile) may use the list of
// groups another login of the account read moments ago. One that follows a
// failed or missing webhook (fresh, or a failure not yet caught up) lists
// them itself: the texts it looks for may be in a group made since.
func (c *Client) catchUp(ctx context.Context, fresh bool) error {
	select {
	case c.catchUpSem <- struct{}{}:
		defer func() { <-c.catchUpSem }()
	case <-ctx.Done():
		return ctx.Err()
	}
	c.wmMu.Lock()
	since, gen := c.watermark, c.failGen
	var groupsAge time.Duration
	if !fresh && gen == c.resolvedGen {
		groupsAge = min(sharedFetchTTL, c.conn.cfg.ReconcileInterval/2)
	}
	c.wmMu.Unlock()
	started := c.conn.now()
	if since.IsZero() {
		// Never caught up (a login stored without a watermark): start now,
		// rather than importing the account's whole history.
		since = started
	}
	// Twilio's timestamps have whole seconds.
	floor := since.Truncate(time.Second)
	msgs, complete, err := c.listInboundSince(ctx, since, floor)
	if err != nil {
		return err
	}
	if !complete {
		// Newest first: what is missing is the oldest part of the span,
		// which must reach Matrix first. Nothing is journalled, and the
		// watermark stays, so the next attempt lists it all again.
		return fmt.Errorf("twilio message log since %s is longer than %d pages of %d; not caught up", since.UTC().Format(time.RFC3339), maxListPages, catchUpPageSize)
	}
	var inbound []openapi.ApiV2010Message
	for _, m := range msgs {
		if deref(m.Direction) == directionInbound && !messageTime(&m).Before(floor) {
			inbound = append(inbound, m)
		}
	}
	// The list is newest first; journal oldest first, keeping list order
	// among messages of the same second.
	slices.Reverse(inbound)
	slices.SortStableFunc(inbound, func(a, b openapi.ApiV2010Message) int {
		return messageTime(&a).Compare(messageTime(&b))
	})
	journalled := 0
	for i := range inbound {
		m := &inbound[i]
		// Most of what a reconcile lists came by webhook or was listed
		// before; skipping it saves listing its media again.
		if known, err := c.login.HasIngested(ctx, networkid.MessageID(deref(m.Sid))); err != nil {
			return err
		} else if known {
			continue
		}
		evt, err := c.eventFromLog(ctx, m)
		if err != nil {
			return err
		}
		if evt == nil {
			continue
		}
		res, err := c.login.Ingest(ctx, evt)
		if err != nil {
			return err
		}
		if res == bridgev2.Journalled {
			journalled++
			c.log.Info().Str("message_sid", string(evt.ID)).Str("remote_id", string(evt.Portal.ID)).Msg("Recovered a message from Twilio's log")
		}
	}
	covered := started
	if n, listed, err := c.catchUpGroups(ctx, floor, groupsAge); err != nil {
		if groupCatchUpFatal(err) {
			return err
		}
		c.log.Warn().Err(err).Msg("Could not catch up on group texts; one-to-one texts are caught up")
	} else {
		journalled += n
		if listed.Before(started) {
			// The account's shared listing of groups is older than this
			// catch-up.
			covered = listed
		}
	}
	// Everything logged from since until the listings started is journalled
	// now, give or take the other clock.
	c.wmMu.Lock()
	for _, wm := range []time.Time{since, covered.Add(-logSkewMargin)} {
		if wm.After(c.watermark) {
			c.watermark, c.wmDirty = wm, true
		}
	}
	c.resolvedGen, c.caughtUp = gen, true
	c.wmMu.Unlock()
	c.saveWatermark(ctx, false)
	c.catchUps.Add(1)
	c.log.Debug().Int("listed", len(inbound)).Int("journalled", journalled).Msg("Caught up with Twilio's message log")
	return nil
}

// behind reports whether the journal may lack messages Twilio logged
// earlier: no catch-up has completed since this client started (the bridge
// may have been down), a webhook failed since the last one, or the webhook
// path has been silent for a while (see quietGap).
func (c *Client) behind() bool {
	c.wmMu.Lock()
	defer c.wmMu.Unlock()
	return !c.caughtUp || c.failGen != c.resolvedGen || c.conn.now().Sub(c.lastHeard) >= c.conn.quietGap()
}

// noteHeard records that an incoming text's webhook (one-to-one or group)
// just came through. Only those count: a catch-up or a status callback
// says nothing about texts whose webhooks were lost since the last one.
func (c *Client) noteHeard() {
	c.wmMu.Lock()
	c.lastHeard = c.conn.now()
	c.wmMu.Unlock()
}

// quietGap is how long the webhook path may be silent (no incoming
// webhook) before the next one runs a catch-up first. Texts whose webhooks were lost to a proxy,
// DNS or TLS failure leave the bridge hearing nothing; when the path comes
// back, the first webhook must not overtake them. A number that texts
// often stays under the gap and pays nothing; one that texts rarely pays
// one listing per text.
func (c *Connector) quietGap() time.Duration {
	return min(c.cfg.ReconcileInterval, time.Minute)
}

// Bounds of the catch-up a webhook runs before its own message.
const (
	catchUpFirstTimeout = 5 * time.Second
	// catchUpFirstPause is how long webhooks stop trying after such a
	// catch-up failed (Twilio's API is in trouble): they must not each
	// wait for the same failure.
	catchUpFirstPause = 30 * time.Second
)

// catchUpFirst runs a catch-up before a webhook's message is journalled,
// if the client is behind: messages whose webhooks failed (while the
// bridge was down, say) were logged before this one, and must reach Matrix
// before it. The webhook's own message is in the log too, so the catch-up
// journals it in its place and the webhook finds it a duplicate.
// Concurrent webhooks share one catch-up. If it fails, the message is
// journalled anyway: out of order is better than late or lost.
func (c *Client) catchUpFirst(ctx context.Context) {
	// A standby catches up too: it may be the only process up (a leader
	// restarting after a kill waits for its old lease to run out), and what
	// it journals now is delivered in journal order when it takes over.
	if !c.behind() {
		return
	}
	c.firstMu.Lock()
	if running := c.firstRunning; running != nil {
		c.firstMu.Unlock()
		select {
		case <-running:
		case <-ctx.Done():
		}
		return
	}
	if now := c.conn.now(); now.Sub(c.firstFailed) < catchUpFirstPause {
		c.firstMu.Unlock()
		return
	}
	running := make(chan struct{})
	c.firstRunning = running
	c.firstMu.Unlock()

	ctx, cancel := context.WithTimeout(ctx, catchUpFirstTimeout)
	var err error
	if c.behind() {
		err = c.catchUp(ctx, true)
	}
	cancel()
	c.firstMu.Lock()
	c.firstRunning = nil
	if err != nil {
		c.firstFailed = c.conn.now()
	}
	c.firstMu.Unlock()
	close(running)
	if err != nil {
		c.log.Warn().Err(err).Msg("Could not catch up before journalling a webhook; earlier messages whose webhooks failed may arrive after it")
	}
}

// eventFromLog turns an inbound message of the log into the event its
// webhook would have produced (same ID, so the core deduplicates), or nil
// for entries that are not texts between two numbers.
func (c *Client) eventFromLog(ctx context.Context, m *openapi.ApiV2010Message) (*bridgev2.RemoteEvent, error) {
	sid := deref(m.Sid)
	from, err := parseLoggedSender(deref(m.From))
	if err != nil || !messageSIDPattern.MatchString(sid) {
		c.log.Warn().Str("message_sid", sid).Msg("Skipping a logged message that is not from a phone number, short code or sender ID")
		return nil, nil
	}
	media, err := c.logMedia(ctx, m)
	if err != nil {
		return nil, err
	}
	body := sanitizeBody(deref(m.Body))
	optOut := ""
	if !from.whatsapp {
		optOut = optOutFromBody(body)
	}
	if err := c.recordOptOut(ctx, optOut, from); err != nil {
		return nil, err
	}
	return &bridgev2.RemoteEvent{
		Kind:      bridgev2.RemoteMessage,
		ID:        networkid.MessageID(sid),
		Portal:    c.portalKey(from),
		Sender:    bridgev2.EventSender{Sender: from.userID()},
		Timestamp: messageTime(m),
		Parts:     withOptOutNotice(chatParts(from, body, media), optOut),
		ChatInfo:  c.inboundChatInfo(ctx, from, messageTime(m)),
	}, nil
}

// logMedia lists a logged MMS's attachments as media references.
func (c *Client) logMedia(ctx context.Context, m *openapi.ApiV2010Message) ([]mediaItem, error) {
	if n, _ := strconv.Atoi(deref(m.NumMedia)); n <= 0 {
		return nil, nil
	}
	list, err := c.bgRest.listMedia(ctx, deref(m.Sid))
	if err != nil {
		return nil, err
	}
	items := make([]mediaItem, 0, len(list))
	for _, md := range list {
		uri := strings.TrimSuffix(deref(md.Uri), ".json")
		if uri == "" {
			continue
		}
		items = append(items, mediaItem{URL: c.conn.apiRoot() + uri, ContentType: deref(md.ContentType)})
	}
	return items, nil
}

// apiRoot is the base the API's relative URIs hang off.
func (c *Connector) apiRoot() string {
	if c.cfg.apiBase != nil {
		return c.cfg.apiBase.String()
	}
	return "https://api.twilio.com"
}

// FetchHistory returns the last network.backfill_limit messages between the
// login's number and the portal's, both directions, oldest first, that came
// before the live ones. Live messages are those still pending in the inbound
// journal: the one whose arrival created the room is being delivered while
// this runs, and the core delivers them after the backfill. History ends at
// the oldest of them, so nothing newer is imported either: Twilio logs a
// text before posting its webhook, so a second text sent right after the
// first is often in the log, but not yet journalled, while the room is being
// created; backfilled, it would reach Matrix before the first. It arrives
// live instead, by its webhook or, if that fails, by catch-up.
func (c *Client) FetchHistory(ctx context.Context, portal *bridgev2.Portal) ([]*bridgev2.RemoteEvent, error) {
	limit := c.conn.cfg.BackfillLimit
	if limit <= 0 {
		return nil, nil
	}
	k, err := contactFromPortalID(portal.ID)
	if err != nil || c.ownAddress(k) == "" {
		return nil, nil
	}
	pageSize := min(limit, 1000)
	in, _, err := c.rest.listMessages(ctx, (&openapi.ListMessageParams{}).SetFrom(k.address()).SetTo(c.ownAddress(k)), pageSize, limit, time.Time{})
	if err != nil {
		return nil, err
	}
	outParams := (&openapi.ListMessageParams{}).SetTo(k.address())
	if c.serviceSID == "" || k.whatsapp {
		outParams.SetFrom(c.ownAddress(k))
	}
	out, _, err := c.rest.listMessages(ctx, outParams, pageSize, limit*2, time.Time{})
	if err != nil {
		return nil, err
	}
	// in is newest first: the oldest live message is the last pending one.
	live := -1
	for i := len(in) - 1; i >= 0; i-- {
		if deref(in[i].Direction) != directionInbound {
			continue
		}
		pending, err := c.login.IsPendingMessage(ctx, networkid.MessageID(deref(in[i].Sid)))
		if err != nil {
			return nil, err
		}
		if pending {
			live = i
			break
		}
	}
	var liveAt time.Time
	if live >= 0 {
		liveAt = messageTime(&in[live])
	}
	all := make([]openapi.ApiV2010Message, 0, len(in)+len(out))
	for i, m := range in {
		// Older than the oldest live message: listed after it.
		if deref(m.Direction) == directionInbound && (live < 0 || i > live) {
			all = append(all, m)
		}
	}
	for _, m := range out {
		if c.isOwnOutbound(&m, k) && (live < 0 || !messageTime(&m).After(liveAt)) {
			all = append(all, m)
		}
	}
	slices.SortStableFunc(all, func(a, b openapi.ApiV2010Message) int {
		if d := messageTime(&b).Compare(messageTime(&a)); d != 0 {
			return d
		}
		return cmp.Compare(deref(b.Sid), deref(a.Sid))
	})
	if len(all) > limit {
		all = all[:limit]
	}
	slices.Reverse(all)
	events := make([]*bridgev2.RemoteEvent, 0, len(all))
	for i := range all {
		m := &all[i]
		media, err := c.logMedia(ctx, m)
		if err != nil {
			return nil, err
		}
		sender := bridgev2.EventSender{Sender: k.userID()}
		if deref(m.Direction) != directionInbound {
			sender = bridgev2.EventSender{IsFromMe: true, Sender: networkid.UserID(c.loginID)}
		}
		parts := chatParts(k, sanitizeBody(deref(m.Body)), media)
		if len(parts) == 0 {
			continue
		}
		events = append(events, &bridgev2.RemoteEvent{
			Kind:      bridgev2.RemoteMessage,
			ID:        networkid.MessageID(deref(m.Sid)),
			Portal:    portal.PortalKey,
			Sender:    sender,
			Timestamp: messageTime(m),
			Parts:     parts,
		})
	}
	return events, nil
}

// isOwnOutbound reports whether a listed message was sent by this login to
// k: from its number (or WhatsApp sender), or through its Messaging
// Service, and not a send that never left Twilio.
func (c *Client) isOwnOutbound(m *openapi.ApiV2010Message, k contact) bool {
	dir := deref(m.Direction)
	if !strings.HasPrefix(dir, "outbound") {
		return false
	}
	switch deref(m.Status) {
	case "failed", "canceled":
		return false
	}
	return c.fromThisLogin(m, k)
}

// fromThisLogin reports whether a listed message to k came from this
// login: from its address for k's channel, or, for SMS, through its
// Messaging Service.
func (c *Client) fromThisLogin(m *openapi.ApiV2010Message, k contact) bool {
	if deref(m.From) == c.ownAddress(k) {
		return true
	}
	return !k.whatsapp && c.serviceSID != "" && deref(m.MessagingServiceSid) == c.serviceSID
}

// listInboundSince lists the messages logged to the login's number, to its
// WhatsApp sender if it has one and to its Messaging Service's RCS senders,
// since a time, newest first, and whether every list was complete (see
// listMessages).
func (c *Client) listInboundSince(ctx context.Context, since, floor time.Time) ([]openapi.ApiV2010Message, bool, error) {
	var to []string
	if !c.whatsappOnly {
		to = append(to, c.own)
	}
	if c.whatsapp != "" {
		to = append(to, whatsappPrefix+c.whatsapp)
	}
	to = append(to, c.rcsSenders(ctx)...)
	var all []openapi.ApiV2010Message
	for _, addr := range to {
		params := (&openapi.ListMessageParams{}).SetTo(addr).SetDateSentAfter(since.UTC())
		msgs, complete, err := c.bgRest.listMessages(ctx, params, catchUpPageSize, 0, floor)
		if err != nil || !complete {
			return nil, complete, err
		}
		all = append(all, msgs...)
	}
	if len(to) > 1 {
		slices.SortStableFunc(all, func(a, b openapi.ApiV2010Message) int { return messageTime(&b).Compare(messageTime(&a)) })
	}
	return all, true, nil
}
