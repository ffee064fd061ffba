package bridgev2

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/bridgev2/database"
	"github.com/trestle-bridge/trestle/bridgev2/networkid"
)

// Group chats: a portal whose ChatInfo is not a DM is a group, and its
// room holds a ghost for each remote participant. Membership flows both
// ways: the connector's ChatInfo.Members decides which ghosts are in the
// room (syncMembers), and a Matrix user inviting or kicking a ghost in a
// group portal becomes a MatrixMembership for the connector's
// MembershipHandler.

// GroupParams is what a Matrix user asked for when starting a group chat.
type GroupParams struct {
	// Type is the kind of group, as the provisioning API's create_group
	// names it; empty from start-chat.
	Type string
	// Participants are the identifiers the user typed, in the forms
	// ResolveIdentifier takes ("+1 415 555 0100").
	Participants []string
	// Name is the group's name, if the user gave one.
	Name string
}

// CreatedGroup is a group chat a GroupCreator made (or found: a network
// may hand back an existing group of the same participants).
type CreatedGroup struct {
	// Chat is the group's portal as seen by the login.
	Chat networkid.PortalKey
	// ChatInfo describes the group; its Members become the room's ghosts.
	ChatInfo *ChatInfo
}

// MembershipChange is what a Matrix user did to a ghost in a group portal.
type MembershipChange string

// Membership changes handed to a MembershipHandler.
const (
	// MembershipAdd: the user invited the ghost; add the remote user to
	// the group.
	MembershipAdd MembershipChange = "add"
	// MembershipRemove: the user kicked the ghost (or withdrew its
	// invite); remove the remote user from the group.
	MembershipRemove MembershipChange = "remove"
)

// MatrixMembership is a Matrix user adding a remote user to a group portal
// or removing one. Handlers should treat a change that is already true on
// the network (the user is already in the group, or already gone) as
// success: after a crash, the core may hand the same change over again.
type MatrixMembership struct {
	Outgoing
	// Target is the remote user whose ghost was invited or kicked.
	Target networkid.UserID
	Change MembershipChange
}

// MemberLister is implemented by Matrix sides that can list who has joined
// a room. The core uses it to take ghosts out of a group portal whose
// remote participants left; without it, ghosts are only ever added.
type MemberLister interface {
	JoinedMembers(ctx context.Context, roomID id.RoomID) ([]id.UserID, error)
}

// CreateGroup starts a group chat through the login and opens its portal
// room with a ghost for every participant, inviting the user; it backs
// start-chat with several identifiers and the provisioning API's
// create_group. If the network hands back a group whose room exists, the
// user is invited back to it.
func (b *Bridge) CreateGroup(ctx context.Context, login *UserLogin, params *GroupParams) (*Portal, error) {
	creator, ok := login.Client.(GroupCreator)
	if !ok {
		return nil, UnsupportedError(b.Network.Info().DisplayName + " does not support starting group chats.")
	}
	if err := login.CanSend(); err != nil {
		return nil, err
	}
	created, err := creator.CreateGroup(ctx, params)
	if err != nil {
		return nil, err
	}
	if created == nil || created.ChatInfo == nil || created.Chat.ID == "" {
		return nil, errors.New("connector created a group without saying what it is")
	}
	portal, err := b.GetPortal(ctx, created.Chat)
	if err != nil {
		return nil, err
	}
	if room := portal.RoomID(); room != "" {
		if err := b.Matrix.InviteUser(ctx, b.Matrix.BotUserID(), room, login.UserMXID); err != nil {
			b.Log.Debug().Err(err).Msg("Could not re-invite user to existing group portal")
		}
		return portal, nil
	}
	if _, err := portal.ensureRoom(ctx, login, created.ChatInfo, ""); err != nil {
		return nil, err
	}
	return portal, nil
}

// joinGhosts makes the ghosts of remote users members of the portal room,
// registered and with profiles: the bot invites, each ghost joins. Both
// are idempotent, so a replay repeats them harmlessly.
func (p *Portal) joinGhosts(ctx context.Context, login *UserLogin, users []networkid.UserID) error {
	for _, u := range users {
		ghost, err := p.readyGhost(ctx, login, u)
		if err != nil {
			return err
		}
		if err := p.joinAs(ctx, ghost); err != nil {
			return fmt.Errorf("add %s to the group room: %w", ghost, err)
		}
	}
	return nil
}

// acceptInvite has an invited ghost join the room, or be invited again
// by the bot if the invite is gone.
func (p *Portal) acceptInvite(ctx context.Context, login *UserLogin, user networkid.UserID) error {
	ghost, err := p.readyGhost(ctx, login, user)
	if err != nil {
		return err
	}
	err = p.Bridge.Matrix.JoinRoom(ctx, ghost, p.RoomID())
	if errors.Is(err, ErrForbidden) {
		err = p.joinAs(ctx, ghost)
	}
	return err
}

// readyGhost returns the Matrix ID of a remote user's ghost, registered
// and with a profile.
func (p *Portal) readyGhost(ctx context.Context, login *UserLogin, user networkid.UserID) (id.UserID, error) {
	ghost, err := p.Bridge.GetGhost(ctx, user)
	if err != nil {
		return "", err
	}
	if err := ghost.ensureReady(ctx, login, nil); err != nil {
		return "", err
	}
	return ghost.MXID, nil
}

// syncMembers makes the ghosts of the room exactly those of members: the
// missing ones join, and those of remote users no longer in the group
// leave (where the Matrix side can list members). The user and the bot
// are never touched.
func (p *Portal) syncMembers(ctx context.Context, login *UserLogin, members []networkid.UserID) error {
	b := p.Bridge
	room := p.RoomID()
	want := make(map[id.UserID]bool, len(members))
	for _, m := range members {
		want[b.Matrix.GhostUserID(m)] = true
	}
	lister, canList := b.Matrix.(MemberLister)
	if !canList {
		return p.joinGhosts(ctx, login, members)
	}
	joined, err := lister.JoinedMembers(ctx, room)
	if err != nil {
		return err
	}
	var missing []networkid.UserID
	for _, m := range members {
		if !slices.Contains(joined, b.Matrix.GhostUserID(m)) {
			missing = append(missing, m)
		}
	}
	if err := p.joinGhosts(ctx, login, missing); err != nil {
		return err
	}
	for _, u := range joined {
		if _, isGhost := b.Matrix.ParseGhostUserID(u); !isGhost || want[u] {
			continue
		}
		if err := b.Matrix.LeaveRoom(ctx, u, room); err != nil {
			return fmt.Errorf("take %s out of the group room: %w", u, err)
		}
		p.Log.Info().Stringer("ghost", u).Msg("Remote user left the group")
	}
	return nil
}

// outboundMembership hands a Matrix user's invite or kick of a ghost in a
// portal room to the connector. The room already shows the change, so
// when the network refuses it, the change is undone in the room (the
// ghost declines the invite, or rejoins) and the user is told why.
func (p *Portal) outboundMembership(ctx context.Context, row *database.OutboundEvent, evt *event.Event, login *UserLogin) {
	b := p.Bridge
	target, _ := b.Matrix.ParseGhostUserID(id.UserID(evt.GetStateKey()))
	change, ok := membershipChange(evt)
	if !ok {
		b.finishOutbound(ctx, row, database.StateDone, "membership change the network need not hear of")
		return
	}
	if change == MembershipAdd && p.isJoined(ctx, b.Matrix.GhostUserID(target)) {
		// The invite of a ghost that is in the room already, such as one
		// of those a user invited when creating a room that became this
		// portal: nothing changes on the network.
		b.finishOutbound(ctx, row, database.StateDone, "ghost is in the room already")
		return
	}
	var err error
	switch handler, canHandle := login.Client.(MembershipHandler); {
	case p.RoomType == database.RoomTypeDM:
		err = NewError("This is a one-to-one chat; start a group chat instead to text several people at once.", nil)
	case !canHandle:
		err = UnsupportedError("Adding and removing people is not supported on " + b.Network.Info().DisplayName + ".")
	default:
		mm := &MatrixMembership{Outgoing: p.outgoing(row, evt, login), Target: target, Change: change}
		err = p.send(ctx, row, mm, func(ctx context.Context) error { return handler.HandleMatrixMembership(ctx, mm) })
	}
	if err != nil {
		if ctx.Err() != nil || errors.Is(err, errShutdownRetry) {
			return
		}
		p.undoMembership(ctx, login, target, change)
		p.fail(ctx, row, evt, err)
		return
	}
	if change == MembershipAdd {
		if err := p.acceptInvite(ctx, login, target); err != nil {
			zerolog.Ctx(ctx).Warn().Err(err).Msg("Added to the group, but the ghost could not join the room")
		}
	}
	b.finishOutbound(ctx, row, database.StateDone, "")
}

// membershipChange reads what a member event did to a ghost: an invite
// adds, a kick or a withdrawn invite removes. The ghost's own joins and
// leaves are the bridge's echoes and never get here.
func membershipChange(evt *event.Event) (MembershipChange, bool) {
	switch evt.Content.AsMember().Membership {
	case event.MembershipInvite:
		return MembershipAdd, true
	case event.MembershipLeave, event.MembershipBan:
		if evt.Sender != id.UserID(evt.GetStateKey()) {
			return MembershipRemove, true
		}
	}
	return "", false
}

// undoMembership puts the room back as it was before a change the network
// refused: an invited ghost declines, a kicked one comes back.
func (p *Portal) undoMembership(ctx context.Context, login *UserLogin, target networkid.UserID, change MembershipChange) {
	var err error
	if change == MembershipAdd {
		err = p.Bridge.Matrix.LeaveRoom(ctx, p.Bridge.Matrix.GhostUserID(target), p.RoomID())
	} else {
		err = p.joinGhosts(ctx, login, []networkid.UserID{target})
	}
	if err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Msg("Could not undo a membership change the network refused")
	}
}

// isJoined reports whether a user has joined the portal room, where the
// Matrix side can tell.
func (p *Portal) isJoined(ctx context.Context, user id.UserID) bool {
	lister, ok := p.Bridge.Matrix.(MemberLister)
	if !ok {
		return false
	}
	joined, err := lister.JoinedMembers(ctx, p.RoomID())
	return err == nil && slices.Contains(joined, user)
}
