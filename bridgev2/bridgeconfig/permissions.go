package bridgeconfig

import (
	"fmt"
	"strings"

	"maunium.net/go/mautrix/id"
)

// Level is what a Matrix user may do with the bridge.
type Level int

// Permission levels, each including the ones below it.
const (
	// LevelNone users are ignored.
	LevelNone Level = iota
	// LevelRelay users may talk in portals that have a relay login.
	LevelRelay
	// LevelUser users may log in and use commands.
	LevelUser
	// LevelAdmin users may also manage other users' portals and relays.
	LevelAdmin
)

// ParseLevel reads a level name from the config.
func ParseLevel(s string) (Level, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "none", "block":
		return LevelNone, nil
	case "relay":
		return LevelRelay, nil
	case "user", "commands":
		return LevelUser, nil
	case "admin":
		return LevelAdmin, nil
	default:
		return LevelNone, fmt.Errorf("unknown permission level %q (want relay, user or admin)", s)
	}
}

func (l Level) String() string {
	switch l {
	case LevelRelay:
		return "relay"
	case LevelUser:
		return "user"
	case LevelAdmin:
		return "admin"
	default:
		return "none"
	}
}

// PermissionLevel returns a user's level: an entry for the exact user ID
// wins over one for their server name, which wins over "*".
func (b *Bridge) PermissionLevel(userID id.UserID) Level {
	if lvl, ok := b.Permissions[string(userID)]; ok {
		l, _ := ParseLevel(lvl)
		return l
	}
	if _, server, err := userID.Parse(); err == nil {
		if lvl, ok := b.Permissions[server]; ok {
			l, _ := ParseLevel(lvl)
			return l
		}
	}
	if lvl, ok := b.Permissions["*"]; ok {
		l, _ := ParseLevel(lvl)
		return l
	}
	return LevelNone
}
