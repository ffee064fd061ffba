package database

import (
	"context"
	"time"

	"maunium.net/go/mautrix/id"
)

// User is a Matrix user the bridge has interacted with.
type User struct {
	MXID id.UserID
	// ManagementRoom is the user's DM with the bridge bot, where commands
	// need no prefix.
	ManagementRoom id.RoomID
	CreatedAt      time.Time
}

// UserQuery reads and writes the bridge_user table.
type UserQuery struct{ d *Database }

// Get returns the user or ErrNotFound.
func (q *UserQuery) Get(ctx context.Context, mxid id.UserID) (*User, error) {
	var u User
	var created int64
	err := q.d.queryRow(ctx,
		"SELECT mxid, management_room, created_at FROM bridge_user WHERE mxid=$1", mxid,
	).Scan(&u.MXID, &u.ManagementRoom, &created)
	if err != nil {
		return nil, notFound(err)
	}
	u.CreatedAt = time.UnixMilli(created)
	return &u, nil
}

// Upsert stores the user, replacing its management room.
func (q *UserQuery) Upsert(ctx context.Context, tx Execer, u *User) error {
	if u.CreatedAt.IsZero() {
		u.CreatedAt = time.Now()
	}
	_, err := tx.ExecContext(ctx, `
		INSERT INTO bridge_user (mxid, management_room, created_at) VALUES ($1, $2, $3)
		ON CONFLICT (mxid) DO UPDATE SET management_room=excluded.management_room`,
		u.MXID, u.ManagementRoom, u.CreatedAt.UnixMilli())
	return err
}
