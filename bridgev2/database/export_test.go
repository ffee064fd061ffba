package database

import (
	"context"
	"strings"
)

// Explain returns the query plan of a read, as one line per plan row. It
// runs on a connection of its own: plans have many rows, and write
// functions offer single-row queries only. On PostgreSQL, sequential scans
// are turned off for the plan, so that an empty test table is still planned
// with the index that would serve the query.
func (d *Database) Explain(ctx context.Context, query string, args []any) (string, error) {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return "", err
	}
	defer func() { _ = tx.Rollback() }()
	prefix := "EXPLAIN QUERY PLAN "
	if d.Dialect == Postgres {
		if _, err := tx.ExecContext(ctx, "SET LOCAL enable_seqscan = off"); err != nil {
			return "", err
		}
		prefix = "EXPLAIN "
	}
	rows, err := tx.QueryContext(ctx, prefix+query, args...)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	var plan strings.Builder
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return "", err
		}
		for _, v := range vals {
			switch s := v.(type) {
			case string:
				plan.WriteString(s + " ")
			case []byte:
				plan.WriteString(string(s) + " ")
			}
		}
		plan.WriteString("\n")
	}
	return plan.String(), rows.Err()
}
