package e2ee

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/bridgev2"
	crypto "github.com/trestle-bridge/trestle/internal/mautrixcrypto"
)

// encryptingMatrix is the Matrix side with the bot's device in front: what
// ghosts and the bot send to encrypted rooms is encrypted first.
type encryptingMatrix struct {
	bridgev2.Matrix
	e *E2EE
}

// Wrap returns mx with encryption in encrypted rooms. Optional capabilities
// of mx (EventFinder, MemberLister) are kept.
func (e *E2EE) Wrap(mx bridgev2.Matrix) bridgev2.Matrix {
	w := &encryptingMatrix{Matrix: mx, e: e}
	finder, isFinder := mx.(bridgev2.EventFinder)
	lister, isLister := mx.(bridgev2.MemberLister)
	switch {
	case isFinder && isLister:
		return &struct {
			*encryptingMatrix
			bridgev2.EventFinder
			bridgev2.MemberLister
		}{w, finder, lister}
	case isFinder:
		return &struct {
			*encryptingMatrix
			bridgev2.EventFinder
		}{w, finder}
	case isLister:
		return &struct {
			*encryptingMatrix
			bridgev2.MemberLister
		}{w, lister}
	}
	return w
}

// CreateRoom notes the encryption and invites of a room the bridge creates,
// so its first message need not ask the homeserver.
func (m *encryptingMatrix) CreateRoom(ctx context.Context, as id.UserID, req *mautrix.ReqCreateRoom) (id.RoomID, error) {
	roomID, err := m.Matrix.CreateRoom(ctx, as, req)
	if err != nil {
		return roomID, err
	}
	for _, evt := range req.InitialState {
		if evt.Type == event.StateEncryption {
			if content, ok := evt.Content.Parsed.(*event.EncryptionEventContent); ok {
				m.e.state.setEncryption(roomID, content)
			}
		}
	}
	return roomID, nil
}

// SendMessage encrypts the event in encrypted rooms. Reactions stay
// plaintext (as in mautrix bridges), so clients can aggregate them.
func (m *encryptingMatrix) SendMessage(ctx context.Context, as id.UserID, roomID id.RoomID, evtType event.Type, content any, txnID string, ts time.Time) (id.EventID, error) {
	if evtType == event.EventReaction || evtType == event.EventEncrypted {
		return m.Matrix.SendMessage(ctx, as, roomID, evtType, content, txnID, ts)
	}
	if _, err := m.e.awaitReadyBounded(ctx); err != nil {
		// Whether the room is encrypted is asked as the device.
		return "", err
	}
	encrypted, err := m.e.state.IsEncrypted(ctx, roomID)
	if err != nil {
		return "", bridgev2.RetriableError("The bridge could not check whether the room is encrypted; retrying.", err)
	}
	if !encrypted {
		return m.Matrix.SendMessage(ctx, as, roomID, evtType, content, txnID, ts)
	}
	sealed, err := m.e.encrypt(ctx, roomID, evtType, content)
	if err != nil {
		return "", err
	}
	return m.Matrix.SendMessage(ctx, as, roomID, event.EventEncrypted, sealed, txnID, ts)
}

// encrypt seals content for the room, sharing a new Megolm session with
// the room's members first when there is none (or it expired, or a member
// or device changed). The session's new ratchet position is committed
// before this returns, so the ciphertext can be sent.
func (e *E2EE) encrypt(ctx context.Context, roomID id.RoomID, evtType event.Type, content any) (any, error) {
	mach, err := e.awaitReadyBounded(ctx)
	if err != nil {
		return nil, err
	}
	sealed, err := mach.EncryptMegolmEvent(ctx, roomID, evtType, content)
	if errors.Is(err, crypto.ErrNoGroupSession) || errors.Is(err, crypto.ErrSessionExpired) || errors.Is(err, crypto.ErrSessionNotShared) {
		members, merr := e.roomMembers(ctx, roomID)
		if merr != nil {
			return nil, bridgev2.RetriableError("The bridge could not list the room's members to share its keys; retrying.", merr)
		}
		if serr := mach.ShareGroupSession(ctx, roomID, members); serr != nil {
			return nil, bridgev2.RetriableError("The bridge could not share its encryption keys with the room; retrying.", serr)
		}
		sealed, err = mach.EncryptMegolmEvent(ctx, roomID, evtType, content)
	}
	if err != nil {
		return nil, bridgev2.RetriableError("The bridge could not encrypt the message; retrying.", err)
	}
	return withTxnMarker(sealed, content)
}

// awaitReadyBounded waits a little for the device, then lets the caller
// retry later rather than holding a portal lane indefinitely.
func (e *E2EE) awaitReadyBounded(ctx context.Context) (*crypto.OlmMachine, error) {
	waitCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	mach, err := e.awaitReady(waitCtx)
	if err != nil {
		return nil, bridgev2.RetriableError("The bridge's encryption device is not ready yet; retrying.", err)
	}
	return mach, nil
}

// roomMembers lists who gets the room's keys: joined and invited members,
// but not the bridge's own ghosts, which have no devices.
func (e *E2EE) roomMembers(ctx context.Context, roomID id.RoomID) ([]id.UserID, error) {
	resp, err := e.client().Members(ctx, roomID)
	if err != nil {
		return nil, err
	}
	all := make(map[id.UserID]event.Membership, len(resp.Chunk))
	var out []id.UserID
	for _, evt := range resp.Chunk {
		if evt.StateKey == nil {
			continue
		}
		_ = evt.Content.ParseRaw(evt.Type)
		member := evt.Content.AsMember()
		user := id.UserID(*evt.StateKey)
		all[user] = member.Membership
		if member.Membership != event.MembershipJoin && member.Membership != event.MembershipInvite {
			continue
		}
		if _, ghost := e.cfg.ParseGhostUserID(user); ghost || user == e.cfg.BotUserID() {
			continue
		}
		out = append(out, user)
	}
	e.state.setMembers(roomID, all)
	return out, nil
}

// withTxnMarker copies the core's transaction marker to the outside of the
// encrypted content, so a send whose answer was lost can still be found in
// the room (bridgev2.EventFinder) without decrypting.
func withTxnMarker(sealed *event.EncryptedEventContent, content any) (any, error) {
	marker := txnMarkerOf(content)
	if marker == "" {
		return sealed, nil
	}
	data, err := json.Marshal(sealed)
	if err != nil {
		return nil, err
	}
	var out map[string]any
	if err := json.Unmarshal(data, &out); err != nil {
		return nil, err
	}
	out[bridgev2.TxnMarkerKey] = marker
	return out, nil
}

// txnMarkerOf reads the marker the core puts in the Raw part of the
// content it sends (see bridgev2.TxnMarkerKey).
func txnMarkerOf(content any) string {
	if c, ok := content.(*event.Content); ok {
		if v, ok := c.Raw[bridgev2.TxnMarkerKey].(string); ok {
			return v
		}
	}
	return ""
}
