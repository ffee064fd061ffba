package bridgev2

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/trestle-bridge/trestle/bridgev2/database"
	"github.com/trestle-bridge/trestle/bridgev2/networkid"
)

// IngestResult says what Ingest did with an event.
type IngestResult int

// Ingest results.
const (
	// Journalled: the event is committed and will be delivered.
	Journalled IngestResult = iota
	// Duplicate: an event with the same kind and ID was journalled before,
	// or it is a delivery report that can no longer change anything; nothing
	// new happens, and the connector may acknowledge again.
	Duplicate
)

// Ingest hands the core a remote event seen by this login. It returns once
// the event is committed to the inbound journal (or recognised as a
// duplicate); only then may the connector acknowledge it to the remote
// network. Delivery to Matrix happens afterwards, in order per portal, with
// retries, and survives restarts.
//
// Typing notifications are the exception: they are ephemeral and skip the
// journal.
func (l *UserLogin) Ingest(ctx context.Context, evt *RemoteEvent) (IngestResult, error) {
	b := l.Bridge
	if b.stopping.Load() {
		return 0, ErrShuttingDown
	}
	if err := l.validate(evt); err != nil {
		return 0, err
	}
	if evt.Timestamp.IsZero() {
		evt.Timestamp = time.Now()
	}
	if evt.Kind == RemoteTyping {
		if !b.Leading() {
			return Journalled, nil // ephemeral: only the leader shows it
		}
		portal, err := b.GetPortal(ctx, evt.Portal)
		if err != nil {
			return 0, err
		}
		portal.inbound.push(func() { portal.applyTyping(b.ctx, l, evt) })
		return Journalled, nil
	}
	if l.isStaleDeliveryReport(ctx, evt) {
		return Duplicate, nil
	}
	payload, err := json.Marshal(evt)
	if err != nil {
		return 0, fmt.Errorf("encode remote event: %w", err)
	}
	key := evt.dedupKey()
	if key == "" {
		key = "nokey:" + randomHex(16)
	}
	row := &database.InboundEvent{LoginID: l.ID, Portal: evt.Portal, DedupKey: key, Payload: payload}
	var inserted bool
	// The closure keeps its own err: a write whose ctx ends returns while
	// the writer may still run it.
	err = b.DB.Write(ctx, func(ctx context.Context, tx database.Execer) error {
		var err error
		if inserted, err = b.DB.Inbound.Insert(ctx, tx, row); err != nil || !inserted {
			return err
		}
		return b.notifyLeader(ctx, tx)
	})
	if err != nil {
		return 0, fmt.Errorf("journal remote event: %w", err)
	}
	if !inserted {
		l.Log.Debug().Str("dedup_key", key).Msg("Dropped duplicate remote event")
		return Duplicate, nil
	}
	b.metrics.Received("inbound")
	b.dispatchInbound(ctx, row, evt, false)
	return Journalled, nil
}

// isStaleDeliveryReport reports whether evt is a delivery report for a
// message already recorded at that state or a later one ("sent" after the
// send's own answer, say). Applying it would change nothing, so it needs no
// journal entry: a lookup is far cheaper than a commit, and every text a
// network reports on brings one or two such reports. Delivery states only
// advance, so a report stale now stays stale.
func (l *UserLogin) isStaleDeliveryReport(ctx context.Context, evt *RemoteEvent) bool {
	if evt.Kind != RemoteDeliveryStatus || evt.Status == nil {
		return false
	}
	msg, err := l.Bridge.DB.Messages.GetFirstPart(ctx, evt.Portal.Receiver, evt.Target)
	return err == nil && evt.Status.State.Rank() <= msg.Delivery.Rank()
}

// ErrInvalidEvent is wrapped by Ingest's errors for events that can never
// be accepted (a connector bug or bad input), as opposed to failures worth
// retrying: a webhook handler answers the former 4xx and the latter 5xx.
var ErrInvalidEvent = errors.New("invalid remote event")

// IngestHTTPStatus is how a webhook handler answers when Ingest failed: 400
// for an event that can never be accepted, 503 while the bridge stops, and
// 500 otherwise, which tells a network that redelivers to try again.
func IngestHTTPStatus(err error) int {
	switch {
	case errors.Is(err, ErrInvalidEvent):
		return http.StatusBadRequest
	case errors.Is(err, ErrShuttingDown):
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

func (l *UserLogin) validate(evt *RemoteEvent) error {
	switch evt.Kind {
	case RemoteMessage, RemoteEdit, RemoteReaction, RemoteReactionRemove, RemoteDelete,
		RemoteReadReceipt, RemoteDeliveryStatus, RemoteTyping, RemoteChatInfo:
	default:
		return fmt.Errorf("%w: unknown kind %q", ErrInvalidEvent, evt.Kind)
	}
	if evt.Portal.ID == "" {
		return fmt.Errorf("%w: no portal ID", ErrInvalidEvent)
	}
	if evt.Portal.Receiver != "" && evt.Portal.Receiver != l.ID {
		return fmt.Errorf("%w: event for portal %s arrived through login %s", ErrInvalidEvent, evt.Portal, l.ID)
	}
	if evt.Kind == RemoteMessage && evt.ID == "" {
		return fmt.Errorf("%w: a message needs an ID", ErrInvalidEvent)
	}
	if evt.Kind == RemoteDeliveryStatus && evt.Status == nil {
		return fmt.Errorf("%w: delivery status event without a status", ErrInvalidEvent)
	}
	return nil
}

// dispatchInbound queues a freshly journalled event on its portal's inbound
// lane, on the leader; on a standby the leader picks it up from the journal.
func (b *Bridge) dispatchInbound(ctx context.Context, row *database.InboundEvent, evt *RemoteEvent, replayed bool) {
	b.leader.dispatchMu.RLock()
	defer b.leader.dispatchMu.RUnlock()
	switch {
	case !b.Leading():
	case b.leader.ha:
		b.kickScan() // in journal order with what standbys took in
	default:
		b.queueInbound(ctx, row, evt, replayed)
	}
}

// queueInbound queues a journalled event on its portal's inbound lane,
// unless it is queued already. If the portal cannot even be loaded (the
// database is down), the event stays pending and is picked up by the next
// replay.
//
// replayed marks an event that was already pending when this process began
// leading: the previous leader may have been sending it to Matrix when it
// stopped.
func (b *Bridge) queueInbound(ctx context.Context, row *database.InboundEvent, evt *RemoteEvent, replayed bool) {
	if !b.claim("in", row.Seq) {
		return
	}
	portal, err := b.GetPortal(ctx, evt.Portal)
	if err != nil {
		b.Log.Err(err).Int64("journal_seq", row.Seq).Msg("Could not load portal for a journalled event; it will be retried at the next start")
		return
	}
	b.metrics.QueueDepth("inbound", 1)
	portal.inbound.push(func() {
		b.metrics.QueueDepth("inbound", -1)
		portal.deliverInbound(row, evt, replayed)
	})
}

// replayInbound queues every undelivered journal entry, oldest first.
func (b *Bridge) replayInbound(ctx context.Context) error {
	var after int64
	total := 0
	for {
		rows, err := b.DB.Inbound.Pending(ctx, after, 1000)
		if err != nil {
			return fmt.Errorf("read inbound journal: %w", err)
		}
		for _, row := range rows {
			after = row.Seq
			if b.dispatchJournalled(ctx, row, true) {
				total++
			}
		}
		if len(rows) < 1000 {
			break
		}
	}
	if total > 0 {
		b.Log.Info().Int("count", total).Msg("Replaying undelivered remote events")
	}
	return nil
}

// dispatchJournalled queues a pending journal row read back from the
// database, and reports whether it was readable.
func (b *Bridge) dispatchJournalled(ctx context.Context, row *database.InboundEvent, replayed bool) bool {
	var evt RemoteEvent
	if err := json.Unmarshal(row.Payload, &evt); err != nil {
		b.Log.Err(err).Int64("journal_seq", row.Seq).Msg("Unreadable inbound journal entry")
		b.finishInbound(ctx, row, database.StateFailed, "unreadable journal entry: "+err.Error())
		return false
	}
	b.queueInbound(ctx, row, &evt, replayed)
	return true
}

// finishInbound marks a journal entry done or failed.
func (b *Bridge) finishInbound(ctx context.Context, row *database.InboundEvent, state database.JournalState, lastError string) {
	err := b.DB.Write(ctx, func(ctx context.Context, tx database.Execer) error {
		return b.DB.Inbound.Finish(ctx, tx, row.Seq, state, lastError)
	})
	if err != nil {
		b.Log.Err(err).Int64("journal_seq", row.Seq).Msg("Could not finish inbound journal entry")
	}
}

func randomHex(n int) string {
	buf := make([]byte, n)
	_, _ = rand.Read(buf)
	return hex.EncodeToString(buf)
}

// IsPendingMessage reports whether a remote message was handed to Ingest
// and is still waiting in the journal to be delivered. Backfill uses it to
// leave such messages to the live path, which delivers them right after.
func (l *UserLogin) IsPendingMessage(ctx context.Context, msgID networkid.MessageID) (bool, error) {
	evt := RemoteEvent{Kind: RemoteMessage, ID: msgID}
	return l.Bridge.DB.Inbound.IsPending(ctx, l.ID, evt.dedupKey())
}

// HasIngested reports whether a remote message was handed to Ingest
// already (within bridge.journal_retention), delivered or not. A connector
// that recovers messages from a log it lists again and again uses it to
// skip known ones before fetching anything more about them.
func (l *UserLogin) HasIngested(ctx context.Context, msgID networkid.MessageID) (bool, error) {
	evt := RemoteEvent{Kind: RemoteMessage, ID: msgID}
	return l.Bridge.DB.Inbound.Has(ctx, l.ID, evt.dedupKey())
}
