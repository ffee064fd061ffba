package twilio

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/trestle-bridge/trestle/bridgev2"
	"github.com/trestle-bridge/trestle/bridgev2/database"
	"github.com/trestle-bridge/trestle/bridgev2/networkid"
)

// lookupConcurrency bounds the Lookup requests in flight across all
// logins: a burst of texts from new numbers must not become a burst of
// billed requests that Twilio's concurrency limit answers with 429s.
const lookupConcurrency = 4

// maxPendingLookups bounds the numbers waiting for a lookup slot; past it,
// a number is skipped and tried again when it next texts.
const maxPendingLookups = 1000

// maxLookupDue bounds the remembered due times; past it, they start over
// (and each number's next text reads its stored answer again).
const maxLookupDue = 100_000

// lookupQueue runs background lookups: at most one per number at a time,
// at most lookupConcurrency at once, and none for a number whose stored
// answer is known not to be due yet.
type lookupQueue struct {
	slots chan struct{}

	mu      sync.Mutex
	pending map[string]bool
	// due is when each number's stored answer is due, once read, so that
	// a chatty contact's texts do not each read bridge_kv.
	due map[string]time.Time
}

func newLookupQueue() *lookupQueue {
	return &lookupQueue{slots: make(chan struct{}, lookupConcurrency), pending: map[string]bool{}, due: map[string]time.Time{}}
}

// claim marks a number pending, unless it is pending already, not due, or
// the queue is full.
func (q *lookupQueue) claim(e164 string, now time.Time) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.pending[e164] || len(q.pending) >= maxPendingLookups || now.Before(q.due[e164]) {
		return false
	}
	q.pending[e164] = true
	return true
}

// release ends a number's turn; due is when it is next due (zero: unknown).
func (q *lookupQueue) release(e164 string, due time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.pending, e164)
	if due.IsZero() {
		return
	}
	if len(q.due) >= maxLookupDue {
		clear(q.due)
	}
	q.due[e164] = due
}

// refreshContact brings a contact's name up to date in the background:
// from the stored Lookup answer, or from a new lookup when it is missing or
// due. It returns at once; the text that called it goes on without it.
func (c *Client) refreshContact(k contact) {
	conn := c.conn
	if !conn.cfg.CallerNameLookup || k.kind != senderPhone || !conn.bridge.Leading() {
		return
	}
	if !conn.lookups.claim(k.addr, conn.now()) {
		return
	}
	ctx := c.startBackground()
	if ctx == nil {
		conn.lookups.release(k.addr, time.Time{})
		return
	}
	go func() {
		defer c.background.Done()
		var due time.Time
		defer func() { conn.lookups.release(k.addr, due) }()
		select {
		case conn.lookups.slots <- struct{}{}:
			defer func() { <-conn.lookups.slots }()
		case <-ctx.Done():
			return
		}
		res, err := c.syncContactName(ctx, k)
		if err != nil {
			if ctx.Err() == nil {
				c.log.Warn().Err(err).Str("ghost", idFromAddr(k.addr)).Msg("Could not update the contact's name from Twilio Lookup")
			}
			return
		}
		due = res.due(conn.cfg.LookupRefresh)
	}()
}

// syncContactName looks the number up if its stored answer is missing or
// due, and names its ghost accordingly. A new name also renames this
// login's room with the contact, which is named after the contact; the
// rename goes through the journal like any chat info (and leaves a room
// the user named alone).
func (c *Client) syncContactName(ctx context.Context, k contact) (*lookupResult, error) {
	res, err := c.currentLookup(ctx, k.addr)
	if err != nil {
		return nil, err
	}
	ghost, err := c.conn.bridge.GetGhost(ctx, k.userID())
	if err != nil {
		return nil, err
	}
	before := ghost.DisplayName()
	name := c.conn.contactName(k.addr, res)
	if err := ghost.UpdateInfo(ctx, c.login, &bridgev2.UserInfo{Name: &name}); err != nil {
		return nil, err
	}
	if after := ghost.DisplayName(); after != before {
		if err := c.renameChat(ctx, k, after); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// renameChat names this login's room with k after the contact's new name,
// if the room exists.
func (c *Client) renameChat(ctx context.Context, k contact, name string) error {
	key := c.portalKey(k)
	if p, err := c.conn.bridge.DB.Portals.Get(ctx, key); errors.Is(err, database.ErrNotFound) || (err == nil && p.MXID == "") {
		return nil
	} else if err != nil {
		return err
	}
	chatName := channelName(name, k)
	_, err := c.login.Ingest(ctx, &bridgev2.RemoteEvent{
		Kind:      bridgev2.RemoteChatInfo,
		ID:        networkid.MessageID("contact-name:" + k.addr + ":" + chatName),
		Portal:    key,
		Timestamp: c.conn.now(),
		ChatInfo:  &bridgev2.ChatInfo{Name: &chatName},
	})
	return err
}

// startBackground counts a goroutine into c.background and returns the
// context it runs on, the connection loop's, which ends at Disconnect; it
// returns nil when the client is not connected. Counting under runMu keeps
// Disconnect's Wait from missing a goroutine that starts as it stops.
func (c *Client) startBackground() context.Context {
	c.runMu.Lock()
	defer c.runMu.Unlock()
	if c.runCtx == nil {
		return nil
	}
	c.background.Add(1)
	return c.runCtx
}
