// Package echo_test runs the trestle-echo binary, configured from its own
// example config as a new user would, against a real Dendrite: the trial
// of a homeserver set-up the echo network exists for.
package echo_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/bridgev2/bridgeconfig"
	"github.com/trestle-bridge/trestle/bridgev2/bridgemain"
	"github.com/trestle-bridge/trestle/connectors/echo"
	"github.com/trestle-bridge/trestle/internal/dendrite"
	"github.com/trestle-bridge/trestle/internal/matrixtest"
	"github.com/trestle-bridge/trestle/internal/rig"
)

func TestEchoOnDendrite(t *testing.T) {
	if testing.Short() {
		t.Skip("-short leaves out everything that needs Dendrite")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	dir := t.TempDir()
	binary := buildEcho(t, dir)
	files := writeConfig(t, dir)
	hs := dendrite.StartForTest(t, dendrite.Options{ServerName: "localhost", AppServiceRegistrations: []string{files.Registration}})
	if err := files.Edit(map[string]any{"homeserver.address": hs.URL}); err != nil {
		t.Fatal(err)
	}
	proc, err := rig.StartBridge(ctx, binary, files, filepath.Join(dir, "bridge.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := proc.Stop(); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("bridge log, last lines:\n%s", proc.LogTail(60))
		}
	})
	if err := hs.CreateUser(ctx, "alice", "alice-password", false); err != nil {
		t.Fatal(err)
	}
	cli, err := hs.Login(ctx, "alice", "alice-password")
	if err != nil {
		t.Fatal(err)
	}
	alice := matrixtest.StartForTest(t, cli, matrixtest.Options{AutoJoin: true})

	bot := id.UserID("@echobot:localhost")
	mgmt := alice.DM(bot)
	alice.Send(mgmt, "login")
	alice.WaitForMessage(mgmt, bot, "Name")
	alice.Send(mgmt, "alice")
	alice.WaitForMessage(mgmt, bot, "Contacts")
	alice.Send(mgmt, "carol")
	alice.WaitForMessage(mgmt, bot, "Logged in as")

	carol := id.UserID("@echo_alice.carol:localhost")
	room := alice.WaitForInvite(func(inv *matrixtest.Invite) bool { return inv.Sender == carol }).RoomID
	alice.WaitForMessage(room, carol, "Hi, I'm carol.")

	sent := alice.Send(room, "hello from Dendrite")
	alice.WaitForEphemeral(room, func(evt *event.Event) bool {
		typing, ok := evt.Content.Parsed.(*event.TypingEventContent)
		return ok && len(typing.UserIDs) == 1 && typing.UserIDs[0] == carol
	})
	answer := alice.WaitForMessageAfter(room, sent, carol, "You said: hello from Dendrite").ID

	alice.Edit(room, sent, "hello again")
	alice.WaitForMessageAfter(room, answer, carol, "You said: hello again")
	alice.React(room, sent, "👍")
	alice.WaitForEvent(room, func(evt *event.Event) bool {
		r, ok := evt.Content.Parsed.(*event.ReactionEventContent)
		return ok && evt.Sender == carol && r.RelatesTo.EventID == sent && r.RelatesTo.Key == "👍"
	})
	alice.SendImage(room, []byte("\x89PNG\r\n\x1a\n not really"), "image/png", "dot.png")
	alice.WaitForEvent(room, func(evt *event.Event) bool {
		msg, ok := evt.Content.Parsed.(*event.MessageEventContent)
		return ok && evt.Sender == carol && msg.MsgType == event.MsgImage && msg.URL != ""
	})
	alice.Redact(room, sent, "")
	alice.WaitForEvent(room, func(evt *event.Event) bool {
		return evt.Type == event.EventRedaction && evt.Sender == carol && evt.Redacts == answer
	})
}

// buildEcho builds the binary a user would run.
func buildEcho(t *testing.T, dir string) string {
	root, err := rig.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	binary := filepath.Join(dir, "trestle-echo")
	cmd := exec.Command("go", "build", "-o", binary, "./cmd/trestle-echo")
	cmd.Dir, cmd.Env = root, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return binary
}

// writeConfig writes the echo example config with the few keys a new
// user edits, then generates the registration as -g does.
func writeConfig(t *testing.T, dir string) *rig.BridgeFiles {
	port, err := rig.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	self := fmt.Sprintf("http://127.0.0.1:%d", port)
	data, err := bridgeconfig.EditYAML(echo.ExampleConfigFile, map[string]any{
		"homeserver.domain": "localhost", "appservice.address": self, "appservice.port": port,
		"appservice.public_address": self, "database.uri": filepath.Join(dir, "echo.db"),
		"bridge.permissions": map[string]string{"localhost": "user"}, "network.think_time": "500ms",
	})
	if err != nil {
		t.Fatal(err)
	}
	files := &rig.BridgeFiles{Dir: dir, Config: filepath.Join(dir, "config.yaml"), Registration: filepath.Join(dir, "registration.yaml")}
	if err := os.WriteFile(files.Config, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := bridgemain.GenerateRegistration(files.Config, files.Registration); err != nil {
		t.Fatal(err)
	}
	return files
}
