package bridgev2_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/trestle-bridge/trestle/bridgev2"
	"github.com/trestle-bridge/trestle/bridgev2/bridgetest"
	"github.com/trestle-bridge/trestle/bridgev2/bridgetest/testnet"
	"github.com/trestle-bridge/trestle/bridgev2/networkid"
)

// The core's per-message intake costs, each ending in a durable commit.
// Run with: go test -run '^$' -bench . -benchmem ./bridgev2/

func benchHarness(b *testing.B) (*bridgetest.Harness, *testnet.Remote, *bridgev2.UserLogin) {
	quiet := zerolog.Nop()
	remote := testnet.NewRemote()
	h := bridgetest.New(b, remote.Connector, bridgetest.Options{Log: &quiet})
	login := h.Login(alice, map[string]string{"username": "alice1", "token": "secret"})
	return h, remote, login
}

// BenchmarkIngestRemoteMessage journals a remote message (what a webhook
// waits for before it answers), from many portals at once.
func BenchmarkIngestRemoteMessage(b *testing.B) {
	h, remote, login := benchHarness(b)
	ctx := h.Ctx()
	b.ReportAllocs()
	b.SetParallelism(32)
	var seq = make(chan int, 1)
	seq <- 0
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n := <-seq
			seq <- n + 1
			_, err := remote.Receive(ctx, &bridgev2.RemoteEvent{
				Kind: bridgev2.RemoteMessage, ID: networkid.MessageID(fmt.Sprint("m", n)),
				Portal: networkid.PortalKey{ID: networkid.PortalID(fmt.Sprint("c", n%1000)), Receiver: login.ID},
				Sender: bridgev2.EventSender{Sender: networkid.UserID(fmt.Sprint("c", n%1000))}, Timestamp: time.Now(),
				Parts: []bridgev2.MessagePart{{Text: "hello there"}},
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkHandleTransaction parses, filters and journals a homeserver
// transaction of 50 messages (what the homeserver waits for).
func BenchmarkHandleTransaction(b *testing.B) {
	h, _, _ := benchHarness(b)
	ctx := h.Ctx()
	events := make([]json.RawMessage, 50)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		for j := range events {
			events[j] = json.RawMessage(fmt.Sprintf(`{"event_id":"$e%d_%d","room_id":"!notaportal:example.com","sender":"@alice:example.com","type":"m.room.message","origin_server_ts":1,"content":{"msgtype":"m.text","body":"hello %d"}}`, i, j, j))
		}
		if err := h.Bridge().HandleTransaction(ctx, fmt.Sprint("t", i), events, nil); err != nil {
			b.Fatal(err)
		}
	}
}
