// Package dbtest opens throwaway databases for tests: a fresh SQLite file
// always, and a fresh PostgreSQL schema when TRESTLE_TEST_POSTGRES holds a
// connection URL (CI sets it to the server on 127.0.0.1:5432).
package dbtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/trestle-bridge/trestle/bridgev2/database"
)

// PostgresEnv is the environment variable holding the PostgreSQL test URL.
const PostgresEnv = "TRESTLE_TEST_POSTGRES"

// Dialects lists the databases to run a store test on: SQLite always, plus
// PostgreSQL when PostgresEnv is set.
func Dialects() []database.Dialect {
	out := []database.Dialect{database.SQLite}
	if os.Getenv(PostgresEnv) != "" {
		out = append(out, database.Postgres)
	}
	return out
}

// URI returns a connection string for a fresh, empty database of the given
// dialect that is dropped when the test ends.
func URI(t testing.TB, dialect database.Dialect) string {
	t.Helper()
	switch dialect {
	case database.SQLite:
		return filepath.Join(t.TempDir(), "trestle.db")
	case database.Postgres:
		return freshSchema(t)
	default:
		t.Fatalf("unknown dialect %q", dialect)
		return ""
	}
}

// Open opens a fresh migrated database of the given dialect, closed when the
// test ends.
func Open(t testing.TB, dialect database.Dialect, meta database.MetaTypes) *database.Database {
	t.Helper()
	db, err := database.Open(context.Background(), dialect, URI(t, dialect), database.Options{Meta: meta, Log: zerolog.Nop()})
	if err != nil {
		t.Fatalf("open %s test database: %v", dialect, err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// freshSchema creates a uniquely named schema and returns the test URL with
// search_path pointing at it, so parallel tests never see each other's rows.
func freshSchema(t testing.TB) string {
	t.Helper()
	uri, drop, err := FreshPostgresSchema(os.Getenv(PostgresEnv))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(drop)
	return uri
}

// FreshPostgresSchema creates a uniquely named schema on the server at base
// and returns a URL using it and a function that drops it. It is for
// TestMain functions and tools, which have no testing.TB.
func FreshPostgresSchema(base string) (uri string, drop func(), err error) {
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "trestle_test_" + hex.EncodeToString(b[:])
	admin, err := sql.Open("pgx", base)
	if err != nil {
		return "", nil, fmt.Errorf("open %s: %w", PostgresEnv, err)
	}
	defer admin.Close()
	if _, err := admin.Exec("CREATE SCHEMA " + schema); err != nil {
		return "", nil, fmt.Errorf("create test schema (is PostgreSQL running at %s?): %w", PostgresEnv, err)
	}
	drop = func() {
		cleanup, err := sql.Open("pgx", base)
		if err != nil {
			return
		}
		defer cleanup.Close()
		_, _ = cleanup.Exec("DROP SCHEMA " + schema + " CASCADE")
	}
	return WithSearchPath(base, schema), drop, nil
}

// WithSearchPath returns the URL with its search_path set to schema.
func WithSearchPath(base, schema string) string {
	if u, err := url.Parse(base); err == nil && u.Scheme != "" {
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		return u.String()
	}
	// Key/value DSN form.
	return strings.TrimSpace(base) + " search_path=" + schema
}
