package e2ee_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/bridgev2"
	"github.com/trestle-bridge/trestle/bridgev2/bridgetest"
	"github.com/trestle-bridge/trestle/bridgev2/database"
	"github.com/trestle-bridge/trestle/bridgev2/database/dbtest"
	"github.com/trestle-bridge/trestle/bridgev2/e2ee"
)

// fakeDeviceAPI is the part of a homeserver behind Matrix Authentication
// Service the bot's device needs with MSC4190: device creation by the
// appservice, key upload, room state.
type fakeDeviceAPI struct {
	mu       sync.Mutex
	requests []string
	uploads  []map[string]any
}

func (f *fakeDeviceAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, r.Method+" "+r.URL.Path+"?"+r.URL.RawQuery+" auth="+strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.Method == http.MethodPut && strings.HasPrefix(r.URL.Path, "/_matrix/client/v3/devices/"):
		_, _ = w.Write([]byte(`{}`))
	case r.URL.Path == "/_matrix/client/v3/keys/upload":
		var body map[string]any
		_ = json.NewDecoder(r.Body).Decode(&body)
		f.uploads = append(f.uploads, body)
		_, _ = w.Write([]byte(`{"one_time_key_counts":{"signed_curve25519":50}}`))
	case r.URL.Path == "/_matrix/client/v3/keys/query":
		_, _ = w.Write([]byte(`{"device_keys":{}}`))
	case strings.HasPrefix(r.URL.Path, "/_matrix/client/v3/sendToDevice/"):
		_, _ = w.Write([]byte(`{}`))
	case strings.HasSuffix(r.URL.Path, "/members"):
		_, _ = w.Write([]byte(`{"chunk":[]}`))
	case strings.Contains(r.URL.Path, "/state/m.room.encryption"):
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"errcode":"M_NOT_FOUND","error":"no encryption"}`))
	default:
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"errcode":"M_UNRECOGNIZED","error":"not faked"}`))
	}
}

// startDevice brings up a bot device against the fake API.
func startDevice(t testing.TB, fake *fakeDeviceAPI) (*e2ee.E2EE, *bridgetest.FakeMatrix, *database.Database) {
	t.Helper()
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	cfg := bridgetest.Config()
	cfg.Homeserver.Address = srv.URL
	cfg.Encryption.Allow, cfg.Encryption.MSC4190, cfg.Encryption.Appservice = true, true, true
	cfg.Encryption.PickleKey = pickleKey
	db := dbtest.Open(t, database.SQLite, database.MetaTypes{})
	e, err := e2ee.New(context.Background(), e2ee.Options{Config: cfg, DB: db, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); e.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return e, bridgetest.NewFakeMatrix(cfg), db
}

func TestAfterTheUserTurnsEncryptionOnTheBridgeSendsEncrypted(t *testing.T) {
	e, fake, _ := startDevice(t, &fakeDeviceAPI{})
	ctx := context.Background()
	bot := fake.BotUserID()
	if err := fake.EnsureRegistered(ctx, bot); err != nil {
		t.Fatal(err)
	}
	room := fake.CreateUserRoom("@alice:example.com", bot)
	fake.JoinAsUser(room, bot)
	mx := e.Wrap(fake)
	send := func(text, txn string) *event.Event {
		t.Helper()
		content := &event.Content{Parsed: &event.MessageEventContent{MsgType: event.MsgText, Body: text},
			Raw: map[string]any{bridgev2.TxnMarkerKey: txn}}
		if _, err := mx.SendMessage(ctx, bot, room, event.EventMessage, content, txn, time.Time{}); err != nil {
			t.Fatal(err)
		}
		events := fake.Events(room)
		return events[len(events)-1]
	}
	if evt := send("before", "txn-1"); evt.Type != event.EventMessage {
		t.Fatalf("in an unencrypted room the bridge sent %s, want plaintext", evt.Type.Type)
	}
	on := &event.Event{Type: event.StateEncryption, RoomID: room, Sender: "@alice:example.com", StateKey: new(string),
		Content: event.Content{Parsed: &event.EncryptionEventContent{Algorithm: id.AlgorithmMegolmV1}}}
	e.HandleRoomEvent(ctx, on)
	evt := send("after", "txn-2")
	if evt.Type != event.EventEncrypted {
		t.Fatalf("after encryption was turned on the bridge sent %s, want m.room.encrypted", evt.Type.Type)
	}
	if strings.Contains(string(evt.Content.VeryRaw), "after") {
		t.Error("the encrypted event carries its text in plaintext")
	}
	// A send whose answer was lost is still recognised in the room.
	finder := mx.(bridgev2.EventFinder)
	if found, err := finder.FindSent(ctx, room, "txn-2", 10); err != nil || found != evt.ID {
		t.Errorf("FindSent(txn-2) = %q, %v; want the encrypted event %s", found, err, evt.ID)
	}
}

func TestWithMSC4190TheBotsDeviceIsCreatedByTheAppserviceAndItsKeysUploaded(t *testing.T) {
	fake := &fakeDeviceAPI{}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	cfg := bridgetest.Config()
	cfg.Homeserver.Address = srv.URL
	cfg.Encryption.Allow, cfg.Encryption.MSC4190, cfg.Encryption.Appservice = true, true, true
	cfg.Encryption.PickleKey = pickleKey
	db := dbtest.Open(t, database.SQLite, database.MetaTypes{})
	e, err := e2ee.New(context.Background(), e2ee.Options{Config: cfg, DB: db, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { defer close(done); e.Run(ctx) }()
	// IsEncrypted waits for the device.
	if encrypted, err := e.IsEncrypted(ctx, "!room:example.com"); err != nil || encrypted {
		t.Fatalf("IsEncrypted = %v, %v; want false once the device is up", encrypted, err)
	}
	// With encryption.appservice, to-device events come in transactions:
	// Run returns after setting the device up, without a /sync loop.
	<-done

	fake.mu.Lock()
	defer fake.mu.Unlock()
	deviceID, _ := db.Crypto.Get(context.Background(), "device", "")
	if deviceID == "" {
		t.Fatal("the device ID was not stored")
	}
	var created, synced bool
	for _, req := range fake.requests {
		if strings.HasPrefix(req, "PUT /_matrix/client/v3/devices/"+deviceID+"?") && strings.Contains(req, "user_id=%40bridgebot%3Aexample.com") &&
			strings.HasSuffix(req, "auth="+cfg.AppService.ASToken) {
			created = true
		}
		if strings.Contains(req, "/sync") || strings.Contains(req, "/login") {
			synced = true
		}
	}
	if !created {
		t.Errorf("the device was not created with the appservice token (MSC4190); requests: %q", fake.requests)
	}
	if synced {
		t.Errorf("the device logged in or synced although MSC4190 and appservice mode need neither: %q", fake.requests)
	}
	if len(fake.uploads) == 0 {
		t.Fatal("no keys were uploaded")
	}
	keys, _ := fake.uploads[0]["device_keys"].(map[string]any)
	if keys["device_id"] != deviceID || keys["user_id"] != "@bridgebot:example.com" {
		t.Errorf("uploaded device keys are for %v/%v, want @bridgebot:example.com/%s", keys["user_id"], keys["device_id"], deviceID)
	}
}
