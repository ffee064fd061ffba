package twilio

import (
	"context"
	"crypto/sha256"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// startupConcurrency bounds the connection loops' own Twilio calls (the
// connect check and the catch-up after it) across all logins: a bridge with
// thousands of numbers starting up must not fire all of them at Twilio at
// once, which its per-account concurrency limit would answer with 429s.
// Webhooks and sends do not wait for these slots.
const startupConcurrency = 16

// sharedFetchTTL is how long a successful account check or Conversations
// listing is reused by the other logins of the same account and
// credentials: numbers of one account are checked, and its groups listed,
// once at start-up and once a reconcile round, not once each.
const sharedFetchTTL = time.Minute

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

// recentFetches remembers recent successful fetches of something that is
// the same for every login of one account (the account itself, its
// Conversations), by account SID and a hash of the credentials (never the
// credentials themselves), and lets concurrent fetches share one call: a
// bridge with thousands of numbers of one account asks Twilio once, not
// once per number. Failures are not remembered.
type recentFetches[T any] struct {
	flight singleflight.Group
	mu     sync.Mutex
	seen   map[[sha256.Size]byte]recentFetch[T]
}

// recentFetch is one remembered result and when its fetch started: what it
// holds is at least as new as that moment.
type recentFetch[T any] struct {
	val T
	at  time.Time
}

// get returns a result whose fetch started less than maxAge ago (at most
// sharedFetchTTL), and when it started, or fetches one. A fetch already in
// flight is joined whatever maxAge is, so the result may be a little older.
func (r *recentFetches[T]) get(key [sha256.Size]byte, now func() time.Time, maxAge time.Duration, fetch func() (T, error)) (T, time.Time, error) {
	if f, ok := r.lookup(key, now(), maxAge); ok {
		return f.val, f.at, nil
	}
	v, err, _ := r.flight.Do(string(key[:]), func() (any, error) {
		if f, ok := r.lookup(key, now(), maxAge); ok {
			return f, nil
		}
		started := now()
		val, err := fetch()
		if err != nil {
			return nil, err
		}
		f := recentFetch[T]{val: val, at: started}
		r.put(key, f, now())
		return f, nil
	})
	if err != nil {
		var zero T
		return zero, time.Time{}, err
	}
	f := v.(recentFetch[T])
	return f.val, f.at, nil
}

// forget drops every remembered result, after a change the bridge itself
// made (a number's webhook, say) that they may not show.
func (r *recentFetches[T]) forget() {
	r.mu.Lock()
	defer r.mu.Unlock()
	clear(r.seen)
}

func accountKey(accountSID, credentials string) [sha256.Size]byte {
	return sha256.Sum256([]byte(accountSID + "\x00" + credentials))
}

// lookup returns a result younger than maxAge.
func (r *recentFetches[T]) lookup(key [sha256.Size]byte, now time.Time, maxAge time.Duration) (recentFetch[T], bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f, ok := r.seen[key]
	return f, ok && now.Sub(f.at) < min(maxAge, sharedFetchTTL)
}

// put records a successful fetch, dropping expired ones so the map stays
// as small as the set of accounts.
func (r *recentFetches[T]) put(key [sha256.Size]byte, f recentFetch[T], now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen == nil {
		r.seen = make(map[[sha256.Size]byte]recentFetch[T])
	}
	for k, old := range r.seen {
		if now.Sub(old.at) >= sharedFetchTTL {
			delete(r.seen, k)
		}
	}
	r.seen[key] = f
}
