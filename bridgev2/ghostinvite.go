package bridgev2

import (
	"context"
	"errors"
	"fmt"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/bridgev2/bridgeconfig"
	"github.com/trestle-bridge/trestle/bridgev2/database"
	"github.com/trestle-bridge/trestle/bridgev2/networkid"
)

// Starting chats the Matrix way: a user creates a room and invites a
// contact's ghost, as they would invite any Matrix user. The ghost joins
// and the room becomes the portal of the chat with that contact; with
// several ghosts invited, it becomes a group chat where the network can
// start one.

// RoomMemberReader is implemented by Matrix sides that can read who is in
// a room, invited members included, as one of the bridge's users. The core
// uses it when a user invites several ghosts into a new room, to make that
// room a group chat rather than a DM with the first one.
type RoomMemberReader interface {
	RoomMembers(ctx context.Context, as id.UserID, roomID id.RoomID) (map[id.UserID]event.Membership, error)
}

// handleGhostInvite turns a room that is not a portal into one when a
// Matrix user invites a ghost to it. It runs in the user's command lane,
// so invites of several ghosts into the same room are handled one after
// another: the first makes the portal, and the rest reach the portal as
// ordinary member changes.
func (b *Bridge) handleGhostInvite(row *database.OutboundEvent, user *User, evt *event.Event) {
	ctx := user.Log.With().Stringer("room_id", evt.RoomID).Stringer("ghost", id.UserID(evt.GetStateKey())).Logger().WithContext(b.ctx)
	if portal, err := b.GetPortalByRoom(ctx, evt.RoomID); err == nil && portal != nil {
		// An earlier invite in the same room made it a portal already.
		portal.outbound.push(func() { portal.deliverOutbound(row, evt, user) })
		return
	}
	defer b.finishOutbound(ctx, row, database.StateDone, "")
	if evt.Content.AsMember().Membership != event.MembershipInvite {
		return
	}
	ghostMXID := id.UserID(evt.GetStateKey())
	remote, _ := b.Matrix.ParseGhostUserID(ghostMXID)
	if user.Level < bridgeconfig.LevelUser {
		user.Log.Info().Msg("Declining a ghost invite from a user without permission to start chats")
		if err := b.Matrix.LeaveRoom(ctx, ghostMXID, evt.RoomID); err != nil {
			user.Log.Warn().Err(err).Msg("Could not decline the invite")
		}
		return
	}
	if err := b.Matrix.EnsureRegistered(ctx, ghostMXID); err != nil {
		user.Log.Err(err).Msg("Could not register the invited ghost")
		return
	}
	if err := b.Matrix.JoinRoom(ctx, ghostMXID, evt.RoomID); err != nil {
		user.Log.Err(err).Msg("Invited ghost could not join the room")
		return
	}
	err := b.startChatInRoom(ctx, user, evt.RoomID, ghostMXID, remote)
	if err == nil {
		return
	}
	user.Log.Warn().Err(err).Msg("Could not start a chat from an invite")
	// The ghost tells the user in the room they made why nothing happened,
	// and leaves it, so the room is plainly not bridged.
	notice := &event.MessageEventContent{MsgType: event.MsgNotice, Body: HumanMessage(err)}
	if _, serr := b.Matrix.SendMessage(ctx, ghostMXID, evt.RoomID, event.EventMessage, notice, "", time.Time{}); serr != nil {
		user.Log.Warn().Err(serr).Msg("Could not explain the refused invite")
	}
	if lerr := b.Matrix.LeaveRoom(ctx, ghostMXID, evt.RoomID); lerr != nil {
		user.Log.Warn().Err(lerr).Msg("Ghost could not leave the room it was invited to")
	}
}

// startChatInRoom makes room, where the invited ghost has just joined, the
// portal of the chat with its contact, or of a group with every ghost
// invited along with it.
func (b *Bridge) startChatInRoom(ctx context.Context, user *User, room id.RoomID, ghostMXID id.UserID, remote networkid.UserID) error {
	logins := user.Logins()
	if len(logins) == 0 {
		return NewError("You are not logged in, so this chat cannot be bridged. Send `login` to the bridge bot first.", ErrNotLoggedIn)
	}
	login := logins[0]
	if err := login.CanSend(); err != nil {
		return err
	}
	others, err := b.otherGhosts(ctx, ghostMXID, room)
	if err != nil {
		return err
	}
	if len(others) > 0 {
		return b.startGroupInRoom(ctx, login, room, ghostMXID, append([]networkid.UserID{remote}, others...))
	}
	resolved, err := login.ResolveIdentifier(ctx, string(remote))
	if err != nil {
		return err
	}
	if resolved.UserID != "" && resolved.UserID != remote {
		// The user typed the contact in another form the ghost namespace
		// allows (a number without its country code, say): the contact's
		// own ghost takes over the room.
		canonical := b.Matrix.GhostUserID(resolved.UserID)
		if err := b.handOver(ctx, room, ghostMXID, canonical); err != nil {
			return err
		}
		ghostMXID, remote = canonical, resolved.UserID
	}
	info := resolved.ChatInfo
	if info == nil {
		info = &ChatInfo{IsDM: true, OtherUser: remote}
	}
	if resolved.UserInfo != nil {
		ghost, err := b.GetGhost(ctx, remote)
		if err != nil {
			return err
		}
		if err := ghost.ensureReady(ctx, login, resolved.UserInfo); err != nil {
			return err
		}
	}
	portal, err := b.GetPortal(ctx, resolved.Chat)
	if err != nil {
		return err
	}
	return portal.adoptRoom(ctx, login, room, ghostMXID, info)
}

// handOver has ghost from invite ghost to into room, and leaves once to
// has joined.
func (b *Bridge) handOver(ctx context.Context, room id.RoomID, from, to id.UserID) error {
	if err := b.Matrix.EnsureRegistered(ctx, to); err != nil {
		return fmt.Errorf("register ghost %s: %w", to, err)
	}
	if err := b.Matrix.InviteUser(ctx, from, room, to); err != nil {
		return fmt.Errorf("invite %s: %w", to, err)
	}
	if err := b.Matrix.JoinRoom(ctx, to, room); err != nil {
		return fmt.Errorf("%s could not join: %w", to, err)
	}
	if err := b.Matrix.LeaveRoom(ctx, from, room); err != nil {
		b.Log.Debug().Err(err).Stringer("ghost", from).Msg("Ghost could not leave after handing a room over")
	}
	return nil
}

// startGroupInRoom starts a group chat with the contacts whose ghosts were
// invited into room, and makes room its portal.
func (b *Bridge) startGroupInRoom(ctx context.Context, login *UserLogin, room id.RoomID, ghostMXID id.UserID, members []networkid.UserID) error {
	creator, ok := login.Client.(GroupCreator)
	if !ok {
		return UnsupportedError(b.Network.Info().DisplayName + " does not support group chats: invite one contact per room.")
	}
	participants := make([]string, len(members))
	for i, m := range members {
		participants[i] = string(m)
	}
	created, err := creator.CreateGroup(ctx, &GroupParams{Participants: participants})
	if err != nil {
		return err
	}
	if created == nil || created.ChatInfo == nil || created.Chat.ID == "" {
		return errors.New("connector created a group without saying what it is")
	}
	portal, err := b.GetPortal(ctx, created.Chat)
	if err != nil {
		return err
	}
	return portal.adoptRoom(ctx, login, room, ghostMXID, created.ChatInfo)
}

// otherGhosts lists the remote users whose ghosts, besides ghostMXID, are
// invited to or in room.
func (b *Bridge) otherGhosts(ctx context.Context, ghostMXID id.UserID, room id.RoomID) ([]networkid.UserID, error) {
	reader, ok := b.Matrix.(RoomMemberReader)
	if !ok {
		return nil, nil
	}
	members, err := reader.RoomMembers(ctx, ghostMXID, room)
	if err != nil {
		return nil, fmt.Errorf("read the room's members: %w", err)
	}
	var out []networkid.UserID
	for u, m := range members {
		remote, isGhost := b.Matrix.ParseGhostUserID(u)
		if isGhost && u != ghostMXID && (m == event.MembershipInvite || m == event.MembershipJoin) {
			out = append(out, remote)
		}
	}
	return out, nil
}

// adoptRoom makes an existing room, which the user created and the ghost
// ghostMXID has joined, the portal's room: the ghost brings in the bridge
// bot, the room is recorded, and a group's other ghosts join. A chat that
// has a room already keeps it; the user is pointed there instead.
func (p *Portal) adoptRoom(ctx context.Context, login *UserLogin, room id.RoomID, ghostMXID id.UserID, info *ChatInfo) error {
	b := p.Bridge
	p.roomMu.Lock()
	defer p.roomMu.Unlock()
	switch existing := p.RoomID(); existing {
	case room:
		return nil // a replay after a crash: the room is the portal already
	case "":
	default:
		if err := b.Matrix.InviteUser(ctx, b.Matrix.BotUserID(), existing, login.UserMXID); err != nil {
			b.Log.Debug().Err(err).Msg("Could not re-invite user to existing portal")
		}
		return NewError(fmt.Sprintf("You already have this chat in another room: https://matrix.to/#/%s (you have been invited back to it).", existing), nil)
	}
	bot := b.Matrix.BotUserID()
	if err := b.Matrix.InviteUser(ctx, ghostMXID, room, bot); err != nil {
		return fmt.Errorf("invite the bridge bot: %w", err)
	}
	if err := b.Matrix.JoinRoom(ctx, bot, room); err != nil {
		return fmt.Errorf("bridge bot could not join the room: %w", err)
	}
	if !info.IsDM {
		// Before the room is recorded, so that the invites of these
		// members, still on their way, find them joined.
		for _, m := range info.Members {
			if err := p.joinInvited(ctx, login, room, ghostMXID, m); err != nil {
				p.Log.Warn().Err(err).Str("member", string(m)).Msg("Could not add a member to the group room")
			}
		}
	}
	p.mu.Lock()
	if info.IsDM {
		p.RoomType = database.RoomTypeDM
		p.OtherUserID = info.OtherUser
	}
	if info.Name != nil {
		p.Name, p.NameSet = *info.Name, true
	}
	if info.Topic != nil {
		p.Topic = *info.Topic
	}
	p.MXID = room
	p.mu.Unlock()
	if err := p.save(ctx); err != nil {
		return fmt.Errorf("record portal room: %w", err)
	}
	p.setRoom(room)
	p.Log.Info().Stringer("room_id", room).Msg("Made a room the user created into a portal")
	// The user created the room, so the bridge may lack the power to set
	// its state. The invited ghost has it in a room made with the
	// trusted_private_chat preset (Element's DMs): the bridge info is best
	// effort, and a room without it still bridges.
	for _, st := range p.bridgeState(ctx, login) {
		_, err := b.Matrix.SendState(ctx, bot, room, st.evtType, st.key, st.content)
		if err != nil {
			_, err = b.Matrix.SendState(ctx, ghostMXID, room, st.evtType, st.key, st.content)
		}
		if err != nil {
			p.Log.Debug().Err(err).Str("type", st.evtType.Type).Msg("Could not set the bridge's state in a room the user created")
		}
	}
	if err := p.addToSpace(ctx, login); err != nil {
		p.Log.Warn().Err(err).Msg("Could not add the room to the login's space")
	}
	b.metrics.PortalCreated()
	p.backfill(ctx, login)
	return nil
}

// joinInvited has a group member's ghost join a room the user created: it
// was usually invited along with the first ghost, and otherwise that ghost
// invites it.
func (p *Portal) joinInvited(ctx context.Context, login *UserLogin, room id.RoomID, inviter id.UserID, member networkid.UserID) error {
	ghost, err := p.readyGhost(ctx, login, member)
	if err != nil {
		return err
	}
	err = p.Bridge.Matrix.JoinRoom(ctx, ghost, room)
	if errors.Is(err, ErrForbidden) {
		if err = p.Bridge.Matrix.InviteUser(ctx, inviter, room, ghost); err == nil {
			err = p.Bridge.Matrix.JoinRoom(ctx, ghost, room)
		}
	}
	return err
}
