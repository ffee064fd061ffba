package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// benchBot is the bridge bot of the bench's config.
const benchBot = id.UserID("@twiliobot:localhost")

// startEncryption sets up an encrypted null run: the null homeserver
// serves keys and to-device messages, the bench user gets its device, and
// the bridge's config turns encryption on, with new portals encrypted and
// to-device messages coming in appservice transactions (MSC2409), which
// costs the bridge less than a /sync loop would and is what the bench's
// transactions can carry.
func (r *nullRun) startEncryption(ctx context.Context, hsURL string, edits map[string]any) error {
	r.hs.keys = newNullKeys(benchUser, func(evt *event.Event) { r.user.handleToDevice(ctx, evt) })
	var err error
	if r.user, err = newUserDevice(ctx, hsURL, r.hs.keys, benchBot); err != nil {
		return err
	}
	r.hs.Decrypt = func(room, sender, eventID string, content []byte) (string, error) {
		return r.user.open(ctx, room, sender, eventID, content)
	}
	pickleKey := make([]byte, 32)
	if _, err := rand.Read(pickleKey); err != nil {
		return err
	}
	edits["encryption.allow"] = true
	edits["encryption.default"] = true
	edits["encryption.appservice"] = true
	edits["encryption.pickle_key"] = hex.EncodeToString(pickleKey)
	return nil
}

// openOlmSession waits for the bridge's device and opens the Olm session
// between it and the user's device, as a client has one from earlier
// conversations: otherwise the portals' first key shares would all race
// to claim the user's one-time keys.
func (r *nullRun) openOlmSession(ctx context.Context, bridgeURL string) error {
	deadline := time.Now().Add(30 * time.Second)
	for !r.hs.keys.hasDeviceKeys(benchBot) {
		if time.Now().After(deadline) {
			return fmt.Errorf("the bridge's device never uploaded its keys; bridge log:\n%s", r.bridge.LogTail(20))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	if err := r.user.share(ctx, "!bench-olm-warm-up:localhost"); err != nil {
		return err
	}
	return r.transaction(ctx, bridgeURL, []map[string]any{})
}

// shareUserKeys shares the user's Megolm session of every portal with the
// bridge's device, the to-device messages going out in transactions of up
// to Batch at a time.
func (r *nullRun) shareUserKeys(ctx context.Context, bridgeURL string) error {
	rooms := r.portals()
	for i, room := range rooms {
		if err := r.user.share(ctx, id.RoomID(room)); err != nil {
			return err
		}
		if (i+1)%r.opts.Batch == 0 || i == len(rooms)-1 {
			if err := r.transaction(ctx, bridgeURL, []map[string]any{}); err != nil {
				return err
			}
		}
	}
	return nil
}
