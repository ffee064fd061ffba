package provisioning

import (
	"context"
	"crypto/rand"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/trestle-bridge/trestle/bridgev2"
	"github.com/trestle-bridge/trestle/bridgev2/networkid"
)

// loginProcess is a login started over HTTP, kept in memory between the
// requests that walk through its steps.
type loginProcess struct {
	id      string
	user    *bridgev2.User
	process bridgev2.LoginProcess
	// override is the login named by ?login_id= at start: if the login
	// ends as a different account, that one is logged out.
	override networkid.UserLoginID
	created  time.Time
	log      zerolog.Logger

	// ctx runs the process's steps. It is not a request's context, so a
	// manager hanging up mid-step does not abort a half-done login; it is
	// cancelled when the process ends.
	ctx    context.Context
	cancel context.CancelFunc

	// turn is held while a step runs, so steps of one process never
	// overlap. The fields below belong to whoever holds it.
	turn       chan struct{}
	step       *bridgev2.LoginStep
	txnID      string
	prevStepID string
	prevTxnID  string
	finished   bool

	// timer ends the process when it has been idle too long; guarded by
	// API.processesMu.
	timer *time.Timer
	// endOnce makes endProcess idempotent.
	endOnce sync.Once
}

// newProcessID returns an unguessable ID. Ownership is checked on every
// request anyway; this keeps IDs from being enumerable.
func newProcessID() string { return rand.Text() }

// newTxnID identifies one step of a process, so a client can retry a
// submission whose answer it never got.
func newTxnID() string { return "tls_" + rand.Text() }

// addProcess starts keeping p, ending the owner's oldest process if they
// already have the maximum.
func (a *API) addProcess(p *loginProcess) {
	a.processesMu.Lock()
	var mine []*loginProcess
	for _, other := range a.processes {
		if other.user.MXID == p.user.MXID {
			mine = append(mine, other)
		}
	}
	var evict *loginProcess
	if len(mine) >= maxProcessesPerUser {
		evict = mine[0]
		for _, other := range mine[1:] {
			if other.created.Before(evict.created) {
				evict = other
			}
		}
	}
	a.processes[p.id] = p
	p.timer = time.AfterFunc(a.idleTimeout, func() { a.endProcess(p, "idle timeout") })
	a.processesMu.Unlock()
	if evict != nil {
		a.endProcess(evict, "too many login processes")
	}
}

// getProcess returns the user's process with that ID, or nil: another
// user's process is as invisible as a missing one.
func (a *API) getProcess(user *bridgev2.User, processID string) *loginProcess {
	a.processesMu.Lock()
	defer a.processesMu.Unlock()
	p := a.processes[processID]
	if p == nil || p.user.MXID != user.MXID {
		return nil
	}
	return p
}

// touch restarts the idle timer: the process is in use. A finished process
// only waits out the grace period for retries.
func (a *API) touch(p *loginProcess, finished bool) {
	a.processesMu.Lock()
	defer a.processesMu.Unlock()
	if a.processes[p.id] != p {
		return
	}
	if finished {
		p.timer.Reset(a.grace)
	} else {
		p.timer.Reset(a.idleTimeout)
	}
}

// endProcess forgets p and, unless it completed, cancels it. Safe to call
// more than once and from any goroutine.
func (a *API) endProcess(p *loginProcess, reason string) {
	p.endOnce.Do(func() {
		a.processesMu.Lock()
		if a.processes[p.id] == p {
			delete(a.processes, p.id)
		}
		if p.timer != nil {
			p.timer.Stop()
		}
		a.processesMu.Unlock()
		// Cancelling the context makes a step that is waiting (on a QR
		// scan, say) return; the connector's Cancel then runs once that
		// step is out of the way, never concurrently with it.
		p.cancel()
		go func() {
			p.turn <- struct{}{}
			if !p.finished {
				p.process.Cancel()
				p.log.Info().Str("reason", reason).Msg("Login process cancelled")
			} else {
				p.log.Debug().Str("reason", reason).Msg("Finished login process forgotten")
			}
		}()
	})
}

// takeTurn waits until no other step of p runs. It fails if the request
// ends first or the process ends meanwhile.
func (p *loginProcess) takeTurn(ctx context.Context) *apiError {
	select {
	case p.turn <- struct{}{}:
	case <-ctx.Done():
		// The client is gone; nobody reads this answer.
		return newError(499, errcodeUnknown, "The request was cancelled.")
	case <-p.ctx.Done():
		return processGone()
	}
	if p.ctx.Err() != nil {
		<-p.turn
		return processGone()
	}
	return nil
}

// releaseTurn lets the next step run.
func (p *loginProcess) releaseTurn() { <-p.turn }

func processGone() *apiError {
	return notFound("Login process not found: it was cancelled, timed out, or never existed.")
}
