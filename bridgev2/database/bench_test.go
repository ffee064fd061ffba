package database_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/bridgev2/database"
	"github.com/trestle-bridge/trestle/bridgev2/database/dbtest"
	"github.com/trestle-bridge/trestle/bridgev2/networkid"
)

// The store's hot paths, per bridged message: journal the event, record the
// mapping (and finish the journal row), look mappings up both ways.
// Run with: go test -run '^$' -bench . -benchmem ./bridgev2/database/

func benchDB(b *testing.B, dialect database.Dialect) *database.Database {
	db := dbtest.Open(b, dialect, database.MetaTypes{})
	err := db.Write(context.Background(), func(ctx context.Context, tx database.Execer) error {
		return db.Portals.Insert(ctx, tx, &database.Portal{PortalKey: portalKey, MXID: "!room:example.com"})
	})
	if err != nil {
		b.Fatal(err)
	}
	return db
}

func forEachBenchDialect(b *testing.B, fn func(b *testing.B, db *database.Database)) {
	for _, dialect := range dbtest.Dialects() {
		b.Run(string(dialect), func(b *testing.B) { fn(b, benchDB(b, dialect)) })
	}
}

var benchSeq atomic.Int64

func BenchmarkJournalAndMapMessage(b *testing.B) {
	forEachBenchDialect(b, func(b *testing.B, db *database.Database) {
		ctx := context.Background()
		b.ReportAllocs()
		// Many portals write at once in the bridge; the group-commit writer
		// shares each commit among them.
		b.SetParallelism(32)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				n := benchSeq.Add(1)
				row := &database.InboundEvent{LoginID: "l", Portal: portalKey, DedupKey: fmt.Sprint("message:SM", n), Payload: []byte(`{"kind":"message"}`)}
				if err := db.Write(ctx, func(ctx context.Context, tx database.Execer) error {
					_, err := db.Inbound.Insert(ctx, tx, row)
					return err
				}); err != nil {
					b.Fatal(err)
				}
				msg := &database.Message{Portal: portalKey, ID: networkid.MessageID(fmt.Sprint("SM", n)), MXID: id.EventID(fmt.Sprint("$", n)), Timestamp: time.Now()}
				if err := db.Write(ctx, func(ctx context.Context, tx database.Execer) error {
					if err := db.Messages.Insert(ctx, tx, msg); err != nil {
						return err
					}
					return db.Inbound.Finish(ctx, tx, row.Seq, database.StateDone, "")
				}); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}

func BenchmarkMappingLookups(b *testing.B) {
	forEachBenchDialect(b, func(b *testing.B, db *database.Database) {
		ctx := context.Background()
		const n = 10000
		err := db.Write(ctx, func(ctx context.Context, tx database.Execer) error {
			for i := 0; i < n; i++ {
				m := &database.Message{Portal: portalKey, ID: networkid.MessageID(fmt.Sprint("SM", i)), MXID: id.EventID(fmt.Sprint("$", i)), Timestamp: time.Now()}
				if err := db.Messages.Insert(ctx, tx, m); err != nil {
					return err
				}
			}
			if db.Dialect != database.Postgres {
				return nil
			}
			// Planned as a deployment's tables would be: PostgreSQL scans
			// a table it has no statistics for, and autovacuum has not
			// run on one this young. (The bridge never analyses SQLite.)
			_, err := tx.ExecContext(ctx, "ANALYZE message")
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := db.Messages.GetFirstPart(ctx, portalKey.Receiver, networkid.MessageID(fmt.Sprint("SM", i%n))); err != nil {
				b.Fatal(err)
			}
			if _, err := db.Messages.GetByMXID(ctx, id.EventID(fmt.Sprint("$", i%n))); err != nil {
				b.Fatal(err)
			}
		}
	})
}
