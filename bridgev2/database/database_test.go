package database_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/bridgev2/database"
	"github.com/trestle-bridge/trestle/bridgev2/database/dbtest"
	"github.com/trestle-bridge/trestle/bridgev2/networkid"
)

type loginMeta struct {
	Token  string `json:"token"`
	Number string `json:"number"`
}

var meta = database.MetaTypes{Login: func() any { return &loginMeta{} }}

// forEachDialect runs the test once per configured database, so SQLite and
// PostgreSQL are held to the same behaviour.
func forEachDialect(t *testing.T, fn func(t *testing.T, db *database.Database)) {
	for _, dialect := range dbtest.Dialects() {
		t.Run(string(dialect), func(t *testing.T) {
			t.Parallel()
			fn(t, dbtest.Open(t, dialect, meta))
		})
	}
}

func write(t *testing.T, db *database.Database, fn func(ctx context.Context, tx database.Execer) error) {
	t.Helper()
	if err := db.Write(context.Background(), fn); err != nil {
		t.Fatal(err)
	}
}

var portalKey = networkid.PortalKey{ID: "+14155550100", Receiver: "+14155550199"}

func insertPortal(t *testing.T, db *database.Database, key networkid.PortalKey, room id.RoomID) {
	t.Helper()
	write(t, db, func(ctx context.Context, tx database.Execer) error {
		return db.Portals.Insert(ctx, tx, &database.Portal{PortalKey: key, MXID: room, RoomType: database.RoomTypeDM})
	})
}

func TestMigrationsAreIdempotentAndVersioned(t *testing.T) {
	for _, dialect := range dbtest.Dialects() {
		t.Run(string(dialect), func(t *testing.T) {
			uri := dbtest.URI(t, dialect)
			ctx := context.Background()
			for i := 0; i < 2; i++ {
				db, err := database.Open(ctx, dialect, uri, database.Options{Log: zerolog.Nop()})
				if err != nil {
					t.Fatalf("open #%d: %v", i+1, err)
				}
				_ = db.Close()
			}
			if database.LatestVersion() < 1 {
				t.Fatal("no migrations embedded")
			}
		})
	}
}

func TestLoginsKeepTypedMetadataAndBelongToOneUser(t *testing.T) {
	forEachDialect(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		write(t, db, func(ctx context.Context, tx database.Execer) error {
			if err := db.Users.Upsert(ctx, tx, &database.User{MXID: "@alice:example.com"}); err != nil {
				return err
			}
			return db.Users.Upsert(ctx, tx, &database.User{MXID: "@bob:example.com"})
		})
		login := &database.UserLogin{ID: "+14155550199", UserMXID: "@alice:example.com", RemoteName: "+1 415-555-0199",
			Metadata: &loginMeta{Token: "secret", Number: "+14155550199"}}
		write(t, db, func(ctx context.Context, tx database.Execer) error { return db.Logins.Upsert(ctx, tx, login) })

		got, err := db.Logins.Get(ctx, login.ID)
		if err != nil {
			t.Fatal(err)
		}
		if m, ok := got.Metadata.(*loginMeta); !ok || m.Token != "secret" {
			t.Fatalf("metadata came back as %#v", got.Metadata)
		}

		stolen := &database.UserLogin{ID: login.ID, UserMXID: "@bob:example.com", RemoteName: "x"}
		err = db.Write(ctx, func(ctx context.Context, tx database.Execer) error { return db.Logins.Upsert(ctx, tx, stolen) })
		if !errors.Is(err, database.ErrLoginTaken) {
			t.Fatalf("another user's upsert of the same login: got %v, want ErrLoginTaken", err)
		}
		if got, _ := db.Logins.Get(ctx, login.ID); got.UserMXID != "@alice:example.com" {
			t.Fatalf("login changed owner to %s", got.UserMXID)
		}
		all, err := db.Logins.GetAllForUser(ctx, "@bob:example.com")
		if err != nil || len(all) != 0 {
			t.Fatalf("bob sees logins %v (err %v)", all, err)
		}
	})
}

func TestPortalInsertNeverOverwrites(t *testing.T) {
	forEachDialect(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		insertPortal(t, db, portalKey, "!room:example.com")
		err := db.Write(ctx, func(ctx context.Context, tx database.Execer) error {
			return db.Portals.Insert(ctx, tx, &database.Portal{PortalKey: portalKey, MXID: "!other:example.com"})
		})
		if !errors.Is(err, database.ErrPortalExists) {
			t.Fatalf("second insert: got %v, want ErrPortalExists", err)
		}
		p, err := db.Portals.GetByMXID(ctx, "!room:example.com")
		if err != nil || p.PortalKey != portalKey {
			t.Fatalf("lookup by room: %v %v", p, err)
		}
		if _, err := db.Portals.Get(ctx, networkid.PortalKey{ID: "nope"}); !errors.Is(err, database.ErrNotFound) {
			t.Fatalf("missing portal: got %v", err)
		}
	})
}

func TestMessageMappingWorksInBothDirections(t *testing.T) {
	forEachDialect(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		insertPortal(t, db, portalKey, "!room:example.com")
		parts := []*database.Message{
			{Portal: portalKey, ID: "MM1", PartID: "0", MXID: "$img1", SenderID: "+14155550100", Timestamp: time.Now()},
			{Portal: portalKey, ID: "MM1", PartID: "1", MXID: "$img2", SenderID: "+14155550100", Timestamp: time.Now()},
		}
		write(t, db, func(ctx context.Context, tx database.Execer) error {
			for _, m := range parts {
				if err := db.Messages.Insert(ctx, tx, m); err != nil {
					return err
				}
			}
			return nil
		})
		first, err := db.Messages.GetFirstPart(ctx, portalKey.Receiver, "MM1")
		if err != nil || first.MXID != "$img1" {
			t.Fatalf("first part: %v %v", first, err)
		}
		byEvent, err := db.Messages.GetByMXID(ctx, "$img2")
		if err != nil || byEvent.ID != "MM1" || byEvent.PartID != "1" {
			t.Fatalf("by event: %v %v", byEvent, err)
		}
		// A duplicate part is refused by the unique index, not stored twice.
		dup := &database.Message{Portal: portalKey, ID: "MM1", PartID: "0", MXID: "$dup", Timestamp: time.Now()}
		if err := db.Write(ctx, func(ctx context.Context, tx database.Execer) error { return db.Messages.Insert(ctx, tx, dup) }); err == nil {
			t.Fatal("duplicate (message, part) was accepted")
		}
		all, _ := db.Messages.GetAllParts(ctx, portalKey.Receiver, "MM1")
		if len(all) != 2 {
			t.Fatalf("got %d parts, want 2", len(all))
		}
	})
}

func TestLastMessageFromASenderIgnoresOthers(t *testing.T) {
	forEachDialect(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		insertPortal(t, db, portalKey, "!room:example.com")
		start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		if _, err := db.Messages.GetLastFrom(ctx, portalKey, "+14155550100"); !errors.Is(err, database.ErrNotFound) {
			t.Fatalf("empty portal: %v", err)
		}
		write(t, db, func(ctx context.Context, tx database.Execer) error {
			for i, sender := range []networkid.UserID{"+14155550100", "+14155550100", "me"} {
				m := &database.Message{Portal: portalKey, ID: networkid.MessageID(fmt.Sprint("SM", i)), MXID: id.EventID(fmt.Sprint("$e", i)),
					SenderID: sender, Timestamp: start.Add(time.Duration(i) * time.Hour)}
				if err := db.Messages.Insert(ctx, tx, m); err != nil {
					return err
				}
			}
			return nil
		})
		last, err := db.Messages.GetLastFrom(ctx, portalKey, "+14155550100")
		if err != nil || last.ID != "SM1" || !last.Timestamp.Equal(start.Add(time.Hour)) {
			t.Fatalf("last from the contact: %+v %v", last, err)
		}
	})
}

func TestDeliveryStateOnlyMovesForward(t *testing.T) {
	forEachDialect(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		insertPortal(t, db, portalKey, "!room:example.com")
		m := &database.Message{Portal: portalKey, ID: "SM1", MXID: "$out", Timestamp: time.Now()}
		write(t, db, func(ctx context.Context, tx database.Execer) error { return db.Messages.Insert(ctx, tx, m) })
		steps := []struct {
			to      database.Delivery
			changed bool
		}{{database.DeliveryDelivered, true}, {database.DeliverySent, false}, {database.DeliveryDelivered, false}}
		for _, s := range steps {
			var changed bool
			write(t, db, func(ctx context.Context, tx database.Execer) (err error) {
				changed, err = db.Messages.AdvanceDelivery(ctx, tx, m.Seq, s.to)
				return err
			})
			if changed != s.changed {
				t.Fatalf("advance to %s: changed=%v, want %v", s.to, changed, s.changed)
			}
		}
		got, _ := db.Messages.GetByMXID(ctx, "$out")
		if got.Delivery != database.DeliveryDelivered {
			t.Fatalf("delivery is %q, want delivered", got.Delivery)
		}
	})
}

func TestInboundJournalDeduplicatesAndReplaysInOrder(t *testing.T) {
	forEachDialect(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		var inserted []bool
		for _, key := range []string{"msg:SM1", "msg:SM2", "msg:SM1", "msg:SM3"} {
			e := &database.InboundEvent{LoginID: "l1", Portal: portalKey, DedupKey: key, Payload: []byte(`{"k":"` + key + `"}`)}
			write(t, db, func(ctx context.Context, tx database.Execer) error {
				ok, err := db.Inbound.Insert(ctx, tx, e)
				inserted = append(inserted, ok)
				return err
			})
		}
		if fmt.Sprint(inserted) != "[true true false true]" {
			t.Fatalf("inserted = %v, want the repeated key refused", inserted)
		}
		pending, err := db.Inbound.Pending(ctx, 0, 10)
		if err != nil || len(pending) != 3 {
			t.Fatalf("pending: %d %v", len(pending), err)
		}
		if pending[0].DedupKey != "msg:SM1" || pending[2].DedupKey != "msg:SM3" {
			t.Fatalf("pending out of order: %s .. %s", pending[0].DedupKey, pending[2].DedupKey)
		}
		write(t, db, func(ctx context.Context, tx database.Execer) error {
			return db.Inbound.Finish(ctx, tx, pending[0].Seq, database.StateDone, "")
		})
		pending, _ = db.Inbound.Pending(ctx, 0, 10)
		if len(pending) != 2 {
			t.Fatalf("after finishing one: %d pending", len(pending))
		}
		// Finished rows still count as journalled, and deduplicate, until
		// pruned.
		for key, want := range map[string]bool{"msg:SM1": true, "msg:SM2": true, "msg:SM9": false} {
			if has, err := db.Inbound.Has(ctx, "l1", key); err != nil || has != want {
				t.Errorf("Has(%s) = %v, %v; want %v", key, has, err, want)
			}
		}
		if has, _ := db.Inbound.Has(ctx, "l2", "msg:SM1"); has {
			t.Error("another login's event counts as journalled")
		}
		again := &database.InboundEvent{LoginID: "l1", Portal: portalKey, DedupKey: "msg:SM1", Payload: []byte("{}")}
		write(t, db, func(ctx context.Context, tx database.Execer) error {
			ok, err := db.Inbound.Insert(ctx, tx, again)
			if ok {
				t.Error("a finished event was journalled again")
			}
			return err
		})
	})
}

func TestOutboundJournalAndTransactionsDeduplicate(t *testing.T) {
	forEachDialect(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		var newTxn []bool
		for i := 0; i < 2; i++ {
			write(t, db, func(ctx context.Context, tx database.Execer) error {
				ok, err := db.Txns.Insert(ctx, tx, "txn1")
				newTxn = append(newTxn, ok)
				if err != nil || !ok {
					return err
				}
				_, err = db.Outbound.Insert(ctx, tx, &database.OutboundEvent{EventID: "$e1", RoomID: "!r", Sender: "@a:x", Payload: []byte("{}"), SendToken: "tok1"})
				return err
			})
		}
		if fmt.Sprint(newTxn) != "[true false]" {
			t.Fatalf("transaction novelty = %v", newTxn)
		}
		open, err := db.Outbound.Open(ctx, 0, 10)
		if err != nil || len(open) != 1 || open[0].SendToken != "tok1" {
			t.Fatalf("open outbound: %v %v", open, err)
		}
		write(t, db, func(ctx context.Context, tx database.Execer) error {
			return db.Outbound.SetState(ctx, tx, open[0].Seq, database.StateSending, "")
		})
		byToken, err := db.Outbound.GetByToken(ctx, "tok1")
		if err != nil || byToken.State != database.StateSending {
			t.Fatalf("by token: %v %v", byToken, err)
		}
		write(t, db, func(ctx context.Context, tx database.Execer) error {
			return db.Outbound.SetState(ctx, tx, open[0].Seq, database.StateSent, "")
		})
		if n, _ := db.Outbound.CountOpen(ctx); n != 0 {
			t.Fatalf("%d still open after sent", n)
		}
	})
}

// TestWriterIsolatesFailuresWithinABatch checks the group-commit writer: many
// concurrent writers share transactions, and one failing caller's statements
// are rolled back without taking the others down.
func TestWriterIsolatesFailuresWithinABatch(t *testing.T) {
	forEachDialect(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		insertPortal(t, db, portalKey, "!room:example.com")
		const n = 200
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				errs[i] = db.Write(ctx, func(ctx context.Context, tx database.Execer) error {
					m := &database.Message{Portal: portalKey, ID: networkid.MessageID(fmt.Sprint("SM", i)), MXID: id.EventID(fmt.Sprint("$", i)), Timestamp: time.Now()}
					if err := db.Messages.Insert(ctx, tx, m); err != nil {
						return err
					}
					if i%10 == 0 {
						return errors.New("caller changed its mind")
					}
					return nil
				})
			}(i)
		}
		wg.Wait()
		for i, err := range errs {
			_, lookupErr := db.Messages.GetByMXID(ctx, id.EventID(fmt.Sprint("$", i)))
			if i%10 == 0 {
				if err == nil || !errors.Is(lookupErr, database.ErrNotFound) {
					t.Fatalf("failed write %d: err=%v, row lookup=%v (want rolled back)", i, err, lookupErr)
				}
			} else if err != nil || lookupErr != nil {
				t.Fatalf("write %d: %v / lookup %v", i, err, lookupErr)
			}
		}
	})
}

func TestDeletingAPortalDropsItsMapping(t *testing.T) {
	forEachDialect(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		insertPortal(t, db, portalKey, "!room:example.com")
		write(t, db, func(ctx context.Context, tx database.Execer) error {
			if err := db.Messages.Insert(ctx, tx, &database.Message{Portal: portalKey, ID: "SM1", MXID: "$1", Timestamp: time.Now()}); err != nil {
				return err
			}
			return db.Reactions.Upsert(ctx, tx, &database.Reaction{Portal: portalKey, MessageID: "SM1", SenderID: "u", Emoji: "👍", MXID: "$r", Timestamp: time.Now()})
		})
		write(t, db, func(ctx context.Context, tx database.Execer) error { return db.Portals.Delete(ctx, tx, portalKey) })
		if _, err := db.Messages.GetByMXID(ctx, "$1"); !errors.Is(err, database.ErrNotFound) {
			t.Fatalf("message survived its portal: %v", err)
		}
		if _, err := db.Reactions.GetByMXID(ctx, "$r"); !errors.Is(err, database.ErrNotFound) {
			t.Fatalf("reaction survived its portal: %v", err)
		}
	})
}
