package bridgetest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"gopkg.in/yaml.v3"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/bridgev2"
	"github.com/trestle-bridge/trestle/bridgev2/bridgeconfig"
	"github.com/trestle-bridge/trestle/bridgev2/bridgemain"
	"github.com/trestle-bridge/trestle/bridgev2/database"
	"github.com/trestle-bridge/trestle/bridgev2/database/dbtest"
	"github.com/trestle-bridge/trestle/bridgev2/networkid"
)

// Options configure a Harness.
type Options struct {
	// Dialect picks the database; SQLite by default.
	Dialect database.Dialect
	// NetworkConfig is the YAML of the config's network section.
	NetworkConfig string
	// Configure may adjust the config before the bridge starts.
	Configure func(*bridgeconfig.Config)
	// Log receives the bridge's logs; by default they go to the test log
	// at debug level.
	Log *zerolog.Logger
	// Peer makes this harness a second process of the peer's bridge: the
	// same config, database and homeserver, as behind a load balancer
	// (with PostgreSQL, one of them leads and the other stands by).
	// Dialect, NetworkConfig and Configure are the peer's then.
	Peer *Harness
	// Crypto stands in for the bot's encryption device when Configure sets
	// encryption.allow.
	Crypto bridgev2.Crypto
}

// Harness runs the real bridge core with a connector against FakeMatrix.
// Webhooks reach it at URL (also the config's appservice.public_address).
type Harness struct {
	T      testing.TB
	Config *bridgeconfig.Config
	Matrix *FakeMatrix
	// URL is the base URL of the bridge's HTTP handler (webhooks, media).
	URL string

	opts       Options
	newNetwork func() bridgev2.NetworkConnector
	dbURI      string
	log        zerolog.Logger

	mu      sync.Mutex
	app     *bridgemain.App
	network bridgev2.NetworkConnector
	server  *httptest.Server
	handler atomic.Pointer[http.Handler]
	counter atomic.Int64
}

// New starts a bridge with a fresh connector from newNetwork. It is
// stopped when the test ends.
func New(t testing.TB, newNetwork func() bridgev2.NetworkConnector, opts Options) *Harness {
	t.Helper()
	if opts.Peer != nil {
		peer := opts.Peer
		opts.Dialect = peer.opts.Dialect
		opts.NetworkConfig, opts.Configure = "", nil
	}
	if opts.Dialect == "" {
		opts.Dialect = database.SQLite
	}
	h := &Harness{T: t, Config: Config(), opts: opts, newNetwork: newNetwork}
	if opts.Log != nil {
		h.log = *opts.Log
	} else {
		h.log = zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.DebugLevel).With().Timestamp().Logger()
	}
	h.server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hp := h.handler.Load(); hp != nil {
			(*hp).ServeHTTP(w, r)
			return
		}
		http.Error(w, "bridge not running", http.StatusServiceUnavailable)
	}))
	t.Cleanup(h.server.Close)
	h.URL = h.server.URL
	h.Config.AppService.PublicAddress = h.URL
	if peer := opts.Peer; peer != nil {
		cfg := *peer.Config
		h.Config, h.Matrix, h.dbURI = &cfg, peer.Matrix, peer.dbURI
		h.start()
		t.Cleanup(h.Stop)
		return h
	}
	if opts.NetworkConfig != "" {
		if err := yaml.Unmarshal([]byte(opts.NetworkConfig), &h.Config.Network); err != nil {
			t.Fatalf("network config: %v", err)
		}
		if h.Config.Network.Kind == yaml.DocumentNode && len(h.Config.Network.Content) > 0 {
			h.Config.Network = *h.Config.Network.Content[0]
		}
	}
	if opts.Configure != nil {
		opts.Configure(h.Config)
	}
	h.Matrix = NewFakeMatrix(h.Config)
	h.dbURI = dbtest.URI(t, opts.Dialect)
	h.start()
	t.Cleanup(h.Stop)
	return h
}

// start assembles and starts the bridge exactly as the shipped binary does
// (bridgemain.Assemble and App.Start), with FakeMatrix as the Matrix side.
// The bridge's own listener takes a free loopback port; the harness's
// server, whose URL survives restarts, hands every request to the same
// handler.
func (h *Harness) start() {
	h.T.Helper()
	ctx := context.Background()
	cfg := *h.Config
	cfg.Database.Type, cfg.Database.URI = string(h.opts.Dialect), h.dbURI
	cfg.AppService.Hostname, cfg.AppService.Port = "127.0.0.1", 0
	network := h.newNetwork()
	app, err := bridgemain.Assemble(ctx, &cfg, network, bridgemain.Options{Log: h.log, Version: "test", Matrix: h.Matrix, Crypto: h.opts.Crypto})
	if err != nil {
		h.T.Fatalf("assemble bridge: %v", err)
	}
	if err := app.Start(ctx); err != nil {
		app.Stop(ctx)
		h.T.Fatalf("start bridge: %v", err)
	}
	h.handler.Store(&app.Handler)
	h.mu.Lock()
	h.app, h.network = app, network
	h.mu.Unlock()
}

// DatabaseURI is the bridge's database, for tests that look into it.
func (h *Harness) DatabaseURI() string { return h.dbURI }

// Bridge returns the running bridge.
func (h *Harness) Bridge() *bridgev2.Bridge {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.app == nil {
		return nil
	}
	return h.app.Bridge
}

// Network returns the running connector.
func (h *Harness) Network() bridgev2.NetworkConnector {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.network
}

// Stop stops the bridge and closes its database.
func (h *Harness) Stop() {
	h.mu.Lock()
	app := h.app
	h.app = nil
	h.mu.Unlock()
	if app == nil {
		return
	}
	h.handler.Store(nil)
	app.Stop(context.Background())
}

// Restart stops the bridge and starts a new one with a fresh connector on
// the same database and homeserver, as a process restart would.
func (h *Harness) Restart() {
	h.T.Helper()
	h.Stop()
	h.start()
}

// Ctx returns a context that ends after a generous test deadline.
func (h *Harness) Ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	h.T.Cleanup(cancel)
	return ctx
}

// User returns the bridge's view of a Matrix user.
func (h *Harness) User(userID id.UserID) *bridgev2.User {
	h.T.Helper()
	u, err := h.Bridge().GetUser(h.Ctx(), userID)
	if err != nil {
		h.T.Fatalf("get user: %v", err)
	}
	return u
}

// Login runs the connector's first login flow for userID, answering each
// user_input step with the next of inputs, and returns the new login.
func (h *Harness) Login(userID id.UserID, inputs ...map[string]string) *bridgev2.UserLogin {
	h.T.Helper()
	login, err := h.TryLogin(userID, inputs...)
	if err != nil {
		h.T.Fatalf("login: %v", err)
	}
	return login
}

// TryLogin is Login returning the error instead of failing the test.
func (h *Harness) TryLogin(userID id.UserID, inputs ...map[string]string) (*bridgev2.UserLogin, error) {
	ctx := h.Ctx()
	br := h.Bridge()
	flows := br.Network.LoginFlows()
	if len(flows) == 0 {
		return nil, fmt.Errorf("connector has no login flows")
	}
	process, err := br.Network.CreateLogin(ctx, h.User(userID), flows[0].ID)
	if err != nil {
		return nil, err
	}
	step, err := process.Start(ctx)
	for i := 0; err == nil && step.Type == bridgev2.LoginStepUserInput; i++ {
		if i >= len(inputs) {
			process.Cancel()
			return nil, fmt.Errorf("login asked for more input (step %s) than the test gave", step.StepID)
		}
		step, err = process.SubmitUserInput(ctx, inputs[i])
	}
	if err != nil {
		process.Cancel()
		return nil, err
	}
	if step.Type != bridgev2.LoginStepComplete || step.Complete == nil || step.Complete.UserLogin == nil {
		return nil, fmt.Errorf("login ended with a %s step", step.Type)
	}
	return step.Complete.UserLogin, nil
}

// SendMatrix makes a Matrix user send an event in a room (they must be a
// member) and delivers it to the bridge in a transaction, as a homeserver
// would. It returns the event ID.
func (h *Harness) SendMatrix(sender id.UserID, roomID id.RoomID, evtType event.Type, content any) id.EventID {
	h.T.Helper()
	evt, err := h.Matrix.AddUserEvent(roomID, sender, evtType, content)
	if err != nil {
		h.T.Fatalf("send %s as %s: %v", evtType.Type, sender, err)
	}
	raw, err := json.Marshal(map[string]any{
		"event_id": evt.ID, "room_id": roomID, "sender": sender, "type": evtType.Type,
		"origin_server_ts": evt.Timestamp, "content": json.RawMessage(evt.Content.VeryRaw),
	})
	if err != nil {
		h.T.Fatal(err)
	}
	h.Transaction([]json.RawMessage{raw})
	return evt.ID
}

// Transaction delivers raw events to the bridge in a new transaction,
// through the appservice API with the homeserver token, as a homeserver
// would.
func (h *Harness) Transaction(events []json.RawMessage) {
	h.T.Helper()
	if status, body := h.PutTransaction(fmt.Sprintf("txn%d", h.counter.Add(1)), h.Config.AppService.HSToken, events); status != http.StatusOK {
		h.T.Fatalf("transaction: HTTP %d: %s", status, body)
	}
}

// PutTransaction sends a transaction to the bridge's appservice API with the
// given token and returns the answer's status and body.
func (h *Harness) PutTransaction(txnID, token string, events []json.RawMessage) (int, string) {
	h.T.Helper()
	if events == nil {
		events = []json.RawMessage{}
	}
	body, err := json.Marshal(map[string]any{"events": events})
	if err != nil {
		h.T.Fatal(err)
	}
	req, err := http.NewRequestWithContext(h.Ctx(), http.MethodPut, h.URL+"/_matrix/app/v1/transactions/"+url.PathEscape(txnID), bytes.NewReader(body))
	if err != nil {
		h.T.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.T.Fatalf("transaction: %v", err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(answer)
}

// SendMembership makes a Matrix user change another user's membership of
// a room (invite, or "leave" for a kick), as a client would, and delivers
// the member event to the bridge in a transaction. It returns the event
// ID.
func (h *Harness) SendMembership(sender id.UserID, roomID id.RoomID, target id.UserID, membership event.Membership) id.EventID {
	h.T.Helper()
	member := &event.MemberEventContent{Membership: membership}
	evt, err := h.Matrix.AddUserEvent(roomID, sender, event.StateMember, member)
	if err != nil {
		h.T.Fatalf("change membership of %s as %s: %v", target, sender, err)
	}
	h.Matrix.mu.Lock()
	h.Matrix.rooms[roomID].Members[target] = string(membership)
	h.Matrix.changed.Broadcast()
	h.Matrix.mu.Unlock()
	raw, err := json.Marshal(map[string]any{
		"event_id": evt.ID, "room_id": roomID, "sender": sender, "type": event.StateMember.Type,
		"state_key": target, "origin_server_ts": evt.Timestamp, "content": member,
	})
	if err != nil {
		h.T.Fatal(err)
	}
	h.Transaction([]json.RawMessage{raw})
	return evt.ID
}

// SendText sends a plain text message as a Matrix user.
func (h *Harness) SendText(sender id.UserID, roomID id.RoomID, text string) id.EventID {
	h.T.Helper()
	return h.SendMatrix(sender, roomID, event.EventMessage, &event.MessageEventContent{MsgType: event.MsgText, Body: text})
}

// ManagementRoom opens a DM between the user and the bridge bot, as a
// client would (create, invite the bot, the bot joins), and returns it.
func (h *Harness) ManagementRoom(userID id.UserID) id.RoomID {
	h.T.Helper()
	bot := h.Matrix.BotUserID()
	room := h.Matrix.CreateUserRoom(userID, bot)
	member := &event.MemberEventContent{Membership: event.MembershipInvite, IsDirect: true}
	evt, err := h.Matrix.AddUserEvent(room, userID, event.StateMember, member)
	if err != nil {
		h.T.Fatal(err)
	}
	raw, _ := json.Marshal(map[string]any{
		"event_id": evt.ID, "room_id": room, "sender": userID, "type": "m.room.member",
		"state_key": bot, "origin_server_ts": evt.Timestamp, "content": member,
	})
	h.Transaction([]json.RawMessage{raw})
	if err := h.Matrix.WaitFor(h.Ctx(), "bot to join the management room", func() bool {
		return h.Matrix.rooms[room].Members[bot] == "join"
	}); err != nil {
		h.T.Fatal(err)
	}
	return room
}

// WaitForText waits for an m.room.message from sender in a room whose body
// contains substr, and returns it.
func (h *Harness) WaitForText(roomID id.RoomID, sender id.UserID, substr string) *event.Event {
	h.T.Helper()
	evt, err := h.Matrix.WaitForEvent(h.Ctx(), roomID, fmt.Sprintf("a message from %s containing %q", sender, substr), func(evt *event.Event) bool {
		if evt.Type != event.EventMessage || (sender != "" && evt.Sender != sender) {
			return false
		}
		msg := evt.Content.AsMessage()
		return strings.Contains(msg.Body, substr)
	})
	if err != nil {
		h.T.Fatalf("%v\nroom timeline:\n%s", err, h.describe(roomID))
	}
	return evt
}

// WaitForStatus waits for a message status event about eventID with the
// given status, and returns its content.
func (h *Harness) WaitForStatus(roomID id.RoomID, eventID id.EventID, status event.MessageStatus) *event.BeeperMessageStatusEventContent {
	h.T.Helper()
	evt, err := h.Matrix.WaitForEvent(h.Ctx(), roomID, fmt.Sprintf("status %s for %s", status, eventID), func(evt *event.Event) bool {
		if evt.Type != event.BeeperMessageStatus {
			return false
		}
		c, ok := evt.Content.Parsed.(*event.BeeperMessageStatusEventContent)
		return ok && c.RelatesTo.EventID == eventID && c.Status == status
	})
	if err != nil {
		h.T.Fatalf("%v\nroom timeline:\n%s", err, h.describe(roomID))
	}
	return evt.Content.Parsed.(*event.BeeperMessageStatusEventContent)
}

// WaitForPortal waits until the portal has a room, invites the user to it
// as a client would accept, and returns the room.
func (h *Harness) WaitForPortal(key networkid.PortalKey, user id.UserID) id.RoomID {
	h.T.Helper()
	var room id.RoomID
	err := h.Matrix.WaitFor(h.Ctx(), "portal room for "+key.String(), func() bool {
		for _, r := range h.Matrix.rooms {
			for _, st := range r.State {
				if st.Type == event.StateBridge {
					if info, ok := st.Content.Parsed.(*event.BridgeEventContent); ok && info.Channel.ID == string(key.ID) && info.Channel.Receiver == string(key.Receiver) {
						room = r.ID
						return true
					}
				}
			}
		}
		return false
	})
	if err != nil {
		h.T.Fatal(err)
	}
	// The homeserver has the room before the core has recorded it; wait
	// for the record too, so events sent right away find the portal.
	ctx := h.Ctx()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		if p, err := h.Bridge().GetPortalByRoom(ctx, room); err == nil && p != nil {
			break
		}
		select {
		case <-ctx.Done():
			h.T.Fatalf("the core never recorded portal room %s", room)
		case <-tick.C:
		}
	}
	h.Matrix.JoinAsUser(room, user)
	return room
}

func (h *Harness) describe(roomID id.RoomID) string {
	var sb strings.Builder
	for _, evt := range h.Matrix.Events(roomID) {
		body := string(evt.Content.VeryRaw)
		if len(body) > 200 {
			body = body[:200] + "…"
		}
		fmt.Fprintf(&sb, "  %s %s %s %s\n", evt.ID, evt.Sender, evt.Type.Type, body)
	}
	return sb.String()
}
