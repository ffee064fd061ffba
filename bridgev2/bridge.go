// Package bridgev2 is Trestle's bridge core. It sits between a network
// connector (which knows one remote network) and the Matrix side (package
// bridgev2/matrix, which knows the homeserver) and owns everything in
// between: users and their logins, portals (one Matrix room per remote chat),
// ghosts (one Matrix puppet per remote contact), the message mapping, and the
// journals that make each hand-off durable.
//
// Data flows one way through it:
//
//	remote network -> connector -> UserLogin.Ingest -> inbound journal -> portal worker -> Matrix
//	homeserver -> Bridge.HandleTransaction -> outbound journal -> portal worker -> connector
//
// Each portal has two ordered workers (one per direction); different
// portals run in parallel. Nothing is acknowledged to either side before it
// is committed to the database.
package bridgev2

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/bridgev2/bridgeconfig"
	"github.com/trestle-bridge/trestle/bridgev2/database"
	"github.com/trestle-bridge/trestle/bridgev2/networkid"
)

// ErrShuttingDown is returned for work offered after Stop began; the caller
// should answer its peer with a retryable failure.
var ErrShuttingDown = errors.New("the bridge is shutting down")

// CommandProcessor handles bot commands; package bridgev2/commands provides
// the standard one.
type CommandProcessor interface {
	// Handle processes a message for the bot. It is called in order per
	// user, from the user's own worker.
	Handle(ctx context.Context, cmd *CommandEvent)
}

// CommandEvent is a message addressed to the bridge bot.
type CommandEvent struct {
	User    *User
	RoomID  id.RoomID
	EventID id.EventID
	// Portal is set when the command was sent in a portal room.
	Portal *Portal
	// Text is the message body, with the command prefix removed if it had one.
	Text string
	// HasPrefix says whether the message started with the command prefix.
	// Messages in the management room need none.
	HasPrefix bool
}

// Bridge is one running bridge. Create it with New, then Start it.
type Bridge struct {
	Config   *bridgeconfig.Config
	DB       *database.Database
	Matrix   Matrix
	Network  NetworkConnector
	Commands CommandProcessor
	Log      zerolog.Logger
	// Crypto is nil unless encryption.allow is on.
	Crypto Crypto

	// Version is shown by the version command and in bridge state.
	Version string

	mediaKey []byte

	usersMu sync.Mutex
	users   map[id.UserID]*User

	loginsMu sync.RWMutex
	logins   map[networkid.UserLoginID]*UserLogin

	portalsMu     sync.Mutex
	portals       map[networkid.PortalKey]*Portal
	portalsByRoom map[id.RoomID]*Portal

	ghostsMu sync.Mutex
	ghosts   map[networkid.UserID]*Ghost

	// roomCreation bounds how many portal rooms are created at once.
	roomCreation chan struct{}

	// ctx is cancelled when Stop gives up waiting for in-flight work.
	ctx      context.Context
	cancel   context.CancelFunc
	stopping atomic.Bool
	workers  sync.WaitGroup
	// workersMu orders starting a worker (under RLock, after checking
	// stopping) before Stop's wait for them (after Lock): a WaitGroup must
	// not grow from zero while it is being waited on.
	workersMu sync.RWMutex
	stopBg    chan struct{}
	bgDone    sync.WaitGroup
	metrics   Metrics
	// startedAt is when Start began; see replayGrace.
	startedAt time.Time
	// leader is whether this process delivers; see leader.go.
	leader     leadership
	leaderOnce sync.Once
}

// maxConcurrentRoomCreations bounds concurrent portal room creations.
const maxConcurrentRoomCreations = 4

// Options are the parts a Bridge is made of.
type Options struct {
	Config  *bridgeconfig.Config
	DB      *database.Database
	Matrix  Matrix
	Network NetworkConnector
	Log     zerolog.Logger
	Version string
	// Metrics receives counters and timings; nil discards them.
	Metrics Metrics
	// Crypto decrypts what users send in encrypted rooms; nil refuses it.
	Crypto Crypto
}

// New assembles a bridge and initialises the connector.
func New(opts Options) (*Bridge, error) {
	b := &Bridge{
		Config:        opts.Config,
		DB:            opts.DB,
		Matrix:        opts.Matrix,
		Network:       opts.Network,
		Log:           opts.Log,
		Version:       opts.Version,
		Crypto:        opts.Crypto,
		users:         make(map[id.UserID]*User),
		logins:        make(map[networkid.UserLoginID]*UserLogin),
		portals:       make(map[networkid.PortalKey]*Portal),
		portalsByRoom: make(map[id.RoomID]*Portal),
		ghosts:        make(map[networkid.UserID]*Ghost),
		stopBg:        make(chan struct{}),
		roomCreation:  make(chan struct{}, maxConcurrentRoomCreations),
		metrics:       opts.Metrics,
	}
	if b.metrics == nil {
		b.metrics = noopMetrics{}
	}
	b.leader = leadership{
		instance: randomHex(8), ha: opts.DB.Dialect == database.Postgres,
		leadingCh: make(chan struct{}), lostCh: make(chan struct{}), claimed: map[string]int64{},
		kick: make(chan struct{}, 1),
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	// Public media URLs must verify across restarts, so the key is derived
	// from a secret that persists: the appservice token.
	mac := hmac.New(sha256.New, []byte(opts.Config.AppService.ASToken))
	mac.Write([]byte("trestle public media v1"))
	b.mediaKey = mac.Sum(nil)
	if err := b.Network.Init(b); err != nil {
		return nil, fmt.Errorf("initialise %s connector: %w", b.Network.Info().DisplayName, err)
	}
	return b, nil
}

// Start registers the bot and loads the logins. With SQLite it then leads
// at once: it replays both journals into portal workers and connects every
// login, before it returns, so call it before serving HTTP and replayed
// events are queued ahead of new ones. With PostgreSQL it returns as a
// standby that ingests, and campaigns for the leader lease in the
// background (see leader.go).
func (b *Bridge) Start(ctx context.Context) error {
	b.startedAt = time.Now()
	bot := b.Matrix.BotUserID()
	if err := b.Matrix.EnsureRegistered(ctx, bot); err != nil {
		return fmt.Errorf("register bridge bot %s: %w", bot, err)
	}
	if err := b.Matrix.SetProfile(ctx, bot, b.Config.AppService.Bot.Displayname, id.ContentURIString(b.Config.AppService.Bot.Avatar)); err != nil {
		b.Log.Warn().Err(err).Msg("Could not set the bridge bot's profile")
	}
	if err := b.reloadLogins(ctx); err != nil {
		return err
	}
	if !b.leader.ha {
		if err := b.lead(ctx); err != nil {
			return err
		}
		b.Log.Info().Msg("Bridge started")
		return nil
	}
	b.bgDone.Add(2)
	go b.campaign()
	go b.followLogins()
	b.Log.Info().Str("instance", b.leader.instance).Msg("Bridge started as a standby; campaigning for the leader lease")
	return nil
}

// Stop stops taking work, waits up to the configured shutdown timeout for
// portal workers to finish what they hold, then cancels the rest (which
// stays in the journals for the next start) and disconnects every login.
func (b *Bridge) Stop(ctx context.Context) {
	b.workersMu.Lock()
	first := b.stopping.CompareAndSwap(false, true)
	b.workersMu.Unlock()
	if !first {
		return
	}
	close(b.stopBg)
	done := make(chan struct{})
	go func() {
		b.workers.Wait()
		close(done)
	}()
	timeout := time.NewTimer(b.Config.Bridge.ShutdownTimeout)
	defer timeout.Stop()
	select {
	case <-done:
	case <-timeout.C:
		b.Log.Warn().Msg("Shutdown timeout reached; unfinished events stay journalled for the next start")
		b.cancel()
		<-done
	case <-ctx.Done():
		b.cancel()
		<-done
	}
	b.cancel()
	b.bgDone.Wait()
	b.loginsMu.RLock()
	for _, l := range b.logins {
		l.disconnect()
	}
	b.loginsMu.RUnlock()
	b.Log.Info().Msg("Bridge stopped")
}

// Stopping reports whether Stop has begun.
func (b *Bridge) Stopping() bool { return b.stopping.Load() }

// NetworkPublicURL returns the public URL of a path served by the
// connector's HTTPHandler, e.g. "/incoming" becomes
// "https://bridge.example.com/_trestle/twilio/incoming".
func (b *Bridge) NetworkPublicURL(path string) string {
	return strings.TrimRight(b.Config.AppService.PublicAddress, "/") + b.NetworkPathPrefix() + strings.TrimLeft(path, "/")
}

// NetworkPathPrefix is where the connector's HTTP handler is mounted.
func (b *Bridge) NetworkPathPrefix() string {
	return "/_trestle/" + b.Network.Info().ID + "/"
}

// housekeeping evicts idle portals and ghosts from memory and prunes
// finished journal rows.
func (b *Bridge) housekeeping() {
	defer b.bgDone.Done()
	evict := time.NewTicker(time.Minute)
	defer evict.Stop()
	prune := time.NewTicker(time.Hour)
	defer prune.Stop()
	b.pruneJournals()
	for {
		select {
		case <-b.stopBg:
			return
		case <-evict.C:
			b.evictIdle(time.Now().Add(-b.Config.Bridge.PortalIdleTimeout))
		case <-prune.C:
			b.pruneJournals()
		}
	}
}

func (b *Bridge) pruneJournals() {
	cutoff := time.Now().Add(-b.Config.Bridge.JournalRetention)
	err := b.DB.Write(b.ctx, func(ctx context.Context, tx database.Execer) error {
		if _, err := b.DB.Inbound.Prune(ctx, tx, cutoff); err != nil {
			return err
		}
		if _, err := b.DB.Outbound.Prune(ctx, tx, cutoff); err != nil {
			return err
		}
		// Homeservers retry a transaction for minutes; a day is plenty.
		_, err := b.DB.Txns.Prune(ctx, tx, time.Now().Add(-24*time.Hour))
		return err
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		b.Log.Warn().Err(err).Msg("Could not prune journals")
	}
}

// Ready reports whether the database and the homeserver answer.
func (b *Bridge) Ready(ctx context.Context) error {
	if err := b.DB.Ping(ctx); err != nil {
		return fmt.Errorf("database: %w", err)
	}
	if err := b.Matrix.Ping(ctx); err != nil {
		return fmt.Errorf("homeserver: %w", err)
	}
	return nil
}
