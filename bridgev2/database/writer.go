package database

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
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
	wg    sync.WaitGroup
	log   zerolog.Logger
	// pipelined runs each batch's statements in pipelined rounds
	// (PostgreSQL; see pipeline.go).
	pipelined bool
	scans     *scanMap

	closeOnce sync.Once
	mu        sync.RWMutex
	closed    bool
}

// newWriter starts the writer with the given number of committing
// goroutines: one for SQLite, which allows a single writer anyway; a few
// for PostgreSQL, where each commit is a network round trip that other
// batches can overlap with. pipelined selects the PostgreSQL pipeline.
func newWriter(db *sql.DB, stmts *stmtCache, log zerolog.Logger, workers int, pipelined bool) *writer {
	w := &writer{db: db, stmts: stmts, ops: make(chan *writeOp, maxBatch), log: log,
		pipelined: pipelined, scans: &scanMap{m: pgtype.NewMap()}}
	for i := 0; i < max(workers, 1); i++ {
		w.wg.Add(1)
		go w.run()
	}
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
	live := batch[:0:0]
	for _, op := range batch {
		if err := op.ctx.Err(); err != nil {
			op.done <- err
		} else {
			live = append(live, op)
		}
	}
	if len(live) > 0 {
		w.commitBatch(ctx, live)
	}
	if d := time.Since(start); d > time.Second {
		w.log.Warn().Dur("duration", d).Int("batch", len(batch)).Msg("Slow database write batch")
	}
}

// commitBatch runs every op in one transaction. If one of them fails, the
// transaction is rolled back and each op runs again in its own, so that
// only the failing caller sees its error. Failures are rare (constraint
// violations; most inserts use ON CONFLICT), so the common case costs one
// commit for the whole batch and no per-op savepoints, whose round trips
// made PostgreSQL slow.
func (w *writer) commitBatch(ctx context.Context, batch []*writeOp) {
	err := w.runTx(ctx, batch)
	if err == nil {
		for _, op := range batch {
			op.done <- nil
		}
		return
	}
	var opErr *opError
	if len(batch) == 1 || !errors.As(err, &opErr) {
		for _, op := range batch {
			op.done <- err
		}
		return
	}
	for _, op := range batch {
		op.done <- w.runTx(ctx, []*writeOp{op})
	}
}

// opError marks an error returned by a caller's function, as opposed to the
// transaction itself failing.
type opError struct{ err error }

func (e *opError) Error() string { return e.err.Error() }
func (e *opError) Unwrap() error { return e.err }

func (w *writer) runTx(ctx context.Context, batch []*writeOp) error {
	if w.pipelined {
		return w.runPipelined(ctx, batch)
	}
	sqlTx, err := w.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin write transaction: %w", err)
	}
	tx := &cachedTx{tx: sqlTx, stmts: w.stmts}
	for _, op := range batch {
		if err := op.fn(ctx, tx); err != nil {
			_ = sqlTx.Rollback()
			if len(batch) == 1 {
				return err
			}
			return &opError{err}
		}
	}
	if err := sqlTx.Commit(); err != nil {
		return fmt.Errorf("commit write transaction: %w", err)
	}
	return nil
}
