package matrixtest

import (
	"context"
	"fmt"
	"strings"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// WaitForEvent returns the first timeline event in roomID, received before
// or during the call, that pred accepts. It fails when ctx is done or the
// sync loop has stopped, describing what it saw last.
func (c *Client) WaitForEvent(ctx context.Context, roomID id.RoomID, pred func(*event.Event) bool) (*event.Event, error) {
	return c.waitTimeline(ctx, "an event matching the predicate", roomID, "", pred)
}

// WaitForEventAfter is WaitForEvent for the events that follow the event
// after in the room's timeline, such as the answers to a message just sent.
// If after has not arrived yet, it waits for it first.
func (c *Client) WaitForEventAfter(ctx context.Context, roomID id.RoomID, after id.EventID, pred func(*event.Event) bool) (*event.Event, error) {
	return c.waitTimeline(ctx, "an event matching the predicate", roomID, after, pred)
}

// WaitForMessage returns the first m.room.message in roomID from sender (any
// sender if empty) whose body contains bodyContains.
func (c *Client) WaitForMessage(ctx context.Context, roomID id.RoomID, sender id.UserID, bodyContains string) (*event.Event, error) {
	return c.waitTimeline(ctx, describeMessage(sender, bodyContains), roomID, "", isMessage(sender, bodyContains))
}

// WaitForMessageAfter is WaitForMessage for the messages that follow the
// event after, typically the reply to a command the test just sent.
func (c *Client) WaitForMessageAfter(ctx context.Context, roomID id.RoomID, after id.EventID, sender id.UserID, bodyContains string) (*event.Event, error) {
	return c.waitTimeline(ctx, describeMessage(sender, bodyContains), roomID, after, isMessage(sender, bodyContains))
}

// WaitForMembership waits until the client sees user's membership in roomID
// become the given one, such as a bot joining a DM.
func (c *Client) WaitForMembership(ctx context.Context, roomID id.RoomID, user id.UserID, membership event.Membership) (*event.Event, error) {
	desc := fmt.Sprintf("%s to have membership %q", user, membership)
	return c.waitTimeline(ctx, desc, roomID, "", func(evt *event.Event) bool {
		return evt.Type == event.StateMember && evt.GetStateKey() == user.String() &&
			evt.Content.AsMember().Membership == membership
	})
}

// WaitForEphemeral returns the first typing notification or receipt in roomID
// that pred accepts.
func (c *Client) WaitForEphemeral(ctx context.Context, roomID id.RoomID, pred func(*event.Event) bool) (*event.Event, error) {
	return c.wait(ctx, "an ephemeral event matching the predicate", roomID, func(cursor *int) []*event.Event {
		r, ok := c.rooms[roomID]
		if !ok {
			return nil
		}
		newer := r.ephemeral[*cursor:]
		*cursor = len(r.ephemeral)
		return newer
	}, pred)
}

// WaitForReceipt waits for a read receipt from user on eventID in roomID.
func (c *Client) WaitForReceipt(ctx context.Context, roomID id.RoomID, user id.UserID, eventID id.EventID) (*event.Event, error) {
	desc := fmt.Sprintf("a read receipt from %s on %s", user, eventID)
	return c.wait(ctx, desc, roomID, func(cursor *int) []*event.Event {
		r, ok := c.rooms[roomID]
		if !ok {
			return nil
		}
		newer := r.ephemeral[*cursor:]
		*cursor = len(r.ephemeral)
		return newer
	}, func(evt *event.Event) bool {
		if evt.Type != event.EphemeralEventReceipt {
			return false
		}
		_, ok := (*evt.Content.AsReceipt())[eventID][event.ReceiptTypeRead][user]
		return ok
	})
}

// WaitForInvite returns the first invite, received before or during the call,
// that pred accepts; a nil pred accepts any.
func (c *Client) WaitForInvite(ctx context.Context, pred func(*Invite) bool) (*Invite, error) {
	cursor := 0
	for {
		c.mu.Lock()
		newer := c.invites[cursor:]
		cursor = len(c.invites)
		changed, stopErr := c.changed, c.stopErr
		c.mu.Unlock()

		for _, inv := range newer {
			if pred == nil || pred(inv) {
				return inv, nil
			}
		}
		if stopErr != nil {
			return nil, fmt.Errorf("%s waiting for an invite: %w", c.UserID, stopErr)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, fmt.Errorf("%s waiting for an invite: %w\n%s", c.UserID, ctx.Err(), c.invitesReport())
		}
	}
}

// waitTimeline waits for a timeline event in roomID, after the event after if
// one is given.
func (c *Client) waitTimeline(ctx context.Context, desc string, roomID id.RoomID, after id.EventID, pred func(*event.Event) bool) (*event.Event, error) {
	if after != "" {
		desc += " after " + after.String()
	}
	found := after == ""
	return c.wait(ctx, desc, roomID, func(cursor *int) []*event.Event {
		r, ok := c.rooms[roomID]
		if !ok {
			return nil
		}
		if !found {
			i, ok := r.index[after]
			if !ok {
				return nil
			}
			found, *cursor = true, i+1
		}
		newer := r.timeline[*cursor:]
		*cursor = len(r.timeline)
		return newer
	}, pred)
}

// wait is the core of every wait: next, called with c.mu held, returns the
// events not yet looked at; pred runs without the lock so that it may call
// back into the client.
func (c *Client) wait(ctx context.Context, desc string, roomID id.RoomID, next func(cursor *int) []*event.Event, pred func(*event.Event) bool) (*event.Event, error) {
	cursor := 0
	for {
		c.mu.Lock()
		newer := next(&cursor)
		changed, stopErr := c.changed, c.stopErr
		c.mu.Unlock()

		for _, evt := range newer {
			if pred(evt) {
				return evt, nil
			}
		}
		if stopErr != nil {
			return nil, fmt.Errorf("%s waiting for %s in %s: %w\n%s", c.UserID, desc, roomID, stopErr, c.roomReport(roomID))
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, fmt.Errorf("%s waiting for %s in %s: %w\n%s", c.UserID, desc, roomID, ctx.Err(), c.roomReport(roomID))
		}
	}
}

func isMessage(sender id.UserID, bodyContains string) func(*event.Event) bool {
	return func(evt *event.Event) bool {
		return evt.Type == event.EventMessage &&
			(sender == "" || evt.Sender == sender) &&
			strings.Contains(evt.Content.AsMessage().Body, bodyContains)
	}
}

func describeMessage(sender id.UserID, bodyContains string) string {
	from := "anyone"
	if sender != "" {
		from = sender.String()
	}
	return fmt.Sprintf("a message from %s containing %q", from, bodyContains)
}

// reportLines is how many of the latest events a failure message lists.
const reportLines = 8

// roomReport tells what the client saw, for a failed wait: the last events
// of the room, its sync health and the rooms it does know if not this one.
func (c *Client) roomReport(roomID id.RoomID) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b strings.Builder
	r, ok := c.rooms[roomID]
	switch {
	case !ok:
		known := make([]string, 0, len(c.rooms))
		for other := range c.rooms {
			known = append(known, other.String())
		}
		fmt.Fprintf(&b, "  the client has seen nothing in %s; rooms it knows: %v\n", roomID, known)
	default:
		fmt.Fprintf(&b, "  seen %d timeline and %d ephemeral events in the room", len(r.timeline), len(r.ephemeral))
		if r.limited > 0 {
			fmt.Fprintf(&b, " (%d syncs had gaps: events may be missing)", r.limited)
		}
		shown := r.timeline[max(0, len(r.timeline)-reportLines):]
		fmt.Fprintf(&b, "; the last %d:\n", len(shown))
		for _, evt := range shown {
			fmt.Fprintf(&b, "    %s\n", Summarize(evt))
		}
		if n := len(r.ephemeral); n > 0 {
			fmt.Fprintf(&b, "  last ephemeral: %s\n", Summarize(r.ephemeral[n-1]))
		}
	}
	c.healthLocked(&b)
	return strings.TrimRight(b.String(), "\n")
}

func (c *Client) invitesReport() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "  received %d invites", len(c.invites))
	if len(c.invites) > 0 {
		b.WriteString(":")
	}
	b.WriteString("\n")
	for _, inv := range c.invites[max(0, len(c.invites)-reportLines):] {
		fmt.Fprintf(&b, "    to %s from %s (is_direct=%v)\n", inv.RoomID, inv.Sender, inv.IsDirect)
	}
	c.healthLocked(&b)
	return strings.TrimRight(b.String(), "\n")
}

// healthLocked describes the sync loop. The caller holds c.mu.
func (c *Client) healthLocked(b *strings.Builder) {
	fmt.Fprintf(b, "  %d syncs done", c.syncs)
	if !c.lastSeen.IsZero() {
		fmt.Fprintf(b, ", the last %s ago", time.Since(c.lastSeen).Round(time.Millisecond))
	}
	b.WriteString("\n")
	if c.syncErr != nil {
		fmt.Fprintf(b, "  the last /sync failed: %v\n", c.syncErr)
	}
	if c.joinErr != nil {
		fmt.Fprintf(b, "  the last auto-join failed: %v\n", c.joinErr)
	}
}

// Summarize renders an event in one line for logs and failure messages:
// its ID, type, sender and the gist of its content.
func Summarize(evt *event.Event) string {
	gist := ""
	switch evt.Type {
	case event.EventMessage:
		msg := evt.Content.AsMessage()
		gist = fmt.Sprintf("%s %q", msg.MsgType, clip(msg.Body, 80))
		if rel := msg.RelatesTo; rel != nil {
			if target := rel.GetReplaceID(); target != "" {
				gist += " editing " + target.String()
			} else if target := rel.GetReplyTo(); target != "" {
				gist += " replying to " + target.String()
			}
		}
	case event.StateMember:
		gist = fmt.Sprintf("%s %s", evt.GetStateKey(), evt.Content.AsMember().Membership)
	case event.EventReaction:
		rel := evt.Content.AsReaction().RelatesTo
		gist = fmt.Sprintf("%q on %s", rel.Key, rel.EventID)
	case event.EventRedaction:
		target := evt.Redacts
		if target == "" {
			target = evt.Content.AsRedaction().Redacts
		}
		gist = "of " + target.String()
	case event.EphemeralEventTyping:
		gist = fmt.Sprintf("%v", evt.Content.AsTyping().UserIDs)
	case event.EphemeralEventReceipt:
		var parts []string
		for evtID, receipts := range *evt.Content.AsReceipt() {
			for user := range receipts[event.ReceiptTypeRead] {
				parts = append(parts, fmt.Sprintf("%s read %s", user, evtID))
			}
		}
		gist = strings.Join(parts, ", ")
	default:
		if len(evt.Content.VeryRaw) > 0 {
			gist = clip(string(evt.Content.VeryRaw), 80)
		}
	}
	line := fmt.Sprintf("%s %s", evt.Type.Type, gist)
	if evt.Sender != "" {
		line = fmt.Sprintf("%s from %s: %s", evt.Type.Type, evt.Sender, gist)
	}
	if evt.ID != "" {
		line = evt.ID.String() + " " + line
	}
	return line
}

// clip shortens s to at most n runes.
func clip(s string, n int) string {
	runes := []rune(s)
	if len(runes) <= n {
		return s
	}
	return string(runes[:n]) + "…"
}
