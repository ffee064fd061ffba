package bridgev2

import (
	"runtime/debug"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// lane runs work items strictly in order, on a goroutine that exists only
// while there is work, so an idle portal costs no goroutine. Each portal has
// one lane per direction: a burst of outgoing texts waiting for a rate limit
// never holds up incoming ones.
type lane struct {
	name   string
	bridge *Bridge
	log    *zerolog.Logger

	mu      sync.Mutex
	queue   []func()
	running bool
	// lastActive is when the lane last finished an item, for eviction.
	lastActive time.Time
	// finished counts completed items; progress is signalled on it.
	finished uint64
	progress *sync.Cond
}

// push appends work and starts the lane's goroutine if it is not running.
// It reports false if the bridge is stopping and the work was not queued.
func (l *lane) push(fn func()) bool {
	l.bridge.workersMu.RLock()
	defer l.bridge.workersMu.RUnlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.bridge.stopping.Load() {
		return false
	}
	l.queue = append(l.queue, fn)
	if !l.running {
		l.running = true
		l.bridge.workers.Add(1)
		go l.loop()
	}
	return true
}

func (l *lane) loop() {
	defer l.bridge.workers.Done()
	for {
		l.mu.Lock()
		if len(l.queue) == 0 || l.bridge.ctx.Err() != nil {
			// On a forced shutdown, what is left stays in the journal and
			// is replayed at the next start.
			l.queue = nil
			l.running = false
			l.lastActive = time.Now()
			if l.progress != nil {
				l.progress.Broadcast()
			}
			l.mu.Unlock()
			return
		}
		fn := l.queue[0]
		l.queue[0] = nil
		l.queue = l.queue[1:]
		l.mu.Unlock()
		l.run(fn)
		l.mu.Lock()
		l.finished++
		if l.progress != nil {
			l.progress.Broadcast()
		}
		l.mu.Unlock()
	}
}

// awaitProgress waits, at most d, for the item the lane is working on to
// finish. It returns at once if the lane is idle. The other direction's
// worker uses it when a Matrix event refers to a message whose mapping the
// inbound worker is about to record.
func (l *lane) awaitProgress(d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.running {
		return
	}
	if l.progress == nil {
		l.progress = sync.NewCond(&l.mu)
	}
	start := l.finished
	timer := time.AfterFunc(d, func() {
		l.mu.Lock()
		l.progress.Broadcast()
		l.mu.Unlock()
	})
	defer timer.Stop()
	deadline := time.Now().Add(d)
	for l.running && l.finished == start && time.Now().Before(deadline) {
		l.progress.Wait()
	}
}

// run executes one item, turning a panic into a log line so that one bad
// event cannot take the portal, or the process, down with it.
func (l *lane) run(fn func()) {
	defer func() {
		if r := recover(); r != nil {
			l.log.Error().
				Str("lane", l.name).
				Any("panic", r).
				Str("stack", string(debug.Stack())).
				Msg("Recovered from a panic in a portal worker")
		}
	}()
	fn()
}

// idleSince reports whether the lane has no work and has had none since t.
func (l *lane) idleSince(t time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return !l.running && len(l.queue) == 0 && l.lastActive.Before(t)
}

// depth is the number of queued items, for metrics.
func (l *lane) depth() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.queue)
}
