package database

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// maxBatch bounds how many callers share one transaction. Larger batches
// amortise the commit (an fsync on SQLite, a round trip on PostgreSQL) further
// but make every caller in the batch wait for the slowest statement.
const maxBatch = 256

// errWriterClosed is returned to writes queued after Close.
var errWriterClosed = errors.New("database writer is closed")

type writeOp struct {
	ctx  context.Context
	fn   func(ctx context.Context, tx Execer) error
	done chan error
}

// writer is a group-commit writer: one goroutine owns all writes and commits
// whatever has queued up since its last commit as one transaction. Each
// caller's statements run inside a savepoint, so one caller's failure (a
// constraint violation, say) rolls back only its own changes.
//
// Funnelling writes through one goroutine is also what SQLite wants (one
// writer at a time) and keeps PostgreSQL's lock order trivially consistent.
type writer struct {
	db    *sql.DB
	stmts *stmtCache
	ops   chan *writeOp
	stop  chan struct{}
	wg    sync.WaitGroup
	log   zerolog.Logger

	closeOnce sync.Once
	mu        sync.RWMutex
	closed    bool
}

func newWriter(db *sql.DB, stmts *stmtCache, log zerolog.Logger) *writer {
	w := &writer{db: db, stmts: stmts, ops: make(chan *writeOp, maxBatch), stop: make(chan struct{}), log: log}
	w.wg.Add(1)
	go w.run()
	return w
}

func (w *writer) do(ctx context.Context, fn func(ctx context.Context, tx Execer) error) error {
	op := &writeOp{ctx: ctx, fn: fn, done: make(chan error, 1)}
	w.mu.RLock()
	if w.closed {
		w.mu.RUnlock()
		return errWriterClosed
	}
	select {
	case w.ops <- op:
		w.mu.RUnlock()
	case <-ctx.Done():
		w.mu.RUnlock()
		return ctx.Err()
	}
	select {
	case err := <-op.done:
		return err
	case <-ctx.Done():
		// The batch may still commit; callers treat this as "unknown" and
		// rely on idempotent retries, never on the write having failed.
		return ctx.Err()
	}
}

func (w *writer) close() {
	w.closeOnce.Do(func() {
		w.mu.Lock()
		w.closed = true
		close(w.ops)
		w.mu.Unlock()
		w.wg.Wait()
	})
}

func (w *writer) run() {
	defer w.wg.Done()
	batch := make([]*writeOp, 0, maxBatch)
	for op := range w.ops {
		batch = append(batch[:0], op)
	fill:
		for len(batch) < maxBatch {
			select {
			case next, ok := <-w.ops:
				if !ok {
					break fill
				}
				batch = append(batch, next)
			default:
				break fill
			}
		}
		w.commit(batch)
	}
}

func (w *writer) commit(batch []*writeOp) {
	start := time.Now()
	// The batch outlives any single caller's context; a bound keeps a stuck
	// database from wedging the writer forever.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	results := make([]error, len(batch))
	err := w.commitOnce(ctx, batch, results)
	for i, op := range batch {
		if err != nil {
			op.done <- err
		} else {
			op.done <- results[i]
		}
	}
	if d := time.Since(start); d > time.Second {
		w.log.Warn().Dur("duration", d).Int("batch", len(batch)).Msg("Slow database write batch")
	}
}

func (w *writer) commitOnce(ctx context.Context, batch []*writeOp, results []error) error {
	sqlTx, err := w.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin write transaction: %w", err)
	}
	tx := &cachedTx{tx: sqlTx, stmts: w.stmts}
	single := len(batch) == 1
	for i, op := range batch {
		if op.ctx.Err() != nil {
			results[i] = op.ctx.Err()
			continue
		}
		if single {
			results[i] = op.fn(ctx, tx)
			continue
		}
		if _, err := tx.ExecContext(ctx, "SAVEPOINT trestle_op"); err != nil {
			_ = sqlTx.Rollback()
			return fmt.Errorf("create savepoint: %w", err)
		}
		if results[i] = op.fn(ctx, tx); results[i] != nil {
			if _, err := tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT trestle_op"); err != nil {
				_ = sqlTx.Rollback()
				return fmt.Errorf("roll back savepoint: %w", err)
			}
		}
		if _, err := tx.ExecContext(ctx, "RELEASE SAVEPOINT trestle_op"); err != nil {
			_ = sqlTx.Rollback()
			return fmt.Errorf("release savepoint: %w", err)
		}
	}
	if single && results[0] != nil {
		_ = sqlTx.Rollback()
		return nil
	}
	if err := sqlTx.Commit(); err != nil {
		return fmt.Errorf("commit write transaction: %w", err)
	}
	return nil
}
