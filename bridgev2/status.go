package bridgev2

import (
	"context"
	"slices"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/bridgev2/database"
)

// Telling senders what became of their messages costs the homeserver: a
// status event is a room event like the message itself. So by default a
// plain success is shown by the bridge bot's read receipt (an ephemeral
// event the homeserver stores no room event for), one per portal for a
// burst of successes, and only failures put events in the room. Status
// events (com.beeper.message_send_status, which Element does not show)
// are for clients that want every state.
//
// Outcomes go through a journal of their own (the report_outbox table): a
// report is written in the commit that decides it and deleted once shown,
// so a crash between the two delays what the sender sees but never loses
// it.

// pendingReport is an outcome waiting on a portal's status lane.
type pendingReport struct {
	*database.Report
	// retrying is a transient "will retry" status, never journalled.
	retrying bool
	// persisted says a report_outbox row is to be deleted once shown.
	persisted bool
}

// rank orders reports of one event: a newer state replaces an older one.
func (r *pendingReport) rank() int {
	if r.retrying {
		return -1
	}
	return r.State.Rank()
}

// reportShows says what a report puts in the room under the config.
func (b *Bridge) reportShows(r *pendingReport) (status, receipt, notice bool) {
	cfg := &b.Config.Bridge
	switch {
	case r.retrying:
		return cfg.MessageStatusEvents, false, false
	case r.State == database.DeliveryFailed:
		return cfg.MessageStatusEvents, false, cfg.FailureNotices
	case r.State == database.DeliverySent:
		return cfg.MessageStatusEvents, cfg.DeliveryReceipts && !r.DeliveryWillFollow, false
	default:
		return cfg.MessageStatusEvents, cfg.DeliveryReceipts, false
	}
}

// newReport describes the outcome of a Matrix event in this portal.
func (p *Portal) newReport(evt *event.Event, state database.Delivery) *database.Report {
	return &database.Report{EventID: evt.ID, RoomID: p.RoomID(), Portal: p.PortalKey, State: state,
		EventTS: time.UnixMilli(evt.Timestamp)}
}

// failureReport describes a failure of a Matrix event.
func (p *Portal) failureReport(evt *event.Event, err error) *database.Report {
	r := p.newReport(evt, database.DeliveryFailed)
	r.Message, r.Reason, r.InternalError = HumanMessage(err), string(statusReason(err)), err.Error()
	return r
}

// putReport journals r inside a write if it shows anything, and reports
// whether it did; queue it with queueReport once the write committed.
func (p *Portal) putReport(ctx context.Context, tx database.Execer, r *database.Report) (bool, error) {
	status, receipt, notice := p.Bridge.reportShows(&pendingReport{Report: r})
	if r.RoomID == "" || !status && !receipt && !notice {
		return false, nil
	}
	return true, p.Bridge.DB.Reports.Put(ctx, tx, r)
}

// queueReport hands a committed report to the status lane.
func (p *Portal) queueReport(r *database.Report) {
	p.enqueueReport(&pendingReport{Report: r, persisted: true})
}

// reportRetrying tells the sender, where status events are on, that a
// message is being retried.
func (p *Portal) reportRetrying(evt *event.Event, err error) {
	if !p.Bridge.Config.Bridge.MessageStatusEvents || p.RoomID() == "" {
		return
	}
	p.enqueueReport(&pendingReport{Report: p.failureReport(evt, err), retrying: true})
}

// enqueueReport queues a report on the status lane, where it replaces a
// queued one of the same event that it is further along than: when the
// homeserver is slow, the sender sees the newest state for one event.
func (p *Portal) enqueueReport(r *pendingReport) {
	p.statusMu.Lock()
	if old := p.pendingReports[r.EventID]; old != nil && old.rank() > r.rank() {
		p.statusMu.Unlock()
		return
	}
	if p.pendingReports == nil {
		p.pendingReports = make(map[id.EventID]*pendingReport)
	}
	p.pendingReports[r.EventID] = r
	push := p.scheduleFlushLocked(0)
	p.statusMu.Unlock()
	push()
}

// scheduleFlushLocked makes sure a flush of the pending reports runs after
// delay (now, for zero), without piling up flushes: one is queued on the
// lane at a time, and the portal keeps one timer, for the earliest time
// asked. statusMu is held, so an immediate push is returned for the caller
// to run once it unlocked.
func (p *Portal) scheduleFlushLocked(delay time.Duration) (pushNow func()) {
	if delay <= 0 {
		if p.flushScheduled {
			return func() {}
		}
		p.flushScheduled = true
		return func() {
			if !p.statuses.push(p.flushReports) {
				// Stopping: the outbox replays what is left at the next start.
				p.statusMu.Lock()
				p.flushScheduled = false
				p.statusMu.Unlock()
			}
		}
	}
	at := time.Now().Add(delay)
	if p.flushTimer != nil && !p.flushAt.After(at) {
		return func() {}
	}
	if p.flushTimer != nil {
		p.flushTimer.Stop()
	}
	p.flushAt = at
	p.flushTimer = time.AfterFunc(delay, func() {
		p.statusMu.Lock()
		p.flushTimer = nil
		push := p.scheduleFlushLocked(0)
		p.statusMu.Unlock()
		push()
	})
	return func() {}
}

// flushReports shows every pending report of the portal: status events and
// notices per message, and one read receipt on the newest message whose
// success it shows. Reports the homeserver could not take are kept and
// tried again with backoff; shown ones leave the outbox in one write.
func (p *Portal) flushReports() {
	b := p.Bridge
	ctx := p.Log.WithContext(b.ctx)
	p.statusMu.Lock()
	batch := make([]*pendingReport, 0, len(p.pendingReports))
	for _, r := range p.pendingReports {
		batch = append(batch, r)
	}
	p.pendingReports = nil
	p.flushScheduled = false
	p.statusMu.Unlock()
	slices.SortFunc(batch, func(a, c *pendingReport) int { return a.EventTS.Compare(c.EventTS) })

	var shown, failed []*pendingReport
	var receipt *pendingReport
	var receiptCovers []*pendingReport
	for _, r := range batch {
		status, rcpt, notice := b.reportShows(r)
		ok := true
		if status {
			ok = p.sendStatusEvent(ctx, r) && ok
		}
		if notice && ok {
			ok = p.sendFailureNotice(ctx, r)
		}
		switch {
		case !ok:
			failed = append(failed, r)
		case rcpt:
			receiptCovers = append(receiptCovers, r)
			if receipt == nil || !r.EventTS.Before(receipt.EventTS) {
				receipt = r
			}
		default:
			shown = append(shown, r)
		}
	}
	if receipt != nil {
		// A receipt covers every earlier message, and one that would move
		// backwards (a later message was receipted first) is not sent. In a
		// busy portal receipts wait for receiptInterval since the last one,
		// so that a burst costs the homeserver a few, not one per text.
		if wait := time.Until(p.receiptSentAt.Add(receiptInterval)); wait > 0 && !receipt.EventTS.Before(p.lastReceipt) {
			p.deferReports(receiptCovers, wait)
		} else if receipt.EventTS.Before(p.lastReceipt) {
			shown = append(shown, receiptCovers...)
		} else if err := b.Matrix.MarkRead(ctx, b.Matrix.BotUserID(), receipt.RoomID, receipt.EventID); err != nil {
			p.Log.Warn().Err(err).Stringer("event_id", receipt.EventID).Msg("Could not send the delivery receipt")
			failed = append(failed, receiptCovers...)
		} else {
			b.metrics.OutcomeShown("receipt")
			p.lastReceipt, p.receiptSentAt = receipt.EventTS, time.Now()
			shown = append(shown, receiptCovers...)
		}
	}
	p.forgetReports(ctx, shown)
	if len(failed) > 0 {
		p.retryReports(failed)
	} else {
		p.reportAttempts = 0
	}
}

// receiptInterval is the least time between two of the bot's receipts in
// one portal. A receipt costs a homeserver about what a message does (it
// wakes every member's sync), and a chat where texts come more than a few
// seconds apart still gets one per text. At one second, 1,000 texts over 50
// busy portals cost 998 receipts on Dendrite; at five, 274, and the
// outbound rate rose (BENCHMARKS.md). A sender waits at most that long for
// "delivered" on a text that follows another.
const receiptInterval = 5 * time.Second

// deferReports puts reports back in the queue to be shown after wait,
// unless a newer report replaced them meanwhile.
func (p *Portal) deferReports(reports []*pendingReport, wait time.Duration) {
	p.statusMu.Lock()
	defer p.statusMu.Unlock()
	if p.pendingReports == nil {
		p.pendingReports = make(map[id.EventID]*pendingReport)
	}
	for _, r := range reports {
		if old := p.pendingReports[r.EventID]; old == nil || old.rank() < r.rank() {
			p.pendingReports[r.EventID] = r
		}
	}
	p.scheduleFlushLocked(wait)()
}

// forgetReports deletes shown reports from the outbox.
func (p *Portal) forgetReports(ctx context.Context, shown []*pendingReport) {
	b := p.Bridge
	if !slices.ContainsFunc(shown, func(r *pendingReport) bool { return r.persisted }) {
		return
	}
	err := b.DB.Write(ctx, func(ctx context.Context, tx database.Execer) error {
		for _, r := range shown {
			if r.persisted {
				if err := b.DB.Reports.Delete(ctx, tx, r.EventID, r.State); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		// Shown twice after the next start is the worst that can happen.
		p.Log.Warn().Err(err).Msg("Could not clear shown message outcomes")
	}
}

// retryReports puts reports the homeserver refused back in the queue, to be
// tried again after a backoff, unless a newer report replaced them.
func (p *Portal) retryReports(failed []*pendingReport) {
	p.statusMu.Lock()
	defer p.statusMu.Unlock()
	p.reportAttempts++
	if p.pendingReports == nil {
		p.pendingReports = make(map[id.EventID]*pendingReport)
	}
	for _, r := range failed {
		if old := p.pendingReports[r.EventID]; old == nil || old.rank() < r.rank() {
			p.pendingReports[r.EventID] = r
		}
	}
	p.scheduleFlushLocked(backoff(p.reportAttempts))()
}

// sendStatusEvent sends the com.beeper.message_send_status event of a
// report, and reports whether the homeserver took it (or refused it for
// good, which no retry would change).
func (p *Portal) sendStatusEvent(ctx context.Context, r *pendingReport) bool {
	b := p.Bridge
	content := &event.BeeperMessageStatusEventContent{
		Network:   b.Network.Info().ID,
		RelatesTo: event.RelatesTo{Type: event.RelReference, EventID: r.EventID},
		Status:    event.MessageStatusSuccess,
	}
	switch {
	case r.retrying:
		content.Status, content.Reason = event.MessageStatusRetriable, event.MessageStatusReason(r.Reason)
		content.Message, content.InternalError = r.Message+" Retrying.", r.InternalError
	case r.State == database.DeliveryFailed:
		content.Status, content.Reason = event.MessageStatusFail, event.MessageStatusReason(r.Reason)
		content.Message, content.InternalError = r.Message, r.InternalError
	case r.State == database.DeliverySent && r.DeliveryWillFollow:
		// An empty, non-nil list tells clients a delivery receipt will follow.
		content.DeliveredToUsers = &[]id.UserID{}
	case r.State == database.DeliveryDelivered || r.State == database.DeliveryRead:
		delivered := []id.UserID{}
		if p.OtherUserID != "" {
			delivered = append(delivered, b.Matrix.GhostUserID(p.OtherUserID))
		}
		content.DeliveredToUsers = &delivered
		content.Message = r.Message
	}
	_, err := b.Matrix.SendMessage(ctx, b.Matrix.BotUserID(), r.RoomID, event.BeeperMessageStatus, content, "", time.Time{})
	if err != nil {
		p.Log.Warn().Err(err).Stringer("event_id", r.EventID).Msg("Could not send message status")
		return !isRetriable(err)
	}
	b.metrics.OutcomeShown("status")
	return true
}

// sendFailureNotice tells the room in plain words that a message was not
// bridged, or bridged but not delivered: not every client shows message
// status events.
func (p *Portal) sendFailureNotice(ctx context.Context, r *pendingReport) bool {
	b := p.Bridge
	prefix := "⚠️ Your message was not bridged: "
	if r.Undelivered {
		prefix = "⚠️ Your message was not delivered: "
	}
	content := &event.MessageEventContent{MsgType: event.MsgNotice, Body: prefix + r.Message}
	content.RelatesTo = (&event.RelatesTo{}).SetReplyTo(r.EventID)
	// The transaction ID makes a notice shown again after a restart the
	// same event.
	_, err := b.Matrix.SendMessage(ctx, b.Matrix.BotUserID(), r.RoomID, event.EventMessage, content, txnID("failure-notice", string(r.EventID)), time.Time{})
	if err != nil {
		p.Log.Warn().Err(err).Stringer("event_id", r.EventID).Msg("Could not send failure notice")
		return !isRetriable(err)
	}
	b.metrics.OutcomeShown("notice")
	return true
}

// replayReports queues the outcomes a previous run decided but did not get
// to show.
func (b *Bridge) replayReports(ctx context.Context) error {
	var after id.EventID
	total := 0
	for {
		reports, err := b.DB.Reports.Pending(ctx, after, 1000)
		if err != nil {
			return err
		}
		for _, r := range reports {
			after = r.EventID
			portal, err := b.GetPortal(ctx, r.Portal)
			if err != nil {
				return err
			}
			portal.queueReport(r)
			total++
		}
		if len(reports) < 1000 {
			break
		}
	}
	if total > 0 {
		b.Log.Info().Int("count", total).Msg("Showing message outcomes decided before the restart")
	}
	return nil
}
