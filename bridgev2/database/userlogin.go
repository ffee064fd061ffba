package database

import (
	"context"
	"errors"
	"fmt"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/bridgev2/networkid"
	"github.com/trestle-bridge/trestle/bridgev2/seal"
)

// ErrLoginTaken is returned when a login ID is already owned by another
// Matrix user: two users must never share one remote account's portals.
var ErrLoginTaken = errors.New("this account is already logged in by another Matrix user")

// UserLogin is one remote account of a Matrix user.
type UserLogin struct {
	ID         networkid.UserLoginID
	UserMXID   id.UserID
	RemoteName string
	// State is the last bridge state (CONNECTED, BAD_CREDENTIALS, ...),
	// persisted so a login in a bad state stays there across restarts.
	State      string
	StateError string
	Metadata   any
	CreatedAt  time.Time
}

// LoginQuery reads and writes the user_login table.
type LoginQuery struct{ d *Database }

const loginColumns = "id, user_mxid, remote_name, state, state_error, metadata, created_at"

func (q *LoginQuery) scan(row rowScanner) (*UserLogin, error) {
	var l UserLogin
	var meta string
	var created int64
	if err := row.Scan(&l.ID, &l.UserMXID, &l.RemoteName, &l.State, &l.StateError, &meta, &created); err != nil {
		return nil, notFound(err)
	}
	plain, err := q.open(l.ID, meta)
	if err != nil {
		return nil, err
	}
	if l.Metadata, err = unmarshalMeta(q.d.meta.Login, plain); err != nil {
		return nil, err
	}
	l.CreatedAt = time.UnixMilli(created)
	return &l, nil
}

// Get returns the login or ErrNotFound.
func (q *LoginQuery) Get(ctx context.Context, loginID networkid.UserLoginID) (*UserLogin, error) {
	return q.scan(q.d.queryRow(ctx, "SELECT "+loginColumns+" FROM user_login WHERE id=$1", loginID))
}

// GetAll returns every login; logins are few (one per remote account) and all
// of them are connected at start-up.
func (q *LoginQuery) GetAll(ctx context.Context) ([]*UserLogin, error) {
	return q.list(ctx, "SELECT "+loginColumns+" FROM user_login ORDER BY created_at")
}

// GetAllForUser returns the logins of one Matrix user, oldest first.
func (q *LoginQuery) GetAllForUser(ctx context.Context, mxid id.UserID) ([]*UserLogin, error) {
	return q.list(ctx, "SELECT "+loginColumns+" FROM user_login WHERE user_mxid=$1 ORDER BY created_at", mxid)
}

func (q *LoginQuery) list(ctx context.Context, query string, args ...any) ([]*UserLogin, error) {
	rows, err := q.d.query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*UserLogin
	for rows.Next() {
		l, err := q.scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, rows.Err()
}

// Upsert inserts a new login or updates the one with the same ID, but only if
// it belongs to the same Matrix user; otherwise it returns ErrLoginTaken.
func (q *LoginQuery) Upsert(ctx context.Context, tx Execer, l *UserLogin) error {
	meta, err := marshalMeta(l.Metadata)
	if err != nil {
		return err
	}
	if q.d.secrets != nil {
		meta = q.d.secrets.Seal([]byte(meta), []byte(l.ID))
	}
	if l.CreatedAt.IsZero() {
		l.CreatedAt = time.Now()
	}
	res, err := tx.ExecContext(ctx, `
		INSERT INTO user_login (id, user_mxid, remote_name, state, state_error, metadata, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (id) DO UPDATE SET remote_name=excluded.remote_name, state=excluded.state,
			state_error=excluded.state_error, metadata=excluded.metadata
		WHERE user_login.user_mxid=excluded.user_mxid`,
		l.ID, l.UserMXID, l.RemoteName, l.State, l.StateError, meta, l.CreatedAt.UnixMilli())
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return ErrLoginTaken
	}
	return nil
}

// Delete removes the login and, with it, its stored credentials.
func (q *LoginQuery) Delete(ctx context.Context, tx Execer, loginID networkid.UserLoginID) error {
	_, err := tx.ExecContext(ctx, "DELETE FROM user_login WHERE id=$1", loginID)
	return err
}

// open returns a metadata column as plain JSON. Logins' metadata is where
// connectors keep credentials (Twilio auth tokens, API key secrets), so it is
// sealed at rest; the row's ID is bound into the seal, so a value copied
// into another row does not open.
func (q *LoginQuery) open(loginID networkid.UserLoginID, column string) (string, error) {
	if !seal.IsSealed(column) {
		return column, nil
	}
	if q.d.secrets == nil {
		return "", fmt.Errorf("login %s: its stored credentials are encrypted, but no database.secret_key is configured", loginID)
	}
	plain, err := q.d.secrets.Open(column, []byte(loginID))
	if err != nil {
		return "", fmt.Errorf("login %s: cannot decrypt its stored credentials (database.secret_key is key %s): %w",
			loginID, q.d.secrets.CurrentID(), err)
	}
	return string(plain), nil
}

// reseal brings every login's metadata under the current key at start-up:
// rows written before a secret key was configured, and rows sealed with a
// key now listed in database.old_secret_keys. Every row is decrypted before
// anything is written, so a wrong key stops start-up with nothing changed.
// Each update only applies if the row still holds what was read, so a write
// by another process meanwhile is never overwritten.
func (q *LoginQuery) reseal(ctx context.Context) error {
	if q.d.secrets == nil {
		return nil
	}
	rows, err := q.d.db.QueryContext(ctx, "SELECT id, metadata FROM user_login")
	if err != nil {
		return fmt.Errorf("read logins to encrypt their credentials: %w", err)
	}
	type change struct {
		id       networkid.UserLoginID
		old, new string
	}
	var changes []change
	for rows.Next() {
		var c change
		if err := rows.Scan(&c.id, &c.old); err != nil {
			rows.Close()
			return fmt.Errorf("read logins to encrypt their credentials: %w", err)
		}
		if seal.KeyID(c.old) == q.d.secrets.CurrentID() {
			continue
		}
		plain, err := q.open(c.id, c.old)
		if err != nil {
			rows.Close()
			return fmt.Errorf("%w. Set database.secret_key to the key it was written with, or list that key in database.old_secret_keys; nothing was changed", err)
		}
		c.new = q.d.secrets.Seal([]byte(plain), []byte(c.id))
		changes = append(changes, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read logins to encrypt their credentials: %w", err)
	}
	if len(changes) == 0 {
		return nil
	}
	err = q.d.Write(ctx, func(ctx context.Context, tx Execer) error {
		for _, c := range changes {
			if _, err := tx.ExecContext(ctx, "UPDATE user_login SET metadata=$1 WHERE id=$2 AND metadata=$3", c.new, c.id, c.old); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("encrypt stored login credentials with database.secret_key: %w", err)
	}
	q.d.log.Info().Int("logins", len(changes)).Str("key_id", q.d.secrets.CurrentID()).Msg("Encrypted stored login credentials with the current secret key")
	return nil
}
