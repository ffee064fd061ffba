package bridgev2

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/trestle-bridge/trestle/bridgev2/database"
	"github.com/trestle-bridge/trestle/bridgev2/networkid"
)

// StateEvent is a login's connection state, as in com.beeper.bridge_state.
type StateEvent string

// Login states.
const (
	StateStarting            StateEvent = "STARTING"
	StateConnecting          StateEvent = "CONNECTING"
	StateConnected           StateEvent = "CONNECTED"
	StateTransientDisconnect StateEvent = "TRANSIENT_DISCONNECT"
	StateBadCredentials      StateEvent = "BAD_CREDENTIALS"
	StateUnknownError        StateEvent = "UNKNOWN_ERROR"
	StateLoggedOut           StateEvent = "LOGGED_OUT"
)

// IsError reports whether the state is a problem the user should hear about.
func (s StateEvent) IsError() bool {
	return s == StateBadCredentials || s == StateUnknownError || s == StateTransientDisconnect
}

// BridgeState is a login's state with its explanation.
type BridgeState struct {
	StateEvent StateEvent `json:"state_event"`
	// Error is a machine-readable code, e.g. "twilio-20003".
	Error string `json:"error,omitempty"`
	// Message is a human sentence.
	Message   string    `json:"message,omitempty"`
	Timestamp time.Time `json:"timestamp"`
}

// UserLogin is one remote account of a Matrix user, with its live client.
type UserLogin struct {
	*database.UserLogin
	Bridge *Bridge
	User   *User
	Client NetworkClient
	Log    zerolog.Logger

	stateMu sync.Mutex
	state   BridgeState

	// metaMu guards Metadata and the row's state columns while they are
	// changed or snapshotted for saving; connectors mutate Metadata only
	// inside UpdateMetadata.
	metaMu sync.Mutex
	// replaced is set when a new login with the same ID took over, so this
	// one's late saves cannot overwrite the new credentials.
	replaced atomic.Bool
}

// GetLogin returns a loaded login, or nil.
func (b *Bridge) GetLogin(loginID networkid.UserLoginID) *UserLogin {
	b.loginsMu.RLock()
	defer b.loginsMu.RUnlock()
	return b.logins[loginID]
}

func (b *Bridge) activateLogin(ctx context.Context, user *User, row *database.UserLogin) (*UserLogin, error) {
	l := &UserLogin{UserLogin: row, Bridge: b, User: user}
	l.Log = b.Log.With().Str("login_id", string(row.ID)).Logger()
	l.state = BridgeState{StateEvent: StateEvent(row.State), Error: row.StateError, Timestamp: time.Now()}
	if l.state.StateEvent == "" {
		l.state.StateEvent = StateStarting
	}
	client, err := b.Network.LoadLogin(ctx, l)
	if err != nil {
		return nil, err
	}
	l.Client = client
	b.loginsMu.Lock()
	b.logins[row.ID] = l
	count := len(b.logins)
	b.loginsMu.Unlock()
	b.metrics.ActiveLogins(count)
	return l, nil
}

// NewLoginParams describe a login a LoginProcess completed.
type NewLoginParams struct {
	ID         networkid.UserLoginID
	RemoteName string
	Metadata   any
}

// NewLogin stores a completed login (or updates the user's existing login
// with the same ID), loads its client and connects it, so the first message
// after logging in already works. It fails with database.ErrLoginTaken if
// another Matrix user owns that remote account.
func (u *User) NewLogin(ctx context.Context, params NewLoginParams) (*UserLogin, error) {
	row := &database.UserLogin{
		ID: params.ID, UserMXID: u.MXID, RemoteName: params.RemoteName,
		Metadata: params.Metadata, State: string(StateConnecting),
	}
	b := u.Bridge
	old := b.GetLogin(params.ID)
	if old != nil && old.UserMXID == u.MXID {
		// From now on the old client's saves would overwrite the new
		// credentials; they become no-ops before the new row is written.
		old.replaced.Store(true)
	}
	err := b.DB.Write(ctx, func(ctx context.Context, tx database.Execer) error {
		if err := b.DB.Users.Upsert(ctx, tx, &database.User{MXID: u.MXID, ManagementRoom: u.ManagementRoom()}); err != nil {
			return err
		}
		if err := b.DB.Logins.Upsert(ctx, tx, row); err != nil {
			return err
		}
		return b.notifyLogin(ctx, tx, row.ID)
	})
	if err != nil && old != nil {
		old.replaced.Store(false)
	}
	if errors.Is(err, database.ErrLoginTaken) {
		return nil, NewError("That account is already logged in by another Matrix user.", err)
	} else if err != nil {
		return nil, fmt.Errorf("store login: %w", err)
	}
	if old != nil {
		old.disconnect()
	}
	login, err := b.activateLogin(ctx, u, row)
	if err != nil {
		return nil, err
	}
	if b.Leading() {
		login.connect(b.ctx)
	}
	return login, nil
}

// Save persists the login row. Connectors that change Metadata should use
// UpdateMetadata, which saves too.
func (l *UserLogin) Save(ctx context.Context) error {
	if l.replaced.Load() {
		return nil
	}
	row, err := l.snapshot()
	if err != nil {
		return err
	}
	return l.Bridge.DB.Write(ctx, func(ctx context.Context, tx database.Execer) error {
		if err := l.Bridge.DB.Logins.Upsert(ctx, tx, row); err != nil {
			return err
		}
		return l.Bridge.notifyLogin(ctx, tx, row.ID)
	})
}

// UpdateMetadata runs fn with the login's metadata under the login's lock
// and saves the result, so concurrent updates (a webhook moving a catch-up
// watermark while a state change is saved) never interleave.
func (l *UserLogin) UpdateMetadata(ctx context.Context, fn func(meta any)) error {
	l.metaMu.Lock()
	fn(l.Metadata)
	l.metaMu.Unlock()
	return l.Save(ctx)
}

// snapshot copies the row with its metadata already encoded, under the
// lock, so the database writer never reads a struct being modified.
func (l *UserLogin) snapshot() (*database.UserLogin, error) {
	l.metaMu.Lock()
	defer l.metaMu.Unlock()
	row := *l.UserLogin
	meta, err := json.Marshal(l.Metadata)
	if err != nil {
		return nil, fmt.Errorf("encode login metadata: %w", err)
	}
	row.Metadata = json.RawMessage(meta)
	return &row, nil
}

// State returns the login's current state.
func (l *UserLogin) State() BridgeState {
	l.stateMu.Lock()
	defer l.stateMu.Unlock()
	return l.state
}

// SetState records a new state for the login, persists it, and tells the
// user in their management room as bridge.bridge_status_notices says.
func (l *UserLogin) SetState(ctx context.Context, st BridgeState) {
	if st.Timestamp.IsZero() {
		st.Timestamp = time.Now()
	}
	l.stateMu.Lock()
	prev := l.state
	l.state = st
	l.stateMu.Unlock()
	l.metaMu.Lock()
	l.UserLogin.State, l.UserLogin.StateError = string(st.StateEvent), st.Error
	l.metaMu.Unlock()
	if prev.StateEvent == st.StateEvent && prev.Error == st.Error {
		return
	}
	l.Log.Info().Str("state", string(st.StateEvent)).Str("error", st.Error).Msg("Login state changed")
	if err := l.Save(ctx); err != nil {
		l.Log.Warn().Err(err).Msg("Could not persist login state")
	}
	l.Bridge.pushState(ctx, l, st)
	switch l.Bridge.Config.Bridge.BridgeStatusNotices {
	case "all":
	case "errors":
		if !st.StateEvent.IsError() && !(st.StateEvent == StateConnected && prev.StateEvent.IsError()) {
			return
		}
	default:
		return
	}
	text := fmt.Sprintf("%s: %s", l.RemoteName, st.StateEvent)
	if st.Message != "" {
		text += " — " + st.Message
	}
	l.User.Notice(ctx, text)
}

// CanSend reports whether the login may send; a login with bad credentials
// stops sending until the user logs in again.
func (l *UserLogin) CanSend() error {
	st := l.State()
	if st.StateEvent == StateBadCredentials {
		msg := st.Message
		if msg == "" {
			msg = "The remote network rejected this login's credentials."
		}
		return NewError(msg+" Log in again to resume sending.", ErrNotLoggedIn)
	}
	return nil
}

// Logout undoes the login on the remote side, deletes it with its
// credentials, and unbridges its portals: their rooms stay with the user,
// but the bridge leaves them and forgets their mapping, so a later login of
// the same account by someone else can never write into them.
func (l *UserLogin) Logout(ctx context.Context) error {
	b := l.Bridge
	if r, ok := l.Client.(RemoteLogouter); ok {
		r.LogoutRemote(ctx)
	}
	l.disconnect()
	portals, err := b.DB.Portals.GetAllForReceiver(ctx, l.ID)
	if err != nil {
		return fmt.Errorf("list portals of login: %w", err)
	}
	for _, row := range portals {
		if row.MXID != "" {
			if err := b.sendBotNotice(ctx, row.MXID, "This chat is no longer bridged: "+l.RemoteName+" was logged out."); err != nil {
				l.Log.Debug().Err(err).Msg("Could not send unbridge notice")
			}
			b.leavePortalRoom(ctx, row)
		}
	}
	err = b.DB.Write(ctx, func(ctx context.Context, tx database.Execer) error {
		for _, row := range portals {
			if err := b.DB.Portals.Delete(ctx, tx, row.PortalKey); err != nil {
				return err
			}
		}
		if err := b.DB.Logins.Delete(ctx, tx, l.ID); err != nil {
			return err
		}
		return b.notifyLogin(ctx, tx, l.ID)
	})
	if err != nil {
		return fmt.Errorf("delete login: %w", err)
	}
	for _, row := range portals {
		b.forgetPortalKey(row.PortalKey)
	}
	b.loginsMu.Lock()
	if b.logins[l.ID] == l {
		delete(b.logins, l.ID)
	}
	count := len(b.logins)
	b.loginsMu.Unlock()
	b.metrics.ActiveLogins(count)
	b.pushState(ctx, l, BridgeState{StateEvent: StateLoggedOut, Timestamp: time.Now()})
	l.Log.Info().Msg("Logged out")
	return nil
}

// connect starts the client, or, for a client without a connection of its
// own, reports the login connected.
func (l *UserLogin) connect(ctx context.Context) {
	if c, ok := l.Client.(Connectable); ok {
		c.Connect(ctx)
		return
	}
	l.SetState(ctx, BridgeState{StateEvent: StateConnected})
}

// disconnect stops the client, if it has anything to stop.
func (l *UserLogin) disconnect() {
	if c, ok := l.Client.(Connectable); ok {
		c.Disconnect()
	}
}

// chatInfo asks the client to describe a chat, or makes it a DM with
// sender (the remote user whose event created the room).
func (l *UserLogin) chatInfo(ctx context.Context, p *Portal, sender networkid.UserID) (*ChatInfo, error) {
	if c, ok := l.Client.(ChatInfoProvider); ok {
		return c.GetChatInfo(ctx, p)
	}
	return &ChatInfo{IsDM: sender != "", OtherUser: sender}, nil
}

// userInfo asks the client to describe a contact, or names the ghost
// after its remote ID.
func (l *UserLogin) userInfo(ctx context.Context, g *Ghost) (*UserInfo, error) {
	if c, ok := l.Client.(UserInfoProvider); ok {
		return c.GetUserInfo(ctx, g)
	}
	return &UserInfo{Name: Ptr(string(g.ID))}, nil
}

// ResolveIdentifier turns what a user typed into a remote user and the
// chat with them, if the network can start chats.
func (l *UserLogin) ResolveIdentifier(ctx context.Context, identifier string) (*ResolvedIdentifier, error) {
	r, ok := l.Client.(IdentifierResolver)
	if !ok {
		return nil, UnsupportedError("Starting chats from Matrix is not supported on " + l.Bridge.Network.Info().DisplayName + ".")
	}
	return r.ResolveIdentifier(ctx, identifier)
}
