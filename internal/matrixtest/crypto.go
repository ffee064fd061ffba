package matrixtest

import (
	"context"
	"errors"
	"fmt"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto/attachment"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	crypto "github.com/trestle-bridge/trestle/internal/mautrixcrypto"
)

// The user's own encryption (Options.Crypto): an Olm machine for the
// client's device, kept in memory, as Element would run it. Encrypted
// timeline events are recorded decrypted; one whose keys never came stays
// recorded as m.room.encrypted, and a later copy is added once its keys
// arrive. What the client sends to an encrypted room is encrypted.

// cryptoState answers the machine's questions about rooms from what the
// client has recorded.
type cryptoState struct{ c *Client }

func (s cryptoState) IsEncrypted(_ context.Context, roomID id.RoomID) (bool, error) {
	return s.c.State(roomID, event.StateEncryption, "") != nil, nil
}

func (s cryptoState) GetEncryptionEvent(_ context.Context, roomID id.RoomID) (*event.EncryptionEventContent, error) {
	evt := s.c.State(roomID, event.StateEncryption, "")
	if evt == nil {
		return nil, nil
	}
	return evt.Content.AsEncryption(), nil
}

func (s cryptoState) GetHistoryVisibility(_ context.Context, roomID id.RoomID) (*event.HistoryVisibilityEventContent, error) {
	evt := s.c.State(roomID, event.StateHistoryVisibility, "")
	if evt == nil {
		return nil, nil
	}
	return evt.Content.AsHistoryVisibility(), nil
}

func (s cryptoState) FindSharedRooms(_ context.Context, userID id.UserID) ([]id.RoomID, error) {
	var out []id.RoomID
	for _, roomID := range s.c.Rooms() {
		if s.c.State(roomID, event.StateEncryption, "") == nil {
			continue
		}
		if m := s.c.Membership(roomID, userID); m == event.MembershipJoin || m == event.MembershipInvite {
			out = append(out, roomID)
		}
	}
	return out, nil
}

// startCrypto sets up the device's machine and uploads its keys.
func (c *Client) startCrypto(ctx context.Context) error {
	if c.Matrix.DeviceID == "" {
		return errors.New("the client has no device ID: log in with a password to get one")
	}
	log := zerolog.Nop()
	c.mach = crypto.NewOlmMachine(c.Matrix, &log, crypto.NewMemoryStore(nil), cryptoState{c})
	if err := c.mach.Load(ctx); err != nil {
		return fmt.Errorf("%s loading its olm account: %w", c.UserID, err)
	}
	if err := c.mach.ShareKeys(ctx, -1); err != nil {
		return fmt.Errorf("%s uploading its device keys: %w", c.UserID, err)
	}
	return nil
}

// decryptSync handles the encryption part of a /sync response before it is
// recorded: to-device events and device lists first (they bring the room
// keys), then the room's encrypted events are replaced by their decrypted
// form. Earlier events still waiting for keys are tried again.
func (c *Client) decryptSync(ctx context.Context, resp *mautrix.RespSync, since string) {
	if c.mach == nil {
		return
	}
	c.mach.ProcessSyncResponse(ctx, resp, since)
	for roomID, data := range resp.Rooms.Join {
		for i, evt := range data.Timeline.Events {
			if evt.Type != event.EventEncrypted {
				continue
			}
			prepare(roomID, evt, event.MessageEventType)
			if decrypted, err := c.mach.DecryptMegolmEvent(ctx, evt); err == nil {
				data.Timeline.Events[i] = decrypted
			} else {
				c.mu.Lock()
				c.undecrypted = append(c.undecrypted, evt)
				c.mu.Unlock()
			}
		}
	}
	c.retryUndecrypted(ctx)
}

// retryUndecrypted records the decrypted copy of events whose keys came late.
func (c *Client) retryUndecrypted(ctx context.Context) {
	c.mu.Lock()
	pending := c.undecrypted
	c.undecrypted = nil
	c.mu.Unlock()
	var still []*event.Event
	for _, evt := range pending {
		decrypted, err := c.mach.DecryptMegolmEvent(ctx, evt)
		if err != nil {
			still = append(still, evt)
			continue
		}
		c.mu.Lock()
		r := c.room(evt.RoomID)
		r.index[decrypted.ID] = len(r.timeline)
		r.timeline = append(r.timeline, decrypted)
		c.notifyLocked()
		c.mu.Unlock()
	}
	c.mu.Lock()
	c.undecrypted = append(c.undecrypted, still...)
	c.mu.Unlock()
}

// Undecryptable returns the encrypted events of a room this client has not
// been able to decrypt (yet).
func (c *Client) Undecryptable(roomID id.RoomID) []*event.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*event.Event
	for _, evt := range c.undecrypted {
		if evt.RoomID == roomID {
			out = append(out, evt)
		}
	}
	return out
}

// Seal encrypts content when the client has encryption and the room is
// encrypted, sharing a session with the room's members first if needed; it
// returns the type and content to send (unchanged otherwise). Send methods
// call it; it is exported for callers that send through the mautrix client
// themselves, e.g. with their own transaction IDs.
func (c *Client) Seal(ctx context.Context, roomID id.RoomID, evtType event.Type, content any) (event.Type, any, error) {
	if c.mach == nil || evtType == event.EventReaction || c.State(roomID, event.StateEncryption, "") == nil {
		return evtType, content, nil
	}
	// The Olm machine's in-memory store is not safe for concurrent key
	// sharing (tests send from several goroutines at once).
	c.sealMu.Lock()
	defer c.sealMu.Unlock()
	sealed, err := c.mach.EncryptMegolmEvent(ctx, roomID, evtType, content)
	if errors.Is(err, crypto.ErrNoGroupSession) || errors.Is(err, crypto.ErrSessionExpired) || errors.Is(err, crypto.ErrSessionNotShared) {
		var members []id.UserID
		for _, evt := range c.StateEvents(roomID, event.StateMember) {
			if m := evt.Content.AsMember().Membership; m == event.MembershipJoin || m == event.MembershipInvite {
				members = append(members, id.UserID(evt.GetStateKey()))
			}
		}
		if err := c.mach.ShareGroupSession(ctx, roomID, members); err != nil {
			return event.Type{}, nil, fmt.Errorf("%s sharing its keys in %s: %w", c.UserID, roomID, err)
		}
		sealed, err = c.mach.EncryptMegolmEvent(ctx, roomID, evtType, content)
	}
	if err != nil {
		return event.Type{}, nil, fmt.Errorf("%s encrypting for %s: %w", c.UserID, roomID, err)
	}
	return event.EventEncrypted, sealed, nil
}

// Decrypt decrypts an m.room.encrypted event read outside the sync loop,
// e.g. from /messages.
func (c *Client) Decrypt(ctx context.Context, evt *event.Event) (*event.Event, error) {
	if c.mach == nil {
		return nil, errors.New("the client has no encryption (Options.Crypto)")
	}
	if evt.Content.Parsed == nil {
		evt.Type.Class = event.MessageEventType
		if err := evt.Content.ParseRaw(evt.Type); err != nil {
			return nil, err
		}
	}
	return c.mach.DecryptMegolmEvent(ctx, evt)
}

// SendEncryptedMedia encrypts data as an attachment, uploads the
// ciphertext and sends it as a media message of msgType, as clients do in
// encrypted rooms.
func (c *Client) SendEncryptedMedia(ctx context.Context, roomID id.RoomID, msgType event.MessageType, data []byte, contentType, fileName string) (id.EventID, error) {
	file := attachment.NewEncryptedFile()
	ciphertext := file.Encrypt(data)
	up, err := c.Matrix.UploadBytesWithName(ctx, ciphertext, "application/octet-stream", "")
	if err != nil {
		return "", fmt.Errorf("%s uploading encrypted %s: %w", c.UserID, fileName, err)
	}
	return c.SendMessage(ctx, roomID, &event.MessageEventContent{
		MsgType:  msgType,
		Body:     fileName,
		FileName: fileName,
		File:     &event.EncryptedFileInfo{EncryptedFile: *file, URL: up.ContentURI.CUString()},
		Info:     &event.FileInfo{MimeType: contentType, Size: len(data)},
	})
}

// DownloadMedia fetches the file of a media message, decrypting it when it
// was sent encrypted.
func (c *Client) DownloadMedia(ctx context.Context, content *event.MessageEventContent) ([]byte, error) {
	uri := content.URL
	if content.File != nil {
		uri = content.File.URL
	}
	parsed, err := uri.Parse()
	if err != nil {
		return nil, fmt.Errorf("media message without a valid URL: %w", err)
	}
	data, err := c.Matrix.DownloadBytes(ctx, parsed)
	if err != nil {
		return nil, fmt.Errorf("%s downloading %s: %w", c.UserID, uri, err)
	}
	if content.File == nil {
		return data, nil
	}
	return content.File.Decrypt(data)
}
