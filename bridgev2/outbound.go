package bridgev2

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"text/template"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/bridgev2/database"
	"github.com/trestle-bridge/trestle/bridgev2/networkid"
)

// messageByMXID looks up the mapping of a Matrix event. If it is missing
// while the portal's inbound worker is busy, it waits briefly for that
// worker: a user may react to a message in the instant between its Matrix
// event being sent and its mapping being recorded.
func (p *Portal) messageByMXID(ctx context.Context, eventID id.EventID) (*database.Message, error) {
	msg, err := p.Bridge.DB.Messages.GetByMXID(ctx, eventID)
	if errors.Is(err, database.ErrNotFound) {
		for i := 0; i < 3 && errors.Is(err, database.ErrNotFound); i++ {
			p.inbound.awaitProgress(2 * time.Second)
			msg, err = p.Bridge.DB.Messages.GetByMXID(ctx, eventID)
		}
	}
	return msg, err
}

// deliverOutbound hands one journalled Matrix event to the connector and
// reports the outcome to the sender.
func (p *Portal) deliverOutbound(row *database.OutboundEvent, evt *event.Event, user *User) {
	b := p.Bridge
	log := p.Log.With().Int64("journal_seq", row.Seq).Stringer("event_id", evt.ID).Stringer("sender", evt.Sender).Logger()
	ctx := log.WithContext(b.ctx)
	login, relay, err := p.loginFor(ctx, user)
	if err != nil {
		p.fail(ctx, row, evt, err)
		return
	}
	if b.Crypto != nil && b.Config.Encryption.Require && (evt.Type == event.EventMessage || evt.Type == event.EventSticker) {
		if encrypted, err := b.Crypto.IsEncrypted(ctx, evt.RoomID); err == nil && !encrypted {
			p.fail(ctx, row, evt, UnsupportedError("This bridge only bridges encrypted chats; turn on encryption in the room settings."))
			return
		}
	}
	switch evt.Type {
	case event.EventMessage, event.EventSticker:
		content := evt.Content.AsMessage()
		if target := content.RelatesTo.GetReplaceID(); target != "" {
			p.outboundEdit(ctx, row, evt, login, content, target)
		} else {
			p.outboundMessage(ctx, row, evt, login, relay, content)
		}
	case event.EventReaction:
		p.outboundReaction(ctx, row, evt, login)
	case event.EventRedaction:
		p.outboundRedaction(ctx, row, evt, login)
	case event.StateMember:
		p.outboundMembership(ctx, row, evt, login)
	case event.StateRoomName:
		p.outboundRoomName(ctx, row, evt)
	case event.EventEncrypted:
		// With encryption allowed, dispatchEncrypted decrypts first.
		p.fail(ctx, row, evt, UnsupportedError("This bridge does not support encrypted rooms; turn encryption off for bridged chats."))
	default:
		b.finishOutbound(ctx, row, database.StateDone, "ignored event type")
	}
}

// loginFor picks the login that sends for a Matrix user in this portal: the
// portal's own login if the user owns it, else the portal's relay login if
// relay mode allows it.
func (p *Portal) loginFor(ctx context.Context, user *User) (*UserLogin, *RelaySender, error) {
	b := p.Bridge
	if login := b.GetLogin(p.Receiver); login != nil && login.UserMXID == user.MXID {
		return login, nil, nil
	}
	if b.Config.Bridge.Relay.Enabled && p.RelayLogin != "" {
		if relay := b.GetLogin(p.RelayLogin); relay != nil {
			return relay, &RelaySender{UserID: string(user.MXID), DisplayName: p.memberName(ctx, user)}, nil
		}
	}
	return nil, nil, NewError("You are not logged in to the account this chat belongs to, and the chat has no relay.", ErrNotLoggedIn)
}

// fail closes the journal row of an event that could not be bridged and
// tells the sender why, in one write with the outcome's report.
func (p *Portal) fail(ctx context.Context, row *database.OutboundEvent, evt *event.Event, err error) {
	b := p.Bridge
	zerolog.Ctx(ctx).Warn().Err(err).Msg("Matrix event was not bridged")
	report := p.failureReport(evt, err)
	var queued bool
	werr := b.writeOutbound(ctx, row, func(ctx context.Context, tx database.Execer) error {
		if err := b.DB.Outbound.SetState(ctx, tx, row.Seq, database.StateFailed, err.Error()); err != nil {
			return err
		}
		var err error
		queued, err = p.putReport(ctx, tx, report)
		return err
	})
	if werr != nil {
		b.Log.Err(werr).Int64("journal_seq", row.Seq).Msg("Could not finish outbound journal entry")
		return
	}
	b.metrics.Bridged("outbound", "failed", time.Since(row.ReceivedAt))
	if queued {
		p.queueReport(report)
	}
}

// errShutdownRetry ends a retry loop when the bridge stops; the event stays
// in the journal.
var errShutdownRetry = errors.New("retry abandoned for shutdown")

// outgoing builds the part of a connector call every kind shares, with the
// send's progress as journalled.
func (p *Portal) outgoing(row *database.OutboundEvent, evt *event.Event, login *UserLogin) Outgoing {
	return Outgoing{Event: evt, Portal: p, Login: login, SendToken: row.SendToken, Progress: p.Bridge.loadProgress(row)}
}

// send is the one retry loop of the outbound direction: it calls the
// connector until the event is sent, fails for good, or is older than
// bridge.delivery_retry_for, waiting with backoff (and at least as long as
// a rate limit asked) between attempts. The sender is told once that the
// message is being retried.
//
// Whenever an earlier attempt may have reached the network (the previous
// run crashed mid-send, or the connector answered MayHaveSent), the
// client's SendReconciler is asked first, so a timeout after the network
// accepted the message does not send it twice. A reconciliation that fails
// for a passing reason is retried rather than sending blind.
func (p *Portal) send(ctx context.Context, row *database.OutboundEvent, out OutgoingEvent, call func(ctx context.Context) error) error {
	b := p.Bridge
	base := out.Base()
	reconciler, canReconcile := base.Login.Client.(SendReconciler)
	unsure := row.State == database.StateSending
	if !unsure {
		lease := b.currentLease()
		err := b.writeOutbound(ctx, row, func(ctx context.Context, tx database.Execer) error {
			return b.DB.Outbound.MarkSending(ctx, tx, row.Seq, lease)
		})
		if errors.Is(err, database.ErrFenced) {
			b.loseLeadership("another process took the lease")
			return errShutdownRetry
		} else if err != nil {
			return RetriableError("Could not record the send.", err)
		}
	}
	for attempt := 1; ; attempt++ {
		var err error
		if unsure && canReconcile {
			var complete bool
			complete, err = reconciler.FindSent(ctx, out, row.ReceivedAt.Add(-time.Minute))
			switch {
			case err == nil && complete:
				zerolog.Ctx(ctx).Info().Msg("Found an interrupted send on the remote network; not sending it again")
				return nil
			case err == nil:
				unsure = false
			case !isRetriable(err):
				zerolog.Ctx(ctx).Warn().Err(err).Msg("Could not check whether an interrupted send got through; sending it")
				unsure, err = false, nil
			}
		}
		if err == nil {
			if err = call(ctx); err == nil || ctx.Err() != nil {
				return err
			}
			unsure = mayHaveSent(err)
		}
		if !isRetriable(err) || time.Since(row.ReceivedAt) > b.Config.Bridge.DeliveryRetryFor {
			return err
		}
		delay := max(backoff(attempt), retryAfter(err))
		zerolog.Ctx(ctx).Warn().Err(err).Int("attempt", attempt).Dur("retry_in", delay).Msg("Sending to the remote network failed; will retry")
		if attempt == 1 {
			p.reportRetrying(base.Event, err)
			_ = b.DB.Write(ctx, func(ctx context.Context, tx database.Execer) error {
				return b.DB.Outbound.RecordAttempt(ctx, tx, row.Seq, err.Error())
			})
		}
		if !b.sleep(ctx, delay) {
			return errShutdownRetry
		}
	}
}

// sendFailed reports the end of a send that did not succeed, unless the
// bridge is stopping: then the row stays "sending" and is reconciled at the
// next start.
func (p *Portal) sendFailed(ctx context.Context, row *database.OutboundEvent, evt *event.Event, err error) {
	if ctx.Err() != nil || errors.Is(err, errShutdownRetry) {
		return
	}
	p.fail(ctx, row, evt, err)
}

func (p *Portal) outboundMessage(ctx context.Context, row *database.OutboundEvent, evt *event.Event, login *UserLogin, relay *RelaySender, content *event.MessageEventContent) {
	b := p.Bridge
	if err := login.CanSend(); err != nil {
		p.fail(ctx, row, evt, err)
		return
	}
	msg := &MatrixMessage{Outgoing: p.outgoing(row, evt, login), Content: content}
	if replyTo := content.RelatesTo.GetReplyTo(); replyTo != "" {
		target, err := p.messageByMXID(ctx, replyTo)
		if err != nil && !errors.Is(err, database.ErrNotFound) {
			p.fail(ctx, row, evt, RetriableError("Could not read the reply target.", err))
			return
		}
		msg.ReplyTo = target
	}
	if relay != nil {
		formatted, err := b.formatRelay(relay, content)
		if err != nil {
			p.fail(ctx, row, evt, err)
			return
		}
		relay.Formatted = formatted
		msg.Relay = relay
		relayed := *content
		relayed.Body, relayed.Format, relayed.FormattedBody = formatted, "", ""
		msg.Content = &relayed
	}
	var resp *MatrixMessageResponse
	err := p.send(ctx, row, msg, func(ctx context.Context) error {
		var err error
		resp, err = login.Client.HandleMatrixMessage(ctx, msg)
		return err
	})
	if err != nil {
		p.sendFailed(ctx, row, evt, err)
		return
	}
	reported := resp != nil && resp.DeliveryReported
	if resp == nil {
		// Found by reconciliation: a network that reconciles reports
		// delivery if it reported it for the original attempt.
		_, reported = login.Client.(SendReconciler)
	}
	p.recordSent(ctx, row, evt, login, msg.Progress.merge(resp), reported)
}

// recordSent stores the remote IDs a Matrix message became and closes its
// journal row, in one transaction. The message went out, so the record is
// retried while the database is away: until it is written, the row stays
// "sending" and the message's delivery reports wait for it. A part recorded
// by an attempt whose commit was not confirmed is not inserted again. If the
// bridge stops first, the next start finds the row "sending" and reconciles.
func (p *Portal) recordSent(ctx context.Context, row *database.OutboundEvent, evt *event.Event, login *UserLogin, sent []SentMessage, deliveryReported bool) {
	b := p.Bridge
	report := p.newReport(evt, database.DeliverySent)
	report.DeliveryWillFollow = deliveryReported
	var queued bool
	for attempt := 1; ; attempt++ {
		var err error
		queued, err = p.writeSent(ctx, row, evt, login, sent, report)
		if err == nil {
			break
		}
		delay := backoff(attempt)
		zerolog.Ctx(ctx).Err(err).Int("attempt", attempt).Dur("retry_in", delay).Msg("Sent, but could not record the message mapping; will retry")
		if !b.sleep(ctx, delay) {
			return // the row stays "sending" and is reconciled at the next start
		}
	}
	p.succeed(row, report, queued)
}

func (p *Portal) writeSent(ctx context.Context, row *database.OutboundEvent, evt *event.Event, login *UserLogin, sent []SentMessage, report *database.Report) (queued bool, err error) {
	b := p.Bridge
	// queued is read only after the write returned: in "return queued,
	// Write(...)" Go may read it before the call sets it.
	err = b.writeOutbound(ctx, row, func(ctx context.Context, tx database.Execer) error {
		for _, s := range sent {
			// The Matrix event's time, to the millisecond: reports order
			// the messages of a portal by it (networks like Twilio give
			// whole seconds).
			ts := time.UnixMilli(evt.Timestamp)
			if evt.Timestamp == 0 {
				ts = s.Timestamp
			}
			m := &database.Message{
				Portal: p.PortalKey, ID: s.ID, PartID: s.PartID, MXID: evt.ID,
				SenderID: networkid.UserID(login.ID), SenderMXID: evt.Sender, Timestamp: ts,
				Delivery: database.DeliverySent, Metadata: s.Metadata,
			}
			// A part mapped already (a send repeated after a crash) is
			// left as it is.
			if _, err := b.DB.Messages.InsertIfNew(ctx, tx, m); err != nil {
				return err
			}
		}
		var err error
		queued, err = p.closeSent(ctx, tx, row, report)
		return err
	})
	return queued, err
}

// closeSent, inside the write that records what was sent, closes the
// journal row and journals the outcome to show.
func (p *Portal) closeSent(ctx context.Context, tx database.Execer, row *database.OutboundEvent, report *database.Report) (queued bool, err error) {
	if err := p.Bridge.DB.Outbound.SetState(ctx, tx, row.Seq, database.StateSent, ""); err != nil {
		return false, err
	}
	return p.putReport(ctx, tx, report)
}

// succeed counts a bridged event and shows its outcome once committed.
func (p *Portal) succeed(row *database.OutboundEvent, report *database.Report, queued bool) {
	p.Bridge.metrics.Bridged("outbound", "success", time.Since(row.ReceivedAt))
	if queued {
		p.queueReport(report)
	}
}

// finishSent closes a sent event's journal row together with the record
// write, and tells the sender.
func (p *Portal) finishSent(ctx context.Context, row *database.OutboundEvent, evt *event.Event, what string, write func(ctx context.Context, tx database.Execer) error) {
	b := p.Bridge
	report := p.newReport(evt, database.DeliverySent)
	var queued bool
	err := b.writeOutbound(ctx, row, func(ctx context.Context, tx database.Execer) error {
		if err := write(ctx, tx); err != nil {
			return err
		}
		var err error
		queued, err = p.closeSent(ctx, tx, row, report)
		return err
	})
	if err != nil {
		zerolog.Ctx(ctx).Err(err).Msg("Could not record the " + what)
	}
	p.succeed(row, report, queued)
}

// target finds the bridged message a Matrix event refers to, failing the
// event with a sentence when there is none.
func (p *Portal) target(ctx context.Context, row *database.OutboundEvent, evt *event.Event, targetID id.EventID, missing string) *database.Message {
	target, err := p.messageByMXID(ctx, targetID)
	if errors.Is(err, database.ErrNotFound) {
		p.fail(ctx, row, evt, NewError(missing, err))
		return nil
	} else if err != nil {
		p.fail(ctx, row, evt, RetriableError("Could not read the message mapping.", err))
		return nil
	}
	return target
}

func (p *Portal) outboundEdit(ctx context.Context, row *database.OutboundEvent, evt *event.Event, login *UserLogin, content *event.MessageEventContent, targetID id.EventID) {
	b := p.Bridge
	handler, ok := login.Client.(EditHandler)
	if !ok {
		p.fail(ctx, row, evt, UnsupportedError("Editing messages is not supported on "+b.Network.Info().DisplayName+"."))
		return
	}
	target := p.target(ctx, row, evt, targetID, "The edited message was never bridged, so the edit cannot be either.")
	if target == nil {
		return
	}
	newContent := content
	if content.NewContent != nil {
		newContent = content.NewContent
	}
	edit := &MatrixEdit{Outgoing: p.outgoing(row, evt, login), NewContent: newContent, Target: target}
	if err := p.send(ctx, row, edit, func(ctx context.Context) error { return handler.HandleMatrixEdit(ctx, edit) }); err != nil {
		p.sendFailed(ctx, row, evt, err)
		return
	}
	p.finishSent(ctx, row, evt, "edit", func(ctx context.Context, tx database.Execer) error {
		target.EditCount++
		return b.DB.Messages.UpdateEdit(ctx, tx, target)
	})
}

func (p *Portal) outboundReaction(ctx context.Context, row *database.OutboundEvent, evt *event.Event, login *UserLogin) {
	b := p.Bridge
	content := evt.Content.AsReaction()
	handler, ok := login.Client.(ReactionHandler)
	if !ok {
		p.fail(ctx, row, evt, UnsupportedError("Reactions are not supported on "+b.Network.Info().DisplayName+"."))
		return
	}
	target := p.target(ctx, row, evt, content.RelatesTo.EventID, "The message you reacted to was never bridged.")
	if target == nil {
		return
	}
	reaction := &MatrixReaction{Outgoing: p.outgoing(row, evt, login), Emoji: content.RelatesTo.Key, Target: target}
	var resp *MatrixReactionResponse
	if err := p.send(ctx, row, reaction, func(ctx context.Context) error {
		var err error
		resp, err = handler.HandleMatrixReaction(ctx, reaction)
		return err
	}); err != nil {
		p.sendFailed(ctx, row, evt, err)
		return
	}
	emojiID := networkid.EmojiID(reaction.Emoji)
	if resp != nil && resp.EmojiID != "" {
		emojiID = resp.EmojiID
	}
	p.finishSent(ctx, row, evt, "reaction", func(ctx context.Context, tx database.Execer) error {
		return b.DB.Reactions.Upsert(ctx, tx, &database.Reaction{
			Portal: p.PortalKey, MessageID: target.ID, MessagePartID: target.PartID,
			SenderID: networkid.UserID(login.ID), EmojiID: emojiID, Emoji: reaction.Emoji,
			MXID: evt.ID, Timestamp: time.UnixMilli(evt.Timestamp),
		})
	})
}

func (p *Portal) outboundRedaction(ctx context.Context, row *database.OutboundEvent, evt *event.Event, login *UserLogin) {
	b := p.Bridge
	targetID := evt.Redacts
	if targetID == "" {
		targetID = evt.Content.AsRedaction().Redacts
	}
	if reaction, err := b.DB.Reactions.GetByMXID(ctx, targetID); err == nil {
		handler, ok := login.Client.(ReactionHandler)
		if !ok {
			p.fail(ctx, row, evt, UnsupportedError("Removing reactions is not supported on "+b.Network.Info().DisplayName+"."))
			return
		}
		removal := &MatrixReactionRemove{Outgoing: p.outgoing(row, evt, login), Target: reaction}
		if err := p.send(ctx, row, removal, func(ctx context.Context) error { return handler.HandleMatrixReactionRemove(ctx, removal) }); err != nil {
			p.sendFailed(ctx, row, evt, err)
			return
		}
		p.finishSent(ctx, row, evt, "reaction removal", func(ctx context.Context, tx database.Execer) error {
			return b.DB.Reactions.Delete(ctx, tx, reaction)
		})
		return
	}
	target, err := p.messageByMXID(ctx, targetID)
	if errors.Is(err, database.ErrNotFound) {
		// Redacting something that was never bridged (a failed message, a
		// notice) needs nothing on the remote side.
		b.finishOutbound(ctx, row, database.StateDone, "redaction of an unbridged event")
		return
	} else if err != nil {
		p.fail(ctx, row, evt, RetriableError("Could not read the message mapping.", err))
		return
	}
	handler, ok := login.Client.(RedactionHandler)
	if !ok {
		p.fail(ctx, row, evt, UnsupportedError("Deleting messages is not supported on "+b.Network.Info().DisplayName+"."))
		return
	}
	redaction := &MatrixRedaction{Outgoing: p.outgoing(row, evt, login), Target: target}
	if err := p.send(ctx, row, redaction, func(ctx context.Context) error { return handler.HandleMatrixRedaction(ctx, redaction) }); err != nil {
		p.sendFailed(ctx, row, evt, err)
		return
	}
	p.finishSent(ctx, row, evt, "deletion", func(ctx context.Context, tx database.Execer) error {
		return b.DB.Messages.Delete(ctx, tx, target.Seq)
	})
}

func (p *Portal) handleMatrixReceipt(userID id.UserID, eventID id.EventID) {
	b := p.Bridge
	ctx := p.Log.WithContext(b.ctx)
	login := p.ReceiverLogin()
	if login == nil || login.UserMXID != userID {
		return
	}
	handler, ok := login.Client.(ReadReceiptHandler)
	if !ok {
		return
	}
	target, err := b.DB.Messages.GetByMXID(ctx, eventID)
	if err != nil && !errors.Is(err, database.ErrNotFound) {
		return
	}
	if err := handler.HandleMatrixReadReceipt(ctx, &MatrixReadReceipt{EventID: string(eventID), Target: target, Portal: p, Login: login}); err != nil {
		p.Log.Debug().Err(err).Msg("Could not bridge read receipt")
	}
}

func (p *Portal) handleMatrixTyping(login *UserLogin, isTyping bool) {
	handler, ok := login.Client.(TypingHandler)
	if !ok {
		return
	}
	ctx := p.Log.WithContext(p.Bridge.ctx)
	if err := handler.HandleMatrixTyping(ctx, &MatrixTyping{IsTyping: isTyping, Portal: p, Login: login}); err != nil {
		p.Log.Debug().Err(err).Msg("Could not bridge typing notification")
	}
}

// formatRelay renders a relayed message with bridge.relay.message_format.
func (b *Bridge) formatRelay(relay *RelaySender, content *event.MessageEventContent) (string, error) {
	tmpl, err := template.New("relay").Parse(b.Config.Bridge.Relay.MessageFormat)
	if err != nil {
		return "", NewError("The relay message format is invalid.", err)
	}
	body := content.Body
	if content.MsgType == event.MsgEmote {
		body = "* " + body
	}
	var buf bytes.Buffer
	err = tmpl.Execute(&buf, map[string]string{"DisplayName": relay.DisplayName, "UserID": relay.UserID, "Message": body})
	if err != nil {
		return "", NewError("The relay message format could not be applied.", err)
	}
	return strings.TrimSpace(buf.String()), nil
}

// MemberNamer is implemented by Matrix sides that can read the name a
// user goes by in a room (their room display name, else their profile's).
// Relayed messages are attributed with it; without it, with the localpart.
type MemberNamer interface {
	MemberDisplayName(ctx context.Context, roomID id.RoomID, userID id.UserID) (string, error)
}

// memberName is the name relayed messages are attributed to: the user's
// display name in the portal room, or their localpart if the homeserver
// cannot say.
func (p *Portal) memberName(ctx context.Context, u *User) string {
	if namer, ok := p.Bridge.Matrix.(MemberNamer); ok {
		name, err := namer.MemberDisplayName(ctx, p.RoomID(), u.MXID)
		if err == nil && name != "" {
			return name
		}
		if err != nil {
			zerolog.Ctx(ctx).Debug().Err(err).Msg("Could not read the relayed user's display name")
		}
	}
	localpart, _, err := u.MXID.Parse()
	if err != nil || localpart == "" {
		return string(u.MXID)
	}
	return localpart
}

// outboundRoomName names the contact of a DM portal after the room's new
// name: that is how people rename a chat in their client. Group rooms'
// names stay Matrix-only, as do empty names.
func (p *Portal) outboundRoomName(ctx context.Context, row *database.OutboundEvent, evt *event.Event) {
	b := p.Bridge
	name := ""
	if c, ok := evt.Content.Parsed.(*event.RoomNameEventContent); ok {
		name = strings.TrimSpace(c.Name)
	}
	if p.RoomType != database.RoomTypeDM || p.OtherUserID == "" || name == "" {
		b.finishOutbound(ctx, row, database.StateDone, "room name not bridged")
		return
	}
	ghost, err := b.GetGhost(ctx, p.OtherUserID)
	if err == nil {
		err = ghost.SetUserName(ctx, name)
	}
	if err != nil {
		p.fail(ctx, row, evt, err)
		return
	}
	b.finishOutbound(ctx, row, database.StateDone, "")
}
