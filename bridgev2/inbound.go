package bridgev2

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/bridgev2/database"
	"github.com/trestle-bridge/trestle/bridgev2/networkid"
)

// deliverInbound applies one journalled remote event to Matrix, retrying
// while the failure is retriable (the homeserver is down, say) and the
// event is younger than bridge.delivery_retry_for. It blocks the portal's
// inbound lane meanwhile: order within a chat matters more than latency.
//
// A replayed event, and any event after a failed attempt, may already be in
// the room (the send reached the homeserver, its answer did not reach us):
// such sends look for their own transaction marker in the room first.
func (p *Portal) deliverInbound(row *database.InboundEvent, evt *RemoteEvent, replayed bool) {
	b := p.Bridge
	log := p.Log.With().Int64("journal_seq", row.Seq).Str("remote_event", string(evt.Kind)).
		Str("remote_id", string(evt.ID)).Logger()
	ctx := log.WithContext(b.ctx)
	login := b.GetLogin(row.LoginID)
	if login == nil {
		b.finishInbound(ctx, row, database.StateFailed, "the login that received this event is gone")
		return
	}
	start := time.Now()
	for attempt := 1; ; attempt++ {
		err := p.applyRemote(ctx, login, row, evt, attempt, replayed || attempt > 1)
		if errors.Is(err, errDeferred) {
			return // another lane finishes it
		}
		if err == nil {
			b.metrics.Bridged("inbound", "success", time.Since(row.ReceivedAt))
			return
		}
		if ctx.Err() != nil {
			return // shutting down: the event stays pending for the next start
		}
		if !shouldRetryInbound(err, attempt) || time.Since(row.ReceivedAt) > b.Config.Bridge.DeliveryRetryFor {
			log.Err(err).Dur("tried_for", time.Since(start)).Msg("Could not deliver remote event to Matrix; giving up")
			b.finishInbound(ctx, row, database.StateFailed, err.Error())
			b.metrics.Bridged("inbound", "failed", time.Since(row.ReceivedAt))
			return
		}
		delay := backoff(attempt)
		log.Warn().Err(err).Int("attempt", attempt).Dur("retry_in", delay).Msg("Delivery to Matrix failed; will retry")
		if attempt == 1 {
			b.recordInboundAttempt(ctx, row, err)
		}
		if !b.sleep(ctx, delay) {
			return // shutting down: the event stays pending for the next start
		}
	}
}

// sleep waits for d and reports true, or returns false early when the
// bridge starts shutting down: a retry loop then leaves its event in the
// journal rather than holding up shutdown.
func (b *Bridge) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-b.stopBg:
		return false
	}
}

// unclassifiedAttempts bounds retries of errors that are neither marked
// retriable nor permanent: worth a few tries (about five minutes), but not a
// day of blocking the portal.
const unclassifiedAttempts = 10

// shouldRetryInbound decides whether a failed delivery to Matrix is tried
// again. Losing a text is worse than delaying it, so only errors known to be
// permanent give up at once.
func shouldRetryInbound(err error, attempt int) bool {
	var be *Error
	if errors.As(err, &be) {
		return be.Retriable
	}
	return attempt < unclassifiedAttempts
}

// backoff grows exponentially from one second to half a minute, with
// jitter so that many portals retrying after an outage do not stampede
// together. The cap bounds how long delivery lags once the peer is back.
func backoff(attempt int) time.Duration {
	d := time.Second << min(attempt-1, 5)
	d = min(d, 30*time.Second)
	return d/2 + rand.N(d/2+1)
}

func (b *Bridge) recordInboundAttempt(ctx context.Context, row *database.InboundEvent, cause error) {
	_ = b.DB.Write(ctx, func(ctx context.Context, tx database.Execer) error {
		return b.DB.Inbound.RecordAttempt(ctx, tx, row.Seq, cause.Error())
	})
}

func (p *Portal) applyRemote(ctx context.Context, login *UserLogin, row *database.InboundEvent, evt *RemoteEvent, attempt int, mayBeSent bool) error {
	switch evt.Kind {
	case RemoteMessage:
		return p.applyMessage(ctx, login, row, evt, attempt, mayBeSent)
	case RemoteEdit:
		return p.applyEdit(ctx, login, row, evt)
	case RemoteReaction:
		return p.applyReaction(ctx, login, row, evt)
	case RemoteReactionRemove:
		return p.applyReactionRemove(ctx, login, row, evt)
	case RemoteDelete:
		return p.applyDelete(ctx, login, row, evt)
	case RemoteReadReceipt:
		return p.applyReadReceipt(ctx, login, row, evt)
	case RemoteDeliveryStatus:
		return p.applyDeliveryStatus(ctx, row, evt, false)
	case RemoteChatInfo:
		return p.applyChatInfo(ctx, login, row, evt)
	default:
		return p.finish(ctx, row, database.StateFailed, "unknown event kind")
	}
}

// finish marks the journal row done (or failed) when an event needs no
// mapping write of its own. row is nil for backfilled events.
func (p *Portal) finish(ctx context.Context, row *database.InboundEvent, state database.JournalState, note string) error {
	if row == nil {
		return nil
	}
	return p.Bridge.DB.Write(ctx, func(ctx context.Context, tx database.Execer) error {
		return p.Bridge.DB.Inbound.Finish(ctx, tx, row.Seq, state, note)
	})
}

// markBridgedParts records in done the parts of evt that are already mapped
// to Matrix events, and reports whether that is all of them.
func (p *Portal) markBridgedParts(ctx context.Context, evt *RemoteEvent, done map[networkid.PartID]bool) (bool, error) {
	existing, err := p.Bridge.DB.Messages.GetAllParts(ctx, p.Receiver, evt.ID)
	if err != nil {
		return false, RetriableError("Could not read the message mapping.", err)
	}
	for _, m := range existing {
		done[m.PartID] = true
	}
	return len(done) >= len(evt.Parts), nil
}

// skip finishes an event that cannot apply (its target is unknown, say),
// logging why; it is not an error worth retrying.
func (p *Portal) skip(ctx context.Context, row *database.InboundEvent, why string) error {
	p.Log.Debug().Str("reason", why).Msg("Skipped remote event")
	return p.finish(ctx, row, database.StateDone, why)
}

// txnID derives the Matrix transaction ID of a bridged event from its
// remote identity, so a replay after a crash reuses it and the homeserver
// returns the event it already has instead of creating a second one.
func txnID(parts ...string) string {
	h := sha256.New()
	for _, part := range parts {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	return "trestle_" + base64.RawURLEncoding.EncodeToString(h.Sum(nil)[:18])
}

// applyMessage bridges the parts of a remote message not bridged yet. With
// mayBeSent, each part is first looked for in the room (see findSent).
func (p *Portal) applyMessage(ctx context.Context, login *UserLogin, row *database.InboundEvent, evt *RemoteEvent, attempt int, mayBeSent bool) error {
	b := p.Bridge
	if len(evt.Parts) == 0 {
		return p.skip(ctx, row, "message without content")
	}
	done := make(map[networkid.PartID]bool, len(evt.Parts))
	if mayBeSent || row == nil {
		// A fresh event on its first attempt cannot have parts bridged
		// yet (backfill is checked below, after it ran); everything else
		// may, and a part already mapped is not sent again.
		if all, err := p.markBridgedParts(ctx, evt, done); err != nil {
			return err
		} else if all {
			return p.skip(ctx, row, "already bridged")
		}
	}
	if p.RoomID() == "" && evt.NoRoomCreation {
		return p.skip(ctx, row, "portal has no room and the event may not create one")
	}
	if p.RoomID() != "" && evt.ChatInfo != nil {
		// The network said what the chat is called now; a message is
		// where most networks say it.
		if err := p.syncChatInfo(ctx, login, evt.ChatInfo); err != nil {
			return err
		}
	}
	if p.RoomID() == "" {
		var creator networkid.UserID
		if !evt.Sender.IsFromMe {
			creator = evt.Sender.Sender
		}
		if _, err := p.ensureRoom(ctx, login, evt.ChatInfo, creator); err != nil {
			return err
		}
		// Creating the room backfilled history, which may include this
		// very message.
		if all, err := p.markBridgedParts(ctx, evt, done); err != nil {
			return err
		} else if all {
			return p.skip(ctx, row, "already bridged by backfill")
		}
	}
	sender, err := p.senderFor(ctx, login, evt.Sender)
	if err != nil {
		return err
	}
	var replyTo *database.Message
	if evt.ReplyTo != "" {
		replyTo, err = b.DB.Messages.GetFirstPart(ctx, p.Receiver, evt.ReplyTo)
		if err != nil && !errors.Is(err, database.ErrNotFound) {
			return RetriableError("Could not read the reply target.", err)
		}
	}
	for i := range evt.Parts {
		part := &evt.Parts[i]
		if done[part.ID] {
			continue
		}
		content, err := p.convertRemotePart(ctx, login, sender, part, attempt)
		if err != nil {
			return err
		}
		if replyTo != nil {
			content.RelatesTo = (&event.RelatesTo{}).SetReplyTo(replyTo.MXID)
		}
		txn := txnID(string(login.ID), string(p.ID), "msg", string(evt.ID), string(part.ID))
		var eventID id.EventID
		if mayBeSent {
			if eventID, err = p.findSent(ctx, txn); err != nil {
				return err
			}
		}
		if eventID == "" {
			marked := &event.Content{Parsed: content, Raw: map[string]any{TxnMarkerKey: txn}}
			if eventID, err = p.sendAs(ctx, sender, event.EventMessage, marked, txn, evt.Timestamp); err != nil {
				return err
			}
		}
		msg := &database.Message{
			Portal: p.PortalKey, ID: evt.ID, PartID: part.ID, MXID: eventID,
			SenderID: evt.Sender.Sender, SenderMXID: sender, Timestamp: evt.Timestamp,
		}
		if len(part.Metadata) > 0 {
			msg.Metadata = part.Metadata
		}
		last := i == len(evt.Parts)-1
		err = b.DB.Write(ctx, func(ctx context.Context, tx database.Execer) error {
			if err := b.DB.Messages.Insert(ctx, tx, msg); err != nil {
				return err
			}
			if last && row != nil {
				return b.DB.Inbound.Finish(ctx, tx, row.Seq, database.StateDone, "")
			}
			return nil
		})
		if err != nil {
			return RetriableError("Could not record the bridged message.", err)
		}
		p.Log.Debug().Stringer("event_id", eventID).Str("remote_id", string(evt.ID)).Str("part_id", string(part.ID)).Msg("Bridged remote message")
	}
	return nil
}

// replayGrace is how long after start-up a send found missing from the
// room is looked for once more before it is repeated. A homeserver keeps
// processing a request after its client died (Dendrite does not even
// remember the transaction ID then), and shows the event in /messages only
// once its sync stream caught up: under load that takes seconds.
const replayGrace = 5 * time.Second

// findSentLimit is how far back in a room findSent looks. A portal's
// inbound lane sends one event at a time, so an interrupted send is among
// the newest few events; the rest is room for other traffic in between.
const findSentLimit = 100

// findSent looks for a message the bridge may have sent in an earlier
// attempt whose answer was lost. It returns "" if the Matrix side cannot
// look, or the event is not there. A lookup that failed for a passing
// reason is retried (sending blind could double the message); one the
// homeserver refuses for good is logged and the message sent, since a
// double is better than a loss.
func (p *Portal) findSent(ctx context.Context, txn string) (id.EventID, error) {
	finder, ok := p.Bridge.Matrix.(EventFinder)
	if !ok {
		return "", nil
	}
	eventID, err := finder.FindSent(ctx, p.RoomID(), txn, findSentLimit)
	if err == nil && eventID == "" {
		// Right after a restart, the send the previous run was making
		// may still be in the homeserver's hands: look once more when
		// the grace period is over.
		if wait := time.Until(p.Bridge.startedAt.Add(replayGrace)); wait > 0 {
			if !p.Bridge.sleep(ctx, wait) {
				return "", errShutdownRetry
			}
			eventID, err = finder.FindSent(ctx, p.RoomID(), txn, findSentLimit)
		}
	}
	if isRetriable(err) {
		return "", err
	} else if err != nil {
		p.Log.Warn().Err(err).Msg("Could not check whether an interrupted send reached the room; sending it")
		return "", nil
	}
	if eventID != "" {
		p.Log.Info().Stringer("event_id", eventID).Msg("Found the message in the room from an interrupted send; not sending it again")
	}
	return eventID, nil
}

func (p *Portal) applyEdit(ctx context.Context, login *UserLogin, row *database.InboundEvent, evt *RemoteEvent) error {
	b := p.Bridge
	targets, err := b.DB.Messages.GetAllParts(ctx, p.Receiver, evt.Target)
	if err != nil {
		return RetriableError("Could not read the message mapping.", err)
	}
	if len(targets) == 0 || p.RoomID() == "" {
		return p.skip(ctx, row, "edit of a message that was never bridged")
	}
	sender, err := p.senderFor(ctx, login, evt.Sender)
	if err != nil {
		return err
	}
	for i := range evt.Parts {
		part := &evt.Parts[i]
		target := targets[0]
		for _, t := range targets {
			if t.PartID == part.ID {
				target = t
			}
		}
		content, err := p.convertRemotePart(ctx, login, sender, part, 1)
		if err != nil {
			return err
		}
		edit := &event.MessageEventContent{
			MsgType:       content.MsgType,
			Body:          "* " + content.Body,
			NewContent:    content,
			RelatesTo:     (&event.RelatesTo{}).SetReplace(target.MXID),
			Format:        content.Format,
			FormattedBody: content.FormattedBody,
		}
		if edit.FormattedBody != "" {
			edit.FormattedBody = "* " + edit.FormattedBody
		}
		editID := string(evt.ID)
		if editID == "" {
			editID = evt.Timestamp.String()
		}
		if _, err := p.sendAs(ctx, sender, event.EventMessage, edit,
			txnID(string(login.ID), string(p.ID), "edit", string(evt.Target), string(part.ID), editID), evt.Timestamp); err != nil {
			return err
		}
		target.EditCount++
	}
	return b.DB.Write(ctx, func(ctx context.Context, tx database.Execer) error {
		for _, t := range targets {
			if err := b.DB.Messages.UpdateEdit(ctx, tx, t); err != nil {
				return err
			}
		}
		return p.finishTx(ctx, tx, row)
	})
}

func (p *Portal) finishTx(ctx context.Context, tx database.Execer, row *database.InboundEvent) error {
	if row == nil {
		return nil
	}
	return p.Bridge.DB.Inbound.Finish(ctx, tx, row.Seq, database.StateDone, "")
}

// reactionTarget finds the message part a reaction or receipt refers to.
func (p *Portal) reactionTarget(ctx context.Context, evt *RemoteEvent) (*database.Message, error) {
	var msg *database.Message
	var err error
	if evt.TargetPart != nil {
		msg, err = p.Bridge.DB.Messages.GetPart(ctx, p.Receiver, evt.Target, *evt.TargetPart)
	} else {
		msg, err = p.Bridge.DB.Messages.GetFirstPart(ctx, p.Receiver, evt.Target)
	}
	if errors.Is(err, database.ErrNotFound) {
		return nil, nil
	} else if err != nil {
		return nil, RetriableError("Could not read the message mapping.", err)
	}
	return msg, nil
}

func emojiID(evt *RemoteEvent) networkid.EmojiID {
	if evt.EmojiID != "" {
		return evt.EmojiID
	}
	return networkid.EmojiID(evt.Emoji)
}

func (p *Portal) applyReaction(ctx context.Context, login *UserLogin, row *database.InboundEvent, evt *RemoteEvent) error {
	b := p.Bridge
	target, err := p.reactionTarget(ctx, evt)
	if err != nil {
		return err
	}
	if target == nil || p.RoomID() == "" {
		return p.skip(ctx, row, "reaction to a message that was never bridged")
	}
	sender, err := p.senderFor(ctx, login, evt.Sender)
	if err != nil {
		return err
	}
	eid := emojiID(evt)
	existing, err := b.DB.Reactions.Get(ctx, p.Receiver, target.ID, target.PartID, evt.Sender.Sender, eid)
	if err != nil && !errors.Is(err, database.ErrNotFound) {
		return RetriableError("Could not read reactions.", err)
	}
	if existing != nil && existing.Emoji == evt.Emoji {
		return p.skip(ctx, row, "reaction already bridged")
	}
	content := &event.ReactionEventContent{RelatesTo: event.RelatesTo{
		Type: event.RelAnnotation, EventID: target.MXID, Key: evt.Emoji,
	}}
	eventID, err := p.sendAs(ctx, sender, event.EventReaction, content,
		txnID(string(login.ID), string(p.ID), "react", string(target.ID), string(target.PartID), string(evt.Sender.Sender), evt.Emoji), evt.Timestamp)
	if err != nil {
		return err
	}
	if existing != nil {
		// Networks with one reaction per user replace it: take the old one away.
		if _, err := b.Matrix.Redact(ctx, sender, p.RoomID(), existing.MXID, "", txnID("redact", string(existing.MXID))); err != nil {
			p.Log.Warn().Err(err).Msg("Could not remove replaced reaction")
		}
	}
	reaction := &database.Reaction{
		Portal: p.PortalKey, MessageID: target.ID, MessagePartID: target.PartID, SenderID: evt.Sender.Sender,
		EmojiID: eid, Emoji: evt.Emoji, MXID: eventID, Timestamp: evt.Timestamp,
	}
	return b.DB.Write(ctx, func(ctx context.Context, tx database.Execer) error {
		if err := b.DB.Reactions.Upsert(ctx, tx, reaction); err != nil {
			return err
		}
		return p.finishTx(ctx, tx, row)
	})
}

func (p *Portal) applyReactionRemove(ctx context.Context, login *UserLogin, row *database.InboundEvent, evt *RemoteEvent) error {
	b := p.Bridge
	target, err := p.reactionTarget(ctx, evt)
	if err != nil {
		return err
	}
	if target == nil {
		return p.skip(ctx, row, "reaction removal on a message that was never bridged")
	}
	existing, err := b.DB.Reactions.Get(ctx, p.Receiver, target.ID, target.PartID, evt.Sender.Sender, emojiID(evt))
	if errors.Is(err, database.ErrNotFound) {
		return p.skip(ctx, row, "removal of a reaction that was never bridged")
	} else if err != nil {
		return RetriableError("Could not read reactions.", err)
	}
	sender, err := p.senderFor(ctx, login, evt.Sender)
	if err != nil {
		return err
	}
	if _, err := b.Matrix.Redact(ctx, sender, p.RoomID(), existing.MXID, "", txnID("redact", string(existing.MXID))); err != nil {
		return err
	}
	return b.DB.Write(ctx, func(ctx context.Context, tx database.Execer) error {
		if err := b.DB.Reactions.Delete(ctx, tx, existing); err != nil {
			return err
		}
		return p.finishTx(ctx, tx, row)
	})
}

func (p *Portal) applyDelete(ctx context.Context, login *UserLogin, row *database.InboundEvent, evt *RemoteEvent) error {
	b := p.Bridge
	parts, err := b.DB.Messages.GetAllParts(ctx, p.Receiver, evt.Target)
	if err != nil {
		return RetriableError("Could not read the message mapping.", err)
	}
	if len(parts) == 0 || p.RoomID() == "" {
		return p.skip(ctx, row, "deletion of a message that was never bridged")
	}
	sender, err := p.senderFor(ctx, login, evt.Sender)
	if err != nil {
		return err
	}
	for _, part := range parts {
		_, err := b.Matrix.Redact(ctx, sender, p.RoomID(), part.MXID, "", txnID("redact", string(part.MXID)))
		if errors.Is(err, ErrForbidden) {
			// The ghost may not redact a Matrix user's own message; the bot may.
			_, err = b.Matrix.Redact(ctx, b.Matrix.BotUserID(), p.RoomID(), part.MXID, "", txnID("redact-bot", string(part.MXID)))
		}
		if err != nil {
			return err
		}
	}
	return b.DB.Write(ctx, func(ctx context.Context, tx database.Execer) error {
		for _, part := range parts {
			if err := b.DB.Messages.Delete(ctx, tx, part.Seq); err != nil {
				return err
			}
		}
		return p.finishTx(ctx, tx, row)
	})
}

func (p *Portal) applyReadReceipt(ctx context.Context, login *UserLogin, row *database.InboundEvent, evt *RemoteEvent) error {
	target, err := p.reactionTarget(ctx, evt)
	if err != nil {
		return err
	}
	if target == nil || p.RoomID() == "" {
		return p.skip(ctx, row, "read receipt for a message that was never bridged")
	}
	sender, err := p.senderFor(ctx, login, evt.Sender)
	if err != nil {
		return err
	}
	if err := p.Bridge.Matrix.MarkRead(ctx, sender, p.RoomID(), target.MXID); err != nil {
		return err
	}
	return p.finish(ctx, row, database.StateDone, "")
}

func (p *Portal) applyTyping(ctx context.Context, login *UserLogin, evt *RemoteEvent) {
	if p.RoomID() == "" {
		return
	}
	sender, err := p.senderFor(ctx, login, evt.Sender)
	if err == nil {
		err = p.Bridge.Matrix.SetTyping(ctx, sender, p.RoomID(), evt.Typing)
	}
	if err != nil {
		p.Log.Debug().Err(err).Msg("Could not bridge typing notification")
	}
}

func (p *Portal) applyChatInfo(ctx context.Context, login *UserLogin, row *database.InboundEvent, evt *RemoteEvent) error {
	if evt.ChatInfo == nil || p.RoomID() == "" {
		return p.skip(ctx, row, "chat info for a portal without a room")
	}
	if err := p.syncChatInfo(ctx, login, evt.ChatInfo); err != nil {
		return err
	}
	return p.finish(ctx, row, database.StateDone, "")
}

// userNamedDM reports whether the portal is a DM whose contact a Matrix
// user named (set-name, or renaming the room, which also names the
// contact): the room's name is then the user's to choose, and no name from
// the network replaces it.
func (p *Portal) userNamedDM(ctx context.Context) bool {
	if p.RoomType != database.RoomTypeDM || p.OtherUserID == "" {
		return false
	}
	ghost, err := p.Bridge.GetGhost(ctx, p.OtherUserID)
	return err == nil && ghost.userName() != ""
}

// syncChatInfo brings the room's name, topic and avatar in line with info
// where they differ from what the bridge last set, and a group's ghosts
// with its members. Applying the same info twice changes nothing, so a
// replay is harmless.
func (p *Portal) syncChatInfo(ctx context.Context, login *UserLogin, info *ChatInfo) error {
	room := p.RoomID()
	b := p.Bridge
	bot := b.Matrix.BotUserID()
	changed := false
	if info.Name != nil && *info.Name != p.Name && !p.userNamedDM(ctx) {
		if _, err := b.Matrix.SendState(ctx, bot, room, event.StateRoomName, "", &event.RoomNameEventContent{Name: *info.Name}); err != nil {
			return err
		}
		p.mu.Lock()
		p.Name, p.NameSet = *info.Name, true
		p.mu.Unlock()
		changed = true
	}
	if info.Topic != nil && *info.Topic != p.Topic {
		if _, err := b.Matrix.SendState(ctx, bot, room, event.StateTopic, "", &event.TopicEventContent{Topic: *info.Topic}); err != nil {
			return err
		}
		p.mu.Lock()
		p.Topic = *info.Topic
		p.mu.Unlock()
		changed = true
	}
	if info.Avatar != nil && info.Avatar.ID != p.AvatarID {
		mxc, err := b.uploadAvatar(ctx, login, bot, info.Avatar)
		if err != nil {
			return err
		}
		if _, err := b.Matrix.SendState(ctx, bot, room, event.StateRoomAvatar, "", &event.RoomAvatarEventContent{URL: mxc}); err != nil {
			return err
		}
		p.mu.Lock()
		p.AvatarID, p.AvatarMXC = info.Avatar.ID, mxc
		p.mu.Unlock()
		changed = true
	}
	if info.Members != nil && p.RoomType != database.RoomTypeDM {
		if err := p.syncMembers(ctx, login, info.Members); err != nil {
			return err
		}
	}
	if !changed {
		return nil
	}
	if err := p.save(ctx); err != nil {
		return RetriableError("Could not save the chat info.", err)
	}
	return nil
}

// applyDeliveryStatus turns the network's delivery report for a message a
// Matrix user sent into a message status event the sender sees. Reports
// only move the state forward: a late "sent" never hides "delivered".
// combinedDelivery is the delivery state of a Matrix event from those of
// the remote messages it was sent as: failed if any failed, otherwise the
// least advanced.
func combinedDelivery(parts []*database.Message) database.Delivery {
	if len(parts) == 0 {
		return database.DeliveryNone
	}
	least := parts[0].Delivery
	for _, part := range parts {
		if part.Delivery == database.DeliveryFailed {
			return database.DeliveryFailed
		}
		if part.Delivery.Rank() < least.Rank() {
			least = part.Delivery
		}
	}
	return least
}

// errDeferred means an event was handed to another lane, which finishes its
// journal row; the inbound lane moves on.
var errDeferred = errors.New("deferred to another lane")

func (p *Portal) applyDeliveryStatus(ctx context.Context, row *database.InboundEvent, evt *RemoteEvent, deferred bool) error {
	b := p.Bridge
	msg, err := b.DB.Messages.GetFirstPart(ctx, p.Receiver, evt.Target)
	if errors.Is(err, database.ErrNotFound) && evt.Status.SendToken != "" && !deferred {
		out, oerr := b.DB.Outbound.GetByToken(ctx, evt.Status.SendToken)
		switch {
		case oerr != nil:
		case out.State == database.StatePending || out.State == database.StateSending:
			// The report overtook the send's own response. The send is
			// running on the outbound lane: wait behind it there, rather
			// than holding up this chat's incoming texts, then come back
			// to this lane. Reports are applied here only, one at a time:
			// the parts of a split message are delivered when all are,
			// which two lanes reading them at once could both miss.
			p.outbound.push(func() {
				p.inbound.push(func() {
					dctx := p.Log.With().Int64("journal_seq", row.Seq).Logger().WithContext(b.ctx)
					if err := p.applyDeliveryStatus(dctx, row, evt, true); err != nil {
						zerolog.Ctx(dctx).Warn().Err(err).Msg("Could not apply a deferred delivery report")
						b.finishInbound(dctx, row, database.StateFailed, err.Error())
					}
				})
			})
			return errDeferred
		case out.State == database.StateSent:
			// The send was recorded between the two reads (its mapping
			// and its state commit together): the mapping is there now.
			msg, err = b.DB.Messages.GetFirstPart(ctx, p.Receiver, evt.Target)
		}
	}
	if errors.Is(err, database.ErrNotFound) {
		return p.skip(ctx, row, "delivery report for a message the bridge did not send")
	} else if err != nil {
		return RetriableError("Could not read the message mapping.", err)
	}
	// A Matrix event sent as several remote messages is delivered when all
	// of them are, and failed as soon as one fails: the sender hears about
	// the event, not its parts.
	parts, err := b.DB.Messages.GetAllByMXID(ctx, msg.MXID)
	if err != nil {
		return RetriableError("Could not read the message mapping.", err)
	}
	// The outcome the sender will see is decided and journalled in the same
	// commit as the report that decides it.
	before := combinedDelivery(parts)
	var report *database.Report
	var queued bool
	err = b.DB.Write(ctx, func(ctx context.Context, tx database.Execer) error {
		changed, err := b.DB.Messages.AdvanceDelivery(ctx, tx, msg.Seq, evt.Status.State)
		if err != nil {
			return err
		}
		report, queued = nil, false
		if changed {
			report = p.deliveryReport(msg, parts, before, evt.Status)
		}
		if report != nil {
			if queued, err = p.putReport(ctx, tx, report); err != nil {
				return err
			}
		}
		return p.finishTx(ctx, tx, row)
	})
	if err != nil {
		return RetriableError("Could not record the delivery report.", err)
	}
	if queued {
		p.queueReport(report)
	}
	return nil
}

// deliveryReport is what the sender should now see of the Matrix event
// whose part msg just reached the reported state, or nil if the event as a
// whole did not change (another part is still on its way).
func (p *Portal) deliveryReport(msg *database.Message, parts []*database.Message, before database.Delivery, st *DeliveryStatus) *database.Report {
	updated := make([]*database.Message, len(parts))
	for i, part := range parts {
		cp := *part
		if part.Seq == msg.Seq {
			cp.Delivery = st.State
		}
		updated[i] = &cp
	}
	after := combinedDelivery(updated)
	if after == before {
		return nil
	}
	switch after {
	case database.DeliveryDelivered, database.DeliveryRead:
	case database.DeliveryFailed:
	default:
		return nil
	}
	r := &database.Report{EventID: msg.MXID, RoomID: p.RoomID(), Portal: p.PortalKey, State: after, EventTS: msg.Timestamp}
	if after != database.DeliveryFailed {
		// A note on how it went, such as the channel it took.
		r.Message = st.Message
	}
	if after == database.DeliveryFailed {
		r.Message, r.Reason, r.Undelivered = st.Message, string(event.MessageStatusNetworkError), true
		if r.Message == "" {
			r.Message = "The message could not be delivered."
		}
		if st.Code != "" {
			r.InternalError = "error " + st.Code
		}
	}
	return r
}
