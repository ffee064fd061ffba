package database

import (
	"context"

	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/bridgev2/networkid"
)

// Ghost is the Matrix puppet of a remote contact.
type Ghost struct {
	ID         networkid.UserID
	Name       string
	AvatarID   networkid.AvatarID
	AvatarMXC  id.ContentURIString
	NameSet    bool
	AvatarSet  bool
	Registered bool
	// UserName is the name a Matrix user gave the contact, "" if none: it
	// wins over every name the network provides.
	UserName string
	Metadata any
}

// GhostQuery reads and writes the ghost table.
type GhostQuery struct{ d *Database }

const ghostColumns = "id, name, avatar_id, avatar_mxc, name_set, avatar_set, registered, user_name, metadata"

// Get returns the ghost or ErrNotFound.
func (q *GhostQuery) Get(ctx context.Context, ghostID networkid.UserID) (*Ghost, error) {
	var g Ghost
	var meta string
	err := q.d.queryRow(ctx, "SELECT "+ghostColumns+" FROM ghost WHERE id=$1", ghostID).
		Scan(&g.ID, &g.Name, &g.AvatarID, &g.AvatarMXC, &g.NameSet, &g.AvatarSet, &g.Registered, &g.UserName, &meta)
	if err != nil {
		return nil, notFound(err)
	}
	if g.Metadata, err = unmarshalMeta(q.d.meta.Ghost, meta); err != nil {
		return nil, err
	}
	return &g, nil
}

// Upsert writes the ghost, creating it if needed.
func (q *GhostQuery) Upsert(ctx context.Context, tx Execer, g *Ghost) error {
	meta, err := marshalMeta(g.Metadata)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `
		INSERT INTO ghost (`+ghostColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		ON CONFLICT (id) DO UPDATE SET name=excluded.name, avatar_id=excluded.avatar_id,
			avatar_mxc=excluded.avatar_mxc, name_set=excluded.name_set, avatar_set=excluded.avatar_set,
			registered=excluded.registered, user_name=excluded.user_name, metadata=excluded.metadata`,
		g.ID, g.Name, g.AvatarID, g.AvatarMXC, g.NameSet, g.AvatarSet, g.Registered, g.UserName, meta)
	return err
}
