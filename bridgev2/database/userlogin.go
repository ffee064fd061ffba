package database

import (
	"context"
	"errors"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/bridgev2/networkid"
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
	var err error
	if l.Metadata, err = unmarshalMeta(q.d.meta.Login, meta); err != nil {
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
