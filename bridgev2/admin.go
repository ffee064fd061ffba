package bridgev2

import (
	"context"
	"errors"
	"fmt"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/bridgev2/database"
	"github.com/trestle-bridge/trestle/bridgev2/networkid"
)

// Admin tools: what the bridge admin's commands do to portals. Each works
// on what is stored, so it also repairs what a crash or a manual database
// edit left behind.

// Kicker is implemented by Matrix sides that can remove a user from a
// room. Deleting a portal uses it to take the Matrix users out of the room
// it leaves behind; without it, they stay in a room nobody bridges.
type Kicker interface {
	KickUser(ctx context.Context, as id.UserID, roomID id.RoomID, target id.UserID, reason string) error
}

// PortalsOf returns the stored portals seen through a login.
func (b *Bridge) PortalsOf(ctx context.Context, login *UserLogin) ([]*database.Portal, error) {
	return b.DB.Portals.GetAllForReceiver(ctx, login.ID)
}

// DeletePortal unbridges a portal for good: the room's Matrix users are
// told and kicked, the bridge's users leave, and the portal's mapping is
// forgotten. The next message in the chat opens a new room.
func (b *Bridge) DeletePortal(ctx context.Context, portal *Portal, reason string) error {
	portal.mu.Lock()
	row := *portal.Portal
	portal.mu.Unlock()
	return b.deletePortalRow(ctx, &row, reason)
}

// deletePortalRow is DeletePortal for a stored row, whose portal may not
// be loaded.
func (b *Bridge) deletePortalRow(ctx context.Context, row *database.Portal, reason string) error {
	if row.MXID != "" {
		if err := b.sendBotNotice(ctx, row.MXID, "This chat is no longer bridged: "+reason); err != nil {
			b.Log.Debug().Err(err).Msg("Could not send unbridge notice")
		}
		b.kickMatrixUsers(ctx, row.MXID, reason)
		b.leavePortalRoom(ctx, row)
		if login := b.GetLogin(row.Receiver); login != nil {
			b.removeSpaceChild(ctx, login, row.MXID)
		}
	}
	err := b.DB.Write(ctx, func(ctx context.Context, tx database.Execer) error {
		return b.DB.Portals.Delete(ctx, tx, row.PortalKey)
	})
	if err != nil {
		return fmt.Errorf("delete portal: %w", err)
	}
	b.forgetPortalKey(row.PortalKey)
	b.Log.Info().Stringer("portal", row.PortalKey).Stringer("room_id", row.MXID).Str("reason", reason).Msg("Deleted portal")
	return nil
}

// kickMatrixUsers removes everyone but the bridge's own users from room,
// where the Matrix side can list and kick members.
func (b *Bridge) kickMatrixUsers(ctx context.Context, room id.RoomID, reason string) {
	lister, canList := b.Matrix.(MemberLister)
	kicker, canKick := b.Matrix.(Kicker)
	if !canList || !canKick {
		return
	}
	members, err := lister.JoinedMembers(ctx, room)
	if err != nil {
		b.Log.Warn().Err(err).Msg("Could not list the members of a deleted portal")
		return
	}
	for _, u := range members {
		if b.isBridgeUser(u) {
			continue
		}
		if err := kicker.KickUser(ctx, b.Matrix.BotUserID(), room, u, reason); err != nil {
			b.Log.Warn().Err(err).Stringer("user_id", u).Msg("Could not kick a user from a deleted portal")
		}
	}
}

// DeleteOrphanedPortals deletes every portal whose login no longer exists
// and returns how many there were.
func (b *Bridge) DeleteOrphanedPortals(ctx context.Context) (int, error) {
	rows, err := b.DB.Portals.GetOrphaned(ctx)
	if err != nil {
		return 0, fmt.Errorf("find orphaned portals: %w", err)
	}
	for i, row := range rows {
		if err := b.deletePortalRow(ctx, row, "the login it belonged to is gone."); err != nil {
			return i, err
		}
	}
	return len(rows), nil
}

// Resync asks the network what the portal's chat is now and makes the
// room match: name, topic and avatar, the ghosts of a group's members, the
// DM contact's ghost, and the bridge's own state events (bridge info and
// room features). It runs on the portal's inbound lane, in order with the
// chat's messages.
func (p *Portal) Resync(ctx context.Context) error {
	login := p.ReceiverLogin()
	if login == nil {
		return NewError("The login this chat belongs to is not loaded.", ErrNotLoggedIn)
	}
	if p.RoomID() == "" {
		return NewError("This chat has no room yet.", nil)
	}
	done := make(chan error, 1)
	if !p.inbound.push(func() { done <- p.resync(ctx, login) }) {
		return ErrShuttingDown
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *Portal) resync(ctx context.Context, login *UserLogin) error {
	b := p.Bridge
	bot := b.Matrix.BotUserID()
	room := p.RoomID()
	info, err := login.chatInfo(ctx, p, p.OtherUserID)
	if err != nil {
		return fmt.Errorf("get chat info: %w", err)
	}
	// syncChatInfo only sends what differs from the stored row; a resync
	// repairs rooms whose state was changed on Matrix, so it sends the
	// name and topic whatever the row says; the name of a DM whose
	// contact the user named stays the user's.
	if info.Name != nil && !p.userNamedDM(ctx) {
		if _, err := b.Matrix.SendState(ctx, bot, room, event.StateRoomName, "", &event.RoomNameEventContent{Name: *info.Name}); err != nil {
			return fmt.Errorf("set room name: %w", err)
		}
	}
	if info.Topic != nil {
		if _, err := b.Matrix.SendState(ctx, bot, room, event.StateTopic, "", &event.TopicEventContent{Topic: *info.Topic}); err != nil {
			return fmt.Errorf("set room topic: %w", err)
		}
	}
	if err := p.syncChatInfo(ctx, login, info); err != nil {
		return err
	}
	if p.RoomType == database.RoomTypeDM && p.OtherUserID != "" {
		if err := p.joinGhosts(ctx, login, []networkid.UserID{p.OtherUserID}); err != nil {
			return err
		}
	}
	var errs []error
	for _, st := range p.bridgeState(ctx, login) {
		if _, err := b.Matrix.SendState(ctx, bot, room, st.evtType, st.key, st.content); err != nil {
			errs = append(errs, fmt.Errorf("set %s: %w", st.evtType.Type, err))
		}
	}
	return errors.Join(errs...)
}

// stateEvent is one state event the bridge keeps in its portal rooms.
type stateEvent struct {
	evtType event.Type
	key     string
	content any
}

// bridgeState is the state the bridge keeps in a portal room: bridge info
// (m.bridge and its older name) and room features.
func (p *Portal) bridgeState(ctx context.Context, login *UserLogin) []stateEvent {
	bridgeInfo := p.bridgeInfo()
	return []stateEvent{
		{event.StateBridge, p.bridgeInfoStateKey(), bridgeInfo},
		{event.StateHalfShotBridge, p.bridgeInfoStateKey(), bridgeInfo},
		{event.StateBeeperRoomFeatures, "", login.RoomFeatures(ctx, p)},
	}
}
