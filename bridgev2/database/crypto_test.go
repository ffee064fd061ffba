package database_test

import (
	"context"
	"testing"

	"github.com/trestle-bridge/trestle/bridgev2/database"
)

func TestCryptoStateRowsReplaceAndDelete(t *testing.T) {
	forEachDialect(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		q := db.Crypto
		if err := q.Put(ctx, database.CryptoRow{Kind: "olm_session", Key: "b", Value: "1"},
			database.CryptoRow{Kind: "olm_session", Key: "a", Value: "2"},
			database.CryptoRow{Kind: "account", Key: "", Value: "acc"}); err != nil {
			t.Fatal(err)
		}
		if err := q.Put(ctx, database.CryptoRow{Kind: "olm_session", Key: "b", Value: "3"}); err != nil {
			t.Fatal(err)
		}
		rows, err := q.All(ctx, "olm_session")
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 2 || rows[0].Key != "a" || rows[1].Value != "3" {
			t.Fatalf("rows after replace: %+v", rows)
		}
		if err := q.Delete(ctx, "olm_session", "a"); err != nil {
			t.Fatal(err)
		}
		if v, _ := q.Get(ctx, "olm_session", "a"); v != "" {
			t.Errorf("deleted row still reads %q", v)
		}
		if v, _ := q.Get(ctx, "account", ""); v != "acc" {
			t.Errorf("account row reads %q", v)
		}
	})
}
