package database

import (
	"context"
	"time"

	"maunium.net/go/mautrix/id"
)

// OutboundEvent is a Matrix event in the outbound journal.
type OutboundEvent struct {
	Seq     int64
	EventID id.EventID
	RoomID  id.RoomID
	Sender  id.UserID
	Payload []byte
	State   JournalState
	// SendToken is unique per event and travels with the remote send (for
	// Twilio, in the status callback URL), so a send interrupted by a crash
	// can be found on the remote side instead of being repeated.
	SendToken string
	// Progress is the JSON list of remote messages created so far (see
	// bridgev2.SendProgress).
	Progress   []byte
	Attempts   int
	LastError  string
	ReceivedAt time.Time
	UpdatedAt  time.Time
	// Seal is not stored in the row: it is the crypto state a decryption
	// of the event left to be written in the same transaction as the row's
	// next change of state (bridgev2.Seal), nil once that has committed.
	Seal func(ctx context.Context, tx Execer) error
}

// OutboundQuery reads and writes the outbound_event table.
type OutboundQuery struct{ d *Database }

const outboundColumns = "seq, event_id, room_id, sender, payload, state, send_token, progress, attempts, last_error, received_at, updated_at"

func scanOutbound(row rowScanner) (*OutboundEvent, error) {
	var e OutboundEvent
	var payload, progress string
	var received, updated int64
	err := row.Scan(&e.Seq, &e.EventID, &e.RoomID, &e.Sender, &payload, &e.State, &e.SendToken,
		&progress, &e.Attempts, &e.LastError, &received, &updated)
	if err != nil {
		return nil, notFound(err)
	}
	e.Payload = []byte(payload)
	if progress != "" {
		e.Progress = []byte(progress)
	}
	e.ReceivedAt = time.UnixMilli(received)
	e.UpdatedAt = time.UnixMilli(updated)
	return &e, nil
}

// Insert journals a Matrix event; it returns false if the event was
// journalled before (a homeserver may resend an event in a new transaction).
func (q *OutboundQuery) Insert(ctx context.Context, tx Execer, e *OutboundEvent) (bool, error) {
	now := time.Now()
	e.ReceivedAt, e.UpdatedAt = now, now
	if e.State == "" {
		e.State = StatePending
	}
	err := tx.QueryRowContext(ctx, outboundInsert,
		e.EventID, e.RoomID, e.Sender, string(e.Payload), e.State, e.SendToken, now.UnixMilli(), now.UnixMilli(),
	).Scan(&e.Seq)
	if err != nil {
		if notFound(err) == ErrNotFound {
			return false, nil
		}
		return false, err
	}
	return true, nil
}

// InsertAll journals the Matrix events of one homeserver transaction, like
// Insert for each, reporting for each whether it was new. On PostgreSQL the
// inserts go out together, one round trip for all of them.
func (q *OutboundQuery) InsertAll(ctx context.Context, tx Execer, events []*OutboundEvent) ([]bool, error) {
	inserted := make([]bool, len(events))
	pipe, ok := tx.(rowsQuerier)
	if !ok {
		for i, e := range events {
			var err error
			if inserted[i], err = q.Insert(ctx, tx, e); err != nil {
				return nil, err
			}
		}
		return inserted, nil
	}
	now := time.Now()
	queries := make([]rowQuery, len(events))
	for i, e := range events {
		e.ReceivedAt, e.UpdatedAt = now, now
		if e.State == "" {
			e.State = StatePending
		}
		queries[i] = rowQuery{sql: outboundInsert, args: []any{
			e.EventID, e.RoomID, e.Sender, string(e.Payload), e.State, e.SendToken, now.UnixMilli(), now.UnixMilli()}}
	}
	for i, row := range pipe.queryRows(ctx, queries) {
		switch err := row.Scan(&events[i].Seq); {
		case err == nil:
			inserted[i] = true
		case notFound(err) != ErrNotFound:
			return nil, err
		}
	}
	return inserted, nil
}

const outboundInsert = `
		INSERT INTO outbound_event (event_id, room_id, sender, payload, state, send_token, received_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (event_id) DO NOTHING
		RETURNING seq`

// SetState moves a row to a new state. Final states drop the payload.
func (q *OutboundQuery) SetState(ctx context.Context, tx Execer, seq int64, state JournalState, lastError string) error {
	query := "UPDATE outbound_event SET state=$2, last_error=$3, updated_at=$4 WHERE seq=$1"
	if state == StateSent || state == StateDone || state == StateFailed {
		query = "UPDATE outbound_event SET state=$2, last_error=$3, updated_at=$4, payload='' WHERE seq=$1"
	}
	_, err := tx.ExecContext(ctx, query, seq, state, lastError, nowMillis())
	return err
}

// MarkSending moves a row to "sending" before its send, failing with
// ErrFenced if lease (nil for a single-process bridge) is no longer held:
// a process that lost leadership must not send what another now owns.
func (q *OutboundQuery) MarkSending(ctx context.Context, tx Execer, seq int64, lease *Lease) error {
	if err := checkFence(ctx, tx, lease); err != nil {
		return err
	}
	return q.SetState(ctx, tx, seq, StateSending, "")
}

// SetProgress stores the remote messages created so far for an event.
func (q *OutboundQuery) SetProgress(ctx context.Context, tx Execer, seq int64, progress []byte) error {
	_, err := tx.ExecContext(ctx, "UPDATE outbound_event SET progress=$2, updated_at=$3 WHERE seq=$1", seq, string(progress), nowMillis())
	return err
}

// RecordAttempt counts a failed send attempt that will be retried. The
// state is left alone: a row that was "sending" may have reached the remote
// network despite the failure, and must be reconciled after a restart.
func (q *OutboundQuery) RecordAttempt(ctx context.Context, tx Execer, seq int64, lastError string) error {
	_, err := tx.ExecContext(ctx,
		"UPDATE outbound_event SET attempts=attempts+1, last_error=$2, updated_at=$3 WHERE seq=$1",
		seq, lastError, nowMillis())
	return err
}

// Open returns up to limit rows still pending or sending with seq > after, in
// journal order, for replay after a restart.
func (q *OutboundQuery) Open(ctx context.Context, after int64, limit int) ([]*OutboundEvent, error) {
	rows, err := q.d.query(ctx, "SELECT "+outboundColumns+
		" FROM outbound_event WHERE state IN ('pending', 'sending') AND seq>$1 ORDER BY seq LIMIT $2", after, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*OutboundEvent
	for rows.Next() {
		e, err := scanOutbound(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// GetByToken returns the row with the given send token, or ErrNotFound.
func (q *OutboundQuery) GetByToken(ctx context.Context, token string) (*OutboundEvent, error) {
	return scanOutbound(q.d.queryRow(ctx, "SELECT "+outboundColumns+" FROM outbound_event WHERE send_token=$1", token))
}

// GetByEventID returns the row for a Matrix event, or ErrNotFound.
func (q *OutboundQuery) GetByEventID(ctx context.Context, eventID id.EventID) (*OutboundEvent, error) {
	return scanOutbound(q.d.queryRow(ctx, "SELECT "+outboundColumns+" FROM outbound_event WHERE event_id=$1", eventID))
}

// CountOpen counts rows not yet sent, for metrics and readiness.
func (q *OutboundQuery) CountOpen(ctx context.Context) (int, error) {
	var n int
	err := q.d.queryRow(ctx, "SELECT COUNT(*) FROM outbound_event WHERE state IN ('pending', 'sending')").Scan(&n)
	return n, err
}

// Prune forgets finished rows older than the cutoff.
func (q *OutboundQuery) Prune(ctx context.Context, tx Execer, before time.Time) (int64, error) {
	res, err := tx.ExecContext(ctx,
		"DELETE FROM outbound_event WHERE state NOT IN ('pending', 'sending') AND updated_at<$1", before.UnixMilli())
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
