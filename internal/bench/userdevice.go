package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	crypto "github.com/trestle-bridge/trestle/internal/mautrixcrypto"
)

// userDevice is the bench user's own encrypting client in encrypted null
// runs: an Olm machine with its keys in memory, as Element runs one. It
// encrypts the user's outbound texts and decrypts what the bridge sends, so
// the bridge does all of its real encryption work.
type userDevice struct {
	mach *crypto.OlmMachine
	bot  id.UserID
}

// userDeviceID and userToken identify the bench user's device to the null
// homeserver.
const (
	userDeviceID = id.DeviceID("BENCHUSER")
	userToken    = "bench-user-device-token"
)

// everyRoomEncrypted is the user device's view of rooms: every room it
// sends in is a portal, and every portal is encrypted (with the default
// Megolm settings, as Element creates them).
type everyRoomEncrypted struct{}

func (everyRoomEncrypted) IsEncrypted(context.Context, id.RoomID) (bool, error) { return true, nil }

func (everyRoomEncrypted) GetEncryptionEvent(context.Context, id.RoomID) (*event.EncryptionEventContent, error) {
	return &event.EncryptionEventContent{Algorithm: id.AlgorithmMegolmV1}, nil
}

func (everyRoomEncrypted) GetHistoryVisibility(context.Context, id.RoomID) (*event.HistoryVisibilityEventContent, error) {
	return nil, nil
}

func (everyRoomEncrypted) FindSharedRooms(context.Context, id.UserID) ([]id.RoomID, error) {
	return nil, nil
}

// newUserDevice creates the device at the null homeserver and uploads its
// keys.
func newUserDevice(ctx context.Context, hsURL string, keys *nullKeys, bot id.UserID) (*userDevice, error) {
	cli, err := mautrix.NewClient(hsURL, benchUser, userToken)
	if err != nil {
		return nil, err
	}
	cli.DeviceID = userDeviceID
	keys.addDevice(userToken, benchUser, userDeviceID)
	log := zerolog.Nop()
	mach := crypto.NewOlmMachine(cli, &log, crypto.NewMemoryStore(nil), everyRoomEncrypted{})
	// Ghosts send through the bot's device, which a client flags but
	// still decrypts: asking the homeserver for each ghost's devices would
	// only load the bench.
	mach.DisableDecryptKeyFetching = true
	if err := mach.Load(ctx); err != nil {
		return nil, fmt.Errorf("load the bench user's olm account: %w", err)
	}
	if err := mach.ShareKeys(ctx, -1); err != nil {
		return nil, fmt.Errorf("upload the bench user's device keys: %w", err)
	}
	return &userDevice{mach: mach, bot: bot}, nil
}

// handleToDevice takes a to-device message for the device (room keys
// from the bridge, Olm-encrypted).
func (d *userDevice) handleToDevice(ctx context.Context, evt *event.Event) {
	if err := evt.Content.ParseRaw(evt.Type); err != nil {
		return
	}
	d.mach.HandleToDeviceEvent(ctx, evt)
}

// share makes the device's Megolm session for a room and sends its key to
// the bridge's device, as a client does before its first message in a
// room (and again after each rotation).
func (d *userDevice) share(ctx context.Context, room id.RoomID) error {
	if err := d.mach.ShareGroupSession(ctx, room, []id.UserID{benchUser, d.bot}); err != nil {
		return fmt.Errorf("share the bench user's keys in %s: %w", room, err)
	}
	return nil
}

// seal encrypts a text for a room, sharing the session first if needed.
func (d *userDevice) seal(ctx context.Context, room id.RoomID, body string) (*event.EncryptedEventContent, error) {
	content := &event.MessageEventContent{MsgType: event.MsgText, Body: body}
	sealed, err := d.mach.EncryptMegolmEvent(ctx, room, event.EventMessage, content)
	if errors.Is(err, crypto.ErrNoGroupSession) || errors.Is(err, crypto.ErrSessionExpired) || errors.Is(err, crypto.ErrSessionNotShared) {
		if err := d.share(ctx, room); err != nil {
			return nil, err
		}
		sealed, err = d.mach.EncryptMegolmEvent(ctx, room, event.EventMessage, content)
	}
	if err != nil {
		return nil, fmt.Errorf("encrypt the bench user's text in %s: %w", room, err)
	}
	return sealed, nil
}

// open decrypts an m.room.encrypted event the bridge sent and returns the
// text's body.
func (d *userDevice) open(ctx context.Context, room, sender, eventID string, raw []byte) (string, error) {
	evt := &event.Event{
		Type: event.EventEncrypted, RoomID: id.RoomID(room), Sender: id.UserID(sender), ID: id.EventID(eventID),
		Content: event.Content{VeryRaw: json.RawMessage(raw)},
	}
	if err := evt.Content.ParseRaw(evt.Type); err != nil {
		return "", err
	}
	decrypted, err := d.mach.DecryptMegolmEvent(ctx, evt)
	if err != nil {
		return "", err
	}
	msg, ok := decrypted.Content.Parsed.(*event.MessageEventContent)
	if !ok {
		return "", fmt.Errorf("decrypted event of type %s", decrypted.Type.Type)
	}
	return msg.Body, nil
}
