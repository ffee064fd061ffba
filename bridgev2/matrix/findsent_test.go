package matrix_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/trestle-bridge/trestle/bridgev2"
	"github.com/trestle-bridge/trestle/bridgev2/bridgetest"
	"github.com/trestle-bridge/trestle/bridgev2/matrix"
)

// FindSent reads the room's newest message events as the bot and picks the
// one carrying the transaction marker.
func TestFindSentLooksForTheTransactionMarkerInTheNewestMessages(t *testing.T) {
	var query string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/_matrix/client/v3/rooms/!room:example.com/messages" {
			query = r.URL.RawQuery
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"chunk":[
				{"event_id":"$other","type":"m.room.message","room_id":"!room:example.com","sender":"@a:example.com","content":{"body":"x","net.trestle.txn_id":"trestle_other"}},
				{"event_id":"$mine","type":"m.room.message","room_id":"!room:example.com","sender":"@a:example.com","content":{"body":"y","net.trestle.txn_id":"trestle_mine"}}
			],"start":"s1","end":"s0"}`))
			return
		}
		http.Error(w, `{"errcode":"M_UNAVAILABLE"}`, http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	cfg := bridgetest.Config()
	cfg.Homeserver.Address = srv.URL
	hs, err := matrix.NewHomeserver(cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	got, err := hs.FindSent(ctx, "!room:example.com", "trestle_mine", 100)
	if err != nil || got != "$mine" {
		t.Fatalf("FindSent = %q, %v; want $mine", got, err)
	}
	if !strings.Contains(query, "dir=b") || !strings.Contains(query, "limit=100") || !strings.Contains(query, "user_id=") {
		t.Errorf("query %q should read backwards, 100 events, as the bot", query)
	}
	if got, err := hs.FindSent(ctx, "!room:example.com", "trestle_absent", 100); err != nil || got != "" {
		t.Fatalf("FindSent of an absent marker = %q, %v; want nothing", got, err)
	}
	_, err = hs.FindSent(ctx, "!elsewhere:example.com", "trestle_mine", 100)
	var be *bridgev2.Error
	if !errors.As(err, &be) || !be.Retriable {
		t.Fatalf("an unavailable homeserver gave %v, want a retriable error", err)
	}
}
