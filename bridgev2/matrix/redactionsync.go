package matrix

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"
)

// syncFilter lets only redactions through: everything else reaches the
// bridge through appservice transactions.
const syncFilter = `{"presence":{"types":[]},"account_data":{"types":[]},` +
	`"room":{"state":{"types":[]},"ephemeral":{"types":[]},"account_data":{"types":[]},` +
	`"timeline":{"types":["m.room.redaction"],"limit":100}}}`

// TokenStore keeps the sync position across restarts.
type TokenStore interface {
	Get(ctx context.Context, key string) (string, error)
	Set(ctx context.Context, key, value string) error
}

// RedactionSync works around homeservers that never push redactions to
// appservices (Dendrite v0.13 drops them): the bot long-polls /sync with a
// filter that only lets m.room.redaction events through, and hands each
// batch to the same transaction handler as pushed transactions. A
// homeserver that does push them (Synapse) just makes the handler see the
// same event twice, and it is journalled once, by event ID.
type RedactionSync struct {
	hs      *Homeserver
	handler TransactionHandler
	store   TokenStore
	log     zerolog.Logger
}

const syncTokenKey = "redaction_sync_token"

// NewRedactionSync prepares the sync loop.
func NewRedactionSync(hs *Homeserver, handler TransactionHandler, store TokenStore, log zerolog.Logger) *RedactionSync {
	return &RedactionSync{hs: hs, handler: handler, store: store, log: log}
}

// Run syncs until ctx ends, backing off while the homeserver is unavailable.
func (r *RedactionSync) Run(ctx context.Context) {
	since, err := r.store.Get(ctx, syncTokenKey)
	if err != nil {
		r.log.Warn().Err(err).Msg("Could not read the redaction sync position; starting from now")
	}
	cli := r.hs.client(r.hs.bot)
	failures := 0
	for ctx.Err() == nil {
		timeout := 30000
		if since == "" {
			// The first sync only establishes a position: redactions from
			// before the bridge ever ran are not bridged.
			timeout = 0
		}
		resp, err := cli.FullSyncRequest(ctx, mautrix.ReqSync{Timeout: timeout, Since: since, FilterID: syncFilter})
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			failures++
			delay := min(time.Duration(failures)*2*time.Second, time.Minute)
			r.log.Warn().Err(err).Dur("retry_in", delay).Msg("Redaction sync failed")
			select {
			case <-time.After(delay):
			case <-ctx.Done():
				return
			}
			continue
		}
		failures = 0
		if since != "" {
			if err := r.deliver(ctx, since, resp); err != nil {
				r.log.Warn().Err(err).Msg("Could not record synced redactions; will sync them again")
				continue
			}
		}
		since = resp.NextBatch
		if err := r.store.Set(ctx, syncTokenKey, since); err != nil && !errors.Is(err, context.Canceled) {
			r.log.Warn().Err(err).Msg("Could not store the redaction sync position")
		}
	}
}

// deliver turns a sync response into a synthetic transaction, keyed by the
// position it was fetched from so that a retry is recognised.
func (r *RedactionSync) deliver(ctx context.Context, since string, resp *mautrix.RespSync) error {
	var events []json.RawMessage
	for roomID, room := range resp.Rooms.Join {
		for _, evt := range room.Timeline.Events {
			evt.RoomID = id.RoomID(roomID)
			raw, err := json.Marshal(evt)
			if err != nil {
				continue
			}
			events = append(events, raw)
		}
	}
	if len(events) == 0 {
		return nil
	}
	return r.handler.HandleTransaction(ctx, "sync:"+since, events, nil)
}
