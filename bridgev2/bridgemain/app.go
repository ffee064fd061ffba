// Package bridgemain turns a network connector into a runnable bridge
// binary: flags, config and registration files, logging, the HTTP listener
// and signal handling. A connector's main package is a few lines:
//
//	func main() { bridgemain.Main(twilio.New(), trestle.ExampleConfig) }
package bridgemain

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/rs/zerolog"

	"github.com/trestle-bridge/trestle/bridgev2"
	"github.com/trestle-bridge/trestle/bridgev2/bridgeconfig"
	"github.com/trestle-bridge/trestle/bridgev2/commands"
	"github.com/trestle-bridge/trestle/bridgev2/database"
	"github.com/trestle-bridge/trestle/bridgev2/e2ee"
	"github.com/trestle-bridge/trestle/bridgev2/matrix"
	"github.com/trestle-bridge/trestle/bridgev2/metrics"
	"github.com/trestle-bridge/trestle/bridgev2/provisioning"
)

// App is an assembled bridge: core, Matrix side, store and HTTP handler.
type App struct {
	Bridge  *bridgev2.Bridge
	Config  *bridgeconfig.Config
	DB      *database.Database
	Handler http.Handler
	Log     zerolog.Logger

	server     *http.Server
	listener   net.Listener
	redactions *matrix.RedactionSync
	stopSync   context.CancelFunc
	syncDone   chan struct{}

	crypto     *e2ee.E2EE // nil unless encryption.allow
	stopCrypto context.CancelFunc
	cryptoDone chan struct{}

	metrics      *metrics.Metrics // nil unless metrics.enabled
	stopMetrics  context.CancelFunc
	metricsDone  chan struct{}
	provisioning *provisioning.API
}

// Options adjust Assemble. The zero value (with a logger) assembles the
// bridge exactly as the shipped binary runs it.
type Options struct {
	Log zerolog.Logger
	// Version is shown by the version command and in bridge state.
	Version string
	// Matrix replaces the homeserver client of bridgev2/matrix with another
	// implementation of the core's Matrix interface, such as bridgetest's
	// in-memory homeserver. Everything else (token checks, the appservice
	// API, provisioning, webhooks, health) is assembled as shipped, so a
	// connector's tests exercise what users run.
	Matrix bridgev2.Matrix
}

// Assemble opens the database, builds the core with the connector and the
// Matrix side, and prepares (but does not start) the HTTP handler.
func Assemble(ctx context.Context, cfg *bridgeconfig.Config, connector bridgev2.NetworkConnector, opts Options) (*App, error) {
	log := opts.Log
	if err := cfg.CheckTokens(); err != nil {
		return nil, err
	}
	if err := bridgev2.ConfigureNetwork(cfg, connector); err != nil {
		return nil, err
	}
	db, err := database.Open(ctx, database.Dialect(cfg.Database.Type), cfg.Database.URI, database.Options{
		MaxOpenConns: cfg.Database.MaxOpenConns,
		Meta:         bridgev2.MetaTypesOf(connector),
		Log:          log.With().Str("component", "database").Logger(),
	})
	if err != nil {
		return nil, err
	}
	mx := opts.Matrix
	var hs *matrix.Homeserver
	if mx == nil {
		if hs, err = matrix.NewHomeserver(cfg, log.With().Str("component", "matrix").Logger()); err != nil {
			_ = db.Close()
			return nil, err
		}
		mx = hs
	}
	var enc *e2ee.E2EE
	if cfg.Encryption.Allow {
		if enc, err = e2ee.New(ctx, e2ee.Options{Config: cfg, DB: db, Log: log.With().Str("component", "e2ee").Logger()}); err != nil {
			_ = db.Close()
			return nil, err
		}
		mx = enc.Wrap(mx)
	}
	coreOpts := bridgev2.Options{
		Config: cfg, DB: db, Matrix: mx, Network: connector, Version: opts.Version,
		Log: log.With().Str("component", "bridge").Logger(),
	}
	if enc != nil {
		// Only when allowed: a nil *E2EE in the interface would not be nil.
		coreOpts.Crypto = enc
	}
	var m *metrics.Metrics
	if cfg.Metrics.Enabled {
		m = metrics.New()
		// Only when enabled: a nil *Metrics in the interface would not be nil.
		coreOpts.Metrics = m
	}
	br, err := bridgev2.New(coreOpts)
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	br.Commands = commands.New(br)

	mux := http.NewServeMux()
	as := matrix.NewAppService(cfg.AppService.HSToken, mx, br, log.With().Str("component", "appservice").Logger())
	if enc != nil && cfg.Encryption.Appservice {
		as.SetCryptoHandler(enc)
	}
	as.Register(mux)
	prov := provisioning.New(br, log.With().Str("component", "provisioning").Logger())
	if cfg.Provisioning.Enabled {
		mux.Handle(provisioning.PathPrefix, leaderOnly(br, prov.Handler()))
		log.Info().Str("path", provisioning.PathPrefix+"v3/").Msg("Provisioning API enabled")
	}
	routes(mux, br)
	app := &App{Bridge: br, Config: cfg, DB: db, Handler: recoverPanics(br.Log, mux), Log: log,
		metrics: m, provisioning: prov, crypto: enc}
	if cfg.Homeserver.SyncRedactions && hs != nil {
		app.redactions = matrix.NewRedactionSync(hs, br, db.KV, log.With().Str("component", "redaction_sync").Logger())
	}
	return app, nil
}

// Listen binds the appservice listener (appservice.hostname:port). It is
// separate from Start so callers can learn the port before starting.
func (a *App) Listen() error {
	addr := net.JoinHostPort(a.Config.AppService.Hostname, strconv.Itoa(a.Config.AppService.Port))
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s (appservice.hostname/port): %w", addr, err)
	}
	a.listener = l
	return nil
}

// Start starts the core (replaying the journals) and then serves HTTP, so
// that replayed events are queued before new ones arrive.
func (a *App) Start(ctx context.Context) error {
	if a.listener == nil {
		if err := a.Listen(); err != nil {
			return err
		}
	}
	if err := a.Bridge.Start(ctx); err != nil {
		return err
	}
	a.server = &http.Server{
		Handler:           a.Handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       2 * time.Minute,
		IdleTimeout:       2 * time.Minute,
	}
	go func() {
		if err := a.server.Serve(a.listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.Log.Err(err).Msg("HTTP server failed")
		}
	}()
	a.Log.Info().Str("address", a.listener.Addr().String()).Msg("Listening for the homeserver and webhooks")
	if a.metrics != nil {
		var metricsCtx context.Context
		metricsCtx, a.stopMetrics = context.WithCancel(context.Background())
		a.metricsDone = make(chan struct{})
		go func() {
			defer close(a.metricsDone)
			if err := metrics.Serve(metricsCtx, a.Config.Metrics.Listen, a.metrics); err != nil {
				a.Log.Err(err).Msg("Metrics listener failed")
			}
		}()
		a.Log.Info().Str("address", a.Config.Metrics.Listen).Msg("Serving Prometheus metrics at /metrics")
	}
	if a.crypto != nil {
		var cryptoCtx context.Context
		cryptoCtx, a.stopCrypto = context.WithCancel(context.Background())
		a.cryptoDone = make(chan struct{})
		go func() {
			defer close(a.cryptoDone)
			// One process owns the bot's device: the one that delivers.
			select {
			case <-a.Bridge.BecameLeader():
				a.crypto.Run(cryptoCtx)
			case <-cryptoCtx.Done():
			}
		}()
	}
	if a.redactions != nil {
		var syncCtx context.Context
		syncCtx, a.stopSync = context.WithCancel(context.Background())
		a.syncDone = make(chan struct{})
		go func() {
			defer close(a.syncDone)
			// Only the leader delivers, so only it follows the homeserver.
			select {
			case <-a.Bridge.BecameLeader():
				a.redactions.Run(syncCtx)
			case <-syncCtx.Done():
			}
		}()
	}
	return nil
}

// Addr is the bound listener address.
func (a *App) Addr() net.Addr { return a.listener.Addr() }

// Stop shuts down in order: stop taking requests (in-flight ones finish and
// their events are journalled), let portal workers finish or leave work in
// the journal, then close the database.
func (a *App) Stop(ctx context.Context) {
	if a.server != nil {
		shutdownCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if err := a.server.Shutdown(shutdownCtx); err != nil {
			a.Log.Warn().Err(err).Msg("HTTP server did not shut down cleanly")
		}
		cancel()
	}
	a.provisioning.Close()
	if a.stopSync != nil {
		a.stopSync()
		<-a.syncDone
	}
	a.Bridge.Stop(ctx)
	if a.stopCrypto != nil {
		// After the core: messages drained during shutdown still get
		// encrypted.
		a.stopCrypto()
		<-a.cryptoDone
	}
	if a.stopMetrics != nil {
		a.stopMetrics()
		<-a.metricsDone
	}
	if err := a.DB.Close(); err != nil {
		a.Log.Warn().Err(err).Msg("Could not close the database")
	}
}
