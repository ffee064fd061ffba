package twilio

import (
	"context"
	"crypto/sha256"
	"sync"
	"time"

	openapi "github.com/twilio/twilio-go/rest/api/v2010"
	"golang.org/x/sync/singleflight"
)

// startupConcurrency bounds the connection loops' own Twilio calls (the
// connect check and the catch-up after it) across all logins: a bridge with
// thousands of numbers starting up must not fire all of them at Twilio at
// once, which its per-account concurrency limit would answer with 429s.
// Webhooks and sends do not wait for these slots.
const startupConcurrency = 16

// accountCheckTTL is how long a successful account check is reused by the
// other logins of the same account and auth token: numbers of one account
// are checked once at start-up, not once each.
const accountCheckTTL = time.Minute

// bounded runs fn in one of the startup slots.
func (c *Connector) bounded(ctx context.Context, fn func() error) error {
	select {
	case c.startup <- struct{}{}:
		defer func() { <-c.startup }()
	case <-ctx.Done():
		return ctx.Err()
	}
	return fn()
}

// accountChecks remembers recent successful account fetches by account SID
// and a hash of the credentials (never the credentials themselves), and
// lets concurrent checks of one account share one fetch.
type accountChecks struct {
	flight singleflight.Group
	mu     sync.Mutex
	seen   map[[sha256.Size]byte]accountCheck
}

// check returns a recent check of the account, or fetches one.
func (a *accountChecks) check(key [sha256.Size]byte, now func() time.Time, fetch func() (*openapi.ApiV2010Account, error)) (*openapi.ApiV2010Account, error) {
	if acct := a.get(key, now()); acct != nil {
		return acct, nil
	}
	v, err, _ := a.flight.Do(string(key[:]), func() (any, error) {
		if acct := a.get(key, now()); acct != nil {
			return acct, nil
		}
		acct, err := fetch()
		if err != nil {
			return nil, err
		}
		a.put(key, acct, now())
		return acct, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*openapi.ApiV2010Account), nil
}

type accountCheck struct {
	acct *openapi.ApiV2010Account
	at   time.Time
}

func accountKey(accountSID, credentials string) [sha256.Size]byte {
	return sha256.Sum256([]byte(accountSID + "\x00" + credentials))
}

// get returns a check younger than accountCheckTTL.
func (a *accountChecks) get(key [sha256.Size]byte, now time.Time) *openapi.ApiV2010Account {
	a.mu.Lock()
	defer a.mu.Unlock()
	if chk, ok := a.seen[key]; ok && now.Sub(chk.at) < accountCheckTTL {
		return chk.acct
	}
	return nil
}

// put records a successful check, dropping expired ones so the map stays
// as small as the set of accounts.
func (a *accountChecks) put(key [sha256.Size]byte, acct *openapi.ApiV2010Account, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.seen == nil {
		a.seen = make(map[[sha256.Size]byte]accountCheck)
	}
	for k, chk := range a.seen {
		if now.Sub(chk.at) >= accountCheckTTL {
			delete(a.seen, k)
		}
	}
	a.seen[key] = accountCheck{acct: acct, at: now}
}
