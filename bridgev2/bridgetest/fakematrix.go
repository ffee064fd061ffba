package bridgetest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/bridgev2"
	"github.com/trestle-bridge/trestle/bridgev2/bridgeconfig"
	"github.com/trestle-bridge/trestle/bridgev2/networkid"
)

// FakeMatrix is an in-memory homeserver implementing bridgev2.Matrix. It
// enforces what matters to a bridge (registration before use, membership
// before sending, idempotent transaction IDs) and records everything the
// bridge does, so tests can wait for it.
type FakeMatrix struct {
	serverName string
	bot        id.UserID
	cfg        *bridgeconfig.Config

	mu      sync.Mutex
	changed *sync.Cond
	rooms   map[id.RoomID]*FakeRoom
	order   []id.RoomID // creation order, for Rooms
	users   map[id.UserID]*FakeProfile
	txns    map[string]id.EventID
	media   map[id.ContentURIString]fakeMedia
	counter int
	// puppets are the real users the bridge acts as (true: through an
	// appservice token); tokens are the access tokens real users own.
	puppets map[id.UserID]bool
	tokens  map[string]id.UserID
	// fail, if set, is consulted before every call; a non-nil error is
	// returned instead of doing the call (fault injection).
	fail func(method string) error
}

// FakeRoom is a room on the fake homeserver.
type FakeRoom struct {
	ID      id.RoomID
	Creator id.UserID
	Request *mautrix.ReqCreateRoom
	// Members maps users to "invite", "join" or "leave".
	Members map[id.UserID]string
	Events  []*event.Event
	State   map[string]*event.Event
}

// FakeProfile is a registered user's profile.
type FakeProfile struct {
	DisplayName string
	AvatarURL   id.ContentURIString
}

type fakeMedia struct {
	data     []byte
	mimeType string
}

var (
	_ bridgev2.Matrix           = (*FakeMatrix)(nil)
	_ bridgev2.EventFinder      = (*FakeMatrix)(nil)
	_ bridgev2.MemberLister     = (*FakeMatrix)(nil)
	_ bridgev2.RoomMemberReader = (*FakeMatrix)(nil)
	_ bridgev2.MemberNamer      = (*FakeMatrix)(nil)
	_ bridgev2.Kicker           = (*FakeMatrix)(nil)
	_ bridgev2.DoublePuppeter   = (*FakeMatrix)(nil)
)

// NewFakeMatrix returns an empty fake homeserver for the given config.
func NewFakeMatrix(cfg *bridgeconfig.Config) *FakeMatrix {
	m := &FakeMatrix{
		serverName: cfg.Homeserver.Domain,
		bot:        cfg.BotUserID(),
		cfg:        cfg,
		rooms:      make(map[id.RoomID]*FakeRoom),
		users:      make(map[id.UserID]*FakeProfile),
		txns:       make(map[string]id.EventID),
		media:      make(map[id.ContentURIString]fakeMedia),
		puppets:    make(map[id.UserID]bool),
		tokens:     make(map[string]id.UserID),
	}
	m.changed = sync.NewCond(&m.mu)
	return m
}

// SetFailure installs a fault injector: fn is called with the method name
// ("SendMessage", "CreateRoom", ...) before every call; returning an error
// fails the call. nil removes it. "SendMessage.answer" is asked after a
// message event was stored: an error then loses the answer (and, as on
// Dendrite, the transaction ID is not remembered), as when the bridge
// crashes mid-request or the homeserver dies while answering.
func (m *FakeMatrix) SetFailure(fn func(method string) error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fail = fn
}

// Unavailable is a retriable error like the one the real Matrix side
// returns when the homeserver is down.
var Unavailable = bridgev2.RetriableError("The homeserver is unavailable; retrying.", fmt.Errorf("fake homeserver is down"))

func (m *FakeMatrix) check(method string) error {
	if m.fail != nil {
		return m.fail(method)
	}
	return nil
}

func (m *FakeMatrix) nextID(prefix string) string {
	m.counter++
	return fmt.Sprintf("%s%d", prefix, m.counter)
}

// BotUserID implements bridgev2.Matrix.
func (m *FakeMatrix) BotUserID() id.UserID { return m.bot }

// ServerName implements bridgev2.Matrix.
func (m *FakeMatrix) ServerName() string { return m.serverName }

// GhostUserID implements bridgev2.Matrix.
func (m *FakeMatrix) GhostUserID(user networkid.UserID) id.UserID { return m.cfg.GhostUserID(user) }

// ParseGhostUserID implements bridgev2.Matrix.
func (m *FakeMatrix) ParseGhostUserID(userID id.UserID) (networkid.UserID, bool) {
	return m.cfg.ParseGhostUserID(userID)
}

// EnsureRegistered implements bridgev2.Matrix.
func (m *FakeMatrix) EnsureRegistered(_ context.Context, userID id.UserID) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check("EnsureRegistered"); err != nil {
		return err
	}
	if m.users[userID] == nil {
		m.users[userID] = &FakeProfile{}
	}
	return nil
}

// registered refuses bridge users (bot, ghosts) that were never
// registered, as a real homeserver does; other users are the test's own.
func (m *FakeMatrix) registered(userID id.UserID) error {
	_, isGhost := m.ParseGhostUserID(userID)
	if (isGhost || userID == m.bot) && m.users[userID] == nil {
		return fmt.Errorf("%s is not registered: %w", userID, bridgev2.ErrForbidden)
	}
	return nil
}

// SetProfile implements bridgev2.Matrix.
func (m *FakeMatrix) SetProfile(_ context.Context, userID id.UserID, displayName string, avatar id.ContentURIString) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check("SetProfile"); err != nil {
		return err
	}
	if err := m.registered(userID); err != nil {
		return err
	}
	p := m.users[userID]
	if p == nil {
		p = &FakeProfile{}
		m.users[userID] = p
	}
	if displayName != "" {
		p.DisplayName = displayName
	}
	if avatar != "" {
		p.AvatarURL = avatar
	}
	m.changed.Broadcast()
	return nil
}

// Profile returns a user's profile, or nil if unregistered.
func (m *FakeMatrix) Profile(userID id.UserID) *FakeProfile {
	m.mu.Lock()
	defer m.mu.Unlock()
	if p := m.users[userID]; p != nil {
		cp := *p
		return &cp
	}
	return nil
}

// SetDisplayName sets a (real) user's display name, as their client would.
func (m *FakeMatrix) SetDisplayName(userID id.UserID, name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.users[userID] == nil {
		m.users[userID] = &FakeProfile{}
	}
	m.users[userID].DisplayName = name
}

// MemberDisplayName implements bridgev2.MemberNamer, from the profile.
func (m *FakeMatrix) MemberDisplayName(_ context.Context, _ id.RoomID, userID id.UserID) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check("MemberDisplayName"); err != nil {
		return "", err
	}
	if p := m.users[userID]; p != nil {
		return p.DisplayName, nil
	}
	return "", nil
}

// CreateRoom implements bridgev2.Matrix.
func (m *FakeMatrix) CreateRoom(_ context.Context, as id.UserID, req *mautrix.ReqCreateRoom) (id.RoomID, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check("CreateRoom"); err != nil {
		return "", err
	}
	if err := m.registered(as); err != nil {
		return "", err
	}
	room := &FakeRoom{
		ID: id.RoomID("!" + m.nextID("room") + ":" + m.serverName), Creator: as, Request: req,
		Members: map[id.UserID]string{as: "join"}, State: make(map[string]*event.Event),
	}
	for _, invitee := range req.Invite {
		room.Members[invitee] = "invite"
	}
	for _, st := range req.InitialState {
		key := ""
		if st.StateKey != nil {
			key = *st.StateKey
		}
		room.State[st.Type.Type+"|"+key] = st
	}
	m.rooms[room.ID] = room
	m.order = append(m.order, room.ID)
	m.changed.Broadcast()
	return room.ID, nil
}

func (m *FakeMatrix) room(roomID id.RoomID) (*FakeRoom, error) {
	room := m.rooms[roomID]
	if room == nil {
		return nil, bridgev2.NewError("The homeserver refused the request.", fmt.Errorf("room %s not found", roomID))
	}
	return room, nil
}

// JoinRoom implements bridgev2.Matrix.
func (m *FakeMatrix) JoinRoom(_ context.Context, as id.UserID, roomID id.RoomID) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check("JoinRoom"); err != nil {
		return err
	}
	room, err := m.room(roomID)
	if err != nil {
		return err
	}
	if st := room.Members[as]; st != "invite" && st != "join" {
		return fmt.Errorf("%s is not invited to %s: %w", as, roomID, bridgev2.ErrForbidden)
	}
	room.Members[as] = "join"
	m.changed.Broadcast()
	return nil
}

// InviteUser implements bridgev2.Matrix.
func (m *FakeMatrix) InviteUser(_ context.Context, as id.UserID, roomID id.RoomID, target id.UserID) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check("InviteUser"); err != nil {
		return err
	}
	room, err := m.room(roomID)
	if err != nil {
		return err
	}
	if room.Members[as] != "join" {
		return fmt.Errorf("%s is not in %s: %w", as, roomID, bridgev2.ErrForbidden)
	}
	if room.Members[target] != "join" {
		room.Members[target] = "invite"
	}
	m.changed.Broadcast()
	return nil
}

// LeaveRoom implements bridgev2.Matrix.
func (m *FakeMatrix) LeaveRoom(_ context.Context, as id.UserID, roomID id.RoomID) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check("LeaveRoom"); err != nil {
		return err
	}
	room, err := m.room(roomID)
	if err != nil {
		return err
	}
	room.Members[as] = "leave"
	m.changed.Broadcast()
	return nil
}

// JoinedMembers implements bridgev2.MemberLister.
func (m *FakeMatrix) JoinedMembers(_ context.Context, roomID id.RoomID) ([]id.UserID, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check("JoinedMembers"); err != nil {
		return nil, err
	}
	room, err := m.room(roomID)
	if err != nil {
		return nil, err
	}
	var out []id.UserID
	for u, st := range room.Members {
		if st == "join" {
			out = append(out, u)
		}
	}
	slices.Sort(out)
	return out, nil
}

// RoomMembers implements bridgev2.RoomMemberReader.
func (m *FakeMatrix) RoomMembers(_ context.Context, as id.UserID, roomID id.RoomID) (map[id.UserID]event.Membership, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check("RoomMembers"); err != nil {
		return nil, err
	}
	room, err := m.room(roomID)
	if err != nil {
		return nil, err
	}
	if room.Members[as] != "join" {
		return nil, fmt.Errorf("%s is not in %s: %w", as, roomID, bridgev2.ErrForbidden)
	}
	out := make(map[id.UserID]event.Membership, len(room.Members))
	for u, st := range room.Members {
		out[u] = event.Membership(st)
	}
	return out, nil
}

// KickUser implements bridgev2.Kicker.
func (m *FakeMatrix) KickUser(_ context.Context, as id.UserID, roomID id.RoomID, target id.UserID, _ string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check("KickUser"); err != nil {
		return err
	}
	room, err := m.room(roomID)
	if err != nil {
		return err
	}
	if room.Members[as] != "join" {
		return fmt.Errorf("%s is not in %s: %w", as, roomID, bridgev2.ErrForbidden)
	}
	room.Members[target] = "leave"
	m.changed.Broadcast()
	return nil
}

// JoinAsUser makes a (real) user accept their invite, as a client would.
func (m *FakeMatrix) JoinAsUser(roomID id.RoomID, user id.UserID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if room := m.rooms[roomID]; room != nil {
		room.Members[user] = "join"
		m.changed.Broadcast()
	}
}

func (m *FakeMatrix) appendEvent(as id.UserID, roomID id.RoomID, evtType event.Type, content any, txnID string, ts time.Time) (id.EventID, error) {
	room, err := m.room(roomID)
	if err != nil {
		return "", err
	}
	if err := m.registered(as); err != nil {
		return "", err
	}
	if room.Members[as] != "join" {
		return "", fmt.Errorf("%s is not in %s: %w", as, roomID, bridgev2.ErrForbidden)
	}
	// Like Dendrite, transaction IDs are scoped to the access token (shared
	// by all appservice users) plus room and event type.
	key := txnID + "|" + string(roomID) + "|" + evtType.Type
	if txnID != "" {
		if existing, ok := m.txns[key]; ok {
			return existing, nil
		}
	}
	raw, err := json.Marshal(content)
	if err != nil {
		return "", err
	}
	evt := &event.Event{
		ID: id.EventID("$" + m.nextID("event")), RoomID: roomID, Sender: as, Type: evtType,
		Timestamp: time.Now().UnixMilli(), Content: event.Content{VeryRaw: raw},
	}
	if !ts.IsZero() {
		evt.Timestamp = ts.UnixMilli()
	}
	evtType.Class = event.MessageEventType
	if err := evt.Content.ParseRaw(evtType); err != nil && !strings.Contains(err.Error(), "unsupported") {
		return "", err
	}
	room.Events = append(room.Events, evt)
	m.changed.Broadcast()
	// The event is in; the answer may still be lost. Like Dendrite, the
	// transaction is only remembered once the answer is on its way.
	if err := m.check("SendMessage.answer"); err != nil && evtType != event.EventRedaction {
		return "", err
	}
	if txnID != "" {
		m.txns[key] = evt.ID
	}
	return evt.ID, nil
}

// FindSent implements bridgev2.EventFinder.
func (m *FakeMatrix) FindSent(_ context.Context, roomID id.RoomID, txnID string, limit int) (id.EventID, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check("FindSent"); err != nil {
		return "", err
	}
	room, err := m.room(roomID)
	if err != nil {
		return "", err
	}
	for i := len(room.Events) - 1; i >= 0 && i >= len(room.Events)-limit; i-- {
		var marked map[string]any
		if json.Unmarshal(room.Events[i].Content.VeryRaw, &marked) == nil && marked[bridgev2.TxnMarkerKey] == txnID {
			return room.Events[i].ID, nil
		}
	}
	return "", nil
}

// SendMessage implements bridgev2.Matrix.
func (m *FakeMatrix) SendMessage(_ context.Context, as id.UserID, roomID id.RoomID, evtType event.Type, content any, txnID string, ts time.Time) (id.EventID, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check("SendMessage"); err != nil {
		return "", err
	}
	if _, isPuppet := m.puppets[as]; isPuppet {
		// Like the real Matrix side, mark what a double puppet sends.
		raw := map[string]any{bridgev2.DoublePuppetSourceKey: m.cfg.AppService.ID}
		parsed := content
		if c, ok := content.(*event.Content); ok {
			for k, v := range c.Raw {
				raw[k] = v
			}
			parsed = c.Parsed
		}
		content = &event.Content{Parsed: parsed, Raw: raw}
	} else if _, isGhost := m.ParseGhostUserID(as); !isGhost && as != m.bot {
		return "", fmt.Errorf("the bridge cannot act as %s, who is no double puppet: %w", as, bridgev2.ErrForbidden)
	}
	return m.appendEvent(as, roomID, evtType, content, txnID, ts)
}

// AddAccessToken gives a (real) user an access token, as logging in would.
func (m *FakeMatrix) AddAccessToken(user id.UserID, token string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.tokens[token] = user
}

// DoublePuppet reports whether the bridge acts as a real user, and whether
// through an appservice token.
func (m *FakeMatrix) DoublePuppet(user id.UserID) (puppeted, appservice bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	appservice, puppeted = m.puppets[user]
	return puppeted, appservice
}

// SetDoublePuppet implements bridgev2.DoublePuppeter. A user's own token
// must be one AddAccessToken gave them.
func (m *FakeMatrix) SetDoublePuppet(userID id.UserID, _, token string, appservice bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case token == "":
		delete(m.puppets, userID)
	case !appservice && m.tokens[token] != userID:
		return fmt.Errorf("%s's token is unknown: %w", userID, bridgev2.ErrForbidden)
	default:
		m.puppets[userID] = appservice
	}
	return nil
}

// TokenOwner implements bridgev2.DoublePuppeter.
func (m *FakeMatrix) TokenOwner(_ context.Context, _, token string) (id.UserID, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check("TokenOwner"); err != nil {
		return "", err
	}
	if owner, ok := m.tokens[token]; ok {
		return owner, nil
	}
	return "", fmt.Errorf("unknown access token: %w", bridgev2.ErrForbidden)
}

// SendState implements bridgev2.Matrix.
func (m *FakeMatrix) SendState(_ context.Context, as id.UserID, roomID id.RoomID, evtType event.Type, stateKey string, content any) (id.EventID, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check("SendState"); err != nil {
		return "", err
	}
	eventID, err := m.appendEvent(as, roomID, evtType, content, "", time.Time{})
	if err != nil {
		return "", err
	}
	room := m.rooms[roomID]
	evt := room.Events[len(room.Events)-1]
	evt.StateKey = &stateKey
	room.State[evtType.Type+"|"+stateKey] = evt
	return eventID, nil
}

// Redact implements bridgev2.Matrix.
func (m *FakeMatrix) Redact(_ context.Context, as id.UserID, roomID id.RoomID, target id.EventID, reason, txnID string) (id.EventID, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check("Redact"); err != nil {
		return "", err
	}
	return m.appendEvent(as, roomID, event.EventRedaction, &event.RedactionEventContent{Redacts: target, Reason: reason}, txnID, time.Time{})
}

// MarkRead implements bridgev2.Matrix.
func (m *FakeMatrix) MarkRead(_ context.Context, as id.UserID, roomID id.RoomID, eventID id.EventID) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check("MarkRead"); err != nil {
		return err
	}
	room, err := m.room(roomID)
	if err != nil {
		return err
	}
	room.Events = append(room.Events, &event.Event{
		Type: event.EphemeralEventReceipt, RoomID: roomID, Sender: as,
		Content: event.Content{Parsed: &event.ReceiptEventContent{eventID: {event.ReceiptTypeRead: {as: {}}}}},
	})
	m.changed.Broadcast()
	return nil
}

// SetTyping implements bridgev2.Matrix.
func (m *FakeMatrix) SetTyping(_ context.Context, as id.UserID, roomID id.RoomID, _ time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.check("SetTyping")
}

// Upload implements bridgev2.Matrix.
func (m *FakeMatrix) Upload(_ context.Context, _ id.UserID, data io.Reader, _ int64, mimeType, _ string) (id.ContentURIString, error) {
	buf, err := io.ReadAll(data)
	if err != nil {
		return "", err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check("Upload"); err != nil {
		return "", err
	}
	uri := id.ContentURIString("mxc://" + m.serverName + "/" + m.nextID("media"))
	m.media[uri] = fakeMedia{data: buf, mimeType: mimeType}
	return uri, nil
}

// PutMedia stores a file as if a Matrix client had uploaded it.
func (m *FakeMatrix) PutMedia(data []byte, mimeType string) id.ContentURIString {
	uri, _ := m.Upload(context.Background(), "", bytes.NewReader(data), int64(len(data)), mimeType, "")
	return uri
}

// Media returns an uploaded file.
func (m *FakeMatrix) Media(uri id.ContentURIString) ([]byte, string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f, ok := m.media[uri]
	return f.data, f.mimeType, ok
}

// Download implements bridgev2.Matrix.
func (m *FakeMatrix) Download(_ context.Context, uri id.ContentURIString) (io.ReadCloser, *bridgev2.MediaInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check("Download"); err != nil {
		return nil, nil, err
	}
	f, ok := m.media[uri]
	if !ok {
		return nil, nil, bridgev2.NewError("The homeserver refused the request.", fmt.Errorf("media %s not found", uri))
	}
	return io.NopCloser(bytes.NewReader(f.data)), &bridgev2.MediaInfo{MimeType: f.mimeType, Size: int64(len(f.data))}, nil
}

// Ping implements bridgev2.Matrix.
func (m *FakeMatrix) Ping(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.check("Ping")
}

// Rooms returns every room, oldest first.
func (m *FakeMatrix) Rooms() []*FakeRoom {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*FakeRoom, 0, len(m.order))
	for _, roomID := range m.order {
		out = append(out, m.rooms[roomID])
	}
	return out
}

// Events returns a copy of a room's timeline.
func (m *FakeMatrix) Events(roomID id.RoomID) []*event.Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	if room := m.rooms[roomID]; room != nil {
		return append([]*event.Event(nil), room.Events...)
	}
	return nil
}

// Membership returns a user's membership in a room ("" if none).
func (m *FakeMatrix) Membership(roomID id.RoomID, user id.UserID) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if room := m.rooms[roomID]; room != nil {
		return room.Members[user]
	}
	return ""
}

// WaitFor blocks until cond (called with the fake's lock held, so it must
// only read) returns true or ctx ends.
func (m *FakeMatrix) WaitFor(ctx context.Context, what string, cond func() bool) error {
	stop := context.AfterFunc(ctx, func() {
		m.mu.Lock()
		m.changed.Broadcast()
		m.mu.Unlock()
	})
	defer stop()
	m.mu.Lock()
	defer m.mu.Unlock()
	for !cond() {
		if ctx.Err() != nil {
			return fmt.Errorf("timed out waiting for %s: %w", what, ctx.Err())
		}
		m.changed.Wait()
	}
	return nil
}

// WaitForMembership waits until a user's membership of a room ("invite",
// "join", "leave") is want.
func (m *FakeMatrix) WaitForMembership(ctx context.Context, roomID id.RoomID, user id.UserID, want string) error {
	return m.WaitFor(ctx, fmt.Sprintf("%s to be %q in %s", user, want, roomID), func() bool {
		room := m.rooms[roomID]
		return room != nil && room.Members[user] == want
	})
}

// WaitForEvent waits for an event in a room matching pred and returns it.
func (m *FakeMatrix) WaitForEvent(ctx context.Context, roomID id.RoomID, what string, pred func(*event.Event) bool) (*event.Event, error) {
	var found *event.Event
	err := m.WaitFor(ctx, what, func() bool {
		if room := m.rooms[roomID]; room != nil {
			for _, evt := range room.Events {
				if pred(evt) {
					found = evt
					return true
				}
			}
		}
		return false
	})
	return found, err
}

// WaitForRoom waits for a room matching pred (e.g. one the user is invited to).
func (m *FakeMatrix) WaitForRoom(ctx context.Context, what string, pred func(*FakeRoom) bool) (*FakeRoom, error) {
	var found *FakeRoom
	err := m.WaitFor(ctx, what, func() bool {
		for _, r := range m.rooms {
			if pred(r) {
				found = r
				return true
			}
		}
		return false
	})
	return found, err
}

// AddUserEvent records an event a real Matrix user sent, and returns it in
// the shape a homeserver pushes to appservices (with raw content).
func (m *FakeMatrix) AddUserEvent(roomID id.RoomID, sender id.UserID, evtType event.Type, content any) (*event.Event, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	evtID, err := m.appendEvent(sender, roomID, evtType, content, "", time.Time{})
	if err != nil {
		return nil, err
	}
	room := m.rooms[roomID]
	for _, evt := range room.Events {
		if evt.ID == evtID {
			return evt, nil
		}
	}
	return nil, fmt.Errorf("event %s vanished", evtID)
}

// CreateUserRoom creates a room as a real user, e.g. a DM with the bot.
func (m *FakeMatrix) CreateUserRoom(creator id.UserID, invite ...id.UserID) id.RoomID {
	m.mu.Lock()
	defer m.mu.Unlock()
	room := &FakeRoom{
		ID: id.RoomID("!" + m.nextID("room") + ":" + m.serverName), Creator: creator,
		Request: &mautrix.ReqCreateRoom{IsDirect: true, Invite: invite},
		Members: map[id.UserID]string{creator: "join"}, State: make(map[string]*event.Event),
	}
	for _, u := range invite {
		room.Members[u] = "invite"
	}
	m.rooms[room.ID] = room
	m.order = append(m.order, room.ID)
	m.changed.Broadcast()
	return room.ID
}
