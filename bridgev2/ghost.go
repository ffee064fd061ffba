package bridgev2

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/bridgev2/database"
	"github.com/trestle-bridge/trestle/bridgev2/networkid"
)

// Ghost is the Matrix puppet of one remote contact.
type Ghost struct {
	*database.Ghost
	MXID   id.UserID
	Bridge *Bridge

	// mu serialises registration and profile updates of this ghost.
	mu       sync.Mutex
	used     atomic.Int64
	infoSeen bool
}

func (g *Ghost) lastUsed() time.Time { return time.UnixMilli(g.used.Load()) }

// GetGhost returns the ghost of a remote user, loading its row if there is
// one. A ghost gets a row once it is registered on the homeserver.
func (b *Bridge) GetGhost(ctx context.Context, userID networkid.UserID) (*Ghost, error) {
	if userID == "" {
		return nil, errors.New("empty remote user ID")
	}
	b.ghostsMu.Lock()
	if g := b.ghosts[userID]; g != nil {
		g.used.Store(time.Now().UnixMilli())
		b.ghostsMu.Unlock()
		return g, nil
	}
	b.ghostsMu.Unlock()
	row, err := b.DB.Ghosts.Get(ctx, userID)
	if errors.Is(err, database.ErrNotFound) {
		row = &database.Ghost{ID: userID}
	} else if err != nil {
		return nil, fmt.Errorf("load ghost %s: %w", userID, err)
	}
	g := &Ghost{Ghost: row, MXID: b.Matrix.GhostUserID(userID), Bridge: b}
	g.used.Store(time.Now().UnixMilli())
	b.ghostsMu.Lock()
	defer b.ghostsMu.Unlock()
	if existing := b.ghosts[userID]; existing != nil {
		return existing, nil
	}
	b.ghosts[userID] = g
	return g, nil
}

// ensureReady registers the ghost and, the first time this process sees it,
// syncs its profile from the connector (through login) unless info is given.
func (g *Ghost) ensureReady(ctx context.Context, login *UserLogin, info *UserInfo) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.Registered {
		if err := g.Bridge.Matrix.EnsureRegistered(ctx, g.MXID); err != nil {
			return fmt.Errorf("register ghost %s: %w", g.MXID, err)
		}
		g.Registered = true
		if err := g.saveLocked(ctx); err != nil {
			return err
		}
	}
	if info == nil && !g.infoSeen && login != nil {
		fetched, err := login.userInfo(ctx, g)
		if err != nil {
			g.Bridge.Log.Warn().Err(err).Str("ghost", string(g.ID)).Msg("Could not fetch contact info")
		}
		info = fetched
	}
	if info != nil {
		g.infoSeen = true
		return g.updateInfoLocked(ctx, login, info)
	}
	return nil
}

// UpdateInfo applies new contact info (displayname, avatar) to the ghost,
// registering it first if needed. Connectors that learn of a rename outside
// a message can call it; usually EventSender.Info is simpler.
func (g *Ghost) UpdateInfo(ctx context.Context, login *UserLogin, info *UserInfo) error {
	return g.ensureReady(ctx, login, info)
}

// SetUserName gives the contact the name a Matrix user chose (the set-name
// command, or renaming the contact's DM room). It is stored with the ghost
// and wins over every name the network provides from then on. Ghosts are
// shared, so every user of the bridge sees it.
func (g *Ghost) SetUserName(ctx context.Context, name string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.Registered {
		if err := g.Bridge.Matrix.EnsureRegistered(ctx, g.MXID); err != nil {
			return fmt.Errorf("register ghost %s: %w", g.MXID, err)
		}
		g.Registered = true
	}
	if name != g.Name || !g.NameSet {
		if err := g.Bridge.Matrix.SetProfile(ctx, g.MXID, name, ""); err != nil {
			return fmt.Errorf("set displayname of %s: %w", g.MXID, err)
		}
	}
	g.Name, g.NameSet, g.UserName = name, true, name
	return g.saveLocked(ctx)
}

// DisplayName is the name the ghost shows in Matrix: the user's, the
// network's, or "" before any was set. Connectors name a contact's DM room
// after it, so that the room follows the contact's name.
func (g *Ghost) DisplayName() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.NameSet {
		return ""
	}
	return g.Name
}

// userName is the name a Matrix user gave the contact, or "".
func (g *Ghost) userName() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.UserName
}

func (g *Ghost) updateInfoLocked(ctx context.Context, login *UserLogin, info *UserInfo) error {
	changed := false
	// A name the user gave wins over the network's.
	if info.Name != nil && g.UserName == "" && (*info.Name != g.Name || !g.NameSet) {
		if err := g.Bridge.Matrix.SetProfile(ctx, g.MXID, *info.Name, ""); err != nil {
			return fmt.Errorf("set displayname of %s: %w", g.MXID, err)
		}
		g.Name, g.NameSet, changed = *info.Name, true, true
	}
	if info.Avatar != nil && (info.Avatar.ID != g.AvatarID || !g.AvatarSet) {
		mxc, err := g.Bridge.uploadAvatar(ctx, login, g.MXID, info.Avatar)
		if err != nil {
			g.Bridge.Log.Warn().Err(err).Str("ghost", string(g.ID)).Msg("Could not update avatar")
		} else if err := g.Bridge.Matrix.SetProfile(ctx, g.MXID, "", mxc); err != nil {
			g.Bridge.Log.Warn().Err(err).Str("ghost", string(g.ID)).Msg("Could not set avatar")
		} else {
			g.AvatarID, g.AvatarMXC, g.AvatarSet, changed = info.Avatar.ID, mxc, true, true
		}
	}
	if changed {
		return g.saveLocked(ctx)
	}
	return nil
}

func (g *Ghost) saveLocked(ctx context.Context) error {
	row := *g.Ghost
	return g.Bridge.DB.Write(ctx, func(ctx context.Context, tx database.Execer) error {
		return g.Bridge.DB.Ghosts.Upsert(ctx, tx, &row)
	})
}
