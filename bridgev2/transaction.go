package bridgev2

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/bridgev2/bridgeconfig"
	"github.com/trestle-bridge/trestle/bridgev2/database"
)

// HandleTransaction takes a transaction the homeserver pushed and returns
// once every event in it that the bridge will act on is committed to the
// outbound journal, together with the transaction ID. Only then may the
// Matrix side answer 200; an error makes the homeserver retry.
//
// Events are deduplicated by event ID, not by transaction ID: Dendrite
// names a transaction after its first event, so when the bridge recorded a
// transaction but died before answering, the retry can carry newer events
// under the same ID. A known transaction ID only spares the ephemeral
// events a second handling.
//
// Malformed events are logged and skipped rather than failing the whole
// transaction, which the homeserver would otherwise resend forever.
func (b *Bridge) HandleTransaction(ctx context.Context, txnID string, events, ephemeral []json.RawMessage) error {
	if b.stopping.Load() {
		return ErrShuttingDown
	}
	type journalled struct {
		row *database.OutboundEvent
		evt *event.Event
	}
	var keep []journalled
	for _, raw := range events {
		if sender := gjson.GetBytes(raw, "sender").Str; sender != "" && b.isBridgeUser(id.UserID(sender)) {
			// The echo of the bridge's own event, about one in two of all
			// events received: skip it before paying for a full parse.
			continue
		}
		if gjson.GetBytes(raw, "content."+doublePuppetSourcePath).Str == b.Config.AppService.ID {
			// The echo of an event the bridge sent as a user's double
			// puppet: never bridged back out.
			continue
		}
		evt, ok := b.parseEvent(raw)
		if ok && b.Crypto != nil && isCryptoState(evt.Type) {
			b.Crypto.HandleRoomEvent(ctx, evt)
		}
		if !ok || !b.wantsEvent(evt) {
			if ok {
				zerolog.Ctx(ctx).Trace().Str("type", evt.Type.Type).Stringer("sender", evt.Sender).Msg("Ignored event")
			}
			continue
		}
		keep = append(keep, journalled{
			row: &database.OutboundEvent{
				EventID: evt.ID, RoomID: evt.RoomID, Sender: evt.Sender,
				Payload: raw, SendToken: randomHex(12),
			},
			evt: evt,
		})
	}
	zerolog.Ctx(ctx).Debug().Int("events", len(events)).Int("kept", len(keep)).Int("ephemeral", len(ephemeral)).Msg("Received transaction")
	if len(keep) == 0 && len(ephemeral) == 0 {
		// Nothing to act on (typically the echo of the bridge's own event):
		// a retry would be ignored the same way, so there is nothing to
		// record, and no commit to wait for.
		return nil
	}
	var isNew bool
	inserted := make([]bool, len(keep))
	err := b.DB.Write(ctx, func(ctx context.Context, tx database.Execer) error {
		var err error
		if isNew, err = b.DB.Txns.Insert(ctx, tx, txnID); err != nil {
			return err
		}
		rows := make([]*database.OutboundEvent, len(keep))
		for i, j := range keep {
			rows[i] = j.row
		}
		if inserted, err = b.DB.Outbound.InsertAll(ctx, tx, rows); err != nil {
			return err
		}
		if len(keep) > 0 {
			return b.notifyLeader(ctx, tx)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("journal transaction: %w", err)
	}
	b.leader.dispatchMu.RLock()
	leading := b.Leading()
	for i, j := range keep {
		if inserted[i] {
			b.metrics.Received("outbound")
			switch {
			case !leading:
			case b.leader.ha:
				b.kickScan() // in journal order with what standbys took in
			default:
				b.dispatchOutbound(ctx, j.row, j.evt)
			}
		}
	}
	b.leader.dispatchMu.RUnlock()
	if !isNew || !leading {
		// Receipts and typing are not journalled: a standby drops them.
		return nil
	}
	for _, raw := range ephemeral {
		if evt, ok := b.parseEvent(raw); ok {
			b.handleEphemeral(ctx, evt)
		}
	}
	return nil
}

func (b *Bridge) parseEvent(raw json.RawMessage) (*event.Event, bool) {
	var evt event.Event
	if err := json.Unmarshal(raw, &evt); err != nil {
		b.Log.Warn().Err(err).Msg("Skipped malformed event in transaction")
		return nil, false
	}
	if err := evt.Content.ParseRaw(evt.Type); err != nil && evt.Type.Class != event.UnknownEventType {
		b.Log.Warn().Err(err).Stringer("event_id", evt.ID).Str("type", evt.Type.Type).Msg("Skipped event with malformed content")
		return nil, false
	}
	return &evt, true
}

// doublePuppetSourcePath is DoublePuppetSourceKey as a gjson path.
var doublePuppetSourcePath = strings.ReplaceAll(DoublePuppetSourceKey, ".", `\.`)

// isBridgeUser reports whether a Matrix user is the bot or a ghost: their
// events are the bridge's own echoes.
func (b *Bridge) isBridgeUser(userID id.UserID) bool {
	if userID == b.Matrix.BotUserID() {
		return true
	}
	_, ok := b.Matrix.ParseGhostUserID(userID)
	return ok
}

// wantsEvent filters a transaction down to what the bridge acts on, before
// anything is written: echoes of its own events, events from users without
// permission and event types it ignores cost nothing.
func (b *Bridge) wantsEvent(evt *event.Event) bool {
	if evt.ID == "" || evt.RoomID == "" || b.isBridgeUser(evt.Sender) {
		return false
	}
	if b.Config.Bridge.PermissionLevel(evt.Sender) < bridgeconfig.LevelRelay {
		return false
	}
	switch evt.Type {
	case event.EventMessage, event.EventSticker, event.EventReaction, event.EventRedaction, event.EventEncrypted:
		return true
	case event.StateRoomName:
		// Renaming a DM portal names the contact.
		return true
	case event.StateMember:
		// Invites of the bot open management rooms; invites and kicks of
		// ghosts change who is in a group chat.
		if evt.StateKey == nil {
			return false
		}
		target := id.UserID(*evt.StateKey)
		_, isGhost := b.Matrix.ParseGhostUserID(target)
		return target == b.Matrix.BotUserID() || isGhost
	default:
		return false
	}
}

// dispatchOutbound queues a journalled Matrix event on the right lane: the
// portal's outbound lane for portal rooms, the sender's command lane for
// everything addressed to the bot.
func (b *Bridge) dispatchOutbound(ctx context.Context, row *database.OutboundEvent, evt *event.Event) {
	if !b.claim("out", row.Seq) {
		return
	}
	user, err := b.GetUser(ctx, evt.Sender)
	if err != nil {
		b.Log.Err(err).Stringer("event_id", evt.ID).Msg("Could not load sender of a journalled event; it will be retried at the next start")
		return
	}
	portal, err := b.GetPortalByRoom(ctx, evt.RoomID)
	if err != nil {
		b.Log.Err(err).Stringer("event_id", evt.ID).Msg("Could not look up room of a journalled event; it will be retried at the next start")
		return
	}
	if evt.Type == event.EventEncrypted && b.Crypto != nil {
		b.dispatchEncrypted(row, evt, user, portal)
		return
	}
	if portal == nil {
		// Whether a message is a command depends on the management room,
		// which an invite earlier in the same lane may be about to set: so
		// decide in the lane, not here.
		user.commands.push(func() { b.handleBotRoomEvent(row, user, evt) })
		return
	}
	if cmd, ok := b.asCommand(user, portal, evt); ok {
		user.commands.push(func() { b.runCommand(row, cmd) })
		return
	}
	b.metrics.QueueDepth("outbound", 1)
	portal.outbound.push(func() {
		b.metrics.QueueDepth("outbound", -1)
		portal.deliverOutbound(row, evt, user)
	})
}

// dispatchEncrypted decrypts an m.room.encrypted event in the lane it would
// be handled in, so waiting for late keys holds up only that room, and then
// routes the decrypted event like any other: a command, or a message for
// the remote network.
func (b *Bridge) dispatchEncrypted(row *database.OutboundEvent, evt *event.Event, user *User, portal *Portal) {
	if portal == nil {
		user.commands.push(func() {
			ctx := user.Log.With().Stringer("event_id", evt.ID).Logger().WithContext(b.ctx)
			decrypted, err := b.decrypt(ctx, row, evt)
			if err != nil {
				zerolog.Ctx(ctx).Warn().Err(err).Msg("Could not decrypt a message to the bridge bot")
				if _, serr := b.Matrix.SendMessage(ctx, b.Matrix.BotUserID(), evt.RoomID, event.EventMessage,
					&event.MessageEventContent{MsgType: event.MsgNotice, Body: HumanMessage(err)}, "", time.Time{}); serr != nil {
					zerolog.Ctx(ctx).Warn().Err(serr).Msg("Could not tell the sender")
				}
				b.finishOutbound(ctx, row, database.StateFailed, err.Error())
				return
			}
			b.handleBotRoomEvent(row, user, decrypted)
		})
		return
	}
	b.metrics.QueueDepth("outbound", 1)
	portal.outbound.push(func() {
		b.metrics.QueueDepth("outbound", -1)
		ctx := portal.Log.With().Stringer("event_id", evt.ID).Logger().WithContext(b.ctx)
		decrypted, err := b.decrypt(ctx, row, evt)
		if err != nil {
			portal.fail(ctx, row, evt, err)
			return
		}
		if cmd, ok := b.asCommand(user, portal, decrypted); ok {
			user.commands.push(func() { b.runCommand(row, cmd) })
			return
		}
		portal.deliverOutbound(row, decrypted, user)
	})
}

// decrypt decrypts a journalled event and leaves its seal on the row, for
// the row's next write to commit.
func (b *Bridge) decrypt(ctx context.Context, row *database.OutboundEvent, evt *event.Event) (*event.Event, error) {
	decrypted, seal, err := b.Crypto.Decrypt(ctx, evt)
	if err != nil {
		return nil, err
	}
	row.Seal = seal
	return decrypted, nil
}

// asCommand decides whether a message is for the bot: anything in the
// user's management room, and messages starting with the command prefix
// elsewhere.
func (b *Bridge) asCommand(user *User, portal *Portal, evt *event.Event) (*CommandEvent, bool) {
	if evt.Type != event.EventMessage || b.Commands == nil {
		return nil, false
	}
	content := evt.Content.AsMessage()
	if content.MsgType != event.MsgText && content.MsgType != event.MsgNotice {
		return nil, false
	}
	if content.RelatesTo.GetReplaceID() != "" {
		return nil, false
	}
	text := strings.TrimSpace(content.Body)
	prefix := b.Config.Bridge.CommandPrefix
	hasPrefix := strings.HasPrefix(text, prefix+" ") || text == prefix
	if hasPrefix {
		text = strings.TrimSpace(strings.TrimPrefix(text, prefix))
	}
	inManagement := portal == nil && user.ManagementRoom() == evt.RoomID
	if !hasPrefix && !inManagement {
		return nil, false
	}
	return &CommandEvent{User: user, RoomID: evt.RoomID, EventID: evt.ID, Portal: portal, Text: text, HasPrefix: hasPrefix}, true
}

// handleBotRoomEvent handles an event in a room that is not a portal:
// invites of the bot or of ghosts, and commands.
func (b *Bridge) handleBotRoomEvent(row *database.OutboundEvent, user *User, evt *event.Event) {
	if evt.Type == event.StateMember && evt.GetStateKey() == b.Matrix.BotUserID().String() {
		b.handleBotInvite(row, user, evt)
		return
	}
	if evt.Type == event.StateMember {
		if _, isGhost := b.Matrix.ParseGhostUserID(id.UserID(evt.GetStateKey())); isGhost {
			b.handleGhostInvite(row, user, evt)
			return
		}
	}
	if cmd, ok := b.asCommand(user, nil, evt); ok {
		b.runCommand(row, cmd)
		return
	}
	b.finishOutbound(b.ctx, row, database.StateDone, "not a portal room and not a command")
}

func (b *Bridge) runCommand(row *database.OutboundEvent, cmd *CommandEvent) {
	ctx := cmd.User.Log.With().Stringer("event_id", cmd.EventID).Logger().WithContext(b.ctx)
	if row.Seal != nil {
		// A command acts before its row closes, so a decrypted one's seal
		// commits first.
		if err := b.writeOutbound(ctx, row, func(context.Context, database.Execer) error { return nil }); err != nil {
			zerolog.Ctx(ctx).Err(err).Msg("Could not store the crypto state of a decrypted command; it will be retried at the next start")
			return
		}
	}
	b.Commands.Handle(ctx, cmd)
	b.finishOutbound(ctx, row, database.StateDone, "")
}

// handleBotInvite joins rooms the bot is invited to by users allowed to use
// commands; a DM with the bot becomes the user's management room.
func (b *Bridge) handleBotInvite(row *database.OutboundEvent, user *User, evt *event.Event) {
	ctx := user.Log.WithContext(b.ctx)
	defer b.finishOutbound(ctx, row, database.StateDone, "")
	member := evt.Content.AsMember()
	if member.Membership != event.MembershipInvite {
		return
	}
	bot := b.Matrix.BotUserID()
	if user.Level < bridgeconfig.LevelUser {
		user.Log.Info().Stringer("room_id", evt.RoomID).Msg("Refusing invite from a user without permission to use the bridge")
		if err := b.Matrix.LeaveRoom(ctx, bot, evt.RoomID); err != nil {
			user.Log.Warn().Err(err).Msg("Could not reject invite")
		}
		return
	}
	if err := b.Matrix.JoinRoom(ctx, bot, evt.RoomID); err != nil {
		user.Log.Err(err).Stringer("room_id", evt.RoomID).Msg("Could not accept invite")
		return
	}
	welcome := "Hello, I'm the " + b.Network.Info().DisplayName + " bridge bot."
	if member.IsDirect || user.ManagementRoom() == "" {
		if err := user.SetManagementRoom(ctx, evt.RoomID); err != nil {
			user.Log.Err(err).Msg("Could not store management room")
		}
		welcome += " This room is now your management room: send `help` for the list of commands."
	} else {
		welcome += " Start commands here with `" + b.Config.Bridge.CommandPrefix + "`, e.g. `" + b.Config.Bridge.CommandPrefix + " help`."
	}
	if err := b.sendBotNotice(ctx, evt.RoomID, welcome); err != nil {
		user.Log.Warn().Err(err).Msg("Could not send welcome message")
	}
}

// handleEphemeral passes read receipts and typing in portal rooms to the
// connector, best effort: they are not journalled.
func (b *Bridge) handleEphemeral(ctx context.Context, evt *event.Event) {
	portal, err := b.GetPortalByRoom(ctx, evt.RoomID)
	if err != nil || portal == nil {
		return
	}
	switch evt.Type {
	case event.EphemeralEventReceipt:
		receipts := *evt.Content.AsReceipt()
		for eventID, byType := range receipts {
			for userID := range byType[event.ReceiptTypeRead] {
				if !b.isBridgeUser(userID) {
					portal.outbound.push(func() { portal.handleMatrixReceipt(userID, eventID) })
				}
			}
		}
	case event.EphemeralEventTyping:
		typing := evt.Content.AsTyping()
		login := portal.ReceiverLogin()
		if login == nil {
			return
		}
		isTyping := false
		for _, userID := range typing.UserIDs {
			if userID == login.UserMXID {
				isTyping = true
			}
		}
		portal.outbound.push(func() { portal.handleMatrixTyping(login, isTyping) })
	}
}

// replayOutbound queues every journalled Matrix event not yet handled.
func (b *Bridge) replayOutbound(ctx context.Context) error {
	var after int64
	total := 0
	for {
		rows, err := b.DB.Outbound.Open(ctx, after, 1000)
		if err != nil {
			return fmt.Errorf("read outbound journal: %w", err)
		}
		for _, row := range rows {
			after = row.Seq
			evt, ok := b.parseEvent(row.Payload)
			if !ok {
				b.finishOutbound(ctx, row, database.StateFailed, "unreadable journal entry")
				continue
			}
			b.dispatchOutbound(ctx, row, evt)
			total++
		}
		if len(rows) < 1000 {
			break
		}
	}
	if total > 0 {
		b.Log.Info().Int("count", total).Msg("Replaying unsent Matrix events")
	}
	return nil
}

// finishOutbound moves an outbound journal row to a final state.
func (b *Bridge) finishOutbound(ctx context.Context, row *database.OutboundEvent, state database.JournalState, note string) {
	err := b.writeOutbound(ctx, row, func(ctx context.Context, tx database.Execer) error {
		return b.DB.Outbound.SetState(ctx, tx, row.Seq, state, note)
	})
	if err != nil {
		b.Log.Err(err).Int64("journal_seq", row.Seq).Msg("Could not finish outbound journal entry")
	}
}

// writeOutbound runs fn, a change of an outbound journal row, in one
// transaction with the row's seal (the crypto state its decryption left to
// write), and forgets the seal once that has committed. Every path from a
// decrypted event to the remote network passes through one of these writes
// first (MarkSending in send), so the seal needs no commit of its own.
func (b *Bridge) writeOutbound(ctx context.Context, row *database.OutboundEvent, fn func(ctx context.Context, tx database.Execer) error) error {
	seal := row.Seal
	err := b.DB.Write(ctx, func(ctx context.Context, tx database.Execer) error {
		if seal != nil {
			if err := seal(ctx, tx); err != nil {
				return fmt.Errorf("store the decrypted event's crypto state: %w", err)
			}
		}
		return fn(ctx, tx)
	})
	if err == nil {
		row.Seal = nil
	}
	return err
}
