package reliability_test

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/connectors/twilio/twiliosim"
	"github.com/trestle-bridge/trestle/internal/matrixtest"
)

// accessConfig gives alice and bob the user level, mallory only relay,
// and eve nothing at all; relays may be set by any user, and public media
// URLs live for 8 s so that their expiry can be seen (long enough for a busy
// CI machine to fetch one before it expires).
var accessConfig = map[string]any{
	"bridge.permissions": map[string]string{
		"@alice:localhost": "user", "@bob:localhost": "user",
		"@mallory:localhost": "relay", "@admin:localhost": "admin",
	},
	"bridge.relay.enabled":       true,
	"bridge.relay.admin_only":    false,
	"bridge.media_url_lifetime":  "8s",
	"provisioning.enabled":       true,
	"provisioning.shared_secret": "provisioning-secret-for-the-log-scan-0123456789abcdef",
}

// newMatrixUser is a Matrix account without a Twilio account or a DM with
// the bot.
func (w *world) newMatrixUser(localpart string) *person {
	w.t.Helper()
	password := "password-" + localpart
	cli, err := w.env.NewUser(w.ctx(), localpart, password)
	if err != nil {
		w.t.Fatal(err)
	}
	p := &person{w: w, T: matrixtest.StartForTest(w.t, cli, matrixtest.Options{AutoJoin: true}), ID: cli.UserID, Password: password}
	p.Timeout = time.Minute
	return p
}

// invite has p invite other into room and waits until they joined.
func (p *person) invite(room id.RoomID, other *person) {
	p.w.t.Helper()
	if _, err := p.Matrix.InviteUser(p.w.ctx(), room, &mautrix.ReqInviteUser{UserID: other.ID}); err != nil {
		p.w.t.Fatal(err)
	}
	other.WaitForMembership(room, other.ID, event.MembershipJoin)
}

// TestUsersOnlyReachWhatTheirPermissionAndLoginsAllow checks the bridge's
// access rules end to end: a user below the "user" level cannot log in or
// run user commands and is told why; someone without any level is ignored
// (the bot refuses their invite); nobody can log out someone else's login;
// a user invited into someone's portal cannot send through the owner's
// login unless the owner set a relay, and then only as a relayed, named
// message.
func TestUsersOnlyReachWhatTheirPermissionAndLoginsAllow(t *testing.T) {
	w := newWorld(t, accessConfig)
	alice := w.newPerson("alice")
	alice.login()
	bob := w.newPerson("bob")
	bob.login()
	contact := w.number()
	room := alice.openPortal(contact, "hi alice")
	mallory := w.newMatrixUser("mallory")

	t.Run("a relay-level user cannot log in and is told why", func(t *testing.T) {
		alice.invite(room, mallory)
		sent := mallory.Send(room, "!tw login")
		reply := mallory.WaitForMessageAfter(room, sent, bot(), "permission")
		if b := body(reply); !strings.Contains(b, "`login`") || !strings.Contains(b, "user level") {
			t.Errorf("reply %q should say login needs the user level", b)
		}
	})
	t.Run("a relay-level user's invite to a DM is rejected", func(t *testing.T) {
		resp, err := mallory.Matrix.CreateRoom(w.ctx(), &mautrix.ReqCreateRoom{Preset: "trusted_private_chat", IsDirect: true, Invite: []id.UserID{bot()}})
		if err != nil {
			t.Fatal(err)
		}
		mallory.WaitForMembership(resp.RoomID, bot(), event.MembershipLeave)
	})
	t.Run("a user without any level is ignored by the bot", func(t *testing.T) {
		eve := w.newMatrixUser("eve")
		resp, err := eve.Matrix.CreateRoom(w.ctx(), &mautrix.ReqCreateRoom{Preset: "trusted_private_chat", IsDirect: true, Invite: []id.UserID{bot()}})
		if err != nil {
			t.Fatal(err)
		}
		// The homeserver hands the bridge events in order: once a text
		// alice sends afterwards has gone out, eve's invite was seen.
		alice.Send(room, "after eve's invite")
		if _, err := w.env.Sim.WaitOutbound(w.ctx(), func(all []twiliosim.OutboundMessage) bool {
			return countBodies(all, "after eve's invite") > 0
		}); err != nil {
			t.Fatal(err)
		}
		if got := eve.Membership(resp.RoomID, bot()); got == event.MembershipJoin {
			t.Error("the bot joined the DM of a user without permission")
		}
		if n := w.count(w.db(), "SELECT COUNT(*) FROM outbound_event WHERE sender = $1", eve.ID.String()); n != 0 {
			t.Errorf("the bridge journalled %d events of a user without permission", n)
		}
	})
	t.Run("nobody can log out someone else's number", func(t *testing.T) {
		bob.command("logout "+strings.TrimPrefix(alice.Number, "+"), "You have no login called")
		bob.command("logout "+alice.Number, "You have no login called")
		list := bob.command("list-logins", "")
		if strings.Contains(body(list), strings.TrimPrefix(alice.Number, "+")) {
			t.Errorf("bob's list of logins shows alice's number: %q", body(list))
		}
		alice.command("ping", "CONNECTED")
	})
	t.Run("an invited user cannot send through the owner's login without a relay", func(t *testing.T) {
		alice.invite(room, bob)
		evt := bob.Send(room, "bob without a relay")
		st := bob.waitStatus(room, evt, func(c *event.BeeperMessageStatusEventContent) bool { return c.Status == event.MessageStatusFail })
		if !strings.Contains(st.Message, "not logged in to the account this chat belongs to") {
			t.Errorf("failure says %q", st.Message)
		}
		if n := countBodies(w.env.Sim.Outbound(), "bob without a relay"); n != 0 {
			t.Errorf("bob's text went out through alice's number %d times", n)
		}
	})
	t.Run("with a relay set, the invited user's text goes out named", func(t *testing.T) {
		sent := bob.Send(room, "!tw set-relay")
		bob.WaitForMessageAfter(room, sent, bot(), "You can only relay through one of your own logins")
		sent = alice.Send(room, "!tw set-relay")
		alice.WaitForMessageAfter(room, sent, bot(), "now sent through")
		bob.Send(room, "bob through the relay")
		out, err := w.env.Sim.WaitOutbound(w.ctx(), func(all []twiliosim.OutboundMessage) bool {
			for _, m := range all {
				if strings.Contains(m.Body, "bob through the relay") {
					return true
				}
			}
			return false
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range out {
			if strings.Contains(m.Body, "bob through the relay") && (m.Body != "bob: bob through the relay" || m.From != alice.Number || m.To != contact) {
				t.Errorf("relayed text went out as %q from %s to %s", m.Body, m.From, m.To)
			}
		}
	})
	w.assertHealthy()
	w.assertNoSecretsInLog(alice, bob)
}

// TestPublicMediaURLsAreUnguessableAndExpire sends an image from Matrix, so
// the bridge mints a public URL for Twilio to fetch it from, then tampers
// with that URL and waits for it to expire.
func TestPublicMediaURLsAreUnguessableAndExpire(t *testing.T) {
	w := newWorld(t, accessConfig)
	alice := w.newPerson("alice")
	alice.login()
	contact := w.number()
	room := alice.openPortal(contact, "hi alice")

	img := image.NewRGBA(image.Rect(0, 0, 8, 8))
	img.Set(1, 1, color.RGBA{R: 255, A: 255})
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	alice.SendImage(room, buf.Bytes(), "image/png", "dot.png")
	out, err := w.env.Sim.WaitOutbound(w.ctx(), func(all []twiliosim.OutboundMessage) bool {
		return len(all) > 0 && len(all[len(all)-1].Media) > 0
	})
	if err != nil {
		t.Fatal(err)
	}
	fetch := out[len(out)-1].Media[0]
	if fetch.StatusCode != http.StatusOK || !bytes.Equal(fetch.Data, buf.Bytes()) {
		t.Fatalf("Twilio fetched %d (%d bytes), want the image", fetch.StatusCode, len(fetch.Data))
	}
	mediaURL := fetch.URL
	rest, ok := strings.CutPrefix(mediaURL, w.env.BridgeURL+"/_trestle/media/")
	parts := strings.Split(rest, "/")
	if !ok || len(parts) != 3 || len(parts[1]) < 43 {
		t.Fatalf("media URL %q is not /_trestle/media/<payload>/<256-bit signature>/<name>", mediaURL)
	}
	get := func(u string) int {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	flip := func(s string) string {
		c := byte('A')
		if s[len(s)/2] == 'A' {
			c = 'B'
		}
		return s[:len(s)/2] + string(c) + s[len(s)/2+1:]
	}
	base := w.env.BridgeURL + "/_trestle/media/"
	for name, u := range map[string]string{
		"tampered signature": base + parts[0] + "/" + flip(parts[1]) + "/" + parts[2],
		"tampered payload":   base + flip(parts[0]) + "/" + parts[1] + "/" + parts[2],
		"no signature":       base + parts[0] + "//" + parts[2],
		"signature only":     base + parts[1],
		"path traversal":     base + parts[0] + "/" + parts[1] + "/../../_trestle/ready",
	} {
		if code := get(u); code != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", name, code)
		}
	}
	if code := get(mediaURL); code != http.StatusOK {
		t.Fatalf("the genuine URL answered %d before expiring", code)
	}
	if err := waitFor(w.ctx(), "the media URL to expire", func() bool { return get(mediaURL) == http.StatusNotFound }); err != nil {
		t.Fatal(err)
	}
	w.assertHealthy()
}

// assertNoSecretsInLog checks that no token or secret in use appears in
// the bridge's log: the appservice and homeserver tokens, the provisioning
// secret, every person's Twilio auth token and Matrix access token.
func (w *world) assertNoSecretsInLog(people ...*person) {
	w.t.Helper()
	cfg, err := w.env.Files.LoadConfig()
	if err != nil {
		w.t.Fatal(err)
	}
	secrets := map[string]string{
		"appservice token":     cfg.AppService.ASToken,
		"homeserver token":     cfg.AppService.HSToken,
		"provisioning secret":  cfg.Provisioning.SharedSecret,
		"media key derivation": "trestle public media v1",
	}
	if w.encrypted {
		secrets["encryption pickle key"] = cfg.Encryption.PickleKey
	}
	for _, p := range people {
		secrets[p.ID.String()+"'s Matrix access token"] = p.Matrix.AccessToken
		secrets[p.ID.String()+"'s password"] = p.Password
		if p.Account != nil {
			secrets[p.ID.String()+"'s Twilio auth token"] = p.Account.AuthToken()
		}
	}
	log := w.bridgeLog()
	for what, secret := range secrets {
		if len(secret) >= 8 && strings.Contains(log, secret) {
			w.t.Errorf("the bridge log contains the %s", what)
		}
	}
	w.t.Logf("scanned %d KiB of bridge log for %d secrets", len(log)>>10, len(secrets))
}
