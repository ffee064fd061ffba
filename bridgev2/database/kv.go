package database

import (
	"context"
	"errors"
)

// KVQuery reads and writes the bridge_kv table.
type KVQuery struct{ d *Database }

// Get returns the value of key, or "" if it is not set.
func (q *KVQuery) Get(ctx context.Context, key string) (string, error) {
	var value string
	err := q.d.queryRow(ctx, "SELECT value FROM bridge_kv WHERE key=$1", key).Scan(&value)
	if errors.Is(notFound(err), ErrNotFound) {
		return "", nil
	}
	return value, err
}

// Set stores value under key.
func (q *KVQuery) Set(ctx context.Context, key, value string) error {
	return q.d.Write(ctx, func(ctx context.Context, tx Execer) error {
		_, err := tx.ExecContext(ctx,
			"INSERT INTO bridge_kv (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value=excluded.value", key, value)
		return err
	})
}
