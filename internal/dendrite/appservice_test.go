package dendrite_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// fakeAppService is the receiving end of Dendrite's appservice pushes: it
// records every transaction that carries the right hs_token.
type fakeAppService struct {
	hsToken string

	mu      sync.Mutex
	changed chan struct{} // closed and replaced whenever something arrives
	txnIDs  []string
	events  []*event.Event
	badAuth int
	// otherKeys are transaction fields besides "events", such as
	// ephemeral events or to-device messages.
	otherKeys []string
}

func newFakeAppService(hsToken string) *fakeAppService {
	return &fakeAppService{hsToken: hsToken, changed: make(chan struct{})}
}

func (f *fakeAppService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	token := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	if token == "" {
		token = r.URL.Query().Get("access_token")
	}
	if token != f.hsToken {
		f.mu.Lock()
		f.badAuth++
		f.mu.Unlock()
		http.Error(w, `{"errcode":"M_FORBIDDEN"}`, http.StatusForbidden)
		return
	}
	txnID, ok := strings.CutPrefix(r.URL.Path, "/_matrix/app/v1/transactions/")
	if r.Method != http.MethodPut || !ok {
		// User and alias queries: this appservice knows of nobody.
		http.Error(w, `{"errcode":"M_NOT_FOUND"}`, http.StatusNotFound)
		return
	}
	var body map[string]json.RawMessage
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		http.Error(w, `{"errcode":"M_NOT_JSON"}`, http.StatusBadRequest)
		return
	}
	var events []*event.Event
	if err := json.Unmarshal(body["events"], &events); err != nil {
		http.Error(w, `{"errcode":"M_BAD_JSON"}`, http.StatusBadRequest)
		return
	}
	for _, evt := range events {
		_ = evt.Content.ParseRaw(evt.Type)
	}
	f.mu.Lock()
	f.txnIDs = append(f.txnIDs, txnID)
	f.events = append(f.events, events...)
	for key := range body {
		if key != "events" {
			f.otherKeys = append(f.otherKeys, key)
		}
	}
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
	_, _ = w.Write([]byte("{}"))
}

// waitFor returns the first pushed event that pred accepts, including events
// that arrived before the call.
func (f *fakeAppService) waitFor(ctx context.Context, what string, pred func(*event.Event) bool) (*event.Event, error) {
	for {
		f.mu.Lock()
		for _, evt := range f.events {
			if pred(evt) {
				f.mu.Unlock()
				return evt, nil
			}
		}
		changed, n := f.changed, len(f.events)
		f.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for the appservice to receive %s (got %d events): %w", what, n, ctx.Err())
		}
	}
}

// registration mirrors the YAML that mautrix's appservice.Registration
// writes. That package itself is not imported: it pulls in a websocket module
// that Trestle's go.sum does not list yet.
type registration struct {
	ID              string `yaml:"id"`
	URL             string `yaml:"url"`
	AppToken        string `yaml:"as_token"`
	ServerToken     string `yaml:"hs_token"`
	SenderLocalpart string `yaml:"sender_localpart"`
	RateLimited     bool   `yaml:"rate_limited"`
	Namespaces      struct {
		UserIDs []namespace `yaml:"users"`
	} `yaml:"namespaces"`
	// Dendrite ignores these, but a bridge writes them; they must not make
	// it reject the file.
	SoruEphemeralEvents bool `yaml:"de.sorunome.msc2409.push_ephemeral"`
	EphemeralEvents     bool `yaml:"receive_ephemeral"`
}

type namespace struct {
	Regex     string `yaml:"regex"`
	Exclusive bool   `yaml:"exclusive"`
}

// newRegistration returns a registration with fresh tokens for a bridge
// that owns @sms_*:localhost and has @smsbot:localhost as its bot.
func newRegistration() *registration {
	reg := &registration{
		ID:                  "trestle-test",
		AppToken:            "as_" + randomToken(),
		ServerToken:         "hs_" + randomToken(),
		SenderLocalpart:     "smsbot",
		SoruEphemeralEvents: true,
		EphemeralEvents:     true,
	}
	reg.Namespaces.UserIDs = []namespace{{Regex: "@sms_.*:localhost", Exclusive: true}}
	return reg
}

// writeRegistration saves reg, pointing at url, and returns its path.
func writeRegistration(t *testing.T, reg *registration, url string) string {
	t.Helper()
	reg.URL = url
	data, err := yaml.Marshal(reg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "registration.yaml")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatalf("saving the registration: %v", err)
	}
	return path
}

func randomToken() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// asClient returns a client that authenticates with the as_token and, for a
// ghost, masquerades as it with ?user_id=.
func asClient(t *testing.T, hsURL string, userID id.UserID, asToken string) *mautrix.Client {
	t.Helper()
	cli, err := mautrix.NewClient(hsURL, userID, asToken)
	if err != nil {
		t.Fatalf("creating the appservice client: %v", err)
	}
	cli.SetAppServiceUserID = true
	return cli
}

// registerGhost registers an appservice user the way bridges do.
func registerGhost(ctx context.Context, bot *mautrix.Client, localpart string) error {
	req := map[string]any{"type": mautrix.AuthTypeAppservice, "username": localpart, "inhibit_login": true}
	url := bot.BuildClientURL("v3", "register")
	_, err := bot.MakeRequest(ctx, http.MethodPost, url, req, nil)
	return err
}

func TestAppServiceAgainstDendrite(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()

	reg := newRegistration()
	as := newFakeAppService(reg.ServerToken)
	ts := httptest.NewServer(as)
	defer ts.Close()
	srv := startDendrite(t, writeRegistration(t, reg, ts.URL))

	versions, err := mautrix.NewClient(srv.URL, "", "")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := versions.Versions(ctx)
	if err != nil {
		t.Fatalf("GET /versions: %v", err)
	}
	t.Logf("Dendrite advertises spec versions %v and unstable features %v", resp.Versions, resp.UnstableFeatures)

	if err := srv.CreateUser(ctx, "alice", "alice-password", false); err != nil {
		t.Fatal(err)
	}
	alice, err := srv.Login(ctx, "alice", "alice-password")
	if err != nil {
		t.Fatal(err)
	}
	if alice.UserID != srv.UserID("alice") {
		t.Fatalf("logged in as %s, want %s", alice.UserID, srv.UserID("alice"))
	}

	bot := asClient(t, srv.URL, srv.UserID("smsbot"), reg.AppToken)
	// The bridge asks whoami both ways at startup; both must name the bot.
	for _, masquerade := range []bool{true, false} {
		bot.SetAppServiceUserID = masquerade
		who, err := bot.Whoami(ctx)
		if err != nil {
			t.Fatalf("whoami as the bot (user_id given: %v): %v", masquerade, err)
		}
		if who.UserID != bot.UserID {
			t.Errorf("whoami as the bot (user_id given: %v) says %s, want %s", masquerade, who.UserID, bot.UserID)
		}
	}

	t.Run("alice's messages reach the appservice", func(t *testing.T) {
		room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{
			Preset:   "trusted_private_chat",
			IsDirect: true,
			Invite:   []id.UserID{bot.UserID},
		})
		if err != nil {
			t.Fatalf("alice creating a DM with the bot: %v", err)
		}
		invite, err := as.waitFor(ctx, "the bot's invite", func(e *event.Event) bool {
			return e.RoomID == room.RoomID && e.Type == event.StateMember && e.GetStateKey() == bot.UserID.String()
		})
		if err != nil {
			t.Fatal(err)
		}
		if !invite.Content.AsMember().IsDirect {
			t.Errorf("the invite for the bot lacks is_direct: %s", invite.Content.VeryRaw)
		}
		if _, err := bot.JoinRoomByID(ctx, room.RoomID); err != nil {
			t.Fatalf("bot joining alice's DM: %v", err)
		}
		// A read receipt and typing from alice, which a homeserver that
		// pushes ephemeral events (MSC2409) would send to the bridge.
		if err := alice.SendReceipt(ctx, room.RoomID, invite.ID, event.ReceiptTypeRead, nil); err != nil {
			t.Errorf("alice sending a read receipt: %v", err)
		}
		if _, err := alice.UserTyping(ctx, room.RoomID, true, 10*time.Second); err != nil {
			t.Errorf("alice typing: %v", err)
		}
		sent, err := alice.SendText(ctx, room.RoomID, "hello bridge")
		if err != nil {
			t.Fatal(err)
		}
		got, err := as.waitFor(ctx, "alice's message", func(e *event.Event) bool { return e.ID == sent.EventID })
		if err != nil {
			t.Fatal(err)
		}
		if got.Sender != alice.UserID || got.Content.AsMessage().Body != "hello bridge" {
			t.Errorf("appservice got %s from %s, want alice's \"hello bridge\"", got.Content.VeryRaw, got.Sender)
		}
		as.mu.Lock()
		t.Logf("appservice transaction IDs so far: %v (requests with a bad token: %d)", as.txnIDs, as.badAuth)
		t.Logf("transaction fields besides events (ephemeral pushes would show here): %v", as.otherKeys)
		if as.badAuth > 0 {
			t.Errorf("Dendrite sent %d transactions without the hs_token", as.badAuth)
		}
		as.mu.Unlock()
	})

	t.Run("ghosts can be registered, masquerade and create DMs", func(t *testing.T) {
		if err := registerGhost(ctx, bot, "sms_15550001"); err != nil {
			t.Fatalf("registering a ghost: %v", err)
		}
		if err := registerGhost(ctx, bot, "sms_15550002"); err != nil {
			t.Fatalf("registering a second ghost: %v", err)
		}
		// Outside the namespace: must be refused.
		if err := registerGhost(ctx, bot, "notmine"); err == nil {
			t.Errorf("registering @notmine outside the appservice namespace succeeded")
		}
		ghost := asClient(t, srv.URL, srv.UserID("sms_15550001"), reg.AppToken)
		ghost2 := asClient(t, srv.URL, srv.UserID("sms_15550002"), reg.AppToken)

		// Creating a portal as the ghost, with a massaged timestamp and
		// an m.bridge state event, as a bridge does.
		createTS := time.Now().Add(-time.Hour).UnixMilli()
		url := ghost.BuildURLWithQuery(mautrix.ClientURLPath{"v3", "createRoom"}, map[string]string{"ts": fmt.Sprint(createTS)})
		var created mautrix.RespCreateRoom
		_, err := ghost.MakeRequest(ctx, http.MethodPost, url, &mautrix.ReqCreateRoom{
			Preset:   "private_chat",
			IsDirect: true,
			Invite:   []id.UserID{alice.UserID, bot.UserID},
			InitialState: []*event.Event{{
				Type:     event.StateBridge,
				StateKey: ptr("trestle://twilio/+15550001"),
				Content:  event.Content{Raw: map[string]any{"bridgebot": bot.UserID, "protocol": map[string]any{"id": "sms"}}},
			}},
		}, &created)
		if err != nil {
			t.Fatalf("ghost creating a DM with alice: %v", err)
		}
		var bridge map[string]any
		if err := alice.StateEvent(ctx, created.RoomID, event.StateBridge, "trestle://twilio/+15550001", &bridge); err == nil {
			t.Logf("QUIRK: alice can read the m.bridge state of a room she is only invited to")
		}
		if _, err := alice.JoinRoomByID(ctx, created.RoomID); err != nil {
			t.Fatalf("alice joining the ghost's DM: %v", err)
		}
		if _, err := bot.JoinRoomByID(ctx, created.RoomID); err != nil {
			t.Fatalf("bot joining the ghost's DM: %v", err)
		}
		if err := alice.StateEvent(ctx, created.RoomID, event.StateBridge, "trestle://twilio/+15550001", &bridge); err != nil {
			t.Errorf("reading the m.bridge state: %v", err)
		}
		createEvt, err := as.waitFor(ctx, "the portal's m.room.create", func(e *event.Event) bool {
			return e.RoomID == created.RoomID && e.Type == event.StateCreate
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("createRoom with ?ts=%d produced m.room.create at %d", createTS, createEvt.Timestamp)

		// The same transaction ID twice from the same ghost must give one
		// event; Dendrite keys its cache on the as_token, the txn ID and
		// the URL's directory (room and event type).
		massaged := time.Now().Add(-24 * time.Hour).UnixMilli()
		first, err := ghost.SendMessageEvent(ctx, created.RoomID, event.EventMessage,
			&event.MessageEventContent{MsgType: event.MsgText, Body: "SMS from yesterday"},
			mautrix.ReqSendEvent{TransactionID: "sms-1", Timestamp: massaged})
		if err != nil {
			t.Fatalf("ghost sending: %v", err)
		}
		again, err := ghost.SendMessageEvent(ctx, created.RoomID, event.EventMessage,
			&event.MessageEventContent{MsgType: event.MsgText, Body: "SMS from yesterday"},
			mautrix.ReqSendEvent{TransactionID: "sms-1", Timestamp: massaged})
		if err != nil {
			t.Fatalf("ghost resending: %v", err)
		}
		if again.EventID != first.EventID {
			t.Errorf("resending txn sms-1 gave %s, want the first event %s", again.EventID, first.EventID)
		}
		other, err := ghost2.SendMessageEvent(ctx, created.RoomID, event.EventMessage,
			&event.MessageEventContent{MsgType: event.MsgText, Body: "other ghost, same txn id"},
			mautrix.ReqSendEvent{TransactionID: "sms-1"})
		if err != nil {
			t.Fatalf("second ghost sending: %v", err)
		}
		// Dendrite quirk: the cache is per access token, and every ghost
		// shares the as_token, so another ghost reusing the ID gets the
		// first ghost's event back and its message is dropped.
		if other.EventID != first.EventID {
			t.Logf("txn IDs are scoped per masqueraded user (got a new event %s)", other.EventID)
		} else {
			t.Logf("QUIRK: txn IDs are scoped per as_token, not per ghost: ghost2's send with the same txn ID returned ghost1's event %s", first.EventID)
		}

		got, err := as.waitFor(ctx, "the ghost's message", func(e *event.Event) bool { return e.ID == first.EventID })
		if err != nil {
			t.Fatal(err)
		}
		if got.Sender != ghost.UserID {
			t.Errorf("message sender %s, want %s", got.Sender, ghost.UserID)
		}
		if got.Timestamp != massaged {
			t.Errorf("origin_server_ts %d, want the massaged %d", got.Timestamp, massaged)
		}

		// Timestamp massaging is not limited to appservices in Dendrite.
		plain, err := alice.SendMessageEvent(ctx, created.RoomID, event.EventMessage,
			&event.MessageEventContent{MsgType: event.MsgText, Body: "time travel"}, mautrix.ReqSendEvent{Timestamp: massaged})
		if err != nil {
			t.Fatal(err)
		}
		// Read it back from the appservice's transactions: Dendrite's
		// GET /event can answer 404 for an event it has just accepted.
		evt, err := as.waitFor(ctx, "alice's message with ?ts=", func(e *event.Event) bool { return e.ID == plain.EventID })
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("a normal user sending with ?ts=: origin_server_ts honoured: %v", evt.Timestamp == massaged)
	})

	t.Run("20 MB uploads are accepted", func(t *testing.T) {
		cfg, err := alice.GetMediaConfig(ctx)
		if err != nil {
			t.Fatalf("GET media config: %v", err)
		}
		if cfg.UploadSize < 20<<20 {
			t.Errorf("m.upload.size is %d, want at least 20 MiB", cfg.UploadSize)
		}
		data := make([]byte, 20<<20)
		for i := range data {
			data[i] = byte(i)
		}
		up, err := alice.UploadBytes(ctx, data, "application/octet-stream")
		if err != nil {
			t.Fatalf("uploading 20 MiB: %v", err)
		}
		back, err := alice.DownloadBytes(ctx, up.ContentURI)
		if err != nil {
			t.Fatalf("downloading %s: %v", up.ContentURI, err)
		}
		if len(back) != len(data) {
			t.Errorf("downloaded %d bytes, want %d", len(back), len(data))
		}
	})

	t.Run("an unregistered ghost cannot be masqueraded", func(t *testing.T) {
		nobody := asClient(t, srv.URL, srv.UserID("sms_unregistered"), reg.AppToken)
		_, err := nobody.Whoami(ctx)
		var httpErr mautrix.HTTPError
		if err == nil {
			t.Logf("whoami as an unregistered ghost succeeded")
		} else if errors.As(err, &httpErr) {
			t.Logf("whoami as an unregistered ghost: %v", err)
		}
	})
}

func ptr[T any](v T) *T { return &v }
