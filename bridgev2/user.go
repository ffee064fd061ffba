package bridgev2

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/bridgev2/bridgeconfig"
	"github.com/trestle-bridge/trestle/bridgev2/database"
	"github.com/trestle-bridge/trestle/bridgev2/networkid"
)

// User is a Matrix user of the bridge.
type User struct {
	MXID   id.UserID
	Level  bridgeconfig.Level
	Bridge *Bridge
	Log    zerolog.Logger

	mu             sync.Mutex
	managementRoom id.RoomID

	// commands runs the user's bot commands in order.
	commands lane
	dp       doublePuppetState
}

// GetUser returns the bridge's view of a Matrix user, loading their
// management room from the database. Users below the relay level are
// returned too, with Level LevelNone, so callers can refuse them politely.
func (b *Bridge) GetUser(ctx context.Context, userID id.UserID) (*User, error) {
	b.usersMu.Lock()
	if u := b.users[userID]; u != nil {
		b.usersMu.Unlock()
		return u, nil
	}
	b.usersMu.Unlock()
	row, err := b.DB.Users.Get(ctx, userID)
	if err != nil && !errors.Is(err, database.ErrNotFound) {
		return nil, fmt.Errorf("load user %s: %w", userID, err)
	}
	u := &User{MXID: userID, Level: b.Config.Bridge.PermissionLevel(userID), Bridge: b}
	u.Log = b.Log.With().Stringer("user_id", userID).Logger()
	u.commands = lane{name: "commands", bridge: b, log: &u.Log}
	if row != nil {
		u.managementRoom = row.ManagementRoom
	}
	if err := u.loadDoublePuppet(ctx); err != nil {
		// The user's own messages come from a ghost until the next load.
		u.Log.Warn().Err(err).Msg("Could not set up double puppeting")
	}
	b.usersMu.Lock()
	defer b.usersMu.Unlock()
	if existing := b.users[userID]; existing != nil {
		return existing, nil
	}
	b.users[userID] = u
	return u, nil
}

// ManagementRoom returns the user's DM with the bridge bot, if known.
func (u *User) ManagementRoom() id.RoomID {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.managementRoom
}

// SetManagementRoom records the user's DM with the bridge bot.
func (u *User) SetManagementRoom(ctx context.Context, roomID id.RoomID) error {
	err := u.Bridge.DB.Write(ctx, func(ctx context.Context, tx database.Execer) error {
		return u.Bridge.DB.Users.Upsert(ctx, tx, &database.User{MXID: u.MXID, ManagementRoom: roomID})
	})
	if err != nil {
		return err
	}
	u.mu.Lock()
	u.managementRoom = roomID
	u.mu.Unlock()
	return nil
}

// Logins returns the user's logins, oldest first.
func (u *User) Logins() []*UserLogin {
	u.Bridge.loginsMu.RLock()
	defer u.Bridge.loginsMu.RUnlock()
	var out []*UserLogin
	for _, l := range u.Bridge.logins {
		if l.UserMXID == u.MXID {
			out = append(out, l)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	return out
}

// GetLogin returns one of the user's logins, or nil: a user can never reach
// another user's login this way.
func (u *User) GetLogin(loginID networkid.UserLoginID) *UserLogin {
	l := u.Bridge.GetLogin(loginID)
	if l == nil || l.UserMXID != u.MXID {
		return nil
	}
	return l
}

// Notice sends a notice to the user's management room, if they have one.
func (u *User) Notice(ctx context.Context, text string) {
	room := u.ManagementRoom()
	if room == "" {
		return
	}
	if err := u.Bridge.sendBotNotice(ctx, room, text); err != nil {
		u.Log.Warn().Err(err).Msg("Could not send a notice to the management room")
	}
}
