package e2ee_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"

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
	case strings.Contains(r.URL.Path, "/state/m.room.encryption"):
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"errcode":"M_NOT_FOUND","error":"no encryption"}`))
	default:
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"errcode":"M_UNRECOGNIZED","error":"not faked"}`))
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
