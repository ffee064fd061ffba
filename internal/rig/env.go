package rig

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"maunium.net/go/mautrix"

	"github.com/trestle-bridge/trestle/connectors/twilio/twiliosim"
	"github.com/trestle-bridge/trestle/internal/dendrite"
)

// EnvOptions configure a Twilio environment.
type EnvOptions struct {
	// Dir holds every file of the environment; required.
	Dir string
	// DatabaseType and DatabaseURI select the bridge's store; SQLite in Dir
	// by default.
	DatabaseType string
	DatabaseURI  string
	// ConfigEdits are applied to the bridge config on top of the rig's own.
	ConfigEdits map[string]any
	// NoBridge leaves the bridge process to the caller (e.g. benchmarks
	// that start it themselves or an in-process bridge).
	NoBridge bool
	// SimOptions configure the Twilio simulator.
	SimOptions twiliosim.Options
	// DendriteOptions adjust the homeserver (its data dir, port and
	// registrations are set by the rig).
	DendriteOptions dendrite.Options
	// Processes is how many bridge processes form the bridge (PostgreSQL
	// only beyond one): with several, each has its own listener and a
	// Balancer at BridgeURL spreads the homeserver's and Twilio's requests
	// over them, as in a two-node deployment.
	Processes int
}

// Env is the whole bridge as a newcomer meets it: Dendrite on loopback, the
// Twilio simulator, and the trestle-twilio binary with its own config and
// generated registration.
type Env struct {
	Dir      string
	Sim      *twiliosim.Server
	Dendrite *dendrite.Server
	Files    *BridgeFiles
	Bridge   *BridgeProcess
	// Bridges are all the bridge processes, Bridge first; Balancer is in
	// front of them when there are several.
	Bridges  []*BridgeProcess
	Balancer *Balancer
	Binary   string
	// BridgeURL is where the bridge listens (also its public address).
	BridgeURL string
}

// StartEnv starts the simulator, writes the bridge config and registration,
// starts Dendrite with that registration, builds the bridge binary and runs
// it until it is ready.
func StartEnv(ctx context.Context, opts EnvOptions) (env *Env, err error) {
	if opts.Dir == "" {
		return nil, errors.New("EnvOptions.Dir is required")
	}
	env = &Env{Dir: opts.Dir}
	defer func() {
		if err != nil {
			env.Close()
		}
	}()
	env.Sim = twiliosim.New(opts.SimOptions)
	if err := env.Sim.Start(); err != nil {
		return env, fmt.Errorf("start Twilio simulator: %w", err)
	}
	bridgePort, err := FreePort()
	if err != nil {
		return env, err
	}
	hsPort, err := FreePort()
	if err != nil {
		return env, err
	}
	env.BridgeURL = fmt.Sprintf("http://127.0.0.1:%d", bridgePort)
	dbType, dbURI := opts.DatabaseType, opts.DatabaseURI
	if dbType == "" {
		dbType, dbURI = "sqlite", filepath.Join(opts.Dir, "trestle.db")
	}
	edits := map[string]any{
		"homeserver.address":        fmt.Sprintf("http://127.0.0.1:%d", hsPort),
		"homeserver.domain":         "localhost",
		"appservice.address":        env.BridgeURL,
		"appservice.port":           bridgePort,
		"appservice.public_address": env.BridgeURL,
		"database.type":             dbType,
		"database.uri":              dbURI,
		"bridge.permissions":        map[string]string{"localhost": "user", "@admin:localhost": "admin"},
		"logging.level":             "debug",
		"logging.format":            "json",
		"network.api_url":           env.Sim.URL(),
		// The tests (and the sandbox's phone page) watch every state of a
		// message through status events; the defaults show only failures
		// and a receipt.
		"bridge.message_status_events": true,
	}
	if dbType == "postgres" {
		// After a kill -9 the next start waits for the dead process's lease
		// to run out; the tests kill often.
		edits["database.takeover_timeout"] = "4s"
	}
	for k, v := range opts.ConfigEdits {
		edits[k] = v
	}
	if env.Files, err = WriteBridgeConfig(opts.Dir, edits); err != nil {
		return env, err
	}
	dOpts := opts.DendriteOptions
	dOpts.DataDir = filepath.Join(opts.Dir, "dendrite")
	dOpts.Port = hsPort
	dOpts.ServerName = "localhost"
	dOpts.AppServiceRegistrations = append(dOpts.AppServiceRegistrations, env.Files.Registration)
	if env.Dendrite, err = dendrite.Start(ctx, dOpts); err != nil {
		return env, fmt.Errorf("start Dendrite: %w", err)
	}
	if env.Binary, err = BridgeBinary(ctx); err != nil {
		return env, err
	}
	if opts.NoBridge {
		return env, nil
	}
	if opts.Processes <= 1 {
		env.Bridge, err = StartBridge(ctx, env.Binary, env.Files, filepath.Join(opts.Dir, "bridge.log"))
		env.Bridges = []*BridgeProcess{env.Bridge}
		return env, err
	}
	var backends []string
	var files []*BridgeFiles
	for i := range opts.Processes {
		port, err := FreePort()
		if err != nil {
			return env, err
		}
		f, err := env.Files.Copy(fmt.Sprintf("config-%d.yaml", i), map[string]any{"appservice.port": port})
		if err != nil {
			return env, err
		}
		files = append(files, f)
		backends = append(backends, fmt.Sprintf("http://127.0.0.1:%d", port))
	}
	if env.Balancer, err = NewBalancer(fmt.Sprintf("127.0.0.1:%d", bridgePort), backends...); err != nil {
		return env, err
	}
	for i, f := range files {
		p, err := StartBridge(ctx, env.Binary, f, filepath.Join(opts.Dir, fmt.Sprintf("bridge-%d.log", i)))
		if p != nil {
			env.Bridges = append(env.Bridges, p)
		}
		if err != nil {
			return env, err
		}
	}
	env.Bridge = env.Bridges[0]
	return env, nil
}

// Close stops everything and leaves no process behind.
func (e *Env) Close() {
	for _, b := range e.Bridges {
		_ = b.Stop()
	}
	if len(e.Bridges) == 0 && e.Bridge != nil {
		_ = e.Bridge.Stop()
	}
	if e.Balancer != nil {
		e.Balancer.Close()
	}
	if e.Dendrite != nil {
		e.Dendrite.Stop()
	}
	if e.Sim != nil {
		e.Sim.Close()
	}
}

// NewUser creates a Matrix account on the homeserver and logs it in.
func (e *Env) NewUser(ctx context.Context, localpart, password string) (*mautrix.Client, error) {
	if err := e.Dendrite.CreateUser(ctx, localpart, password, false); err != nil {
		return nil, err
	}
	return e.Dendrite.Login(ctx, localpart, password)
}

// LogContains reports whether the bridge log contains s, e.g. to check that
// secrets never appear in it.
func (e *Env) LogContains(s string) bool {
	data, err := os.ReadFile(filepath.Join(e.Dir, "bridge.log"))
	return err == nil && strings.Contains(string(data), s)
}
