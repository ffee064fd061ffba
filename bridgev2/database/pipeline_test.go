package database_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/bridgev2/database"
	"github.com/trestle-bridge/trestle/bridgev2/networkid"
)

// TestConcurrentWritersEachGetTheirOwnResults runs many multi-statement
// writers at once, so they share commits (pipelined rounds on PostgreSQL):
// each must see its own RETURNING values, and a writer whose statement
// fails (a duplicate mapping) must fail alone.
func TestConcurrentWritersEachGetTheirOwnResults(t *testing.T) {
	forEachDialect(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		insertPortal(t, db, portalKey, "!room:example.com")
		write(t, db, func(ctx context.Context, tx database.Execer) error {
			return db.Messages.Insert(ctx, tx, &database.Message{Portal: portalKey, ID: "taken", MXID: "$taken", Timestamp: time.Now()})
		})
		const n = 300
		var wg sync.WaitGroup
		errs := make([]error, n)
		seqs := make([]int64, n)
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				msgID := networkid.MessageID(fmt.Sprint("SM", i))
				if i%7 == 0 {
					msgID = "taken"
				}
				errs[i] = db.Write(ctx, func(ctx context.Context, tx database.Execer) error {
					m := &database.Message{Portal: portalKey, ID: msgID, MXID: id.EventID(fmt.Sprint("$", i)), Timestamp: time.Now()}
					if err := db.Messages.Insert(ctx, tx, m); err != nil {
						return err
					}
					seqs[i] = m.Seq
					_, err := db.Messages.AdvanceDelivery(ctx, tx, m.Seq, database.DeliverySent)
					return err
				})
			}(i)
		}
		wg.Wait()
		for i, err := range errs {
			got, lookupErr := db.Messages.GetByMXID(ctx, id.EventID(fmt.Sprint("$", i)))
			if i%7 == 0 {
				if err == nil || lookupErr == nil {
					t.Fatalf("write %d of a taken ID: err=%v, row found=%v", i, err, lookupErr == nil)
				}
				continue
			}
			if err != nil || lookupErr != nil {
				t.Fatalf("write %d: %v / lookup %v", i, err, lookupErr)
			}
			if got.Seq != seqs[i] || got.Delivery != database.DeliverySent {
				t.Fatalf("write %d: RETURNING gave seq %d, the row has %d (delivery %q)", i, seqs[i], got.Seq, got.Delivery)
			}
		}
	})
}

// TestDeliveryReportsInOneCommitNeverGoBackwards sends "delivered" and
// "sent" for the same messages at the same moment, as status callbacks that
// cross do; however they are batched, "delivered" must stay.
func TestDeliveryReportsInOneCommitNeverGoBackwards(t *testing.T) {
	forEachDialect(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		insertPortal(t, db, portalKey, "!room:example.com")
		const n = 50
		msgs := make([]*database.Message, n)
		write(t, db, func(ctx context.Context, tx database.Execer) error {
			for i := range msgs {
				msgs[i] = &database.Message{Portal: portalKey, ID: networkid.MessageID(fmt.Sprint("SM", i)), MXID: id.EventID(fmt.Sprint("$", i)), Timestamp: time.Now()}
				if err := db.Messages.Insert(ctx, tx, msgs[i]); err != nil {
					return err
				}
			}
			return nil
		})
		var wg sync.WaitGroup
		for _, m := range msgs {
			for _, to := range []database.Delivery{database.DeliveryDelivered, database.DeliverySent} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					write(t, db, func(ctx context.Context, tx database.Execer) error {
						_, err := db.Messages.AdvanceDelivery(ctx, tx, m.Seq, to)
						return err
					})
				}()
			}
		}
		wg.Wait()
		for _, m := range msgs {
			got, err := db.Messages.GetByMXID(ctx, m.MXID)
			if err != nil || got.Delivery != database.DeliveryDelivered {
				t.Fatalf("%s: delivery %q (%v), want delivered", m.ID, got.Delivery, err)
			}
		}
	})
}
