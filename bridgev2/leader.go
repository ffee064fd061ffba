package bridgev2

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/trestle-bridge/trestle/bridgev2/database"
	"github.com/trestle-bridge/trestle/bridgev2/networkid"
)

// Several bridge processes with one config and one PostgreSQL database form
// one bridge. Every process ingests: it verifies a webhook or a homeserver
// transaction and commits it to the shared journal before it answers, so a
// load balancer needs no stickiness. Only the leader, the holder of the
// lease in the leader_lease table, delivers from the journal. A standby
// campaigns for the lease and, when the leader stops renewing it, takes
// over: it replays the journal (in order per portal, reconciling what the
// old leader left "sending") and connects the logins.
//
// A leader that cannot renew its lease in time stops delivering before the
// lease runs out for anyone else, and gives up: the process exits, for its
// supervisor to start it again as a standby. Timing alone would not be
// enough against a long pause, so delivery is fenced too: a send is marked
// "sending" only in a write that checks the lease's epoch, and every call a
// leader makes runs under a context cancelled when its hold ends.
//
// With SQLite, one process is the whole bridge (a second one refuses to
// open the file) and leads from the start.

// ErrNotLeader is returned for work only the leader does, on a standby.
var ErrNotLeader = errors.New("this bridge process is a standby; the leader does this")

// leadership is the campaign state of a process.
type leadership struct {
	// instance names this process in the lease table.
	instance string
	// ha is set on PostgreSQL, where other processes may share the journal.
	ha bool

	mu      sync.Mutex
	lease   *database.Lease
	leading bool
	// leadingCh closes when the process becomes the leader, lostCh when it
	// stops being it.
	leadingCh chan struct{}
	lostCh    chan struct{}

	// dispatchMu is held for writing while a new leader replays the
	// journal, so that an event ingested meanwhile is queued after the
	// older events of its portal, never before them.
	dispatchMu sync.RWMutex
	// claimed lists the journal rows queued on lanes (HA only), with the
	// journal scan that was current when each was claimed, so that the
	// leader's scans never queue one twice.
	claimMu   sync.Mutex
	claimed   map[string]int64
	scanCount int64
	// kick asks the leader's journal watcher for a scan now; maxIn and
	// maxOut are the newest rows a scan saw (watcher only).
	kick          chan struct{}
	maxIn, maxOut int64
}

// Leading reports whether this process delivers from the journal.
func (b *Bridge) Leading() bool {
	b.leader.mu.Lock()
	defer b.leader.mu.Unlock()
	return b.leader.leading
}

// BecameLeader is closed once this process leads; background jobs that
// only the leader runs wait for it.
func (b *Bridge) BecameLeader() <-chan struct{} { return b.leader.leadingCh }

// LostLeadership is closed when this process stopped leading without being
// asked to stop: it delivers nothing any more and should exit.
func (b *Bridge) LostLeadership() <-chan struct{} { return b.leader.lostCh }

// currentLease is the hold delivery writes are fenced with; nil without HA.
func (b *Bridge) currentLease() *database.Lease {
	b.leader.mu.Lock()
	defer b.leader.mu.Unlock()
	return b.leader.lease
}

// leaseTimes derive the lease from bridge.takeover_timeout: standbys try
// every step, the leader renews every step and stops delivering one step
// before its hold could run out for others, and a standby takes over at most
// a lease plus a step after the leader's last renewal.
func (b *Bridge) leaseTimes() (lease, step time.Duration) {
	takeover := b.Config.Database.TakeoverTimeout
	return takeover * 4 / 5, takeover / 5
}

// campaign runs on PostgreSQL until the process leads, then keeps the lease
// renewed until it stops.
func (b *Bridge) campaign() {
	defer b.bgDone.Done()
	lease, step := b.leaseTimes()
	tick := time.NewTicker(step)
	defer tick.Stop()
	released := b.DB.Listen(b.ctx, database.TopicLease)
	for {
		held, ok, err := b.DB.Leases.Acquire(b.ctx, b.leader.instance, lease)
		switch {
		case err != nil && b.ctx.Err() == nil:
			b.Log.Warn().Err(err).Msg("Could not campaign for the leader lease")
		case ok:
			b.Log.Info().Int64("epoch", held.Epoch).Msg("Took the leader lease: this process delivers now")
			b.keepLease(held, time.Now(), lease, step)
			return
		}
		select {
		case <-b.stopBg:
			return
		case <-tick.C:
		case <-released: // a leader stopping cleanly hands over at once
			// (Subscribed too: a release before the LISTEN was missed)
		}
	}
}

// keepLease leads: it replays the journal, then renews the hold every step,
// and gives up delivering once a renewal has not succeeded in time.
func (b *Bridge) keepLease(held *database.Lease, renewedAt time.Time, lease, step time.Duration) {
	b.leader.mu.Lock()
	b.leader.lease = held
	b.leader.mu.Unlock()
	// When the renewals fell behind (the process or the database was
	// starved for a moment), one last renewal decides: the hold may still be
	// ours, and exiting for nothing costs a restart.
	var deadline *time.Timer
	deadline = time.AfterFunc(time.Hour, func() {
		started := time.Now()
		ctx, cancel := context.WithTimeout(b.ctx, step)
		ok, err := b.DB.Leases.Renew(ctx, held, lease)
		cancel()
		if ok && err == nil {
			b.Log.Warn().Msg("The leader lease was renewed late")
			deadline.Reset(time.Until(started.Add(lease - step)))
			return
		}
		b.loseLeadership("the lease could not be renewed in time")
	})
	deadline.Reset(time.Until(renewedAt.Add(lease - step)))
	defer deadline.Stop()
	go func() {
		if err := b.lead(b.ctx); err != nil && b.ctx.Err() == nil {
			b.loseLeadership(err.Error())
		}
	}()
	tick := time.NewTicker(step)
	defer tick.Stop()
	for {
		select {
		case <-b.stopBg:
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := b.DB.Leases.Release(ctx, held); err != nil {
				b.Log.Warn().Err(err).Msg("Could not release the leader lease; a standby takes over once it runs out")
			}
			cancel()
			return
		case <-b.leader.lostCh:
			return
		case <-tick.C:
		}
		started := time.Now()
		ctx, cancel := context.WithTimeout(b.ctx, step)
		ok, err := b.DB.Leases.Renew(ctx, held, lease)
		cancel()
		switch {
		case ok:
			deadline.Reset(time.Until(started.Add(lease - step)))
		case err == nil:
			b.loseLeadership("another process holds the lease")
			return
		default:
			b.Log.Warn().Err(err).Msg("Could not renew the leader lease; retrying")
		}
	}
}

// loseLeadership stops all delivery at once: what is unfinished stays in
// the journal, for the new leader.
func (b *Bridge) loseLeadership(why string) {
	b.leader.mu.Lock()
	if !b.leader.leading && b.leader.lease == nil {
		b.leader.mu.Unlock()
		return
	}
	b.leader.leading, b.leader.lease = false, nil
	b.leader.mu.Unlock()
	b.leaderOnce.Do(func() {
		b.Log.Error().Str("reason", why).Msg("Lost the leader lease; this process stops delivering")
		b.cancel()
		close(b.leader.lostCh)
	})
	b.metrics.Leading(false)
}

// lead makes this process the one that delivers: with new dispatches held
// back, it replays both journals and the outcome outbox, then connects the
// logins and starts the leader's background work.
func (b *Bridge) lead(ctx context.Context) error {
	if b.leader.ha {
		// A standby's copy of the logins may be behind the old leader's.
		if err := b.reloadLogins(ctx); err != nil {
			return err
		}
	}
	b.leader.dispatchMu.Lock()
	b.leader.mu.Lock()
	b.leader.leading = true
	b.leader.mu.Unlock()
	err := b.replayInbound(ctx)
	if err == nil {
		err = b.replayOutbound(ctx)
	}
	b.leader.dispatchMu.Unlock()
	if err != nil {
		return err
	}
	if err := b.replayReports(ctx); err != nil {
		return fmt.Errorf("read undelivered message outcomes: %w", err)
	}
	b.metrics.Leading(true)
	b.loginsMu.RLock()
	for _, l := range b.logins {
		go l.connect(b.ctx)
	}
	b.loginsMu.RUnlock()
	b.bgDone.Add(1)
	go b.housekeeping()
	if b.leader.ha {
		b.bgDone.Add(1)
		go b.watchJournal()
	}
	close(b.leader.leadingCh)
	return nil
}

// claim reports whether a journal row is not queued yet, and marks it
// queued. Without HA every row is dispatched once by construction.
func (b *Bridge) claim(kind string, seq int64) bool {
	if !b.leader.ha {
		return true
	}
	key := fmt.Sprintf("%s:%d", kind, seq)
	b.leader.claimMu.Lock()
	defer b.leader.claimMu.Unlock()
	if _, ok := b.leader.claimed[key]; ok {
		return false
	}
	b.leader.claimed[key] = b.leader.scanCount
	return true
}

// In HA mode the leader queues journal rows only through its scans, in seq
// order, whichever process took them in: a homeserver hands transactions
// over one at a time, so a standby's row for one of them is older than the
// leader's row for the next, and queueing the leader's at once could
// overtake it. A scan reads the rows after the newest it saw, less a
// lookback for rows whose commit came late, and every few seconds the whole
// journal.

// scanLookback is how far below the newest row seen a scan starts.
const scanLookback = 1000

// kickScan asks the leader's watcher for a scan now.
func (b *Bridge) kickScan() {
	select {
	case b.leader.kick <- struct{}{}:
	default:
	}
}

// watchJournal queues, on the leader, what the journal holds: at once when
// a process took something in, and every few seconds in full, in case a
// notification was missed.
func (b *Bridge) watchJournal() {
	defer b.bgDone.Done()
	notes := b.DB.Listen(b.ctx, database.TopicJournal)
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for {
		full := false
		select {
		case <-b.stopBg:
			return
		case <-b.ctx.Done():
			return
		case n := <-notes:
			full = n == database.Subscribed
		case <-b.leader.kick:
		case <-tick.C:
			full = true
		}
		if err := b.scanJournal(b.ctx, full); err != nil && b.ctx.Err() == nil {
			b.Log.Warn().Err(err).Msg("Could not read the journal for events to deliver")
		}
	}
}

// scanJournal queues every open journal row not queued yet, oldest first;
// a full scan also forgets the claims of rows that are finished.
func (b *Bridge) scanJournal(ctx context.Context, full bool) error {
	b.leader.claimMu.Lock()
	b.leader.scanCount++
	scan := b.leader.scanCount
	b.leader.claimMu.Unlock()
	open := map[string]bool{}
	after := int64(0)
	if !full {
		after = max(b.leader.maxIn-scanLookback, 0)
	}
	for {
		rows, err := b.DB.Inbound.Pending(ctx, after, 1000)
		if err != nil {
			return err
		}
		for _, row := range rows {
			after = row.Seq
			b.leader.maxIn = max(b.leader.maxIn, row.Seq)
			open[fmt.Sprintf("in:%d", row.Seq)] = true
			b.dispatchJournalled(ctx, row, false)
		}
		if len(rows) < 1000 {
			break
		}
	}
	after = 0
	if !full {
		after = max(b.leader.maxOut-scanLookback, 0)
	}
	for {
		rows, err := b.DB.Outbound.Open(ctx, after, 1000)
		if err != nil {
			return err
		}
		for _, row := range rows {
			after = row.Seq
			b.leader.maxOut = max(b.leader.maxOut, row.Seq)
			open[fmt.Sprintf("out:%d", row.Seq)] = true
			if evt, ok := b.parseEvent(row.Payload); ok {
				b.dispatchOutbound(ctx, row, evt)
			}
		}
		if len(rows) < 1000 {
			break
		}
	}
	if !full {
		return nil
	}
	// A row claimed while this scan read the journal may be missing from
	// what it read; only claims older than the scan are known finished.
	b.leader.claimMu.Lock()
	for key, at := range b.leader.claimed {
		if at < scan && !open[key] {
			delete(b.leader.claimed, key)
		}
	}
	b.leader.claimMu.Unlock()
	return nil
}

// notifyLeader, inside a write on a standby, tells the leader there is new
// work in the journal.
func (b *Bridge) notifyLeader(ctx context.Context, tx database.Execer) error {
	if !b.leader.ha || b.Leading() {
		return nil
	}
	return b.DB.Notify(ctx, tx, database.TopicJournal, "")
}

// notifyLogin, inside a write, tells standbys that a login changed.
func (b *Bridge) notifyLogin(ctx context.Context, tx database.Execer, id networkid.UserLoginID) error {
	if !b.leader.ha {
		return nil
	}
	return b.DB.Notify(ctx, tx, database.TopicLogins, string(id))
}

// followLogins keeps a standby's logins as the leader stores them, so that
// a webhook for a new or changed login is verified with its current
// credentials wherever it lands.
func (b *Bridge) followLogins() {
	defer b.bgDone.Done()
	changes := b.DB.Listen(b.ctx, database.TopicLogins)
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	for {
		var err error
		select {
		case <-b.stopBg:
			return
		case <-b.leader.leadingCh:
			return // the leader's logins are the truth
		case id := <-changes:
			switch {
			case b.Leading():
				return // it was this process's own change
			case id == database.Subscribed:
				err = b.reloadLogins(b.ctx) // changes before now were missed
			default:
				err = b.reloadLogin(b.ctx, networkid.UserLoginID(id))
			}
		case <-tick.C:
			if !b.Leading() {
				err = b.reloadLogins(b.ctx)
			}
		}
		if err != nil && b.ctx.Err() == nil {
			b.Log.Warn().Err(err).Msg("Could not follow login changes")
		}
	}
}

// reloadLogin loads one login anew from the database, or forgets it if it
// is gone. The client is not connected: only the leader connects.
func (b *Bridge) reloadLogin(ctx context.Context, loginID networkid.UserLoginID) error {
	row, err := b.DB.Logins.Get(ctx, loginID)
	if errors.Is(err, database.ErrNotFound) {
		b.loginsMu.Lock()
		delete(b.logins, loginID)
		b.loginsMu.Unlock()
		return nil
	} else if err != nil {
		return err
	}
	return b.refreshLogin(ctx, row)
}

// refreshLogin loads a stored login unless the loaded one is the same: a
// UserLogin others hold (a command in progress, a connector's client) stays
// the live one when nothing changed.
func (b *Bridge) refreshLogin(ctx context.Context, row *database.UserLogin) error {
	if cur := b.GetLogin(row.ID); cur != nil {
		if loaded, err := cur.snapshot(); err == nil && sameLogin(loaded, row) {
			return nil
		}
	}
	user, err := b.GetUser(ctx, row.UserMXID)
	if err != nil {
		return err
	}
	_, err = b.activateLogin(ctx, user, row)
	return err
}

// sameLogin compares a loaded login's snapshot with a stored row.
func sameLogin(loaded, stored *database.UserLogin) bool {
	a, errA := json.Marshal(loaded.Metadata)
	c, errC := json.Marshal(stored.Metadata)
	return errA == nil && errC == nil && string(a) == string(c) &&
		loaded.UserMXID == stored.UserMXID && loaded.RemoteName == stored.RemoteName
}

// reloadLogins loads every login anew from the database.
func (b *Bridge) reloadLogins(ctx context.Context) error {
	rows, err := b.DB.Logins.GetAll(ctx)
	if err != nil {
		return fmt.Errorf("load logins: %w", err)
	}
	stored := map[networkid.UserLoginID]bool{}
	for _, row := range rows {
		stored[row.ID] = true
		if err := b.refreshLogin(ctx, row); err != nil {
			b.Log.Err(err).Str("login_id", string(row.ID)).Msg("Could not load login")
		}
	}
	b.loginsMu.Lock()
	for id := range b.logins {
		if !stored[id] {
			delete(b.logins, id)
		}
	}
	b.loginsMu.Unlock()
	return nil
}
