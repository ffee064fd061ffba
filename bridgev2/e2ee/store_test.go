package e2ee_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/bridgev2/database"
	"github.com/trestle-bridge/trestle/bridgev2/database/dbtest"
	"github.com/trestle-bridge/trestle/bridgev2/e2ee"
	crypto "github.com/trestle-bridge/trestle/internal/mautrixcrypto"
)

const pickleKey = "test-pickle-key-0123456789"

// reopen simulates a kill -9: the store is dropped without any flush and a
// new process loads whatever was committed.
func reopen(t *testing.T, dialect database.Dialect, uri, key string) (*e2ee.Store, error) {
	t.Helper()
	db, err := database.Open(context.Background(), dialect, uri, database.Options{Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return e2ee.NewStore(context.Background(), db, key)
}

func TestSessionStateSurvivesACrashWithoutReusingAMessageIndex(t *testing.T) {
	for _, dialect := range dbtest.Dialects() {
		t.Run(string(dialect), func(t *testing.T) {
			ctx := context.Background()
			uri := dbtest.URI(t, dialect)
			store, err := reopen(t, dialect, uri, pickleKey)
			if err != nil {
				t.Fatal(err)
			}
			account := crypto.NewOlmAccount()
			account.Shared = true
			if err := store.PutAccount(ctx, account); err != nil {
				t.Fatal(err)
			}
			room := id.RoomID("!portal:example.com")
			ogs, err := crypto.NewOutboundGroupSession(room, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			ogs.Shared = true
			if err := store.AddOutboundGroupSession(ctx, ogs); err != nil {
				t.Fatal(err)
			}
			// What the user's device got when the session was shared.
			userSide, err := crypto.NewInboundGroupSession("", "", room, ogs.Internal.Key(), 0, 0, nil, false)
			if err != nil {
				t.Fatal(err)
			}
			// The store commits an outbound session once per 32
			// messages, so 67 puts the crash between two commits.
			sent := make(map[uint]bool)
			for i := 0; i < 67; i++ {
				ciphertext, err := ogs.Encrypt([]byte("hello"))
				if err != nil {
					t.Fatal(err)
				}
				if err := store.UpdateOutboundGroupSession(ctx, ogs); err != nil {
					t.Fatal(err)
				}
				_, index, err := userSide.Internal.Decrypt(ciphertext)
				if err != nil {
					t.Fatal(err)
				}
				sent[index] = true
			}
			if err := store.PutDevices(ctx, "@alice:example.com", map[id.DeviceID]*id.Device{
				"PHONE": {UserID: "@alice:example.com", DeviceID: "PHONE", IdentityKey: "idkey"}}); err != nil {
				t.Fatal(err)
			}

			after, err := reopen(t, dialect, uri, pickleKey)
			if err != nil {
				t.Fatal(err)
			}
			acc, err := after.GetAccount(ctx)
			if err != nil || acc == nil {
				t.Fatalf("account lost: %v", err)
			}
			if _, idKey := acc.Keys(); idKey != account.IdentityKey() || !acc.Shared {
				t.Error("the bot device's identity changed across the restart")
			}
			reloaded, err := after.GetOutboundGroupSession(ctx, room)
			if err != nil || reloaded == nil {
				t.Fatalf("outbound session lost: %v", err)
			}
			if reloaded.ID() != ogs.ID() {
				t.Fatal("a new outbound session replaced the one messages went out under")
			}
			ciphertext, err := reloaded.Encrypt([]byte("after the crash"))
			if err != nil {
				t.Fatal(err)
			}
			plain, index, err := userSide.Internal.Decrypt(ciphertext)
			if err != nil || string(plain) != "after the crash" {
				t.Fatalf("the user cannot decrypt the message sent after the crash: %v", err)
			}
			if sent[index] {
				t.Errorf("message index %d was used again after the crash", index)
			}
			if tracked, _ := after.FilterTrackedUsers(ctx, []id.UserID{"@alice:example.com"}); len(tracked) != 1 {
				t.Error("the user's device list was forgotten")
			}

			if _, err := reopen(t, dialect, uri, "another-key-9876543210"); err == nil || !strings.Contains(err.Error(), "pickle_key") {
				t.Errorf("a changed pickle key: %v, want an error naming encryption.pickle_key", err)
			}
		})
	}
}

func TestInboundSessionsAndReplayGuardSurviveARestart(t *testing.T) {
	for _, dialect := range dbtest.Dialects() {
		t.Run(string(dialect), func(t *testing.T) {
			ctx := context.Background()
			uri := dbtest.URI(t, dialect)
			store, err := reopen(t, dialect, uri, pickleKey)
			if err != nil {
				t.Fatal(err)
			}
			room := id.RoomID("!portal:example.com")
			userOut, err := crypto.NewOutboundGroupSession(room, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			userOut.Shared = true
			igs, err := crypto.NewInboundGroupSession("senderkey", "signingkey", room, userOut.Internal.Key(), time.Hour, 100, nil, false)
			if err != nil {
				t.Fatal(err)
			}
			if err := store.PutGroupSession(ctx, igs); err != nil {
				t.Fatal(err)
			}
			if ok, err := store.ValidateMessageIndex(ctx, igs.ID(), "$first", 0, 1000); !ok || err != nil {
				t.Fatalf("first sighting refused: %v", err)
			}
			if ok, _ := store.ValidateMessageIndex(ctx, igs.ID(), "$other", 0, 1500); ok {
				t.Error("a replayed message index was accepted before the first one's seal was committed")
			}
			// Until the core commits the event's seal, nothing of it is
			// stored: the event has not reached the remote network yet.
			if unsealed, err := reopen(t, dialect, uri, pickleKey); err != nil {
				t.Fatal(err)
			} else if ok, _ := unsealed.ValidateMessageIndex(ctx, igs.ID(), "$first", 0, 1000); !ok {
				t.Error("the message index was stored before its seal was committed")
			}
			if err := e2ee.CommitSeal(ctx, store, "$first"); err != nil {
				t.Fatal(err)
			}
			ciphertext, err := userOut.Encrypt([]byte("reply"))
			if err != nil {
				t.Fatal(err)
			}

			after, err := reopen(t, dialect, uri, pickleKey)
			if err != nil {
				t.Fatal(err)
			}
			got, err := after.GetGroupSession(ctx, room, igs.ID())
			if err != nil || got == nil {
				t.Fatalf("inbound session lost: %v", err)
			}
			if plain, _, err := got.Internal.Decrypt(ciphertext); err != nil || string(plain) != "reply" {
				t.Errorf("the user's message does not decrypt after a restart: %q %v", plain, err)
			}
			if got.SenderKey != "senderkey" || got.MaxMessages != 100 {
				t.Errorf("session metadata lost: %+v", got)
			}
			if ok, _ := after.ValidateMessageIndex(ctx, igs.ID(), "$replayed", 0, 2000); ok {
				t.Error("a replayed message index was accepted after a restart")
			}
		})
	}
}
