package database

import (
	"context"
	"embed"
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

type migration struct {
	version    int
	name       string
	statements []string
}

// loadMigrations reads the numbered files in migrations/ ("001_initial.sql"),
// in order, adapted to the dialect.
func loadMigrations(dialect Dialect) ([]migration, error) {
	entries, err := migrationFiles.ReadDir("migrations")
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, e := range entries {
		numStr, _, ok := strings.Cut(e.Name(), "_")
		num, err := strconv.Atoi(numStr)
		if !ok || err != nil {
			return nil, fmt.Errorf("migration file %q does not start with a version number", e.Name())
		}
		data, err := migrationFiles.ReadFile(path.Join("migrations", e.Name()))
		if err != nil {
			return nil, err
		}
		text := string(data)
		if dialect == SQLite {
			// INTEGER PRIMARY KEY is SQLite's auto-assigned rowid.
			text = strings.ReplaceAll(text, "BIGSERIAL PRIMARY KEY", "INTEGER PRIMARY KEY")
		}
		out = append(out, migration{version: num, name: e.Name(), statements: splitStatements(text)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	for i, m := range out {
		if m.version != i+1 {
			return nil, fmt.Errorf("migration %s: expected version %d", m.name, i+1)
		}
	}
	return out, nil
}

// splitStatements splits a migration on semicolons that end a line, dropping
// comment lines, because not every driver accepts several statements in one
// Exec.
func splitStatements(text string) []string {
	var stmts []string
	var cur strings.Builder
	for _, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "--") {
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
		if strings.HasSuffix(trimmed, ";") {
			stmts = append(stmts, strings.TrimSpace(cur.String()))
			cur.Reset()
		}
	}
	if s := strings.TrimSpace(cur.String()); s != "" {
		stmts = append(stmts, s)
	}
	return stmts
}

// LatestVersion is the schema version this build expects.
func LatestVersion() int {
	ms, err := loadMigrations(SQLite)
	if err != nil {
		return 0
	}
	return len(ms)
}

// migrate applies every migration newer than the stored version, each in its
// own transaction together with the version bump, so a crash mid-upgrade
// leaves a consistent schema. A database newer than this build is refused
// rather than used with queries that may no longer match it.
func (d *Database) migrate(ctx context.Context) error {
	migrations, err := loadMigrations(d.Dialect)
	if err != nil {
		return fmt.Errorf("load migrations: %w", err)
	}
	if _, err := d.db.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS trestle_version (version INTEGER NOT NULL)"); err != nil {
		return fmt.Errorf("create version table: %w", err)
	}
	var current int
	err = d.db.QueryRowContext(ctx, "SELECT COALESCE(MAX(version), 0) FROM trestle_version").Scan(&current)
	if err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if current > len(migrations) {
		return fmt.Errorf("database schema is version %d but this build only knows up to %d: refusing to run an older bridge on a newer database", current, len(migrations))
	}
	for _, m := range migrations[current:] {
		tx, err := d.db.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("begin migration %s: %w", m.name, err)
		}
		for _, stmt := range m.statements {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				_ = tx.Rollback()
				return fmt.Errorf("migration %s failed at %q: %w", m.name, firstLine(stmt), err)
			}
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM trestle_version"); err != nil {
			_ = tx.Rollback()
			return fmt.Errorf("migration %s: %w", m.name, err)
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO trestle_version (version) VALUES ($1)", m.version); err != nil {
			_ = tx.Rollback()
			return fmt.Errorf("migration %s: %w", m.name, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("commit migration %s: %w", m.name, err)
		}
		d.log.Info().Int("version", m.version).Str("migration", m.name).Msg("Applied database migration")
	}
	return nil
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
