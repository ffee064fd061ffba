package database

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/stdlib"
)

// On PostgreSQL every statement is a network round trip, and a commit of a
// batch of N callers with two or three statements each used to cost 2N-3N
// round trips, one after the other. The pipelined writer runs the callers of
// a batch side by side instead, in rounds: it waits until every caller has
// either asked for its next statement or finished, sends all those
// statements as one pgx.Batch (one round trip), and hands each caller its
// result. A commit then costs as many round trips as its longest caller has
// statements, plus the COMMIT.
//
// Within a round the statements run in the callers' batch order, so a later
// caller sees an earlier caller's writes of the same or an earlier round.
// What a caller cannot see is an earlier caller's writes of a later round;
// the store's writes therefore decide and write in one statement (upserts
// with ON CONFLICT ... WHERE, UPDATE ... WHERE rank < ...) rather than
// reading a row first and writing it back.

// errPipelineAborted is returned for statements queued after another
// statement of the same transaction failed: PostgreSQL refuses everything
// until the rollback, and the writer retries each caller on its own.
var errPipelineAborted = errors.New("an earlier statement of this write batch failed")

// pipeReq is what a caller waits on: its next statement, or several
// independent ones (see queryRows).
type pipeReq struct {
	op    int
	stmts []pipeStmt
	reply chan []pipeResult
}

type pipeStmt struct {
	query    string
	args     []any
	wantRows bool
}

// pipeResult is a statement's outcome: a command tag for Exec, the first
// row (copied out of pgx's buffers) for QueryRow.
type pipeResult struct {
	tag    pgconn.CommandTag
	fields []pgconn.FieldDescription
	values [][]byte
	found  bool
	err    error
}

// pipeTx is the Execer a caller gets from the pipelined writer.
type pipeTx struct {
	op    int
	reqs  chan<- *pipeReq
	scans *scanMap
}

func (t *pipeTx) send(stmts ...pipeStmt) []pipeResult {
	r := &pipeReq{op: t.op, stmts: stmts, reply: make(chan []pipeResult, 1)}
	t.reqs <- r
	return <-r.reply
}

// ExecContext implements Execer.
func (t *pipeTx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	res := t.send(pipeStmt{query: query, args: args})[0]
	if res.err != nil {
		return nil, res.err
	}
	return pipeExecResult{res.tag}, nil
}

// QueryRowContext implements Execer.
func (t *pipeTx) QueryRowContext(ctx context.Context, query string, args ...any) Row {
	res := t.send(pipeStmt{query: query, args: args, wantRows: true})[0]
	return &pipeRow{res: res, scans: t.scans}
}

// queryRows implements rowsQuerier: the queries go out in the same round,
// one round trip for all of them.
func (t *pipeTx) queryRows(_ context.Context, queries []rowQuery) []Row {
	stmts := make([]pipeStmt, len(queries))
	for i, q := range queries {
		stmts[i] = pipeStmt{query: q.sql, args: q.args, wantRows: true}
	}
	out := make([]Row, len(queries))
	for i, res := range t.send(stmts...) {
		out[i] = &pipeRow{res: res, scans: t.scans}
	}
	return out
}

type pipeExecResult struct{ tag pgconn.CommandTag }

func (r pipeExecResult) LastInsertId() (int64, error) {
	return 0, errors.New("LastInsertId is not supported by PostgreSQL; use RETURNING")
}

func (r pipeExecResult) RowsAffected() (int64, error) { return r.tag.RowsAffected(), nil }

// scanMap converts result columns into Go values. pgtype.Map caches scan
// plans and is not safe for concurrent use, and callers scan concurrently.
type scanMap struct {
	mu sync.Mutex
	m  *pgtype.Map
}

type pipeRow struct {
	res   pipeResult
	scans *scanMap
}

// Scan implements Row like *sql.Row: sql.ErrNoRows when there was none.
func (r *pipeRow) Scan(dest ...any) error {
	if r.res.err != nil {
		return r.res.err
	}
	if !r.res.found {
		return sql.ErrNoRows
	}
	if len(dest) != len(r.res.fields) {
		return fmt.Errorf("scan: %d destinations for %d columns", len(dest), len(r.res.fields))
	}
	r.scans.mu.Lock()
	defer r.scans.mu.Unlock()
	for i, f := range r.res.fields {
		if err := r.scans.m.Scan(f.DataTypeOID, f.Format, r.res.values[i], dest[i]); err != nil {
			return fmt.Errorf("scan column %s: %w", f.Name, err)
		}
	}
	return nil
}

type opDone struct {
	op  int
	err error
}

// runPipelined runs a batch as one transaction on one PostgreSQL
// connection, in rounds of pipelined statements (see the top of this file).
// Errors follow runTx: a caller's error alone for a batch of one, an
// *opError when a caller of a larger batch failed.
func (w *writer) runPipelined(ctx context.Context, batch []*writeOp) error {
	conn, err := w.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("begin write transaction: %w", err)
	}
	defer conn.Close()
	return conn.Raw(func(driverConn any) error {
		sc, ok := driverConn.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("pipelined writes need the pgx driver, not %T", driverConn)
		}
		return w.rounds(ctx, sc.Conn(), batch)
	})
}

func (w *writer) rounds(ctx context.Context, pc *pgx.Conn, batch []*writeOp) error {
	reqs := make(chan *pipeReq, len(batch))
	done := make(chan opDone, len(batch))
	for i, op := range batch {
		tx := &pipeTx{op: i, reqs: reqs, scans: w.scans}
		go func() { done <- opDone{i, op.fn(ctx, tx)} }()
	}
	var opErr, stmtErr error
	begun := false
	for running := len(batch); running > 0; {
		// One event from every caller still running: its next statement,
		// or its return.
		var round []*pipeReq
		for waiting := running; waiting > 0; waiting-- {
			select {
			case r := <-reqs:
				round = append(round, r)
			case d := <-done:
				running--
				if d.err != nil && opErr == nil {
					opErr = d.err
				}
			}
		}
		if len(round) == 0 {
			continue
		}
		if opErr != nil || stmtErr != nil {
			// The batch will be rolled back: let the callers finish.
			for _, r := range round {
				r.reply <- aborted(len(r.stmts))
			}
			continue
		}
		slices.SortFunc(round, func(a, b *pipeReq) int { return a.op - b.op })
		if err := w.sendRound(ctx, pc, round, !begun); err != nil {
			stmtErr = err
		}
		begun = true
	}
	failed := opErr
	if failed == nil {
		failed = stmtErr
	}
	if failed != nil {
		if begun {
			if _, err := pc.Exec(ctx, "ROLLBACK"); err != nil {
				w.log.Warn().Err(err).Msg("Could not roll back a failed write batch")
			}
		}
		if len(batch) == 1 {
			return failed
		}
		return &opError{failed}
	}
	if !begun {
		return nil
	}
	tag, err := pc.Exec(ctx, "COMMIT")
	if err != nil {
		return fmt.Errorf("commit write transaction: %w", err)
	}
	if tag.String() != "COMMIT" {
		// PostgreSQL answers COMMIT of a failed transaction with ROLLBACK.
		return fmt.Errorf("commit write transaction: the server rolled it back (%s)", tag)
	}
	return nil
}

// sendRound sends one round's statements (after a BEGIN for the first) as a
// single pgx.Batch and answers every caller. It returns the first error.
func (w *writer) sendRound(ctx context.Context, pc *pgx.Conn, round []*pipeReq, begin bool) error {
	b := &pgx.Batch{}
	if begin {
		b.Queue("BEGIN")
	}
	for _, r := range round {
		for _, st := range r.stmts {
			b.Queue(st.query, st.args...)
		}
	}
	br := pc.SendBatch(ctx, b)
	var first error
	if begin {
		if _, err := br.Exec(); err != nil {
			first = fmt.Errorf("begin write transaction: %w", err)
		}
	}
	for _, r := range round {
		results := make([]pipeResult, len(r.stmts))
		for i, st := range r.stmts {
			res := &results[i]
			switch {
			case first != nil:
				res.err = errPipelineAborted
			case st.wantRows:
				*res = readRow(br)
			default:
				res.tag, res.err = br.Exec()
			}
			if res.err != nil && first == nil {
				first = res.err
			}
		}
		r.reply <- results
	}
	if err := br.Close(); err != nil && first == nil {
		first = err
	}
	return first
}

func aborted(n int) []pipeResult {
	out := make([]pipeResult, n)
	for i := range out {
		out[i].err = errPipelineAborted
	}
	return out
}

// readRow reads a query's first row, copying its values: pgx reuses the
// buffers for the next result.
func readRow(br pgx.BatchResults) pipeResult {
	rows, err := br.Query()
	if err != nil {
		return pipeResult{err: err}
	}
	defer rows.Close()
	var res pipeResult
	if rows.Next() {
		res.found = true
		res.fields = slices.Clone(rows.FieldDescriptions())
		for _, v := range rows.RawValues() {
			if v == nil {
				res.values = append(res.values, nil)
			} else {
				res.values = append(res.values, slices.Clone(v))
			}
		}
	}
	// Like *sql.Row, the rest is discarded (Close drains it).
	rows.Close()
	res.err = rows.Err()
	return res
}
