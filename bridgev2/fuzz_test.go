package bridgev2_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/trestle-bridge/trestle/bridgev2/bridgetest"
	"github.com/trestle-bridge/trestle/bridgev2/bridgetest/testnet"
)

// FuzzHandleTransaction feeds arbitrary events to the transaction handler:
// whatever a homeserver (or an attacker holding the hs_token) sends, the
// bridge must answer without panicking, and malformed events are skipped
// rather than failing the whole transaction forever.
func FuzzHandleTransaction(f *testing.F) {
	for _, seed := range []string{
		`[{"event_id":"$a","room_id":"!r:example.com","sender":"@alice:example.com","type":"m.room.message","content":{"msgtype":"m.text","body":"hi"}}]`,
		`[{"event_id":"$b","room_id":"!r:example.com","sender":"@alice:example.com","type":"m.reaction","content":{"m.relates_to":{"rel_type":"m.annotation","event_id":"$a","key":"👍"}}}]`,
		`[{"event_id":"$c","room_id":"!r:example.com","sender":"@alice:example.com","type":"m.room.redaction","redacts":"$a","content":{}}]`,
		`[{"event_id":"$d","room_id":"!r:example.com","sender":"@alice:example.com","type":"m.room.member","state_key":"@bridgebot:example.com","content":{"membership":"invite","is_direct":true}}]`,
		`[{"event_id":"$e","room_id":"!r:example.com","sender":"@alice:example.com","type":"m.room.message","content":{"msgtype":"m.text","body":"!test help","m.relates_to":{"rel_type":"m.replace"}}}]`,
		`[{"type":"m.room.message","content":"not an object"}]`,
		`[null, 1, "x", {}]`,
		`{"events":"wrong shape"}`,
		"\xff\xfe invalid utf-8",
	} {
		f.Add([]byte(seed))
	}
	remote := testnet.NewRemote()
	// The test log writer may not be used from inside a fuzz target.
	quiet := zerolog.Nop()
	h := bridgetest.New(f, remote.Connector, bridgetest.Options{Log: &quiet})
	n := 0
	f.Fuzz(func(t *testing.T, body []byte) {
		var events []json.RawMessage
		if err := json.Unmarshal(body, &events); err != nil {
			events = []json.RawMessage{body}
		}
		n++
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		start := time.Now()
		if err := h.Bridge().HandleTransaction(ctx, fmt.Sprint("fuzz-", n), events, nil); err != nil {
			t.Fatalf("transaction was refused instead of skipping bad events: %v", err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("transaction took %v", d)
		}
	})
}
