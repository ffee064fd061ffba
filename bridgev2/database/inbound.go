package database

import (
	"context"
	"time"

	"github.com/trestle-bridge/trestle/bridgev2/networkid"
)

// JournalState is the state of a journal row.
type JournalState string

// Journal states. Inbound rows go pending -> done|failed; outbound rows go
// pending -> sending -> sent|failed, or pending -> done for events that
// needed no remote send (commands, membership).
const (
	StatePending JournalState = "pending"
	StateSending JournalState = "sending"
	StateSent    JournalState = "sent"
	StateDone    JournalState = "done"
	StateFailed  JournalState = "failed"
)

// InboundEvent is a remote event in the inbound journal.
type InboundEvent struct {
	Seq        int64
	LoginID    networkid.UserLoginID
	Portal     networkid.PortalKey
	DedupKey   string
	Payload    []byte
	State      JournalState
	Attempts   int
	LastError  string
	ReceivedAt time.Time
}

// InboundQuery reads and writes the inbound_event table.
type InboundQuery struct{ d *Database }

// Insert journals a remote event. It returns false, and changes nothing, if
// an event with the same login and dedup key was journalled before: that is
// how a retried webhook is recognised.
func (q *InboundQuery) Insert(ctx context.Context, tx Execer, e *InboundEvent) (bool, error) {
	now := time.Now()
	if e.ReceivedAt.IsZero() {
		e.ReceivedAt = now
	}
	e.State = StatePending
	err := tx.QueryRowContext(ctx, `
		INSERT INTO inbound_event (login_id, portal_id, portal_receiver, dedup_key, payload, state, received_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (login_id, dedup_key) DO NOTHING
		RETURNING seq`,
		e.LoginID, e.Portal.ID, e.Portal.Receiver, e.DedupKey, string(e.Payload), e.State,
		e.ReceivedAt.UnixMilli(), now.UnixMilli(),
	).Scan(&e.Seq)
	if err != nil {
		if notFound(err) == ErrNotFound {
			return false, nil
		}
		return false, err
	}
	return true, nil
}

// Finish marks a journal row done or failed and drops its payload; the row
// itself stays for deduplication until pruned.
func (q *InboundQuery) Finish(ctx context.Context, tx Execer, seq int64, state JournalState, lastError string) error {
	_, err := tx.ExecContext(ctx,
		"UPDATE inbound_event SET state=$2, last_error=$3, payload='', updated_at=$4 WHERE seq=$1",
		seq, state, lastError, nowMillis())
	return err
}

// RecordAttempt counts a failed delivery attempt that will be retried.
func (q *InboundQuery) RecordAttempt(ctx context.Context, tx Execer, seq int64, lastError string) error {
	_, err := tx.ExecContext(ctx,
		"UPDATE inbound_event SET attempts=attempts+1, last_error=$2, updated_at=$3 WHERE seq=$1",
		seq, lastError, nowMillis())
	return err
}

// Pending returns up to limit undelivered events with seq > after, in
// journal order, for replay after a restart.
func (q *InboundQuery) Pending(ctx context.Context, after int64, limit int) ([]*InboundEvent, error) {
	rows, err := q.d.query(ctx, `
		SELECT seq, login_id, portal_id, portal_receiver, dedup_key, payload, state, attempts, last_error, received_at
		FROM inbound_event WHERE state='pending' AND seq>$1 ORDER BY seq LIMIT $2`, after, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*InboundEvent
	for rows.Next() {
		var e InboundEvent
		var payload string
		var received int64
		if err := rows.Scan(&e.Seq, &e.LoginID, &e.Portal.ID, &e.Portal.Receiver, &e.DedupKey, &payload,
			&e.State, &e.Attempts, &e.LastError, &received); err != nil {
			return nil, err
		}
		e.Payload = []byte(payload)
		e.ReceivedAt = time.UnixMilli(received)
		out = append(out, &e)
	}
	return out, rows.Err()
}

// CountPending counts undelivered events, for metrics and readiness.
func (q *InboundQuery) CountPending(ctx context.Context) (int, error) {
	var n int
	err := q.d.queryRow(ctx, "SELECT COUNT(*) FROM inbound_event WHERE state='pending'").Scan(&n)
	return n, err
}

// Prune forgets finished rows older than the cutoff. After that, a replay of
// the same remote event is caught by the message mapping instead.
func (q *InboundQuery) Prune(ctx context.Context, tx Execer, before time.Time) (int64, error) {
	res, err := tx.ExecContext(ctx, "DELETE FROM inbound_event WHERE state<>'pending' AND updated_at<$1", before.UnixMilli())
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// IsPending reports whether an event with the dedup key is journalled and
// not yet delivered.
func (q *InboundQuery) IsPending(ctx context.Context, loginID networkid.UserLoginID, dedupKey string) (bool, error) {
	var n int
	err := q.d.queryRow(ctx,
		"SELECT COUNT(*) FROM inbound_event WHERE login_id=$1 AND dedup_key=$2 AND state='pending'", loginID, dedupKey).Scan(&n)
	return n > 0, err
}

// Has reports whether an event with the dedup key is journalled, in any
// state (until the journal's retention prunes it).
func (q *InboundQuery) Has(ctx context.Context, loginID networkid.UserLoginID, dedupKey string) (bool, error) {
	var n int
	err := q.d.queryRow(ctx,
		"SELECT COUNT(*) FROM inbound_event WHERE login_id=$1 AND dedup_key=$2", loginID, dedupKey).Scan(&n)
	return n > 0, err
}
