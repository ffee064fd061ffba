package sandbox

import (
	"context"
	"sync"
	"time"
)

// notifier is a version counter that long-polling page requests wait on.
// Every change to what the page shows (a simulator state change, a Matrix
// sync, a setting) bumps it; a request that already has the current version
// waits for the next bump. Over-notifying is harmless, the page just fetches
// the same state again, so sources bump on every change without diffing.
type notifier struct {
	mu      sync.Mutex
	version uint64
	changed chan struct{} // closed and replaced on every bump
}

func newNotifier() *notifier {
	// Version 1, so that a page that has seen nothing yet (version 0) is
	// answered at once.
	return &notifier{version: 1, changed: make(chan struct{})}
}

// bump records a change and wakes every waiter.
func (n *notifier) bump() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.version++
	close(n.changed)
	n.changed = make(chan struct{})
}

// current returns the version and a channel closed at the next bump.
func (n *notifier) current() (uint64, <-chan struct{}) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.version, n.changed
}

// wait returns once the version differs from seen, ctx ends or maxWait has
// passed, whichever comes first, and returns the version then. The caller
// builds its answer after wait returns, so the state it sends is at least as
// new as the version it reports: a change racing with the answer only costs
// the page one more request, never a missed update.
func (n *notifier) wait(ctx context.Context, seen uint64, maxWait time.Duration) uint64 {
	timer := time.NewTimer(maxWait)
	defer timer.Stop()
	for {
		v, changed := n.current()
		if v != seen {
			return v
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return v
		case <-timer.C:
			return v
		}
	}
}
