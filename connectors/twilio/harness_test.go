package twilio

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/bridgev2"
	"github.com/trestle-bridge/trestle/bridgev2/bridgeconfig"
	"github.com/trestle-bridge/trestle/bridgev2/bridgetest"
	"github.com/trestle-bridge/trestle/bridgev2/database"
	"github.com/trestle-bridge/trestle/bridgev2/networkid"
	"github.com/trestle-bridge/trestle/connectors/twilio/twiliosim"
)

// Test numbers: ours are Twilio's magic test numbers, theirs are valid
// San Francisco numbers in the fictional 555-01xx range.
const (
	ourNumber    = "+15005550006"
	ourNumber2   = "+15005550007"
	theirNumber  = "+14155550100"
	theirNumber2 = "+14155550101"
	alice        = id.UserID("@alice:example.com")
)

// ourLoginID is the login ID of ourNumber.
var ourLoginID = networkid.UserLoginID(idFromAddr(ourNumber))

// env is one test's world: the Twilio simulator with an account, and the
// bridge core running this connector against a fake homeserver.
type env struct {
	t    *testing.T
	sim  *twiliosim.Server
	acct *twiliosim.Account
	h    *bridgetest.Harness
}

// envOptions adjust newEnv.
type envOptions struct {
	// network is extra YAML for the network section (api_url is set).
	network string
	// numbers are the account's numbers; ourNumber by default.
	numbers []string
	// dialect is the bridge's database; SQLite by default.
	dialect database.Dialect
	// configure adjusts the bridge's config before it starts.
	configure func(*bridgeconfig.Config)
	// clock, if set, is the time of both the simulator and the connector.
	clock *twiliosim.ManualClock
	// tweak adjusts each connector before the bridge starts.
	tweak func(*Connector)
}

// newEnv starts the simulator and a bridge pointed at it.
func newEnv(t *testing.T, opts envOptions) *env {
	t.Helper()
	if opts.numbers == nil {
		opts.numbers = []string{ourNumber}
	}
	var sim *twiliosim.Server
	var acct *twiliosim.Account
	if opts.clock != nil {
		sim, acct = twiliosim.StartForTestWith(t, twiliosim.Options{Now: opts.clock.Now}, opts.numbers...)
	} else {
		sim, acct = twiliosim.StartForTest(t, opts.numbers...)
	}
	netCfg := "api_url: " + sim.URL() + "\nrequest_timeout: 5s\n" + opts.network
	if !strings.Contains(opts.network, "max_send_rate") {
		netCfg += "max_send_rate: 0\n"
	}
	newConn := newTestConnector
	if opts.tweak != nil || opts.clock != nil {
		newConn = func() bridgev2.NetworkConnector {
			c := newTestConnector().(*Connector)
			if opts.clock != nil {
				c.now = opts.clock.Now
			}
			if opts.tweak != nil {
				opts.tweak(c)
			}
			return c
		}
	}
	h := bridgetest.New(t, newConn, bridgetest.Options{NetworkConfig: netCfg, Dialect: opts.dialect, Configure: opts.configure})
	return &env{t: t, sim: sim, acct: acct, h: h}
}

// newTestConnector is New with timings short enough for tests.
func newTestConnector() bridgev2.NetworkConnector {
	c := New()
	c.reconnectBase = 20 * time.Millisecond
	c.reconnectMax = 200 * time.Millisecond
	return c
}

// conn returns the running connector.
func (e *env) conn() *Connector { return e.h.Network().(*Connector) }

// creds is the login form for the simulator's account.
func (e *env) creds() map[string]string {
	return map[string]string{"account_sid": e.acct.SID(), "auth_token": e.acct.AuthToken()}
}

// login logs alice in with ourNumber and waits until the login is
// connected and has caught up once.
func (e *env) login(inputs ...map[string]string) *bridgev2.UserLogin {
	e.t.Helper()
	if len(inputs) == 0 {
		inputs = []map[string]string{e.creds()}
	}
	ul := e.h.Login(alice, inputs...)
	e.waitCaughtUp(ul, 1)
	return ul
}

// client returns a login's Twilio client.
func twClient(ul *bridgev2.UserLogin) *Client { return ul.Client.(*Client) }

// waitCaughtUp waits until the login's client finished n catch-ups.
func (e *env) waitCaughtUp(ul *bridgev2.UserLogin, n int64) {
	e.t.Helper()
	e.eventually("catch-up", func() bool { return twClient(ul).catchUps.Load() >= n })
}

// waitState waits for a login state.
func (e *env) waitState(ul *bridgev2.UserLogin, st bridgev2.StateEvent) {
	e.t.Helper()
	e.eventually("login state "+string(st), func() bool { return ul.State().StateEvent == st })
}

// eventually polls cond for up to ten seconds.
func (e *env) eventually(what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// ctx is a test context with a deadline.
func (e *env) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	e.t.Cleanup(cancel)
	return ctx
}

// inbound sends a text from a phone to our number through the simulator's
// signed webhook and returns the result.
func (e *env) inbound(from, body string, media ...twiliosim.MediaFile) twiliosim.InboundResult {
	e.t.Helper()
	res, err := e.sim.SendInbound(e.ctx(), twiliosim.InboundMessage{From: from, To: ourNumber, Body: body, Media: media})
	if err != nil {
		e.t.Fatalf("inbound: %v", err)
	}
	return res
}

// portalRoom waits for the DM portal with a number, joins alice to it, and
// waits until the core has recorded the room (the fake homeserver has it
// a moment earlier), so that Matrix events sent to it are bridged.
func (e *env) portalRoom(remote string) id.RoomID {
	e.t.Helper()
	room := e.h.WaitForPortal(networkid.PortalKey{ID: networkid.PortalID(idFromAddr(remote)), Receiver: ourLoginID}, alice)
	e.eventually("portal recorded", func() bool {
		p, err := e.h.Bridge().GetPortalByRoom(e.ctx(), room)
		return err == nil && p != nil
	})
	return room
}

// waitMapped waits until a Matrix event's message mapping is stored, so
// replies and reactions to it can find it.
func (e *env) waitMapped(evtID id.EventID) {
	e.t.Helper()
	e.eventually("mapping of "+string(evtID), func() bool {
		_, err := e.h.Bridge().DB.Messages.GetByMXID(e.ctx(), evtID)
		return err == nil
	})
}

// ghost is the Matrix user of a remote number.
func (e *env) ghost(remote string) id.UserID {
	return e.h.Matrix.GhostUserID(userIDFromAddr(remote))
}

// messagesFrom returns the bodies of m.room.message events by sender.
func (e *env) messagesFrom(room id.RoomID, sender id.UserID) []string {
	var out []string
	for _, evt := range e.h.Matrix.Events(room) {
		if evt.Type == event.EventMessage && evt.Sender == sender {
			out = append(out, evt.Content.AsMessage().Body)
		}
	}
	return out
}

// post sends a raw webhook to the bridge and returns the status and body.
func (e *env) post(path string, form url.Values, header http.Header) (int, string) {
	e.t.Helper()
	return e.postTo(e.h.URL, path, form, header)
}

// postTo posts a form to path at the bridge process listening at base.
func (e *env) postTo(base, path string, form url.Values, header http.Header) (int, string) {
	e.t.Helper()
	req, err := http.NewRequestWithContext(e.ctx(), http.MethodPost, base+path, strings.NewReader(form.Encode()))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var sb strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp.StatusCode, sb.String()
}

// signed returns headers with a valid signature of form for path.
func (e *env) signed(path string, form url.Values) http.Header {
	h := http.Header{}
	h.Set("X-Twilio-Signature", twiliosim.Signature(e.acct.AuthToken(), e.h.URL+path, form))
	return h
}
