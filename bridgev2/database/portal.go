package database

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/bridgev2/networkid"
)

// ErrPortalExists is returned by Insert when the portal row already exists.
var ErrPortalExists = errors.New("portal already exists")

// RoomType says what kind of chat a portal is.
type RoomType string

// Room types.
const (
	RoomTypeDM    RoomType = "dm"
	RoomTypeGroup RoomType = ""
)

// Portal is a remote chat and, once created, its Matrix room.
type Portal struct {
	networkid.PortalKey
	MXID        id.RoomID
	RoomType    RoomType
	OtherUserID networkid.UserID
	Name        string
	Topic       string
	AvatarID    networkid.AvatarID
	AvatarMXC   id.ContentURIString
	NameSet     bool
	RelayLogin  networkid.UserLoginID
	Metadata    any
	CreatedAt   time.Time
}

// PortalQuery reads and writes the portal table.
type PortalQuery struct{ d *Database }

const portalColumns = "id, receiver, mxid, room_type, other_user_id, name, topic, avatar_id, avatar_mxc, name_set, relay_login, metadata, created_at"

func (q *PortalQuery) scan(row rowScanner) (*Portal, error) {
	var p Portal
	var mxid sql.NullString
	var meta string
	var created int64
	err := row.Scan(&p.ID, &p.Receiver, &mxid, &p.RoomType, &p.OtherUserID, &p.Name, &p.Topic,
		&p.AvatarID, &p.AvatarMXC, &p.NameSet, &p.RelayLogin, &meta, &created)
	if err != nil {
		return nil, notFound(err)
	}
	p.MXID = id.RoomID(mxid.String)
	if p.Metadata, err = unmarshalMeta(q.d.meta.Portal, meta); err != nil {
		return nil, err
	}
	p.CreatedAt = time.UnixMilli(created)
	return &p, nil
}

// Get returns the portal or ErrNotFound.
func (q *PortalQuery) Get(ctx context.Context, key networkid.PortalKey) (*Portal, error) {
	return q.scan(q.d.queryRow(ctx,
		"SELECT "+portalColumns+" FROM portal WHERE id=$1 AND receiver=$2", key.ID, key.Receiver))
}

// GetByMXID returns the portal whose Matrix room is roomID, or ErrNotFound.
func (q *PortalQuery) GetByMXID(ctx context.Context, roomID id.RoomID) (*Portal, error) {
	return q.scan(q.d.queryRow(ctx, "SELECT "+portalColumns+" FROM portal WHERE mxid=$1", roomID))
}

// GetAllForReceiver returns every portal seen through one login.
func (q *PortalQuery) GetAllForReceiver(ctx context.Context, receiver networkid.UserLoginID) ([]*Portal, error) {
	return q.list(ctx, "SELECT "+portalColumns+" FROM portal WHERE receiver=$1", receiver)
}

// GetOrphaned returns the portals seen through a login that no longer
// exists: left behind by a login deleted outside the bridge, or by a crash
// in the middle of a logout.
func (q *PortalQuery) GetOrphaned(ctx context.Context) ([]*Portal, error) {
	return q.list(ctx, "SELECT "+portalColumns+" FROM portal WHERE receiver<>'' AND receiver NOT IN (SELECT id FROM user_login)")
}

// list runs a query of portal rows and scans them all.
func (q *PortalQuery) list(ctx context.Context, query string, args ...any) ([]*Portal, error) {
	rows, err := q.d.query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*Portal
	for rows.Next() {
		p, err := q.scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// Insert creates the portal row; it returns ErrPortalExists rather than
// overwriting a row another goroutine created first.
func (q *PortalQuery) Insert(ctx context.Context, tx Execer, p *Portal) error {
	meta, err := marshalMeta(p.Metadata)
	if err != nil {
		return err
	}
	if p.CreatedAt.IsZero() {
		p.CreatedAt = time.Now()
	}
	res, err := tx.ExecContext(ctx, `
		INSERT INTO portal (`+portalColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
		ON CONFLICT (id, receiver) DO NOTHING`,
		p.ID, p.Receiver, nullString(string(p.MXID)), p.RoomType, p.OtherUserID, p.Name, p.Topic,
		p.AvatarID, p.AvatarMXC, p.NameSet, p.RelayLogin, meta, p.CreatedAt.UnixMilli())
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return ErrPortalExists
	}
	return nil
}

// Update writes every mutable column of the portal.
func (q *PortalQuery) Update(ctx context.Context, tx Execer, p *Portal) error {
	meta, err := marshalMeta(p.Metadata)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `
		UPDATE portal SET mxid=$3, room_type=$4, other_user_id=$5, name=$6, topic=$7, avatar_id=$8,
			avatar_mxc=$9, name_set=$10, relay_login=$11, metadata=$12
		WHERE id=$1 AND receiver=$2`,
		p.ID, p.Receiver, nullString(string(p.MXID)), p.RoomType, p.OtherUserID, p.Name, p.Topic,
		p.AvatarID, p.AvatarMXC, p.NameSet, p.RelayLogin, meta)
	return err
}

// Delete removes the portal and, by cascade, its message mapping and reactions.
func (q *PortalQuery) Delete(ctx context.Context, tx Execer, key networkid.PortalKey) error {
	_, err := tx.ExecContext(ctx, "DELETE FROM portal WHERE id=$1 AND receiver=$2", key.ID, key.Receiver)
	return err
}
