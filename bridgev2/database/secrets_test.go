package database_test

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/trestle-bridge/trestle/bridgev2/database"
	"github.com/trestle-bridge/trestle/bridgev2/database/dbtest"
	"github.com/trestle-bridge/trestle/bridgev2/seal"
)

const (
	secretToken = "auth-token-3f9a71c0d2e54b8a"
	oldKey      = "the-old-secret-key-0123456789abcdef"
	newKey      = "the-new-secret-key-0123456789abcdef"
	strangerKey = "somebody-elses-key-0123456789abcdef"
)

func keyring(t *testing.T, current string, old ...string) *seal.Keyring {
	t.Helper()
	k, err := seal.NewKeyring(current, old...)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// secretsDB is one database reopened with different keys, as an admin
// restarting the bridge with an edited config would.
type secretsDB struct {
	t       *testing.T
	dialect database.Dialect
	uri     string
}

func (s secretsDB) open(keys *seal.Keyring) (*database.Database, error) {
	return database.Open(context.Background(), s.dialect, s.uri, database.Options{Meta: meta, Log: zerolog.Nop(), Secrets: keys})
}

func (s secretsDB) mustOpen(keys *seal.Keyring) *database.Database {
	s.t.Helper()
	db, err := s.open(keys)
	if err != nil {
		s.t.Fatalf("open: %v", err)
	}
	return db
}

// dump is what a database dump or backup shows of the login row.
func (s secretsDB) dump() string {
	s.t.Helper()
	driver := map[database.Dialect]string{database.SQLite: "sqlite", database.Postgres: "pgx"}[s.dialect]
	raw, err := sql.Open(driver, s.uri)
	if err != nil {
		s.t.Fatal(err)
	}
	defer raw.Close()
	var row string
	if err := raw.QueryRow("SELECT id || ' ' || remote_name || ' ' || metadata FROM user_login").Scan(&row); err != nil {
		s.t.Fatal(err)
	}
	return row
}

func (s secretsDB) storeLogin(db *database.Database) {
	s.t.Helper()
	write(s.t, db, func(ctx context.Context, tx database.Execer) error {
		if err := db.Users.Upsert(ctx, tx, &database.User{MXID: "@alice:example.com"}); err != nil {
			return err
		}
		return db.Logins.Upsert(ctx, tx, &database.UserLogin{ID: "AC123", UserMXID: "@alice:example.com",
			RemoteName: "+14155550100", Metadata: &loginMeta{Token: secretToken, Number: "+14155550100"}})
	})
}

func (s secretsDB) tokenOf(db *database.Database) string {
	s.t.Helper()
	l, err := db.Logins.Get(context.Background(), "AC123")
	if err != nil {
		s.t.Fatalf("read the login: %v", err)
	}
	return l.Metadata.(*loginMeta).Token
}

func forEachSecretsDB(t *testing.T, fn func(t *testing.T, s secretsDB)) {
	for _, dialect := range dbtest.Dialects() {
		t.Run(string(dialect), func(t *testing.T) {
			t.Parallel()
			fn(t, secretsDB{t: t, dialect: dialect, uri: dbtest.URI(t, dialect)})
		})
	}
}

func TestADatabaseDumpShowsNoLoginToken(t *testing.T) {
	forEachSecretsDB(t, func(t *testing.T, s secretsDB) {
		db := s.mustOpen(keyring(t, newKey))
		defer db.Close()
		s.storeLogin(db)
		if dump := s.dump(); strings.Contains(dump, secretToken) || !strings.Contains(dump, "+14155550100") {
			t.Fatalf("dump of the login row: %q", dump)
		}
		if got := s.tokenOf(db); got != secretToken {
			t.Fatalf("token read back %q", got)
		}
	})
}

func TestPlaintextLoginsAreEncryptedOnStart(t *testing.T) {
	forEachSecretsDB(t, func(t *testing.T, s secretsDB) {
		db := s.mustOpen(nil)
		s.storeLogin(db)
		_ = db.Close()
		if !strings.Contains(s.dump(), secretToken) {
			t.Fatal("the row written without a key is not plain: the test proves nothing")
		}
		db = s.mustOpen(keyring(t, newKey))
		defer db.Close()
		if dump := s.dump(); strings.Contains(dump, secretToken) {
			t.Fatalf("still plain after a start with a key: %q", dump)
		}
		if got := s.tokenOf(db); got != secretToken {
			t.Fatalf("token read back %q", got)
		}
	})
}

func TestKeyRotationReadsTheOldKeyAndReencryptsWithTheNew(t *testing.T) {
	forEachSecretsDB(t, func(t *testing.T, s secretsDB) {
		db := s.mustOpen(keyring(t, oldKey))
		s.storeLogin(db)
		_ = db.Close()
		before := s.dump()

		db = s.mustOpen(keyring(t, newKey, oldKey))
		if got := s.tokenOf(db); got != secretToken {
			t.Fatalf("token under the rotated keys %q", got)
		}
		_ = db.Close()
		if s.dump() == before {
			t.Fatal("the row was not re-encrypted on start")
		}

		// The old key is no longer needed: every row is under the new one.
		db = s.mustOpen(keyring(t, newKey))
		defer db.Close()
		if got := s.tokenOf(db); got != secretToken {
			t.Fatalf("token under the new key alone %q", got)
		}
	})
}

func TestAWrongKeyStopsStartUpAndLosesNothing(t *testing.T) {
	forEachSecretsDB(t, func(t *testing.T, s secretsDB) {
		db := s.mustOpen(keyring(t, oldKey))
		s.storeLogin(db)
		_ = db.Close()
		before := s.dump()

		_, err := s.open(keyring(t, strangerKey))
		if !errors.Is(err, seal.ErrUnknownKey) || !strings.Contains(err.Error(), "database.secret_key") ||
			!strings.Contains(err.Error(), "nothing was changed") {
			t.Fatalf("start with a wrong key: %v", err)
		}
		keyless := s.mustOpen(nil)
		_, err = keyless.Logins.Get(context.Background(), "AC123")
		_ = keyless.Close()
		if err == nil || !strings.Contains(err.Error(), "no database.secret_key is configured") {
			t.Fatalf("read without a key: %v", err)
		}
		if s.dump() != before {
			t.Fatal("a failed start changed the row")
		}
		db = s.mustOpen(keyring(t, oldKey))
		defer db.Close()
		if got := s.tokenOf(db); got != secretToken {
			t.Fatalf("token after the failed start %q", got)
		}
	})
}
