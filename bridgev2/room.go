package bridgev2

import (
	"context"
	"errors"
	"fmt"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/format"
	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/bridgev2/database"
	"github.com/trestle-bridge/trestle/bridgev2/networkid"
)

// bridgeInfoState is the state key of m.bridge, unique per portal.
func (p *Portal) bridgeInfoStateKey() string {
	return "net.trestle://" + p.Bridge.Network.Info().ID + "/" + string(p.Receiver) + "/" + string(p.ID)
}

// bridgeInfo is the content of m.bridge and uk.half-shot.bridge, which
// clients use to show which network a room is bridged to.
func (p *Portal) bridgeInfo() *event.BridgeEventContent {
	info := p.Bridge.Network.Info()
	return &event.BridgeEventContent{
		BridgeBot: p.Bridge.Matrix.BotUserID(),
		Creator:   p.Bridge.Matrix.BotUserID(),
		Protocol: event.BridgeInfoSection{
			ID:          info.ID,
			DisplayName: info.DisplayName,
			ExternalURL: info.URL,
		},
		Channel: event.BridgeInfoSection{
			ID:          string(p.ID),
			DisplayName: p.Name,
			Receiver:    string(p.Receiver),
		},
	}
}

// ensureRoom returns the portal's room, creating it first if needed, with
// info or, without it, what the client says of the chat (sender is the
// remote user whose event creates it). Creation happens under the portal's
// own lock only, so many portals create their rooms at once.
func (p *Portal) ensureRoom(ctx context.Context, login *UserLogin, info *ChatInfo, sender networkid.UserID) (id.RoomID, error) {
	if room := p.RoomID(); room != "" {
		return room, nil
	}
	p.roomMu.Lock()
	defer p.roomMu.Unlock()
	if room := p.RoomID(); room != "" {
		return room, nil
	}
	if login == nil {
		return "", errors.New("no login to create the portal room with")
	}
	if info == nil {
		fetched, err := login.chatInfo(ctx, p, sender)
		if err != nil {
			return "", fmt.Errorf("get chat info: %w", err)
		}
		info = fetched
	}
	// Room creation is the homeserver's most expensive request. A burst of
	// new chats shares it in order rather than all at once: the first
	// rooms are ready sooner, and the last no later.
	select {
	case p.Bridge.roomCreation <- struct{}{}:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	room, err := p.createRoom(ctx, login, info)
	<-p.Bridge.roomCreation
	if err != nil {
		return "", err
	}
	p.backfill(ctx, login)
	return room, nil
}

func (p *Portal) createRoom(ctx context.Context, login *UserLogin, info *ChatInfo) (id.RoomID, error) {
	b := p.Bridge
	bot := b.Matrix.BotUserID()
	creator := bot
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
	p.mu.Unlock()

	var ghost *Ghost
	if info.IsDM && info.OtherUser != "" {
		var err error
		if ghost, err = b.GetGhost(ctx, info.OtherUser); err != nil {
			return "", err
		}
		if err := ghost.ensureReady(ctx, login, nil); err != nil {
			return "", err
		}
		// The contact creates a DM portal, so the user's client shows the
		// invite as coming from them and files the room as a DM with them.
		creator = ghost.MXID
		if p.Name == "" && ghost.Name != "" {
			p.Name = ghost.Name
		}
	}
	req := &mautrix.ReqCreateRoom{
		Visibility:   "private",
		Preset:       "private_chat",
		Name:         p.Name,
		Topic:        p.Topic,
		IsDirect:     info.IsDM,
		Invite:       []id.UserID{login.UserMXID},
		InitialState: initialState(p.bridgeState(ctx, login)),
		PowerLevelOverride: &event.PowerLevelsEventContent{
			Users: map[id.UserID]int{creator: 100, bot: 100},
		},
	}
	if creator != bot {
		req.Invite = append(req.Invite, bot)
	}
	if b.Crypto != nil && b.Config.Encryption.Default {
		req.InitialState = append(req.InitialState, encryptionInitialState())
	}
	req.PowerLevelOverride.Events = portalEventLevels(info.IsDM)
	if !info.IsDM {
		// In a group, the user adds and removes people by inviting and
		// kicking their ghosts, which takes a moderator.
		req.PowerLevelOverride.Users[login.UserMXID] = 50
	}
	room, err := b.Matrix.CreateRoom(ctx, creator, req)
	if err != nil {
		return "", fmt.Errorf("create portal room: %w", err)
	}
	if creator != bot {
		if err := b.Matrix.JoinRoom(ctx, bot, room); err != nil {
			return "", fmt.Errorf("bridge bot could not join portal room: %w", err)
		}
	}
	p.mu.Lock()
	p.MXID = room
	p.mu.Unlock()
	if err := p.save(ctx); err != nil {
		// The room exists but is not recorded: the retry creates another
		// one, and this one is left to the user. Rare, and never a lost
		// message.
		return "", fmt.Errorf("record portal room: %w", err)
	}
	p.setRoom(room)
	p.Log.Info().Stringer("room_id", room).Msg("Created portal room")
	if !info.IsDM {
		if err := p.joinGhosts(ctx, login, info.Members); err != nil {
			// The room is recorded: the members' ghosts join when they
			// speak, or at the group's next member change.
			p.Log.Warn().Err(err).Msg("Could not add every member to the new group room")
		}
	}
	if err := p.addToSpace(ctx, login); err != nil {
		p.Log.Warn().Err(err).Msg("Could not add the new room to the login's space")
	}
	b.metrics.PortalCreated()
	return room, nil
}

// initialState turns state events into createRoom's initial_state.
func initialState(states []stateEvent) []*event.Event {
	out := make([]*event.Event, len(states))
	for i, st := range states {
		out[i] = &event.Event{Type: st.evtType, StateKey: ptr(st.key), Content: event.Content{Parsed: st.content}}
	}
	return out
}

// backfill imports the chat's recent history into a new room, before the
// event that created the room. Failures are logged, never fatal: history is
// a courtesy, the live message is not.
func (p *Portal) backfill(ctx context.Context, login *UserLogin) {
	bf, ok := login.Client.(Backfiller)
	if !ok {
		return
	}
	events, err := bf.FetchHistory(ctx, p)
	if err != nil {
		p.Log.Warn().Err(err).Msg("Could not fetch chat history for backfill")
		return
	}
	imported := 0
	for _, evt := range events {
		if evt.Kind != RemoteMessage || evt.Portal != p.PortalKey {
			continue
		}
		if err := p.applyMessage(ctx, login, nil, evt, 1, false); err != nil {
			p.Log.Warn().Err(err).Str("remote_id", string(evt.ID)).Msg("Could not backfill message")
			continue
		}
		imported++
	}
	p.Log.Info().Int("count", imported).Msg("Backfilled chat history")
}

// sendAs sends a timeline event as user, joining the room first if the
// homeserver says the user is not allowed to send (not a member yet).
func (p *Portal) sendAs(ctx context.Context, as id.UserID, evtType event.Type, content any, txnID string, ts time.Time) (id.EventID, error) {
	b := p.Bridge
	room := p.RoomID()
	eventID, err := b.Matrix.SendMessage(ctx, as, room, evtType, content, txnID, ts)
	if errors.Is(err, ErrForbidden) && as != b.Matrix.BotUserID() {
		if joinErr := p.joinAs(ctx, as); joinErr != nil {
			return "", fmt.Errorf("%w (and joining failed: %v)", err, joinErr)
		}
		eventID, err = b.Matrix.SendMessage(ctx, as, room, evtType, content, txnID, ts)
	}
	return eventID, err
}

// joinAs makes a bridge user a member of the portal room: the bot invites,
// the user joins.
func (p *Portal) joinAs(ctx context.Context, as id.UserID) error {
	b := p.Bridge
	room := p.RoomID()
	if err := b.Matrix.InviteUser(ctx, b.Matrix.BotUserID(), room, as); err != nil {
		return err
	}
	return b.Matrix.JoinRoom(ctx, as, room)
}

// senderFor returns the Matrix user that speaks for a remote sender in this
// portal, registered and with a profile.
func (p *Portal) senderFor(ctx context.Context, login *UserLogin, sender EventSender) (id.UserID, error) {
	if sender.IsFromMe {
		// The user's own message from elsewhere is theirs, where the bridge
		// can act as them; otherwise it comes from their remote ID's ghost.
		user, err := p.Bridge.GetUser(ctx, login.UserMXID)
		if err != nil {
			return "", err
		}
		if user.IsDoublePuppeted() {
			return user.MXID, nil
		}
	}
	remote := sender.Sender
	if remote == "" {
		if p.OtherUserID == "" {
			return p.Bridge.Matrix.BotUserID(), nil
		}
		remote = p.OtherUserID
	}
	ghost, err := p.Bridge.GetGhost(ctx, remote)
	if err != nil {
		return "", err
	}
	if err := ghost.ensureReady(ctx, login, sender.Info); err != nil {
		return "", err
	}
	return ghost.MXID, nil
}

// leavePortalRoom takes the bridge's users out of an unbridged room.
func (b *Bridge) leavePortalRoom(ctx context.Context, row *database.Portal) {
	if row.OtherUserID != "" {
		if err := b.Matrix.LeaveRoom(ctx, b.Matrix.GhostUserID(row.OtherUserID), row.MXID); err != nil {
			b.Log.Debug().Err(err).Msg("Ghost could not leave unbridged room")
		}
	}
	if err := b.Matrix.LeaveRoom(ctx, b.Matrix.BotUserID(), row.MXID); err != nil {
		b.Log.Debug().Err(err).Msg("Bot could not leave unbridged room")
	}
}

// sendBotNotice posts an m.notice as the bridge bot.
func (b *Bridge) sendBotNotice(ctx context.Context, room id.RoomID, text string) error {
	content := &event.MessageEventContent{MsgType: event.MsgNotice, Body: text}
	_, err := b.Matrix.SendMessage(ctx, b.Matrix.BotUserID(), room, event.EventMessage, content, "", time.Time{})
	return err
}

// CreateChat resolves an identifier through the login and opens the chat's
// portal room, inviting the user; it backs start-chat and create_dm.
func (b *Bridge) CreateChat(ctx context.Context, login *UserLogin, identifier string) (*Portal, *ResolvedIdentifier, error) {
	resolved, err := login.ResolveIdentifier(ctx, identifier)
	if err != nil {
		return nil, nil, err
	}
	if resolved.UserInfo != nil && resolved.UserID != "" {
		ghost, err := b.GetGhost(ctx, resolved.UserID)
		if err != nil {
			return nil, nil, err
		}
		if err := ghost.ensureReady(ctx, login, resolved.UserInfo); err != nil {
			return nil, nil, err
		}
	}
	portal, err := b.GetPortal(ctx, resolved.Chat)
	if err != nil {
		return nil, nil, err
	}
	info := resolved.ChatInfo
	if info == nil && resolved.UserID != "" {
		info = &ChatInfo{IsDM: true, OtherUser: resolved.UserID}
	}
	if room := portal.RoomID(); room != "" {
		// The user may have left the room; invite them back.
		if err := b.Matrix.InviteUser(ctx, b.Matrix.BotUserID(), room, login.UserMXID); err != nil {
			b.Log.Debug().Err(err).Msg("Could not re-invite user to existing portal")
		}
		return portal, resolved, nil
	}
	if _, err := portal.ensureRoom(ctx, login, info, resolved.UserID); err != nil {
		return nil, nil, err
	}
	return portal, resolved, nil
}

func ptr[T any](v T) *T { return &v }

// Reply posts a notice from the bridge bot, rendering markdown to HTML, for
// command replies and other bot messages.
func (b *Bridge) Reply(ctx context.Context, room id.RoomID, markdown string) error {
	content := format.RenderMarkdown(markdown, true, false)
	content.MsgType = event.MsgNotice
	_, err := b.Matrix.SendMessage(ctx, b.Matrix.BotUserID(), room, event.EventMessage, &content, "", time.Time{})
	return err
}

// RedactAsBot redacts an event as the bridge bot, e.g. a message that
// carried a password.
func (b *Bridge) RedactAsBot(ctx context.Context, room id.RoomID, eventID id.EventID, reason string) error {
	_, err := b.Matrix.Redact(ctx, b.Matrix.BotUserID(), room, eventID, reason, txnID("redact-secret", string(eventID)))
	return err
}

// portalEventLevels are the power levels a portal's state events need: the
// usual defaults, with two lowered to the user's level (0 in a DM, 50 in a
// group). The user may rename the room, which in a DM names the contact
// (see outboundRoomName), and may turn encryption on, as Element offers in
// a room's settings; the bridge then encrypts from the next message. An
// events map replaces the defaults as a whole, so it lists them all.
func portalEventLevels(dm bool) map[string]int {
	user := 50
	if dm {
		user = 0
	}
	return map[string]int{
		event.StateRoomName.Type: user, event.StateEncryption.Type: user,
		event.StatePowerLevels.Type: 100, event.StateHistoryVisibility.Type: 100, event.StateCanonicalAlias.Type: 50,
		event.StateRoomAvatar.Type: 50, event.StateTombstone.Type: 100, event.StateServerACL.Type: 100,
	}
}
