package database

import (
	"context"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/bridgev2/networkid"
)

// Reaction maps a reaction by one sender to one message part to its Matrix
// event.
type Reaction struct {
	Portal        networkid.PortalKey
	MessageID     networkid.MessageID
	MessagePartID networkid.PartID
	SenderID      networkid.UserID
	EmojiID       networkid.EmojiID
	Emoji         string
	MXID          id.EventID
	Timestamp     time.Time
}

// ReactionQuery reads and writes the reaction table.
type ReactionQuery struct{ d *Database }

const reactionColumns = "portal_id, portal_receiver, message_id, message_part_id, sender_id, emoji_id, emoji, mxid, timestamp"

func scanReaction(row rowScanner) (*Reaction, error) {
	var r Reaction
	var ts int64
	err := row.Scan(&r.Portal.ID, &r.Portal.Receiver, &r.MessageID, &r.MessagePartID, &r.SenderID,
		&r.EmojiID, &r.Emoji, &r.MXID, &ts)
	if err != nil {
		return nil, notFound(err)
	}
	r.Timestamp = time.UnixMilli(ts)
	return &r, nil
}

// Get returns one sender's reaction with one emoji to a message, or ErrNotFound.
func (q *ReactionQuery) Get(ctx context.Context, receiver networkid.UserLoginID, msgID networkid.MessageID, part networkid.PartID, sender networkid.UserID, emojiID networkid.EmojiID) (*Reaction, error) {
	return scanReaction(q.d.queryRow(ctx, "SELECT "+reactionColumns+` FROM reaction
		WHERE portal_receiver=$1 AND message_id=$2 AND message_part_id=$3 AND sender_id=$4 AND emoji_id=$5`,
		receiver, msgID, part, sender, emojiID))
}

// GetByMXID returns the reaction whose Matrix event is eventID, or ErrNotFound.
func (q *ReactionQuery) GetByMXID(ctx context.Context, eventID id.EventID) (*Reaction, error) {
	return scanReaction(q.d.queryRow(ctx, "SELECT "+reactionColumns+" FROM reaction WHERE mxid=$1", eventID))
}

// Upsert stores a reaction, replacing an earlier one by the same sender with
// the same emoji ID (networks with one reaction per user reuse the ID).
func (q *ReactionQuery) Upsert(ctx context.Context, tx Execer, r *Reaction) error {
	_, err := tx.ExecContext(ctx, `
		INSERT INTO reaction (`+reactionColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		ON CONFLICT (portal_receiver, message_id, message_part_id, sender_id, emoji_id)
		DO UPDATE SET emoji=excluded.emoji, mxid=excluded.mxid, timestamp=excluded.timestamp`,
		r.Portal.ID, r.Portal.Receiver, r.MessageID, r.MessagePartID, r.SenderID, r.EmojiID, r.Emoji,
		r.MXID, r.Timestamp.UnixMilli())
	return err
}

// Delete removes a reaction.
func (q *ReactionQuery) Delete(ctx context.Context, tx Execer, r *Reaction) error {
	_, err := tx.ExecContext(ctx, `DELETE FROM reaction
		WHERE portal_receiver=$1 AND message_id=$2 AND message_part_id=$3 AND sender_id=$4 AND emoji_id=$5`,
		r.Portal.Receiver, r.MessageID, r.MessagePartID, r.SenderID, r.EmojiID)
	return err
}
