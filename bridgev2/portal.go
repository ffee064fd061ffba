package bridgev2

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/bridgev2/database"
	"github.com/trestle-bridge/trestle/bridgev2/networkid"
)

// Portal is a remote chat and its Matrix room. A Portal value is shared by
// every goroutine that works on the chat; its row fields may only be changed
// under mu.
type Portal struct {
	*database.Portal
	Bridge *Bridge
	Log    zerolog.Logger

	// mu guards the row fields and saved.
	mu sync.Mutex
	// saved is false for a portal known only in memory: its row is written
	// when its room is created, so no row ever exists without a room.
	saved bool
	// roomMu serialises room creation for this portal only, so other
	// portals create their rooms concurrently.
	roomMu sync.Mutex

	inbound  lane
	outbound lane
	// statuses sends message status events and failure notices, in the
	// order they were decided, without holding up the lanes that decide
	// them (a status is a homeserver round trip per message).
	statuses lane
	// statusMu guards the outcome reports waiting for the statuses lane
	// (see status.go) and the flush state below.
	statusMu       sync.Mutex
	pendingReports map[id.EventID]*pendingReport
	flushScheduled bool
	flushTimer     *time.Timer
	flushAt        time.Time
	reportAttempts int
	// lastReceipt is the send time of the newest message the bridge bot
	// sent a receipt for; touched by the statuses lane only.
	lastReceipt time.Time
	// receiptSentAt is when the bot last sent a receipt in the portal.
	receiptSentAt time.Time
	// lastUsed is when the portal was last looked up; guarded by the
	// bridge's portalsMu, so a lookup and an eviction never interleave.
	lastUsed time.Time
}

func (b *Bridge) newPortal(row *database.Portal, saved bool) *Portal {
	p := &Portal{Portal: row, Bridge: b, saved: saved}
	p.Log = b.Log.With().Str("portal_id", string(row.ID)).Str("portal_receiver", string(row.Receiver)).Logger()
	p.inbound = lane{name: "inbound", bridge: b, log: &p.Log, lastActive: time.Now()}
	p.outbound = lane{name: "outbound", bridge: b, log: &p.Log, lastActive: time.Now()}
	p.statuses = lane{name: "statuses", bridge: b, log: &p.Log, lastActive: time.Now()}
	return p
}

// RoomID returns the portal's Matrix room, or "" if it has none yet.
func (p *Portal) RoomID() id.RoomID {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.MXID
}

// GetPortal returns the portal for key, loading it from the database. It
// returns ErrNotFound-wrapping errors only for database failures: a chat
// the bridge has never seen comes back as an unsaved portal without a room,
// which gets a row only once its room is created.
func (b *Bridge) GetPortal(ctx context.Context, key networkid.PortalKey) (*Portal, error) {
	b.portalsMu.Lock()
	if p := b.portals[key]; p != nil {
		p.lastUsed = time.Now()
		b.portalsMu.Unlock()
		return p, nil
	}
	b.portalsMu.Unlock()

	row, err := b.DB.Portals.Get(ctx, key)
	saved := true
	if errors.Is(err, database.ErrNotFound) {
		row, saved, err = &database.Portal{PortalKey: key}, false, nil
	} else if err != nil {
		return nil, err
	}
	return b.cachePortal(b.newPortal(row, saved)), nil
}

// GetPortalByRoom returns the portal whose room is roomID, or nil if the
// room is not a portal.
func (b *Bridge) GetPortalByRoom(ctx context.Context, roomID id.RoomID) (*Portal, error) {
	b.portalsMu.Lock()
	if p := b.portalsByRoom[roomID]; p != nil {
		p.lastUsed = time.Now()
		b.portalsMu.Unlock()
		return p, nil
	}
	b.portalsMu.Unlock()
	row, err := b.DB.Portals.GetByMXID(ctx, roomID)
	if errors.Is(err, database.ErrNotFound) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	return b.cachePortal(b.newPortal(row, true)), nil
}

// cachePortal stores a freshly loaded portal unless another goroutine
// loaded the same one first, in which case that one wins: there must never
// be two workers for one portal.
func (b *Bridge) cachePortal(p *Portal) *Portal {
	b.portalsMu.Lock()
	defer b.portalsMu.Unlock()
	if existing := b.portals[p.PortalKey]; existing != nil {
		existing.lastUsed = time.Now()
		return existing
	}
	p.lastUsed = time.Now()
	b.portals[p.PortalKey] = p
	if p.MXID != "" {
		b.portalsByRoom[p.MXID] = p
	}
	return p
}

// evictIdle drops portals and ghosts that have had nothing to do since
// cutoff, so memory follows activity rather than history.
func (b *Bridge) evictIdle(cutoff time.Time) {
	b.portalsMu.Lock()
	for key, p := range b.portals {
		if p.lastUsed.Before(cutoff) && p.inbound.idleSince(cutoff) && p.outbound.idleSince(cutoff) && p.statuses.idleSince(cutoff) {
			delete(b.portals, key)
			if p.MXID != "" && b.portalsByRoom[p.MXID] == p {
				delete(b.portalsByRoom, p.MXID)
			}
		}
	}
	active := len(b.portals)
	b.portalsMu.Unlock()
	b.metrics.ActivePortals(active)

	b.ghostsMu.Lock()
	for key, g := range b.ghosts {
		if g.lastUsed().Before(cutoff) {
			delete(b.ghosts, key)
		}
	}
	b.ghostsMu.Unlock()
}

// save writes the portal row, inserting it the first time.
func (p *Portal) save(ctx context.Context) error {
	p.mu.Lock()
	row := *p.Portal
	saved := p.saved
	p.mu.Unlock()
	err := p.Bridge.DB.Write(ctx, func(ctx context.Context, tx database.Execer) error {
		if saved {
			return p.Bridge.DB.Portals.Update(ctx, tx, &row)
		}
		err := p.Bridge.DB.Portals.Insert(ctx, tx, &row)
		if errors.Is(err, database.ErrPortalExists) {
			return p.Bridge.DB.Portals.Update(ctx, tx, &row)
		}
		return err
	})
	if err == nil {
		p.mu.Lock()
		p.saved = true
		p.mu.Unlock()
	}
	return err
}

// Save persists changes a connector made to the portal's metadata.
func (p *Portal) Save(ctx context.Context) error { return p.save(ctx) }

// ReceiverLogin returns the login the portal is seen through, if it is loaded.
func (p *Portal) ReceiverLogin() *UserLogin {
	return p.Bridge.GetLogin(p.PortalKey.Receiver)
}

// setRoom records the portal's new room in memory and in the room index.
func (p *Portal) setRoom(roomID id.RoomID) {
	p.mu.Lock()
	p.MXID = roomID
	p.mu.Unlock()
	p.Bridge.portalsMu.Lock()
	p.Bridge.portalsByRoom[roomID] = p
	p.Bridge.portalsMu.Unlock()
}

// forgetPortalKey removes a deleted portal from memory.
func (b *Bridge) forgetPortalKey(key networkid.PortalKey) {
	b.portalsMu.Lock()
	defer b.portalsMu.Unlock()
	p := b.portals[key]
	if p == nil {
		return
	}
	delete(b.portals, key)
	if p.MXID != "" && b.portalsByRoom[p.MXID] == p {
		delete(b.portalsByRoom, p.MXID)
	}
}

// SetRelay sets (or, with "", clears) the login that sends for users of
// this portal who have no login of their own.
func (p *Portal) SetRelay(ctx context.Context, loginID networkid.UserLoginID) error {
	if p.RoomID() == "" {
		return NewError("This chat has no room yet.", nil)
	}
	p.mu.Lock()
	p.RelayLogin = loginID
	p.mu.Unlock()
	return p.save(ctx)
}
