package twilio

import (
	"database/sql"
	"strings"
	"testing"

	"github.com/trestle-bridge/trestle/bridgev2"
	"github.com/trestle-bridge/trestle/bridgev2/database"
	"github.com/trestle-bridge/trestle/bridgev2/database/dbtest"
)

// TestADatabaseDumpShowsNoTwilioSecret logs in with an auth token and an API
// key, looks at the user_login table as a dump or backup would show it, and
// restarts the bridge to show the sealed login still works.
func TestADatabaseDumpShowsNoTwilioSecret(t *testing.T) {
	for _, dialect := range dbtest.Dialects() {
		t.Run(string(dialect), func(t *testing.T) {
			e := newEnv(t, envOptions{dialect: dialect, network: "manage_webhooks: false\n"})
			key, err := e.acct.AddAPIKey("", "", 0)
			if err != nil {
				t.Fatal(err)
			}
			creds := e.creds()
			creds["api_key_sid"], creds["api_key_secret"] = key.SID, key.Secret
			e.loginAdvanced(creds, ourNumber)

			driver := map[database.Dialect]string{database.SQLite: "sqlite", database.Postgres: "pgx"}[dialect]
			raw, err := sql.Open(driver, e.h.DatabaseURI())
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			var dump string
			if err := raw.QueryRow("SELECT id || ' ' || metadata FROM user_login").Scan(&dump); err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(dump, string(ourLoginID)) {
				t.Fatalf("dump %q is not of our login", dump)
			}
			for name, secret := range map[string]string{"auth token": e.acct.AuthToken(), "API key secret": key.Secret} {
				if strings.Contains(dump, secret) {
					t.Errorf("the dump shows the %s", name)
				}
			}

			e.h.Restart()
			ul := e.h.Bridge().GetLogin(ourLoginID)
			e.waitState(ul, bridgev2.StateConnected)
			meta := ul.Metadata.(*LoginMetadata)
			if meta.AuthToken != e.acct.AuthToken() || meta.APIKeySecret != key.Secret || twClient(ul).rest.creds.User != key.SID {
				t.Fatalf("the restarted login lost its credentials: token %v, secret %v, user %q want %q", meta.AuthToken == e.acct.AuthToken(), meta.APIKeySecret == key.Secret, twClient(ul).rest.creds.User, key.SID)
			}
		})
	}
}
