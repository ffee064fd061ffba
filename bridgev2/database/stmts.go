package database

import (
	"context"
	"database/sql"
	"sync"
)

// stmtCache prepares each distinct query once. SQLite otherwise parses the
// SQL text on every call, which was the largest single cost per bridged
// message; PostgreSQL saves a parse and plan per call too.
type stmtCache struct {
	db *sql.DB
	mu sync.RWMutex
	m  map[string]*sql.Stmt
}

func newStmtCache(db *sql.DB) *stmtCache {
	return &stmtCache{db: db, m: make(map[string]*sql.Stmt)}
}

// get returns the prepared statement for query, preparing it on first use.
func (c *stmtCache) get(ctx context.Context, query string) (*sql.Stmt, error) {
	c.mu.RLock()
	stmt := c.m[query]
	c.mu.RUnlock()
	if stmt != nil {
		return stmt, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if stmt = c.m[query]; stmt != nil {
		return stmt, nil
	}
	stmt, err := c.db.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	c.m[query] = stmt
	return stmt, nil
}

func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, stmt := range c.m {
		_ = stmt.Close()
	}
	c.m = nil
}

// queryRow runs a single-row read through the statement cache.
func (d *Database) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	stmt, err := d.stmts.get(ctx, query)
	if err != nil {
		return d.db.QueryRowContext(ctx, query, args...)
	}
	return stmt.QueryRowContext(ctx, args...)
}

// query runs a read through the statement cache.
func (d *Database) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	stmt, err := d.stmts.get(ctx, query)
	if err != nil {
		return d.db.QueryContext(ctx, query, args...)
	}
	return stmt.QueryContext(ctx, args...)
}

// cachedTx is the Execer write functions get: the writer's transaction,
// running statements prepared once per connection.
type cachedTx struct {
	tx    *sql.Tx
	stmts *stmtCache
}

func (t *cachedTx) stmt(ctx context.Context, query string) *sql.Stmt {
	stmt, err := t.stmts.get(ctx, query)
	if err != nil {
		return nil
	}
	return t.tx.StmtContext(ctx, stmt)
}

// ExecContext implements Execer.
func (t *cachedTx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if s := t.stmt(ctx, query); s != nil {
		return s.ExecContext(ctx, args...)
	}
	return t.tx.ExecContext(ctx, query, args...)
}

// QueryRowContext implements Execer.
func (t *cachedTx) QueryRowContext(ctx context.Context, query string, args ...any) Row {
	if s := t.stmt(ctx, query); s != nil {
		return s.QueryRowContext(ctx, args...)
	}
	return t.tx.QueryRowContext(ctx, query, args...)
}
