package database

import (
	"context"
	"time"
)

// TxnQuery reads and writes the appservice_txn table.
type TxnQuery struct{ d *Database }

// Insert records a homeserver transaction ID and reports whether it is new.
// It runs in the same database transaction as the journal rows of the
// transaction's events, so "recorded" and "acknowledged" never diverge.
func (q *TxnQuery) Insert(ctx context.Context, tx Execer, txnID string) (bool, error) {
	res, err := tx.ExecContext(ctx,
		"INSERT INTO appservice_txn (txn_id, received_at) VALUES ($1, $2) ON CONFLICT (txn_id) DO NOTHING",
		txnID, nowMillis())
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

// Seen reports whether a transaction was recorded before.
func (q *TxnQuery) Seen(ctx context.Context, txnID string) (bool, error) {
	var n int
	err := q.d.queryRow(ctx, "SELECT COUNT(*) FROM appservice_txn WHERE txn_id=$1", txnID).Scan(&n)
	return n > 0, err
}

// Prune forgets transactions older than the cutoff; homeservers retry a
// transaction for minutes, not days.
func (q *TxnQuery) Prune(ctx context.Context, tx Execer, before time.Time) (int64, error) {
	res, err := tx.ExecContext(ctx, "DELETE FROM appservice_txn WHERE received_at<$1", before.UnixMilli())
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
