package database_test

import (
	"context"
	"testing"

	"github.com/trestle-bridge/trestle/bridgev2/database"
)

// A send that failed and will be retried may still have reached the remote
// network (a timeout after it accepted the message). Its row must stay
// "sending", so that a restart reconciles before sending it again.
func TestAFailedSendAttemptKeepsTheRowSendingForReconciliation(t *testing.T) {
	forEachDialect(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		row := &database.OutboundEvent{EventID: "$e1", RoomID: "!r", Sender: "@a:x", Payload: []byte("{}"), SendToken: "tok1"}
		write(t, db, func(ctx context.Context, tx database.Execer) error {
			_, err := db.Outbound.Insert(ctx, tx, row)
			return err
		})
		write(t, db, func(ctx context.Context, tx database.Execer) error {
			return db.Outbound.SetState(ctx, tx, row.Seq, database.StateSending, "")
		})
		write(t, db, func(ctx context.Context, tx database.Execer) error {
			return db.Outbound.RecordAttempt(ctx, tx, row.Seq, "timeout")
		})
		got, err := db.Outbound.GetByToken(ctx, "tok1")
		if err != nil {
			t.Fatal(err)
		}
		if got.State != database.StateSending || got.Attempts != 1 || got.LastError != "timeout" {
			t.Fatalf("after a failed attempt: state %q, attempts %d, last error %q; want sending, 1, timeout", got.State, got.Attempts, got.LastError)
		}
		open, err := db.Outbound.Open(ctx, 0, 10)
		if err != nil || len(open) != 1 || open[0].State != database.StateSending {
			t.Fatalf("replay would see %v (%v), want the row still sending", open, err)
		}
	})
}
