package database

import (
	"context"
	"errors"
	"fmt"
)

// CryptoRow is one object of the crypto machine's state: an Olm session, a
// Megolm session, a user's device list... The e2ee package gives kinds and
// values their meaning; this package only stores them.
type CryptoRow struct {
	Kind  string
	Key   string
	Value string
}

// CryptoQuery reads and writes the crypto_state table.
type CryptoQuery struct{ d *Database }

// Put stores rows, replacing those with the same kind and key, and returns
// once they are committed.
func (q *CryptoQuery) Put(ctx context.Context, rows ...CryptoRow) error {
	return q.d.Write(ctx, func(ctx context.Context, tx Execer) error {
		return q.PutIn(ctx, tx, rows...)
	})
}

// PutIn is Put inside a write of the caller's.
func (q *CryptoQuery) PutIn(ctx context.Context, tx Execer, rows ...CryptoRow) error {
	for _, r := range rows {
		if _, err := tx.ExecContext(ctx,
			"INSERT INTO crypto_state (kind, key, value) VALUES ($1, $2, $3) ON CONFLICT (kind, key) DO UPDATE SET value=excluded.value",
			r.Kind, r.Key, r.Value); err != nil {
			return fmt.Errorf("store crypto %s: %w", r.Kind, err)
		}
	}
	return nil
}

// Delete removes the rows of kind with the given keys.
func (q *CryptoQuery) Delete(ctx context.Context, kind string, keys ...string) error {
	return q.d.Write(ctx, func(ctx context.Context, tx Execer) error {
		for _, key := range keys {
			if _, err := tx.ExecContext(ctx, "DELETE FROM crypto_state WHERE kind=$1 AND key=$2", kind, key); err != nil {
				return fmt.Errorf("delete crypto %s: %w", kind, err)
			}
		}
		return nil
	})
}

// Get returns the value of one row, or "" if there is none.
func (q *CryptoQuery) Get(ctx context.Context, kind, key string) (string, error) {
	var value string
	err := q.d.queryRow(ctx, "SELECT value FROM crypto_state WHERE kind=$1 AND key=$2", kind, key).Scan(&value)
	if errors.Is(notFound(err), ErrNotFound) {
		return "", nil
	}
	return value, err
}

// All returns every row of kind, ordered by key.
func (q *CryptoQuery) All(ctx context.Context, kind string) ([]CryptoRow, error) {
	rows, err := q.d.query(ctx, "SELECT kind, key, value FROM crypto_state WHERE kind=$1 ORDER BY key", kind)
	if err != nil {
		return nil, fmt.Errorf("load crypto %s: %w", kind, err)
	}
	defer rows.Close()
	var out []CryptoRow
	for rows.Next() {
		var r CryptoRow
		if err := rows.Scan(&r.Kind, &r.Key, &r.Value); err != nil {
			return nil, fmt.Errorf("load crypto %s: %w", kind, err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}
