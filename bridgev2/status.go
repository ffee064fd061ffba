package bridgev2

import (
	"context"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// sendStatus reports the outcome of a Matrix event back to its sender as a
// com.beeper.message_send_status event, if enabled. It is queued on the
// portal's status lane, so statuses keep their order without making the
// message lanes wait for the homeserver.
//
// A status decided while an earlier one for the same event is still queued
// replaces it ("sent" becomes "delivered", "retrying" becomes "sent"):
// clients show only the newest, and when the homeserver is the bottleneck
// each status is one more event for it to take.
func (p *Portal) sendStatus(_ context.Context, target id.EventID, content *event.BeeperMessageStatusEventContent) {
	b := p.Bridge
	room := p.RoomID()
	if !b.Config.Bridge.MessageStatusEvents || room == "" {
		return
	}
	content.Network = b.Network.Info().ID
	content.RelatesTo = event.RelatesTo{Type: event.RelReference, EventID: target}
	p.statusMu.Lock()
	_, queued := p.queuedStatus[target]
	if p.queuedStatus == nil {
		p.queuedStatus = make(map[id.EventID]*event.BeeperMessageStatusEventContent)
	}
	p.queuedStatus[target] = content
	p.statusMu.Unlock()
	if queued {
		return
	}
	pushed := p.statuses.push(func() {
		p.statusMu.Lock()
		newest := p.queuedStatus[target]
		delete(p.queuedStatus, target)
		p.statusMu.Unlock()
		_, err := b.Matrix.SendMessage(b.ctx, b.Matrix.BotUserID(), room, event.BeeperMessageStatus, newest, "", time.Time{})
		if err != nil {
			p.Log.Warn().Err(err).Stringer("event_id", target).Msg("Could not send message status")
		}
	})
	if !pushed {
		p.statusMu.Lock()
		delete(p.queuedStatus, target)
		p.statusMu.Unlock()
	}
}

// statusForError builds the failure status for err.
func statusForError(err error, retrying bool) *event.BeeperMessageStatusEventContent {
	status := event.MessageStatusFail
	if retrying {
		status = event.MessageStatusRetriable
	}
	return &event.BeeperMessageStatusEventContent{
		Status:        status,
		Reason:        statusReason(err),
		Message:       HumanMessage(err),
		InternalError: err.Error(),
	}
}

// failureNotice tells the room in plain words that a message was not
// bridged, or (undelivered) bridged but not delivered, if
// bridge.failure_notices is on: not every client shows message status
// events.
func (p *Portal) failureNotice(_ context.Context, target id.EventID, message string, undelivered bool) {
	b := p.Bridge
	room := p.RoomID()
	if !b.Config.Bridge.FailureNotices || room == "" {
		return
	}
	prefix := "⚠️ Your message was not bridged: "
	if undelivered {
		prefix = "⚠️ Your message was not delivered: "
	}
	content := &event.MessageEventContent{MsgType: event.MsgNotice, Body: prefix + message}
	if target != "" {
		content.RelatesTo = (&event.RelatesTo{}).SetReplyTo(target)
	}
	p.statuses.push(func() {
		if _, err := b.Matrix.SendMessage(b.ctx, b.Matrix.BotUserID(), room, event.EventMessage, content, "", time.Time{}); err != nil {
			p.Log.Warn().Err(err).Msg("Could not send failure notice")
		}
	})
}
