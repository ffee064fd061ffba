package reliability_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	// The bridge's own drivers, to look into its database from the outside.
	_ "github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"

	"github.com/trestle-bridge/trestle/bridgev2/database/dbtest"
	"github.com/trestle-bridge/trestle/connectors/twilio/twiliosim"
	"github.com/trestle-bridge/trestle/internal/matrixtest"
	"github.com/trestle-bridge/trestle/internal/rig"
)

// world is one test's environment: Dendrite, the Twilio simulator and the
// bridge binary, with helpers to act as the people on either side and to
// look at what each side ended up with.
type world struct {
	t   *testing.T
	env *rig.Env
	// dbType and dbURI are the bridge's store.
	dbType, dbURI string
	// pgApp is the application_name of the bridge's PostgreSQL
	// connections, so a test can cut exactly those.
	pgApp   string
	numbers atomic.Int64
	users   atomic.Int64
	// encrypted is set when the bridge runs with encryption.allow: people
	// then have their own encryption and encrypt what they send.
	encrypted bool
}

// newWorld starts a fresh environment for t with the given config edits on
// top of the reliability defaults.
func newWorld(t *testing.T, edits map[string]any) *world {
	t.Helper()
	return newCluster(t, edits, 1)
}

// newCluster is newWorld with several bridge processes of one bridge
// behind a load balancer (PostgreSQL only).
func newCluster(t *testing.T, edits map[string]any, processes int) *world {
	t.Helper()
	if testing.Short() {
		t.Skip("skipping: needs Dendrite and the bridge binary, which -short leaves out")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	w := &world{t: t}
	opts := rig.EnvOptions{Dir: t.TempDir(), Processes: processes, ConfigEdits: map[string]any{
		// Load tests send far faster than a long code's 1/s.
		"network.max_send_rate": 0,
		// Short enough that an outage shows within a test's patience.
		"network.request_timeout": "5s",
		"bridge.shutdown_timeout": "10s",
	}}
	for k, v := range edits {
		opts.ConfigEdits[k] = v
	}
	w.encrypted = edits["encryption.allow"] == true
	if base := os.Getenv(dbtest.PostgresEnv); base != "" {
		uri, drop, err := dbtest.FreshPostgresSchema(base)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(drop)
		w.pgApp = fmt.Sprintf("trestle_reliability_%d", time.Now().UnixNano())
		bridgeURI := withParam(uri, "application_name", w.pgApp)
		opts.DatabaseType, opts.DatabaseURI = "postgres", bridgeURI
		w.dbType, w.dbURI = "postgres", uri
	} else {
		w.dbType, w.dbURI = "sqlite", filepath.Join(opts.Dir, "trestle.db")
	}
	env, err := rig.StartEnv(ctx, opts)
	if err != nil {
		if env != nil && env.Bridge != nil {
			t.Logf("bridge log:\n%s", env.Bridge.LogTail(40))
		}
		t.Fatalf("starting the environment: %v", err)
	}
	w.env = env
	t.Cleanup(func() {
		env.Close()
		if t.Failed() {
			for _, b := range env.Bridges {
				keepLog(t, b.LogPath)
			}
		}
	})
	return w
}

// withParam adds a connection parameter to a PostgreSQL URL or DSN.
func withParam(uri, key, value string) string {
	if u, err := url.Parse(uri); err == nil && u.Scheme != "" {
		q := u.Query()
		q.Set(key, value)
		u.RawQuery = q.Encode()
		return u.String()
	}
	return strings.TrimSpace(uri) + " " + key + "=" + value
}

// keepLog copies the bridge log of a failed test out of its temporary
// directory, for the post-mortem, and says where it is.
func keepLog(t *testing.T, path string) {
	data, err := os.ReadFile(path)
	if err != nil {
		return
	}
	kept := filepath.Join(os.TempDir(), "trestle-reliability-"+strings.ReplaceAll(t.Name(), "/", "_")+"-"+filepath.Base(path))
	if os.WriteFile(kept, data, 0o600) == nil {
		t.Logf("bridge log kept at %s", kept)
	}
}

// ctx is a context for one step of a test.
func (w *world) ctx() context.Context {
	c, cancel := context.WithTimeout(w.t.Context(), 2*time.Minute)
	w.t.Cleanup(cancel)
	return c
}

// number returns a fresh valid US number (the 555-01xx range is fictional).
func (w *world) number() string {
	n := w.numbers.Add(1)
	return fmt.Sprintf("+1%03d55501%02d", 201+n/100, n%100)
}

// bot is the bridge bot.
func bot() id.UserID { return id.NewUserID("twiliobot", "localhost") }

// ghost is the Matrix puppet of a phone number.
func ghost(e164 string) id.UserID {
	return id.NewUserID("twilio_"+strings.TrimPrefix(e164, "+"), "localhost")
}

// person is a Matrix user of the bridge with a Twilio account of their own.
type person struct {
	w *world
	*matrixtest.T
	ID       id.UserID
	Password string
	Mgmt     id.RoomID
	Account  *twiliosim.Account
	// Number is the person's Twilio number, E.164.
	Number string
}

// newPerson creates a Matrix account (on the bridge's server unless a
// localpart with another role is asked for), a Twilio account with one SMS
// number, and opens the DM with the bot, which becomes the management room.
func (w *world) newPerson(localpart string) *person {
	w.t.Helper()
	if localpart == "" {
		localpart = fmt.Sprintf("user%d", w.users.Add(1))
	}
	password := "password-" + localpart
	cli, err := w.env.NewUser(w.ctx(), localpart, password)
	if err != nil {
		w.t.Fatal(err)
	}
	p := &person{w: w, T: matrixtest.StartForTest(w.t, cli, matrixtest.Options{AutoJoin: true, Crypto: w.encrypted}), ID: cli.UserID, Password: password}
	p.Timeout = time.Minute
	if p.Account, err = w.env.Sim.AddAccount("", ""); err != nil {
		w.t.Fatal(err)
	}
	p.Number = w.number()
	if _, err := p.Account.AddNumber(p.Number, twiliosim.Capabilities{SMS: true, MMS: true}); err != nil {
		w.t.Fatal(err)
	}
	p.Mgmt = p.DM(bot())
	p.WaitForMessage(p.Mgmt, bot(), "")
	return p
}

// command sends a command in the management room and returns the bot's
// reply containing want.
func (p *person) command(text, want string) *event.Event {
	p.w.t.Helper()
	sent := p.Send(p.Mgmt, text)
	return p.WaitForMessageAfter(p.Mgmt, sent, bot(), want)
}

// login logs in through the bot as a person would, answering each question.
func (p *person) login() {
	p.w.t.Helper()
	p.command("login", "send your **Account SID**")
	p.command(p.Account.SID(), "auth token")
	p.command(p.Account.AuthToken(), "Logged in")
	// The number's webhook now points at the bridge.
	if _, err := p.Account.SMSURL(p.Number); err != nil {
		p.w.t.Fatal(err)
	}
}

// portalFor waits for the invite to the portal with a remote number and for
// the person to have joined it.
func (p *person) portalFor(remote string) id.RoomID {
	p.w.t.Helper()
	inv := p.WaitForInvite(func(inv *matrixtest.Invite) bool { return inv.Sender == ghost(remote) })
	p.WaitForMembership(inv.RoomID, p.ID, event.MembershipJoin)
	return inv.RoomID
}

// textFrom sends an SMS from a remote phone to the person's number.
func (p *person) textFrom(remote, body string, media ...twiliosim.MediaFile) twiliosim.InboundResult {
	p.w.t.Helper()
	res, err := p.w.env.Sim.SendInbound(p.w.ctx(), twiliosim.InboundMessage{From: remote, To: p.Number, Body: body, Media: media})
	if err != nil {
		p.w.t.Fatal(err)
	}
	return res
}

// openPortal has a remote phone text the person and returns the portal room
// once the text is in it.
func (p *person) openPortal(remote, firstText string) id.RoomID {
	p.w.t.Helper()
	if res := p.textFrom(remote, firstText); res.Response.StatusCode != http.StatusOK {
		p.w.t.Fatalf("webhook answered %d: %s", res.Response.StatusCode, res.Response.Body)
	}
	room := p.portalFor(remote)
	p.WaitForMessage(room, ghost(remote), firstText)
	return room
}

// waitStatus waits for a message status event about eventID that pred
// accepts.
func (p *person) waitStatus(room id.RoomID, eventID id.EventID, pred func(*event.BeeperMessageStatusEventContent) bool) *event.BeeperMessageStatusEventContent {
	p.w.t.Helper()
	evt := p.WaitForEvent(room, func(e *event.Event) bool {
		c, ok := statusContent(e)
		return ok && c.RelatesTo.EventID == eventID && pred(c)
	})
	c, _ := statusContent(evt)
	return c
}

// statusContent returns the message status in e, if it is one.
func statusContent(e *event.Event) (*event.BeeperMessageStatusEventContent, bool) {
	if e.Type != event.BeeperMessageStatus {
		return nil, false
	}
	if e.Content.Parsed == nil {
		_ = e.Content.ParseRaw(e.Type)
	}
	c, ok := e.Content.Parsed.(*event.BeeperMessageStatusEventContent)
	return c, ok
}

// statuses lists the message statuses about eventID the person has seen,
// oldest first.
func (p *person) statuses(room id.RoomID, eventID id.EventID) []*event.BeeperMessageStatusEventContent {
	var out []*event.BeeperMessageStatusEventContent
	for _, e := range p.Events(room) {
		if c, ok := statusContent(e); ok && c.RelatesTo.EventID == eventID {
			out = append(out, c)
		}
	}
	return out
}

// sendText sends a Matrix text with a fixed transaction ID, retrying while
// the homeserver is unreachable, as a client with an outbox does.
func (p *person) sendText(ctx context.Context, room id.RoomID, txnID, text string) (id.EventID, error) {
	evtType, content := event.EventMessage, any(&event.MessageEventContent{MsgType: event.MsgText, Body: text})
	sealed := false
	for {
		var err error
		if !sealed {
			// Sealed once: a retry sends the same ciphertext under the
			// same transaction ID, as a client's outbox would.
			if evtType, content, err = p.Seal(ctx, room, event.EventMessage, content); err == nil {
				sealed = true
			}
		}
		var resp *mautrix.RespSendEvent
		if sealed {
			resp, err = p.Matrix.SendMessageEvent(ctx, room, evtType, content, mautrix.ReqSendEvent{TransactionID: txnID})
		}
		if err == nil {
			return resp.EventID, nil
		}
		var httpErr mautrix.HTTPError
		if errors.As(err, &httpErr) && httpErr.Response != nil && httpErr.Response.StatusCode < 500 {
			return "", err
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("sending %q: %w (last error: %v)", text, ctx.Err(), err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// timeline reads a room's whole timeline from the homeserver with
// /messages, oldest first: the authoritative record, independent of what
// the person's sync loop happened to see.
func timeline(ctx context.Context, cli *mautrix.Client, room id.RoomID) ([]*event.Event, error) {
	var newestFirst []*event.Event
	from := ""
	for range 1000 {
		page, err := cli.Messages(ctx, room, from, "", mautrix.DirectionBackward, nil, 500)
		if err != nil {
			return nil, fmt.Errorf("reading the timeline of %s: %w", room, err)
		}
		newestFirst = append(newestFirst, page.Chunk...)
		if len(page.Chunk) == 0 || page.End == "" || page.End == from {
			break
		}
		from = page.End
	}
	out := make([]*event.Event, len(newestFirst))
	for i, e := range newestFirst {
		out[len(out)-1-i] = e
	}
	return out, nil
}

// joinedTimelines reads the timelines of every room the client is in.
func joinedTimelines(ctx context.Context, cli *mautrix.Client) (map[id.RoomID][]*event.Event, error) {
	joined, err := cli.JoinedRooms(ctx)
	if err != nil {
		return nil, err
	}
	out := map[id.RoomID][]*event.Event{}
	for _, room := range joined.JoinedRooms {
		if out[room], err = timeline(ctx, cli, room); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// allTimelines merges, for every room the person is in, the events the
// homeserver lists with /messages and those the person's client received by
// /sync (in /sync order, events only /messages knows appended), each event
// once. It also returns how many events only /sync had: Dendrite's
// /messages can skip events after it crashed, and a text the user received
// is not lost.
func (p *person) allTimelines() (map[id.RoomID][]*event.Event, int) {
	p.w.t.Helper()
	listed, err := joinedTimelines(p.w.ctx(), p.Matrix)
	if err != nil {
		p.w.t.Fatal(err)
	}
	onlySync := 0
	out := map[id.RoomID][]*event.Event{}
	for room, fromMessages := range listed {
		known := map[id.EventID]bool{}
		inMessages := map[id.EventID]bool{}
		for _, e := range fromMessages {
			inMessages[e.ID] = true
		}
		for _, e := range p.Events(room) {
			if !known[e.ID] {
				known[e.ID] = true
				out[room] = append(out[room], e)
				if !inMessages[e.ID] && e.Type == event.EventMessage {
					onlySync++
				}
			}
		}
		for _, e := range fromMessages {
			if !known[e.ID] {
				known[e.ID] = true
				out[room] = append(out[room], e)
			}
		}
		if p.w.encrypted {
			// /messages lists encrypted events as they are; the client
			// decrypts them as it would on scrolling back.
			for i, e := range out[room] {
				if e.Type != event.EventEncrypted {
					continue
				}
				if decrypted, err := p.Decrypt(p.w.ctx(), e); err == nil {
					out[room][i] = decrypted
				}
			}
		}
	}
	return out, onlySync
}

// body is a message's text, "" for anything else.
func body(e *event.Event) string {
	if e.Type != event.EventMessage {
		return ""
	}
	if e.Content.Parsed == nil {
		_ = e.Content.ParseRaw(e.Type)
	}
	if m, ok := e.Content.Parsed.(*event.MessageEventContent); ok {
		return m.Body
	}
	return ""
}

// bridgeLog returns the bridge's whole log so far.
func (w *world) bridgeLog() string {
	data, err := os.ReadFile(w.env.Bridge.LogPath)
	if err != nil {
		w.t.Fatal(err)
	}
	return string(data)
}

// logLines returns the bridge's log lines that contain every one of words.
func (w *world) logLines(words ...string) []string {
	var out []string
	for _, line := range strings.Split(w.bridgeLog(), "\n") {
		match := true
		for _, word := range words {
			if !strings.Contains(line, word) {
				match = false
				break
			}
		}
		if match && line != "" {
			out = append(out, line)
		}
	}
	return out
}

// waitReady polls /_trestle/ready until it answers 200.
func (w *world) waitReady(ctx context.Context) error {
	cl := &http.Client{Timeout: 5 * time.Second}
	for {
		resp, err := cl.Get(w.env.BridgeURL + "/_trestle/ready")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("bridge not ready: %w (last: %v)", ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// assertHealthy checks that the bridge process is still the one that was
// started, answers /_trestle/ready, and never logged a panic, recovered or
// not.
func (w *world) assertHealthy() {
	w.t.Helper()
	if !w.env.Bridge.Running() {
		w.t.Fatalf("the bridge process exited; log tail:\n%s", w.env.Bridge.LogTail(40))
	}
	if err := w.waitReady(w.ctx()); err != nil {
		w.t.Fatal(err)
	}
	if lines := w.logLines("panic"); len(lines) > 0 {
		w.t.Fatalf("the bridge logged a panic:\n%s", strings.Join(lines, "\n"))
	}
}

// db opens the bridge's database for the test to look into.
func (w *world) db() *sql.DB {
	w.t.Helper()
	driver, dsn := "pgx", w.dbURI
	if w.dbType == "sqlite" {
		driver, dsn = "sqlite", "file:"+w.dbURI+"?_pragma=busy_timeout(10000)"
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		w.t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	w.t.Cleanup(func() { _ = db.Close() })
	return db
}

// count runs a COUNT query against the bridge's database.
func (w *world) count(db *sql.DB, query string, args ...any) int {
	w.t.Helper()
	var n int
	if err := db.QueryRowContext(w.ctx(), query, args...).Scan(&n); err != nil {
		w.t.Fatalf("%s: %v", query, err)
	}
	return n
}

// openJournalRows counts work the bridge still holds: inbound events not
// yet in Matrix and outbound events not yet sent or failed.
func (w *world) openJournalRows(db *sql.DB) (inbound, outbound int) {
	return w.count(db, "SELECT COUNT(*) FROM inbound_event WHERE state='pending'"),
		w.count(db, "SELECT COUNT(*) FROM outbound_event WHERE state IN ('pending', 'sending')")
}

// waitJournalsDrained waits until the bridge holds no open journal rows.
func (w *world) waitJournalsDrained(ctx context.Context, db *sql.DB) error {
	for {
		in, out := w.openJournalRows(db)
		if in == 0 && out == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("journals not drained: %d inbound and %d outbound rows open: %w", in, out, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}
