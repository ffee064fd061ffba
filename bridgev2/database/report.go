package database

import (
	"context"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/bridgev2/networkid"
)

// Report is the outcome of a Matrix user's message that is still to be
// shown in its room.
type Report struct {
	EventID id.EventID
	RoomID  id.RoomID
	Portal  networkid.PortalKey
	// State is DeliverySent, DeliveryDelivered, DeliveryRead or
	// DeliveryFailed.
	State Delivery
	// DeliveryWillFollow says, for a sent message, that the network reports
	// delivery later.
	DeliveryWillFollow bool
	// Message, Reason and InternalError describe a failure; Undelivered
	// says the message was sent but not delivered.
	Message       string
	Reason        string
	InternalError string
	Undelivered   bool
	// EventTS is when the user sent the message.
	EventTS time.Time
}

// ReportQuery reads and writes the report_outbox table.
type ReportQuery struct{ d *Database }

const reportColumns = "event_id, room_id, portal_id, portal_receiver, state, delivery_will_follow, message, reason, internal_error, undelivered, event_ts"

// Put stores a report, replacing a pending one of the same message unless
// that one is further along (delivery reports arrive out of order). One
// statement decides and writes, so it costs one round trip and two reports
// of one message in the same commit cannot overtake each other.
func (q *ReportQuery) Put(ctx context.Context, tx Execer, r *Report) error {
	_, err := tx.ExecContext(ctx, `
		INSERT INTO report_outbox (`+reportColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
		ON CONFLICT (event_id) DO UPDATE SET state=excluded.state, delivery_will_follow=excluded.delivery_will_follow,
			message=excluded.message, reason=excluded.reason, internal_error=excluded.internal_error,
			undelivered=excluded.undelivered
		WHERE `+deliveryRankSQL("report_outbox.state")+` <= `+deliveryRankSQL("excluded.state"),
		r.EventID, r.RoomID, r.Portal.ID, r.Portal.Receiver, r.State, r.DeliveryWillFollow, r.Message, r.Reason,
		r.InternalError, r.Undelivered, r.EventTS.UnixMilli())
	return err
}

// Delete removes a report once it was shown, unless a later state replaced
// it meanwhile.
func (q *ReportQuery) Delete(ctx context.Context, tx Execer, eventID id.EventID, state Delivery) error {
	_, err := tx.ExecContext(ctx, "DELETE FROM report_outbox WHERE event_id=$1 AND state=$2", eventID, state)
	return err
}

// Pending returns up to limit reports after the given event ID, in event ID
// order, for replay at start-up.
func (q *ReportQuery) Pending(ctx context.Context, after id.EventID, limit int) ([]*Report, error) {
	rows, err := q.d.query(ctx, "SELECT "+reportColumns+" FROM report_outbox WHERE event_id>$1 ORDER BY event_id LIMIT $2", after, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*Report
	for rows.Next() {
		var r Report
		var ts int64
		if err := rows.Scan(&r.EventID, &r.RoomID, &r.Portal.ID, &r.Portal.Receiver, &r.State, &r.DeliveryWillFollow,
			&r.Message, &r.Reason, &r.InternalError, &r.Undelivered, &ts); err != nil {
			return nil, err
		}
		r.EventTS = time.UnixMilli(ts)
		out = append(out, &r)
	}
	return out, rows.Err()
}
