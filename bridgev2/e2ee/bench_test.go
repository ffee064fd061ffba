package e2ee_test

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/bridgev2"
)

// BenchmarkEncryptedRoom measures what encryption adds per message on
// SQLite: "send" is a ghost's text encrypted and its Megolm state committed
// before it is handed on (every inbound SMS in an encrypted portal);
// "receive" is an encrypted event decrypted and its seal (the message
// index) committed (every text the user sends). The homeserver is in memory.
func BenchmarkEncryptedRoom(b *testing.B) {
	e, fake, db := startDevice(b, &fakeDeviceAPI{})
	ctx := context.Background()
	bot := fake.BotUserID()
	if err := fake.EnsureRegistered(ctx, bot); err != nil {
		b.Fatal(err)
	}
	room := fake.CreateUserRoom("@alice:example.com", bot)
	fake.JoinAsUser(room, bot)
	e.HandleRoomEvent(ctx, &event.Event{Type: event.StateEncryption, RoomID: room, StateKey: new(string),
		Content: event.Content{Parsed: &event.EncryptionEventContent{Algorithm: id.AlgorithmMegolmV1, RotationPeriodMessages: 1 << 30}}})
	mx := e.Wrap(fake)
	send := func(i int) {
		content := &event.Content{Parsed: &event.MessageEventContent{MsgType: event.MsgText, Body: fmt.Sprintf("text %d from a phone", i)},
			Raw: map[string]any{bridgev2.TxnMarkerKey: fmt.Sprintf("txn-%d", i)}}
		if _, err := mx.SendMessage(ctx, bot, room, event.EventMessage, content, fmt.Sprintf("txn-%d", i), time.Time{}); err != nil {
			b.Fatal(err)
		}
	}
	send(-1) // the session is made and shared once, outside the timing
	b.Run("send", func(b *testing.B) {
		cpu := cpuTime()
		for i := range b.N {
			send(i)
		}
		reportCPU(b, cpu)
	})
	events := fake.Events(room)
	b.Run("receive", func(b *testing.B) {
		cpu := cpuTime()
		defer reportCPU(b, cpu)
		for i := range b.N {
			evt := *events[1+i%(len(events)-1)]
			evt.ID = id.EventID(fmt.Sprintf("$bench%d", i))
			evt.Type = event.EventEncrypted
			evt.Content = event.Content{VeryRaw: evt.Content.VeryRaw}
			_, seal, err := e.Decrypt(ctx, &evt)
			if err != nil && i < len(events)-1 {
				b.Fatal(err)
			}
			if seal != nil {
				// In a write of its own, the worst case: the core folds it
				// into the write that marks the text sending.
				if err := db.Write(ctx, seal); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports CPU time per operation since start, the figure the
// bridge's CPU budget is set in (wall time here is mostly commit waits).
func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64((cpuTime()-start).Microseconds())/float64(b.N), "cpu-µs/op")
}
