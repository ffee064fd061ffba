package database_test

import (
	"context"
	"strings"
	"testing"

	"github.com/trestle-bridge/trestle/bridgev2/database"
)

// TestHotLookupsUseIndexes checks with EXPLAIN that the lookups done per
// message stay O(log n) however big the tables grow: each must be an index
// search, never a scan of the table.
func TestHotLookupsUseIndexes(t *testing.T) {
	queries := map[string][]any{
		"SELECT seq FROM message WHERE portal_receiver=$1 AND id=$2 AND part_id=$3":                                                    {"r", "SM1", ""},
		"SELECT seq FROM message WHERE portal_receiver=$1 AND id=$2 ORDER BY part_id LIMIT 1":                                          {"r", "SM1"},
		"SELECT seq FROM message WHERE mxid=$1 ORDER BY seq LIMIT 1":                                                                   {"$e"},
		"SELECT mxid FROM portal WHERE id=$1 AND receiver=$2":                                                                          {"p", "r"},
		"SELECT seq FROM message WHERE portal_id=$1 AND portal_receiver=$2 AND sender_id=$3 ORDER BY timestamp DESC, seq DESC LIMIT 1": {"p", "r", "s"},
		"SELECT id FROM portal WHERE mxid=$1":                                                                                          {"!r"},
		"SELECT name FROM ghost WHERE id=$1":                                                                                           {"g"},
		"SELECT emoji FROM reaction WHERE mxid=$1":                                                                                     {"$r"},
		"SELECT seq FROM inbound_event WHERE login_id=$1 AND dedup_key=$2":                                                             {"l", "message:SM1"},
		"SELECT seq FROM outbound_event WHERE event_id=$1":                                                                             {"$e"},
		"SELECT seq FROM outbound_event WHERE send_token=$1":                                                                           {"tok"},
	}
	forEachDialect(t, func(t *testing.T, db *database.Database) {
		for query, args := range queries {
			plan := explain(t, db, query, args)
			if db.Dialect == database.SQLite {
				if !strings.Contains(plan, "USING INDEX") && !strings.Contains(plan, "USING PRIMARY KEY") &&
					!strings.Contains(plan, "USING COVERING INDEX") && !strings.Contains(plan, "USING INTEGER PRIMARY KEY") {
					t.Errorf("%s\nis not an index search:\n%s", query, plan)
				}
			} else if !strings.Contains(plan, "Index") {
				// An empty PostgreSQL table is planned as a sequential scan
				// regardless of indexes, so plans are taken with seqscan off:
				// what matters is that an index exists that serves the query.
				t.Errorf("%s\nhas no index to use:\n%s", query, plan)
			}
		}
	})
}

func explain(t *testing.T, db *database.Database, query string, args []any) string {
	t.Helper()
	plan, err := db.Explain(context.Background(), query, args)
	if err != nil {
		t.Fatalf("explain %s: %v", query, err)
	}
	return plan
}
