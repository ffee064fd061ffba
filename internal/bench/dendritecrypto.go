package bench

import (
	"context"
	"fmt"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// sealedArrival is an encrypted text the bot's sync saw, with when and in
// which phase.
type sealedArrival struct {
	evt *event.Event
	at  time.Time
	lat *Latencies
}

// openSealed decrypts, with the user's device, the encrypted texts the
// bot's sync has seen, and records their arrival at the time they were
// seen: the bench cannot read them as the bot, and decrypting them is the
// check that the user can. Those whose keys have not reached the user's
// device yet are kept for the next round.
func (r *dendriteRun) openSealed(ctx context.Context) {
	if r.crypt == nil {
		return
	}
	kept := r.sealed[:0]
	for _, s := range r.sealed {
		decrypted, err := r.crypt.Decrypt(ctx, s.evt)
		if err != nil {
			kept = append(kept, s)
			continue
		}
		if decrypted.Type != event.EventMessage {
			continue
		}
		r.textArrived(s.lat, decrypted.Sender, decrypted.RoomID, decrypted.Content.AsMessage().Body, s.at)
	}
	r.sealed = kept
}

// sendText sends a text as the user, encrypted by the user's device in
// encrypted rooms.
func (r *dendriteRun) sendText(ctx context.Context, room id.RoomID, text string) (id.EventID, error) {
	if r.crypt != nil {
		return r.crypt.Send(ctx, room, text)
	}
	resp, err := r.user.SendText(ctx, room, text)
	if err != nil {
		return "", err
	}
	return resp.EventID, nil
}

// encryptionState is the m.room.encryption initial state of the ceilings'
// rooms in encrypted runs, as the bridge gives its portals.
func (r *dendriteRun) encryptionState() []*event.Event {
	if !r.opts.Encryption {
		return nil
	}
	return []*event.Event{{
		Type: event.StateEncryption, StateKey: new(string),
		Content: event.Content{Parsed: &event.EncryptionEventContent{Algorithm: id.AlgorithmMegolmV1}},
	}}
}

// awaitEncrypted waits until the user's client knows the rooms are
// encrypted: until then it would send their texts in plaintext.
func (r *dendriteRun) awaitEncrypted(ctx context.Context, rooms []id.RoomID) error {
	if r.crypt == nil {
		return nil
	}
	deadline := time.Now().Add(time.Minute)
	for _, room := range rooms {
		for r.crypt.State(room, event.StateEncryption, "") == nil {
			if time.Now().After(deadline) {
				return fmt.Errorf("the user's client never saw %s encrypted", room)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-r.crypt.Changed():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return nil
}
