package core_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/bridgev2/bridgemain"
	"github.com/trestle-bridge/trestle/bridgev2/bridgetest/testnet"
	"github.com/trestle-bridge/trestle/bridgev2/database"
	"github.com/trestle-bridge/trestle/bridgev2/database/dbtest"
	"github.com/trestle-bridge/trestle/internal/matrixtest"
	"github.com/trestle-bridge/trestle/internal/rig"
)

// bridge is an in-process bridge with the test network, configured from
// example-config.yaml like a real deployment and registered with Dendrite.
type bridge struct {
	t       *testing.T
	files   *rig.BridgeFiles
	remote  *testnet.Remote
	app     atomic.Pointer[bridgemain.App]
	logPath string
	logFile *os.File
	dialect database.Dialect
}

// forEachDatabase runs a scenario once per configured database, each with
// its own bridge (and appservice registration) on the shared Dendrite.
func forEachDatabase(t *testing.T, fn func(t *testing.T, b *bridge)) {
	for _, dialect := range dbtest.Dialects() {
		t.Run(string(dialect), func(t *testing.T) {
			files := bridgeFiles[string(dialect)]
			if err := files.Edit(map[string]any{"database.type": string(dialect), "database.uri": dbURI(t, dialect)}); err != nil {
				t.Fatal(err)
			}
			b := &bridge{t: t, files: files, remote: testnet.NewRemote(), dialect: dialect,
				logPath: filepath.Join(t.TempDir(), "bridge.log")}
			b.start()
			t.Cleanup(func() {
				b.stop()
				if t.Failed() {
					data, _ := os.ReadFile(b.logPath)
					lines := strings.Split(string(data), "\n")
					if len(lines) > 80 {
						lines = lines[len(lines)-80:]
					}
					t.Logf("bridge log, last lines:\n%s", strings.Join(lines, "\n"))
				}
			})
			fn(t, b)
		})
	}
}

func dbURI(t *testing.T, dialect database.Dialect) string {
	if dialect == database.SQLite {
		return filepath.Join(t.TempDir(), "trestle.db")
	}
	return dbtest.URI(t, dialect)
}

func (b *bridge) start() {
	b.t.Helper()
	cfg, err := b.files.LoadConfig()
	if err != nil {
		b.t.Fatal(err)
	}
	logFile, err := os.OpenFile(b.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		b.t.Fatal(err)
	}
	b.logFile = logFile
	log := zerolog.New(io.Writer(logFile)).Level(zerolog.DebugLevel).With().Timestamp().Logger()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	app, err := bridgemain.Assemble(ctx, cfg, b.remote.Connector(), bridgemain.Options{Log: log, Version: "e2e"})
	if err != nil {
		b.t.Fatal(err)
	}
	if err := app.Start(ctx); err != nil {
		b.t.Fatal(err)
	}
	b.app.Store(app)
}

func (b *bridge) stop() {
	if app := b.app.Swap(nil); app != nil {
		app.Stop(context.Background())
		_ = b.logFile.Close()
	}
}

// restart stops the bridge process-equivalent and starts a new one on the
// same database.
func (b *bridge) restart() {
	b.t.Helper()
	b.stop()
	b.start()
}

func (b *bridge) botID() id.UserID {
	return b.app.Load().Bridge.Matrix.BotUserID()
}

func (b *bridge) ghostID(remote string) id.UserID {
	return b.app.Load().Bridge.Matrix.GhostUserID(networkidUser(remote))
}

func (b *bridge) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	b.t.Cleanup(cancel)
	return ctx
}

var userCounter atomic.Int64

// newUser creates a fresh Matrix account on Dendrite and returns it as a
// syncing client that accepts invites, as a person's client would.
func newUser(t *testing.T, name string) (*matrixtest.T, id.UserID) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	localpart := name + "-" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-"))
	localpart = strings.NewReplacer("_", "-").Replace(localpart)
	if len(localpart) > 60 {
		localpart = localpart[:60]
	}
	localpart += "-" + string(rune('a'+userCounter.Add(1)%26))
	password := "password-" + localpart
	if err := homeserver.CreateUser(ctx, localpart, password, false); err != nil {
		t.Fatal(err)
	}
	cli, err := homeserver.Login(ctx, localpart, password)
	if err != nil {
		t.Fatal(err)
	}
	user := matrixtest.StartForTest(t, cli, matrixtest.Options{AutoJoin: true})
	return user, cli.UserID
}
