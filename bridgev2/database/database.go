// Package database is the bridge core's store: users, logins, portals, ghosts,
// the message mapping, and the two journals that make every hand-off durable
// (remote events waiting for Matrix, Matrix events waiting for the remote
// network). Every table's SQL lives in the file named after it; the same
// queries run on SQLite and PostgreSQL.
//
// All writes go through one group-commit writer (see writer.go): concurrent
// callers are batched into a single transaction, so that "commit before
// acknowledging" stays cheap under load.
package database

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/rs/zerolog"

	// Drivers register themselves with database/sql, as the standard library intends.
	_ "github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"
)

// Dialect names a supported SQL database.
type Dialect string

// Supported dialects, as written in the config's database.type.
const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// ErrNotFound is returned by lookups that found no row.
var ErrNotFound = errors.New("not found")

// MetaTypes tells the store which Go types hold connector-owned metadata, so
// rows come back with typed values rather than raw JSON. A nil constructor
// means the metadata is decoded into a map[string]any.
type MetaTypes struct {
	Login   func() any
	Portal  func() any
	Ghost   func() any
	Message func() any
}

// Database is an open store. Its table accessors (Users, Logins, ...) are
// safe for concurrent use.
type Database struct {
	Dialect Dialect

	Users     *UserQuery
	Logins    *LoginQuery
	Portals   *PortalQuery
	Ghosts    *GhostQuery
	Messages  *MessageQuery
	Reactions *ReactionQuery
	Inbound   *InboundQuery
	Outbound  *OutboundQuery
	Txns      *TxnQuery
	KV        *KVQuery
	Reports   *ReportQuery
	Leases    *LeaseQuery
	Crypto    *CryptoQuery

	db     *sql.DB
	stmts  *stmtCache
	writer *writer
	meta   MetaTypes
	log    zerolog.Logger
	// schema is PostgreSQL's current schema, which names notification
	// channels.
	schema string
}

// Options configure Open.
type Options struct {
	// MaxOpenConns bounds the connection pool; zero picks a default per dialect.
	MaxOpenConns int
	// Meta declares the connector's metadata types.
	Meta MetaTypes
	// Log receives the store's own log lines (migrations, slow batches).
	Log zerolog.Logger
}

// Open connects to the database, applies pending migrations and starts the
// writer. For SQLite, uri is a file path or a "file:" URI; for PostgreSQL, a
// libpq-style URL or DSN.
func Open(ctx context.Context, dialect Dialect, uri string, opts Options) (*Database, error) {
	var driver, dsn string
	switch dialect {
	case SQLite:
		driver, dsn = "sqlite", sqliteDSN(uri)
	case Postgres:
		driver, dsn = "pgx", uri
	default:
		return nil, fmt.Errorf("unknown database type %q (want %q or %q)", dialect, SQLite, Postgres)
	}
	sqlDB, err := sql.Open(driver, dsn)
	if err != nil {
		return nil, fmt.Errorf("open %s database: %w", dialect, err)
	}
	maxConns := opts.MaxOpenConns
	if maxConns <= 0 {
		// Readers plus the writer's connections (see newWriter).
		maxConns = 16
	}
	sqlDB.SetMaxOpenConns(maxConns)
	sqlDB.SetMaxIdleConns(maxConns)
	sqlDB.SetConnMaxIdleTime(5 * time.Minute)

	pingCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := sqlDB.PingContext(pingCtx); err != nil {
		_ = sqlDB.Close()
		return nil, fmt.Errorf("connect to %s database: %w", dialect, err)
	}
	d := &Database{Dialect: dialect, db: sqlDB, meta: opts.Meta, log: opts.Log}
	if dialect == Postgres {
		if err := sqlDB.QueryRowContext(ctx, "SELECT current_schema()").Scan(&d.schema); err != nil {
			_ = sqlDB.Close()
			return nil, fmt.Errorf("read the PostgreSQL schema: %w", err)
		}
	}
	if err := d.migrate(ctx); err != nil {
		_ = sqlDB.Close()
		return nil, err
	}
	d.stmts = newStmtCache(sqlDB)
	workers := 1
	if dialect == Postgres {
		workers = 4
	}
	d.writer = newWriter(sqlDB, d.stmts, opts.Log, workers)
	d.Users = &UserQuery{d}
	d.Logins = &LoginQuery{d}
	d.Portals = &PortalQuery{d}
	d.Ghosts = &GhostQuery{d}
	d.Messages = &MessageQuery{d}
	d.Reactions = &ReactionQuery{d}
	d.Inbound = &InboundQuery{d}
	d.Outbound = &OutboundQuery{d}
	d.Txns = &TxnQuery{d}
	d.KV = &KVQuery{d}
	d.Reports = &ReportQuery{d}
	d.Leases = &LeaseQuery{d}
	d.Crypto = &CryptoQuery{d}
	return d, nil
}

// sqliteDSN adds the pragmas the bridge relies on: WAL so readers never block
// the writer, a busy timeout instead of immediate SQLITE_BUSY, foreign keys for
// cascading deletes, and synchronous=FULL so an acknowledged commit survives a
// power loss, not only a crash.
func sqliteDSN(uri string) string {
	if !strings.HasPrefix(uri, "file:") {
		uri = "file:" + uri
	}
	pragmas := []string{"journal_mode(WAL)", "busy_timeout(10000)", "foreign_keys(1)", "synchronous(FULL)"}
	q := url.Values{}
	for _, p := range pragmas {
		name := p[:strings.IndexByte(p, '(')]
		if !strings.Contains(uri, name) {
			q.Add("_pragma", p)
		}
	}
	if len(q) == 0 {
		return uri
	}
	sep := "?"
	if strings.Contains(uri, "?") {
		sep = "&"
	}
	return uri + sep + q.Encode()
}

// Ping checks that the database answers, for readiness probes.
func (d *Database) Ping(ctx context.Context) error {
	return d.db.PingContext(ctx)
}

// Close stops the writer (after it finished the batch in flight) and closes
// the pool.
func (d *Database) Close() error {
	if d.writer != nil {
		d.writer.close()
	}
	if d.stmts != nil {
		d.stmts.close()
	}
	return d.db.Close()
}

// Write runs fn in the writer's next batch and returns once that batch is
// committed. fn must only touch the database: it runs on the single writer
// goroutine, so network calls inside it would stall every other writer.
func (d *Database) Write(ctx context.Context, fn func(ctx context.Context, tx Execer) error) error {
	return d.writer.do(ctx, fn)
}

// Execer is the part of *sql.Tx that write functions use.
type Execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// rowScanner is satisfied by *sql.Row and *sql.Rows.
type rowScanner interface {
	Scan(dest ...any) error
}

func notFound(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	return err
}

// nowMillis is the timestamp format stored in every *_at column.
func nowMillis() int64 { return time.Now().UnixMilli() }

func nullString(s string) sql.NullString {
	return sql.NullString{String: s, Valid: s != ""}
}
