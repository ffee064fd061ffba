package matrixtest

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	crypto "github.com/trestle-bridge/trestle/internal/mautrixcrypto"
)

// Options configures a Client.
type Options struct {
	// AutoJoin makes the client join every room it is invited to, as soon
	// as the invite arrives. Without it, invites are only recorded; see
	// WaitForInvite and Join.
	AutoJoin bool
	// PollTimeout is the long-poll timeout of each /sync request.
	// Defaults to 5s. It bounds nothing a test waits for: a /sync returns
	// as soon as there is news.
	PollTimeout time.Duration
	// TimelineLimit is the number of events per room a /sync may return.
	// Defaults to 1000, so that a busy room never has a gap that the
	// client would have to backfill.
	TimelineLimit int
	// Crypto gives the client its own encryption, for its device (the
	// client must have logged in with a password): it decrypts what it
	// receives and encrypts what it sends in encrypted rooms.
	Crypto bool
}

// Invite is an invitation the client received.
type Invite struct {
	// RoomID is the room the client was invited to.
	RoomID id.RoomID
	// Sender is who sent the invite.
	Sender id.UserID
	// IsDirect is the is_direct flag of the invite, set for DMs.
	IsDirect bool
	// Event is the m.room.member invite event itself.
	Event *event.Event
	// State is the stripped room state that came with the invite, such as
	// the room name and create event.
	State []*event.Event
}

// Client is a Matrix user for end-to-end tests: a mautrix client with a
// background /sync loop that records what the user sees. Its methods are safe
// for concurrent use.
type Client struct {
	// Matrix is the underlying mautrix client, for anything not wrapped here.
	Matrix *mautrix.Client
	// UserID is the user this client is logged in as.
	UserID id.UserID

	opts   Options
	filter string
	cancel context.CancelFunc
	done   chan struct{} // closed when the sync loop has returned

	mu       sync.Mutex
	changed  chan struct{} // closed and replaced whenever the records change
	rooms    map[id.RoomID]*room
	invites  []*Invite
	syncs    int
	syncErr  error // the last failed /sync, cleared by the next success
	joinErr  error // the last failed auto-join
	stopErr  error // why the sync loop ended, once it has
	lastSeen time.Time

	mach        *crypto.OlmMachine // nil without Options.Crypto
	sealMu      sync.Mutex         // one Seal at a time (see Seal)
	undecrypted []*event.Event     // encrypted events still without keys
}

// room is what the client knows about one room.
type room struct {
	timeline  []*event.Event
	index     map[id.EventID]int // position of each timeline event
	ephemeral []*event.Event
	state     map[event.Type]map[string]*event.Event
	limited   int // how many /sync gaps could not be backfilled
}

// Start does an initial /sync with cli, then keeps syncing in the background
// until ctx is done or Stop is called. When Start returns, everything the
// account could see at that moment has been recorded.
func Start(ctx context.Context, cli *mautrix.Client, opts Options) (*Client, error) {
	c, err := New(cli, opts)
	if err != nil {
		return nil, err
	}
	if err := c.Run(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// New returns a client that records nothing until Run starts its sync loop,
// or until Record is handed /sync responses (tests that script what the
// user sees).
func New(cli *mautrix.Client, opts Options) (*Client, error) {
	if cli.UserID == "" || cli.AccessToken == "" {
		return nil, errors.New("starting a matrixtest client: the mautrix client is not logged in (no user ID or access token)")
	}
	if opts.PollTimeout == 0 {
		opts.PollTimeout = 5 * time.Second
	}
	if opts.TimelineLimit == 0 {
		opts.TimelineLimit = 1000
	}
	// An inline filter rather than a stored one saves a request and works
	// the same on every homeserver we test against.
	filter, err := json.Marshal(mautrix.Filter{Room: &mautrix.RoomFilter{Timeline: &mautrix.FilterPart{Limit: opts.TimelineLimit}}})
	if err != nil {
		return nil, fmt.Errorf("encoding the sync filter: %w", err)
	}
	return &Client{
		Matrix:  cli,
		UserID:  cli.UserID,
		opts:    opts,
		filter:  string(filter),
		done:    make(chan struct{}),
		changed: make(chan struct{}),
		rooms:   map[id.RoomID]*room{},
	}, nil
}

// Run does an initial /sync, then keeps syncing in the background until ctx
// is done or Stop is called. When it returns, everything the account could
// see at that moment has been recorded. It may be called once.
func (c *Client) Run(ctx context.Context) error {
	if c.opts.Crypto {
		if err := c.startCrypto(ctx); err != nil {
			return err
		}
	}
	resp, err := c.sync(ctx, "", 0)
	if err != nil {
		return fmt.Errorf("initial /sync for %s: %w", c.UserID, err)
	}
	c.decryptSync(ctx, resp, "")
	c.fillGaps(ctx, resp)
	c.process(resp)
	c.autoJoin(ctx, resp)

	loopCtx, cancel := context.WithCancel(ctx)
	c.mu.Lock()
	c.cancel = cancel
	c.mu.Unlock()
	go c.loop(loopCtx, resp.NextBatch)
	return nil
}

// Stop ends the sync loop, if Run started one, and waits for it to return.
// It is idempotent. The records stay readable, but waits fail from then on
// instead of hanging.
func (c *Client) Stop() {
	c.mu.Lock()
	cancel := c.cancel
	c.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-c.done
}

// Record adds a /sync response to the records, as the sync loop does with
// each response it receives, and wakes every waiter.
func (c *Client) Record(resp *mautrix.RespSync) { c.process(resp) }

// sync makes one /sync request.
func (c *Client) sync(ctx context.Context, since string, timeout time.Duration) (*mautrix.RespSync, error) {
	return c.Matrix.FullSyncRequest(ctx, mautrix.ReqSync{
		Timeout:  int(timeout.Milliseconds()),
		Since:    since,
		FilterID: c.filter,
	})
}

// loop syncs until ctx is done. Transient errors, such as the homeserver
// being restarted by an outage test, are retried with a growing pause; an
// invalidated access token ends the loop since retrying cannot help.
func (c *Client) loop(ctx context.Context, since string) {
	defer close(c.done)
	const minBackoff, maxBackoff = 50 * time.Millisecond, 2 * time.Second
	backoff := minBackoff
	for {
		resp, err := c.sync(ctx, since, c.opts.PollTimeout)
		if ctx.Err() != nil {
			c.stop(fmt.Errorf("the sync loop of %s was stopped: %w", c.UserID, context.Cause(ctx)))
			return
		}
		if err != nil {
			if errors.Is(err, mautrix.MUnknownToken) {
				c.stop(fmt.Errorf("the sync loop of %s ended: the access token is no longer valid: %w", c.UserID, err))
				return
			}
			c.setSyncErr(err)
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, maxBackoff)
			continue
		}
		backoff = minBackoff
		c.decryptSync(ctx, resp, since)
		c.fillGaps(ctx, resp)
		c.process(resp)
		c.autoJoin(ctx, resp)
		since = resp.NextBatch
	}
}

// process records a /sync response and wakes up every waiter.
func (c *Client) process(resp *mautrix.RespSync) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for roomID, data := range resp.Rooms.Join {
		r := c.room(roomID)
		for _, evt := range data.State.Events {
			prepare(roomID, evt, event.StateEventType)
			r.setState(evt)
		}
		if data.Timeline.Limited {
			r.limited++
		}
		for _, evt := range data.Timeline.Events {
			prepare(roomID, evt, event.MessageEventType)
			r.append(evt)
		}
		for _, evt := range data.Ephemeral.Events {
			prepare(roomID, evt, event.EphemeralEventType)
			r.ephemeral = append(r.ephemeral, evt)
		}
	}
	for roomID, data := range resp.Rooms.Invite {
		inv := &Invite{RoomID: roomID}
		for _, evt := range data.State.Events {
			prepare(roomID, evt, event.StateEventType)
			inv.State = append(inv.State, evt)
			if evt.Type == event.StateMember && evt.GetStateKey() == c.UserID.String() {
				inv.Event = evt
				inv.Sender = evt.Sender
				inv.IsDirect = evt.Content.AsMember().IsDirect
			}
		}
		c.invites = append(c.invites, inv)
	}
	for roomID, data := range resp.Rooms.Leave {
		r := c.room(roomID)
		for _, evt := range data.State.Events {
			prepare(roomID, evt, event.StateEventType)
			r.setState(evt)
		}
		for _, evt := range data.Timeline.Events {
			prepare(roomID, evt, event.MessageEventType)
			r.append(evt)
		}
	}
	c.syncs++
	c.syncErr = nil
	c.lastSeen = time.Now()
	c.notifyLocked()
}

// autoJoin joins the rooms the response invited us to, if so configured.
func (c *Client) autoJoin(ctx context.Context, resp *mautrix.RespSync) {
	if !c.opts.AutoJoin {
		return
	}
	for roomID := range resp.Rooms.Invite {
		if _, err := c.Matrix.JoinRoomByID(ctx, roomID); err != nil && ctx.Err() == nil {
			c.mu.Lock()
			c.joinErr = fmt.Errorf("auto-joining %s: %w", roomID, err)
			c.notifyLocked()
			c.mu.Unlock()
		}
	}
}

// prepare fills in what /sync leaves implicit: the room ID, the type class
// (which decides how mautrix parses the content) and the parsed content.
func prepare(roomID id.RoomID, evt *event.Event, class event.TypeClass) {
	evt.RoomID = roomID
	if evt.StateKey != nil {
		class = event.StateEventType
	}
	evt.Type.Class = class
	// Unknown event types stay unparsed; their Raw content is still there.
	_ = evt.Content.ParseRaw(evt.Type)
}

func (c *Client) room(roomID id.RoomID) *room {
	r, ok := c.rooms[roomID]
	if !ok {
		r = &room{index: map[id.EventID]int{}, state: map[event.Type]map[string]*event.Event{}}
		c.rooms[roomID] = r
	}
	return r
}

func (r *room) append(evt *event.Event) {
	// A homeserver may repeat an event, e.g. on a join after a leave.
	if _, dup := r.index[evt.ID]; dup && evt.ID != "" {
		return
	}
	r.index[evt.ID] = len(r.timeline)
	r.timeline = append(r.timeline, evt)
	if evt.StateKey != nil {
		r.setState(evt)
	}
}

func (r *room) setState(evt *event.Event) {
	byKey, ok := r.state[evt.Type]
	if !ok {
		byKey = map[string]*event.Event{}
		r.state[evt.Type] = byKey
	}
	byKey[evt.GetStateKey()] = evt
}

func (c *Client) setSyncErr(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.syncErr = err
	c.notifyLocked()
}

func (c *Client) stop(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopErr = err
	c.notifyLocked()
}

// notifyLocked wakes every waiter. The caller holds c.mu.
func (c *Client) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// Events returns the timeline events of a room received so far, oldest first.
func (c *Client) Events(roomID id.RoomID) []*event.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r, ok := c.rooms[roomID]; ok {
		return slices.Clone(r.timeline)
	}
	return nil
}

// EphemeralEvents returns the typing notifications and receipts received so
// far in a room, oldest first.
func (c *Client) EphemeralEvents(roomID id.RoomID) []*event.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r, ok := c.rooms[roomID]; ok {
		return slices.Clone(r.ephemeral)
	}
	return nil
}

// State returns the latest state event of a type and state key in a room, or
// nil if the client has not seen one.
func (c *Client) State(roomID id.RoomID, evtType event.Type, stateKey string) *event.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r, ok := c.rooms[roomID]; ok {
		return r.state[evtType][stateKey]
	}
	return nil
}

// Membership returns a user's membership in a room as the client last saw it,
// or "" if it has seen none.
func (c *Client) Membership(roomID id.RoomID, userID id.UserID) event.Membership {
	if evt := c.State(roomID, event.StateMember, userID.String()); evt != nil {
		return evt.Content.AsMember().Membership
	}
	return ""
}

// Rooms returns the rooms the client has seen events for, joined or left.
func (c *Client) Rooms() []id.RoomID {
	c.mu.Lock()
	defer c.mu.Unlock()
	ids := make([]id.RoomID, 0, len(c.rooms))
	for roomID := range c.rooms {
		ids = append(ids, roomID)
	}
	slices.Sort(ids)
	return ids
}

// Invites returns every invite received since Start, oldest first, including
// ones already joined.
func (c *Client) Invites() []*Invite {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.invites)
}

// StateEvents returns the latest state event of each state key of a type in
// a room, such as every member's m.room.member event.
func (c *Client) StateEvents(roomID id.RoomID, evtType event.Type) []*event.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.rooms[roomID]
	if !ok {
		return nil
	}
	out := make([]*event.Event, 0, len(r.state[evtType]))
	for _, evt := range r.state[evtType] {
		out = append(out, evt)
	}
	return out
}

// Changed returns a channel that is closed the next time the records or
// the client's health change.
func (c *Client) Changed() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.changed
}

// Err reports why what the client shows may be stale: its sync loop ended,
// the last /sync failed (until one succeeds), or an auto-join failed.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return cmp.Or(c.stopErr, c.syncErr, c.joinErr)
}
