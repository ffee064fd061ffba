package matrixtest

import (
	"context"
	"slices"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

const (
	// backfillPageSize and backfillMaxPages bound how much history one
	// gap may pull in: enough for any test or benchmark room, but never a
	// runaway loop against a misbehaving server.
	backfillPageSize = 500
	backfillMaxPages = 40
)

// fillGaps makes limited timelines in resp complete by paging back through
// /messages until it reaches an event the client already has or the room's
// creation. A gap would otherwise hide events from every wait.
//
// Dendrite marks the timeline of every newly joined room as limited even when
// it holds the whole history; starting at m.room.create proves there is no gap
// and saves the requests.
func (c *Client) fillGaps(ctx context.Context, resp *mautrix.RespSync) {
	for roomID, data := range resp.Rooms.Join {
		tl := &data.Timeline
		if !tl.Limited {
			continue
		}
		if len(tl.Events) > 0 && tl.Events[0].Type == event.StateCreate {
			tl.Limited = false
			continue
		}
		if tl.PrevBatch == "" {
			continue
		}
		older, complete := c.backfill(ctx, roomID, tl.PrevBatch)
		tl.Events = append(older, tl.Events...)
		tl.Limited = !complete
	}
}

// backfill returns the events before the token from, oldest first, down to
// the newest one the client already knows, and whether it got all of them.
func (c *Client) backfill(ctx context.Context, roomID id.RoomID, from string) (older []*event.Event, complete bool) {
	defer func() { slices.Reverse(older) }() // collected newest first
	for range backfillMaxPages {
		page, err := c.Matrix.Messages(ctx, roomID, from, "", mautrix.DirectionBackward, nil, backfillPageSize)
		if err != nil {
			return older, false
		}
		for _, evt := range page.Chunk {
			if c.knows(roomID, evt.ID) {
				return older, true
			}
			older = append(older, evt)
			if evt.Type == event.StateCreate {
				return older, true
			}
		}
		if len(page.Chunk) == 0 || page.End == "" {
			return older, true
		}
		from = page.End
	}
	return older, false
}

func (c *Client) knows(roomID id.RoomID, eventID id.EventID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.rooms[roomID]
	if !ok {
		return false
	}
	_, ok = r.index[eventID]
	return ok
}
