package bench

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	// The bench fills the store directly, with the drivers the bridge uses.
	_ "github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"
)

// ScaleOptions size a start-up and memory measurement.
type ScaleOptions struct {
	Options
	Portals  int
	Ghosts   int
	Mappings int
	// Active is how many stored portals get a text after start-up, to see
	// memory grow with activity.
	Active int
}

// ScaleReport is what RunScale measured.
type ScaleReport struct {
	Portals, Ghosts, Mappings int
	StartupToReady            time.Duration
	IdleRSS                   int64
	Active                    int
	ActiveRSS                 int64
	PerActivePortal           int64
}

// Text formats the report.
func (r *ScaleReport) Text() string {
	return fmt.Sprintf("store: %d portals, %d ghosts, %d message mappings\n"+
		"start-up to ready: %s\nidle RSS: %.1f MB\n"+
		"after a text in %d stored portals: RSS %.1f MB, %.1f KB per active portal",
		r.Portals, r.Ghosts, r.Mappings, r.StartupToReady.Round(time.Millisecond), float64(r.IdleRSS)/(1<<20),
		r.Active, float64(r.ActiveRSS)/(1<<20), float64(r.PerActivePortal)/1024)
}

// RunScale fills the store with many portals, ghosts and mappings, then
// measures how long the bridge takes to become ready, its idle memory, and
// how memory grows as stored portals become active.
func RunScale(ctx context.Context, opts ScaleOptions) (*ScaleReport, error) {
	opts.Numbers = max(opts.Active, 1)
	r, bridgeURL, cleanup, err := startNull(ctx, opts.Options)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	if err := r.bridge.Stop(); err != nil {
		return nil, err
	}
	opts.progress("filling the store: %d portals, %d ghosts, %d mappings", opts.Portals, opts.Ghosts, opts.Mappings)
	start := time.Now()
	if err := fillStore(ctx, r.dbType, r.dbURI, opts); err != nil {
		return nil, err
	}
	opts.progress("filled in %s", time.Since(start).Round(time.Second))

	report := &ScaleReport{Portals: opts.Portals, Ghosts: opts.Ghosts, Mappings: opts.Mappings, Active: opts.Active}
	start = time.Now()
	if err := r.bridge.StartAgain(ctx, r.binary); err != nil {
		return nil, err
	}
	report.StartupToReady = time.Since(start)
	// Let start-up garbage be collected before reading idle memory.
	waitQuiet(ctx, r.bridge.PID())
	st, err := ReadProcStats(r.bridge.PID())
	if err != nil {
		return nil, err
	}
	report.IdleRSS = st.RSS
	opts.progress("ready after %s, idle RSS %.1f MB", report.StartupToReady, float64(st.RSS)/(1<<20))
	if opts.Active > 0 {
		// The stored portals' numbers are remoteNumber(i); a text from each
		// loads its portal, ghost and login state into memory.
		if _, err := r.inbound(ctx, bridgeURL, opts.Active, "active"); err != nil {
			return nil, err
		}
		waitQuiet(ctx, r.bridge.PID())
		st, err = ReadProcStats(r.bridge.PID())
		if err != nil {
			return nil, err
		}
		report.ActiveRSS = st.RSS
		report.PerActivePortal = (st.RSS - report.IdleRSS) / int64(opts.Active)
	}
	return report, nil
}

// waitQuiet waits until the process's CPU time stops moving, so memory is
// read after the work it was measuring, not in the middle of it.
func waitQuiet(ctx context.Context, pid int) {
	prev, _ := ReadProcStats(pid)
	for i := 0; i < 50; i++ {
		select {
		case <-ctx.Done():
			return
		case <-time.After(200 * time.Millisecond):
		}
		st, _ := ReadProcStats(pid)
		if st.CPU-prev.CPU < 20*time.Millisecond {
			return
		}
		prev = st
	}
}

// openStore opens the bridge's store directly, one connection, for the
// bench to fill it while the bridge is stopped.
func openStore(dbType, uri string) (*sql.DB, error) {
	driver, dsn := "sqlite", "file:"+uri+"?_pragma=journal_mode(WAL)&_pragma=synchronous(OFF)&_pragma=busy_timeout(5000)"
	if dbType == "postgres" {
		driver, dsn = "pgx", uri
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	return db, nil
}

// fillStore bulk-inserts rows shaped like the bridge's own: portals with
// rooms for the bench login, their ghosts, and message mappings spread over
// the portals.
func fillStore(ctx context.Context, dbType, uri string, opts ScaleOptions) error {
	db, err := openStore(dbType, uri)
	if err != nil {
		return err
	}
	defer db.Close()
	now := time.Now().UnixMilli()
	portal := func(i int) string { return strings.TrimPrefix(remoteNumber(i), "+") }
	if err := insertRows(ctx, db, "portal (id, receiver, mxid, room_type, other_user_id, name, created_at)", 7, opts.Portals,
		func(i int) []any {
			return []any{portal(i), benchLogin, fmt.Sprintf("!scale%d:localhost", i), "dm", portal(i), remoteNumber(i), now}
		}); err != nil {
		return fmt.Errorf("portals: %w", err)
	}
	if err := insertRows(ctx, db, "ghost (id, name, name_set, registered)", 4, opts.Ghosts,
		func(i int) []any { return []any{portal(i), remoteNumber(i), true, true} }); err != nil {
		return fmt.Errorf("ghosts: %w", err)
	}
	if err := insertRows(ctx, db, "message (portal_id, portal_receiver, id, part_id, mxid, sender_id, timestamp)", 7, opts.Mappings,
		func(i int) []any {
			p := i % max(opts.Portals, 1)
			return []any{portal(p), benchLogin, fmt.Sprintf("SMscale%028d", i), "", fmt.Sprintf("$scale%d", i), portal(p), now}
		}); err != nil {
		return fmt.Errorf("mappings: %w", err)
	}
	return nil
}

// insertRows inserts count rows in multi-row statements inside large
// transactions.
func insertRows(ctx context.Context, db *sql.DB, table string, cols, count int, row func(i int) []any) error {
	const perStmt = 100
	const perTx = 50_000
	placeholders := func(n int) string {
		var sb strings.Builder
		for r := 0; r < n; r++ {
			if r > 0 {
				sb.WriteByte(',')
			}
			sb.WriteByte('(')
			for c := 0; c < cols; c++ {
				if c > 0 {
					sb.WriteByte(',')
				}
				fmt.Fprintf(&sb, "$%d", r*cols+c+1)
			}
			sb.WriteByte(')')
		}
		return sb.String()
	}
	full := "INSERT INTO " + table + " VALUES " + placeholders(perStmt) + " ON CONFLICT DO NOTHING"
	for done := 0; done < count; {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		stmt, err := tx.PrepareContext(ctx, full)
		if err != nil {
			_ = tx.Rollback()
			return err
		}
		for end := min(done+perTx, count); done < end; {
			n := min(perStmt, end-done)
			args := make([]any, 0, n*cols)
			for i := 0; i < n; i++ {
				args = append(args, row(done+i)...)
			}
			if n == perStmt {
				_, err = stmt.ExecContext(ctx, args...)
			} else {
				_, err = tx.ExecContext(ctx, "INSERT INTO "+table+" VALUES "+placeholders(n)+" ON CONFLICT DO NOTHING", args...)
			}
			if err != nil {
				_ = tx.Rollback()
				return err
			}
			done += n
		}
		if err := tx.Commit(); err != nil {
			return err
		}
	}
	return nil
}
