package database

import (
	"context"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/bridgev2/networkid"
)

// Delivery is how far an outgoing message got on the remote network. The
// values are ranked: a late "sent" never overrides "delivered".
type Delivery string

// Delivery states, in rank order; failed is final.
const (
	DeliveryNone      Delivery = ""
	DeliverySent      Delivery = "sent"
	DeliveryDelivered Delivery = "delivered"
	DeliveryRead      Delivery = "read"
	DeliveryFailed    Delivery = "failed"
)

// deliveryRankSQL is Rank as an SQL expression over a column, so that a
// statement can compare ranks itself instead of reading the row first.
func deliveryRankSQL(column string) string {
	return "(CASE " + column + " WHEN 'sent' THEN 1 WHEN 'delivered' THEN 2 WHEN 'read' THEN 3 WHEN 'failed' THEN 4 ELSE 0 END)"
}

// Rank orders delivery states so updates can only move forward.
func (d Delivery) Rank() int {
	switch d {
	case DeliverySent:
		return 1
	case DeliveryDelivered:
		return 2
	case DeliveryRead:
		return 3
	case DeliveryFailed:
		return 4
	default:
		return 0
	}
}

// Message maps one remote message part to one Matrix event.
type Message struct {
	Seq        int64
	Portal     networkid.PortalKey
	ID         networkid.MessageID
	PartID     networkid.PartID
	MXID       id.EventID
	SenderID   networkid.UserID
	SenderMXID id.UserID
	Timestamp  time.Time
	EditCount  int
	Delivery   Delivery
	Metadata   any
}

// MessageQuery reads and writes the message table.
type MessageQuery struct{ d *Database }

const messageColumns = "seq, portal_id, portal_receiver, id, part_id, mxid, sender_id, sender_mxid, timestamp, edit_count, delivery, metadata"

func (q *MessageQuery) scan(row rowScanner) (*Message, error) {
	var m Message
	var meta string
	var ts int64
	err := row.Scan(&m.Seq, &m.Portal.ID, &m.Portal.Receiver, &m.ID, &m.PartID, &m.MXID, &m.SenderID,
		&m.SenderMXID, &ts, &m.EditCount, &m.Delivery, &meta)
	if err != nil {
		return nil, notFound(err)
	}
	if m.Metadata, err = unmarshalMeta(q.d.meta.Message, meta); err != nil {
		return nil, err
	}
	m.Timestamp = time.UnixMilli(ts)
	return &m, nil
}

func (q *MessageQuery) list(ctx context.Context, query string, args ...any) ([]*Message, error) {
	rows, err := q.d.query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*Message
	for rows.Next() {
		m, err := q.scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// GetPart returns one part of a remote message, or ErrNotFound.
func (q *MessageQuery) GetPart(ctx context.Context, receiver networkid.UserLoginID, msgID networkid.MessageID, part networkid.PartID) (*Message, error) {
	return q.scan(q.d.queryRow(ctx,
		"SELECT "+messageColumns+" FROM message WHERE portal_receiver=$1 AND id=$2 AND part_id=$3",
		receiver, msgID, part))
}

// GetFirstPart returns the first part of a remote message (the one replies
// and reactions target), or ErrNotFound.
func (q *MessageQuery) GetFirstPart(ctx context.Context, receiver networkid.UserLoginID, msgID networkid.MessageID) (*Message, error) {
	return q.scan(q.d.queryRow(ctx,
		"SELECT "+messageColumns+" FROM message WHERE portal_receiver=$1 AND id=$2 ORDER BY part_id LIMIT 1",
		receiver, msgID))
}

// GetAllParts returns every part of a remote message in part order.
func (q *MessageQuery) GetAllParts(ctx context.Context, receiver networkid.UserLoginID, msgID networkid.MessageID) ([]*Message, error) {
	return q.list(ctx, "SELECT "+messageColumns+" FROM message WHERE portal_receiver=$1 AND id=$2 ORDER BY part_id",
		receiver, msgID)
}

// GetByMXID returns the first mapping row of a Matrix event, or ErrNotFound.
func (q *MessageQuery) GetByMXID(ctx context.Context, eventID id.EventID) (*Message, error) {
	return q.scan(q.d.queryRow(ctx,
		"SELECT "+messageColumns+" FROM message WHERE mxid=$1 ORDER BY seq LIMIT 1", eventID))
}

// GetAllByMXID returns every remote message a Matrix event was sent as.
func (q *MessageQuery) GetAllByMXID(ctx context.Context, eventID id.EventID) ([]*Message, error) {
	return q.list(ctx, "SELECT "+messageColumns+" FROM message WHERE mxid=$1 ORDER BY seq", eventID)
}

// GetLast returns the newest message of a portal, or ErrNotFound.
func (q *MessageQuery) GetLast(ctx context.Context, key networkid.PortalKey) (*Message, error) {
	return q.scan(q.d.queryRow(ctx,
		"SELECT "+messageColumns+" FROM message WHERE portal_id=$1 AND portal_receiver=$2 ORDER BY timestamp DESC, seq DESC LIMIT 1",
		key.ID, key.Receiver))
}

// GetLastFrom returns the newest message of a portal sent by one remote
// user, or ErrNotFound: when a contact last wrote.
func (q *MessageQuery) GetLastFrom(ctx context.Context, key networkid.PortalKey, sender networkid.UserID) (*Message, error) {
	return q.scan(q.d.queryRow(ctx,
		"SELECT "+messageColumns+" FROM message WHERE portal_id=$1 AND portal_receiver=$2 AND sender_id=$3 ORDER BY timestamp DESC, seq DESC LIMIT 1",
		key.ID, key.Receiver, sender))
}

// Insert adds a mapping row and fills in m.Seq.
func (q *MessageQuery) Insert(ctx context.Context, tx Execer, m *Message) error {
	meta, err := marshalMeta(m.Metadata)
	if err != nil {
		return err
	}
	return tx.QueryRowContext(ctx, `
		INSERT INTO message (portal_id, portal_receiver, id, part_id, mxid, sender_id, sender_mxid, timestamp, edit_count, delivery, metadata)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING seq`,
		m.Portal.ID, m.Portal.Receiver, m.ID, m.PartID, m.MXID, m.SenderID, m.SenderMXID,
		m.Timestamp.UnixMilli(), m.EditCount, m.Delivery, meta,
	).Scan(&m.Seq)
}

// UpdateEdit records that the message was edited.
func (q *MessageQuery) UpdateEdit(ctx context.Context, tx Execer, m *Message) error {
	meta, err := marshalMeta(m.Metadata)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, "UPDATE message SET edit_count=$2, metadata=$3 WHERE seq=$1", m.Seq, m.EditCount, meta)
	return err
}

// AdvanceDelivery moves the delivery state of a row forward and reports
// whether it changed; a state of lower or equal rank is ignored, because
// Twilio-style status callbacks arrive out of order. The rank comparison is
// in the UPDATE itself: one round trip, and no window between reading and
// writing. Only when nothing changed does a second statement tell a missing
// row (ErrNotFound) from one already further along.
func (q *MessageQuery) AdvanceDelivery(ctx context.Context, tx Execer, seq int64, to Delivery) (bool, error) {
	res, err := tx.ExecContext(ctx,
		"UPDATE message SET delivery=$2 WHERE seq=$1 AND "+deliveryRankSQL("delivery")+" < $3", seq, to, to.Rank())
	if err != nil {
		return false, err
	}
	if n, err := res.RowsAffected(); err != nil || n > 0 {
		return n > 0, err
	}
	var one int
	if err := tx.QueryRowContext(ctx, "SELECT 1 FROM message WHERE seq=$1", seq).Scan(&one); err != nil {
		return false, notFound(err)
	}
	return false, nil
}

// InsertIfNew adds a mapping row unless the remote message part is mapped
// already, and reports whether it added one (filling in m.Seq). It is the
// lookup and the insert in one statement.
func (q *MessageQuery) InsertIfNew(ctx context.Context, tx Execer, m *Message) (bool, error) {
	meta, err := marshalMeta(m.Metadata)
	if err != nil {
		return false, err
	}
	err = tx.QueryRowContext(ctx, `
		INSERT INTO message (portal_id, portal_receiver, id, part_id, mxid, sender_id, sender_mxid, timestamp, edit_count, delivery, metadata)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
		ON CONFLICT (portal_receiver, id, part_id) DO NOTHING RETURNING seq`,
		m.Portal.ID, m.Portal.Receiver, m.ID, m.PartID, m.MXID, m.SenderID, m.SenderMXID,
		m.Timestamp.UnixMilli(), m.EditCount, m.Delivery, meta,
	).Scan(&m.Seq)
	if err != nil {
		if notFound(err) == ErrNotFound {
			return false, nil
		}
		return false, err
	}
	return true, nil
}

// Delete removes one mapping row.
func (q *MessageQuery) Delete(ctx context.Context, tx Execer, seq int64) error {
	_, err := tx.ExecContext(ctx, "DELETE FROM message WHERE seq=$1", seq)
	return err
}
