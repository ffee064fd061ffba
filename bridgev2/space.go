package bridgev2

import (
	"context"
	"fmt"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// Personal filtering spaces (bridge.personal_filtering_spaces): each login
// gets a Matrix space, made by the bridge bot, with every portal room of
// the login as a child, so that a user with two numbers can look at the
// chats of one. The space's room ID is kept in the bridge_kv table.

func spaceKey(login *UserLogin) string { return "space:" + string(login.ID) }

// Space returns the login's personal filtering space, or "" if it has none.
func (l *UserLogin) Space(ctx context.Context) (id.RoomID, error) {
	room, err := l.Bridge.DB.KV.Get(ctx, spaceKey(l))
	return id.RoomID(room), err
}

// addToSpace puts a portal room into its login's space, making the space
// first (with every earlier portal of the login in it) if the login has
// none yet. It does nothing unless the config asks for spaces. Failures
// are the caller's to log: a portal outside its space still bridges.
func (p *Portal) addToSpace(ctx context.Context, login *UserLogin) error {
	b := p.Bridge
	if !b.Config.Bridge.PersonalFilteringSpaces {
		return nil
	}
	space, err := b.ensureSpace(ctx, login)
	if err != nil {
		return err
	}
	return b.addSpaceChild(ctx, space, p.RoomID())
}

// ensureSpace returns the login's space, creating it if needed.
func (b *Bridge) ensureSpace(ctx context.Context, login *UserLogin) (id.RoomID, error) {
	b.spaceMu.Lock()
	defer b.spaceMu.Unlock()
	if space, err := login.Space(ctx); err != nil || space != "" {
		return space, err
	}
	info := b.Network.Info()
	bot := b.Matrix.BotUserID()
	space, err := b.Matrix.CreateRoom(ctx, bot, &mautrix.ReqCreateRoom{
		Visibility:      "private",
		Preset:          "private_chat",
		Name:            info.DisplayName + " (" + login.RemoteName + ")",
		Topic:           "Your " + info.DisplayName + " chats of " + login.RemoteName + ", bridged by " + string(bot),
		Invite:          []id.UserID{login.UserMXID},
		CreationContent: map[string]any{"type": "m.space"},
		PowerLevelOverride: &event.PowerLevelsEventContent{
			Users: map[id.UserID]int{bot: 100, login.UserMXID: 50},
		},
	})
	if err != nil {
		return "", fmt.Errorf("create the login's space: %w", err)
	}
	if err := b.DB.KV.Set(ctx, spaceKey(login), string(space)); err != nil {
		return "", fmt.Errorf("record the login's space: %w", err)
	}
	login.Log.Info().Stringer("space_id", space).Msg("Created personal filtering space")
	portals, err := b.PortalsOf(ctx, login)
	if err != nil {
		return space, fmt.Errorf("list the login's chats: %w", err)
	}
	for _, row := range portals {
		if row.MXID == "" {
			continue
		}
		if err := b.addSpaceChild(ctx, space, row.MXID); err != nil {
			login.Log.Warn().Err(err).Stringer("room_id", row.MXID).Msg("Could not add a chat to the new space")
		}
	}
	return space, nil
}

// addSpaceChild makes room a child of space.
func (b *Bridge) addSpaceChild(ctx context.Context, space, room id.RoomID) error {
	content := &event.SpaceChildEventContent{Via: []string{b.Matrix.ServerName()}}
	if _, err := b.Matrix.SendState(ctx, b.Matrix.BotUserID(), space, event.StateSpaceChild, string(room), content); err != nil {
		return fmt.Errorf("add %s to the login's space: %w", room, err)
	}
	return nil
}

// removeSpaceChild takes a deleted portal's room out of its login's space.
func (b *Bridge) removeSpaceChild(ctx context.Context, login *UserLogin, room id.RoomID) {
	space, err := login.Space(ctx)
	if err != nil || space == "" {
		return
	}
	if _, err := b.Matrix.SendState(ctx, b.Matrix.BotUserID(), space, event.StateSpaceChild, string(room), &event.SpaceChildEventContent{}); err != nil {
		login.Log.Debug().Err(err).Msg("Could not take a deleted chat out of the space")
	}
}
