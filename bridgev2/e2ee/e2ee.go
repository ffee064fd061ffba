package e2ee

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto/attachment"
	"maunium.net/go/mautrix/crypto/goolm/libolmpickle"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/bridgev2"
	"github.com/trestle-bridge/trestle/bridgev2/bridgeconfig"
	"github.com/trestle-bridge/trestle/bridgev2/database"
	crypto "github.com/trestle-bridge/trestle/internal/mautrixcrypto"
)

const (
	kindDevice   = "device"
	kindMediaKey = "media_key"
	// deviceName is the display name of the bot's device in users' device
	// lists.
	deviceName = "Trestle bridge"
)

// KeyWait bounds how long an event whose keys have not arrived waits for
// them before the bridge asks the sender's devices, and again after asking,
// before the sender is told it could not be decrypted. A variable so tests
// of the failure path need not wait the full time.
var KeyWait = 10 * time.Second

// Options configure the bot's device.
type Options struct {
	Config *bridgeconfig.Config
	DB     *database.Database
	// HTTP is the client for the homeserver; nil uses a default one.
	HTTP *http.Client
	Log  zerolog.Logger
}

// E2EE is the bot's device: it implements bridgev2.Crypto, and Wrap makes
// a bridgev2.Matrix that encrypts what ghosts and the bot send in encrypted
// rooms (ghosts send through the bot's device, as in mautrix bridges).
type E2EE struct {
	cfg   *bridgeconfig.Config
	enc   bridgeconfig.Encryption
	db    *database.Database
	store *Store // loaded by setup; used by the Run goroutine only
	state *roomState
	hsURL *url.URL
	http  *http.Client
	log   zerolog.Logger

	// ready is closed once the device is logged in and its keys uploaded.
	ready   chan struct{}
	readyMu sync.RWMutex
	mach    *crypto.OlmMachine
	cli     *mautrix.Client

	// toDevice is set when to-device events come in appservice
	// transactions, so the /sync loop is not needed.
	toDevice bool
}

var _ bridgev2.Crypto = (*E2EE)(nil)

// New checks that the bot device's stored state loads with the pickle key;
// Run brings the device up.
func New(ctx context.Context, opts Options) (*E2EE, error) {
	hsURL, err := mautrix.ParseAndNormalizeBaseURL(opts.Config.Homeserver.Address)
	if err != nil {
		return nil, fmt.Errorf("config key homeserver.address: %w", err)
	}
	// Fails fast on a changed pickle key, before anything is delivered.
	if _, err := NewStore(ctx, opts.DB, opts.Config.Encryption.PickleKey); err != nil {
		return nil, err
	}
	httpClient := opts.HTTP
	if httpClient == nil {
		httpClient = &http.Client{Timeout: 2 * time.Minute}
	}
	e := &E2EE{
		cfg: opts.Config, enc: opts.Config.Encryption, db: opts.DB,
		hsURL: hsURL, http: httpClient, log: opts.Log, ready: make(chan struct{}),
		toDevice: opts.Config.Encryption.Appservice,
	}
	var rotation *event.EncryptionEventContent
	if e.enc.Rotation.EnableCustom {
		rotation = &event.EncryptionEventContent{
			RotationPeriodMillis: e.enc.Rotation.Milliseconds, RotationPeriodMessages: e.enc.Rotation.Messages,
		}
	}
	e.state = newRoomState(e.client, rotation)
	return e, nil
}

func (e *E2EE) client() *mautrix.Client {
	e.readyMu.RLock()
	defer e.readyMu.RUnlock()
	return e.cli
}

func (e *E2EE) machine() *crypto.OlmMachine {
	e.readyMu.RLock()
	defer e.readyMu.RUnlock()
	return e.mach
}

// awaitReady waits until the device is up or ctx ends.
func (e *E2EE) awaitReady(ctx context.Context) (*crypto.OlmMachine, error) {
	select {
	case <-e.ready:
		return e.machine(), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// asClient is a client acting as the bot with the appservice token.
func (e *E2EE) asClient() *mautrix.Client {
	return &mautrix.Client{
		HomeserverURL: e.hsURL, UserID: e.cfg.BotUserID(), AccessToken: e.cfg.AppService.ASToken,
		UserAgent: "trestle", Client: e.http, Log: e.log, SetAppServiceUserID: true,
		DefaultHTTPRetries: 0, IgnoreRateLimit: true,
	}
}

// Run brings the device up, retrying while the homeserver is unavailable,
// and then follows the bot's /sync for to-device events and device lists
// until ctx ends (unless encryption.appservice brings them in
// transactions).
func (e *E2EE) Run(ctx context.Context) {
	for attempt := 1; ctx.Err() == nil; attempt++ {
		err := e.setup(ctx)
		if err == nil {
			break
		}
		delay := min(time.Duration(attempt)*2*time.Second, time.Minute)
		e.log.Warn().Err(err).Dur("retry_in", delay).Msg("Could not set up the bridge's encryption device")
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return
		}
	}
	if ctx.Err() != nil || e.toDevice {
		return
	}
	e.syncLoop(ctx)
}

// setup logs the bot's device in (creating it the first time) and uploads
// its keys.
func (e *E2EE) setup(ctx context.Context) error {
	deviceID, err := e.db.Crypto.Get(ctx, kindDevice, "")
	if err != nil {
		return err
	}
	cli := e.asClient()
	if e.enc.MSC4190 {
		if err := cli.CreateDeviceMSC4190(ctx, id.DeviceID(deviceID), deviceName); err != nil {
			return fmt.Errorf("create the bot's device with MSC4190: %w", err)
		}
	} else {
		resp, err := cli.Login(ctx, &mautrix.ReqLogin{
			Type:                     mautrix.AuthTypeAppservice,
			Identifier:               mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: string(e.cfg.BotUserID())},
			DeviceID:                 id.DeviceID(deviceID),
			InitialDeviceDisplayName: deviceName,
		})
		if err != nil {
			return fmt.Errorf("log the bot's device in with m.login.application_service: %w", err)
		}
		if deviceID != "" && resp.DeviceID != id.DeviceID(deviceID) {
			return fmt.Errorf("the homeserver gave the bot device %s instead of its own device %s", resp.DeviceID, deviceID)
		}
		cli = &mautrix.Client{
			HomeserverURL: e.hsURL, UserID: e.cfg.BotUserID(), DeviceID: resp.DeviceID, AccessToken: resp.AccessToken,
			UserAgent: "trestle", Client: e.http, Log: e.log, DefaultHTTPRetries: 0, IgnoreRateLimit: true,
		}
	}
	if deviceID == "" {
		// The device ID is committed before any key is made for it, so a
		// crash cannot leave keys for a device the bridge forgot.
		if err := e.db.Crypto.Put(ctx, database.CryptoRow{Kind: kindDevice, Value: string(cli.DeviceID)}); err != nil {
			return err
		}
	}
	// Loaded again now, as the process starts delivering: a standby that
	// takes over must not run on what it loaded when it started, while
	// the leader before it went on changing the state.
	store, err := NewStore(ctx, e.db, e.enc.PickleKey)
	if err != nil {
		return err
	}
	e.store = store
	log := e.log.With().Str("component", "crypto").Logger()
	mach := crypto.NewOlmMachine(cli, &log, e.store, e.state)
	mach.SendKeysMinTrust = id.ParseTrustState(e.enc.VerificationLevels.Send)
	mach.ShareKeysMinTrust = id.ParseTrustState(e.enc.VerificationLevels.Share)
	mach.PlaintextMentions = true
	mach.DisableDeviceChangeKeyRotation = e.enc.Rotation.DisableDeviceChangeKeyRotation
	// The ratchet safety data is only read to ratchet inbound sessions
	// forward or delete them once used up on decryption, which the bridge
	// does not do. Tracking it would re-pickle and commit the whole inbound
	// session after every message received; replays are still refused by
	// the message index, which the event's seal commits.
	mach.DisableRatchetTracking = true
	mach.SetBackgroundCtx(ctx)
	if err := mach.Load(ctx); err != nil {
		return fmt.Errorf("load the bot's olm account: %w", err)
	}
	if !mach.GetAccount().Shared {
		// Committed before upload: a crash after the upload must not make
		// a second account whose keys the homeserver would refuse.
		if err := e.store.PutAccount(ctx, mach.GetAccount()); err != nil {
			return err
		}
	}
	if err := mach.ShareKeys(ctx, -1); err != nil {
		return fmt.Errorf("upload the bot device's keys: %w", err)
	}
	e.readyMu.Lock()
	e.mach, e.cli = mach, cli
	e.readyMu.Unlock()
	close(e.ready)
	e.log.Info().Stringer("device_id", cli.DeviceID).Str("fingerprint", mach.Fingerprint()).Msg("Bridge encryption device ready")
	return nil
}

// syncFilter keeps rooms out of the device's /sync: the bridge gets room
// events from transactions, and wants only to-device events, device lists
// and key counts here.
const syncFilter = `{"presence":{"types":[]},"account_data":{"types":[]},"room":{"rooms":[]}}`

func (e *E2EE) syncLoop(ctx context.Context) {
	mach, cli := e.machine(), e.client()
	since, err := e.store.SyncToken(ctx)
	if err != nil {
		e.log.Warn().Err(err).Msg("Could not read the encryption sync position; starting from the beginning")
	}
	failures := 0
	for ctx.Err() == nil {
		resp, err := cli.FullSyncRequest(ctx, mautrix.ReqSync{Timeout: 30000, Since: since, FilterID: syncFilter})
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			failures++
			delay := min(time.Duration(failures)*2*time.Second, time.Minute)
			e.log.Warn().Err(err).Dur("retry_in", delay).Msg("Encryption sync failed")
			select {
			case <-time.After(delay):
			case <-ctx.Done():
				return
			}
			continue
		}
		failures = 0
		mach.ProcessSyncResponse(ctx, resp, since)
		since = resp.NextBatch
		// Stored after the batch is handled: after a crash the batch comes
		// again, and handled Olm messages are recognised by their hashes.
		if err := e.store.PutSyncToken(ctx, since); err != nil && !errors.Is(err, context.Canceled) {
			e.log.Warn().Err(err).Msg("Could not store the encryption sync position")
		}
	}
}

// HandleAppserviceCrypto takes to-device events, device-list changes and
// key counts from an appservice transaction (MSC2409/MSC3202), for
// encryption.appservice.
func (e *E2EE) HandleAppserviceCrypto(ctx context.Context, toDevice []*event.Event, lists *mautrix.DeviceLists, counts map[id.UserID]map[id.DeviceID]mautrix.OTKCount) error {
	mach, err := e.awaitReadyBounded(ctx)
	if err != nil {
		return err
	}
	if lists != nil {
		mach.HandleDeviceLists(ctx, lists, "")
	}
	bot := e.cfg.BotUserID()
	for _, evt := range toDevice {
		if evt.ToUserID != "" && evt.ToUserID != bot {
			continue
		}
		evt.Type.Class = event.ToDeviceEventType
		if err := evt.Content.ParseRaw(evt.Type); err != nil {
			e.log.Warn().Str("event_type", evt.Type.Type).Err(err).Msg("Skipped malformed to-device event")
			continue
		}
		mach.HandleToDeviceEvent(ctx, evt)
	}
	if own, ok := counts[bot][mach.Client.DeviceID]; ok {
		mach.HandleOTKCounts(ctx, &own)
	}
	mach.MarkOlmHashSavePoint(ctx)
	return nil
}

// HandleRoomEvent implements bridgev2.Crypto.
func (e *E2EE) HandleRoomEvent(ctx context.Context, evt *event.Event) {
	e.state.handle(evt)
	if evt.Type == event.StateMember && e.state.known(evt.RoomID) {
		if mach := e.machine(); mach != nil {
			// A member joining or leaving gets a new outbound session, so
			// leavers cannot read on and joiners get the keys.
			mach.HandleMemberEvent(ctx, evt)
		}
	}
}

// IsEncrypted implements bridgev2.Crypto.
func (e *E2EE) IsEncrypted(ctx context.Context, roomID id.RoomID) (bool, error) {
	if _, err := e.awaitReady(ctx); err != nil {
		return false, err
	}
	return e.state.IsEncrypted(ctx, roomID)
}

// undecryptable is the failure the sender sees.
func undecryptable(cause error) error {
	return &bridgev2.Error{
		Message: "The bridge could not decrypt this message: its keys never reached the bridge's device. Send it again; if it keeps happening, check that your client shares keys with unverified devices.",
		Err:     cause, Reason: event.MessageStatusUndecryptable,
	}
}

// Decrypt implements bridgev2.Crypto. The seal holds the message index row
// and, for a file, its key: both must be stored before the remote network
// sees the event, and the core's next write for it comes first.
func (e *E2EE) Decrypt(ctx context.Context, evt *event.Event) (*event.Event, bridgev2.Seal, error) {
	mach, err := e.awaitReady(ctx)
	if err != nil {
		return nil, nil, err
	}
	if evt.Content.Parsed == nil {
		if err := evt.Content.ParseRaw(evt.Type); err != nil {
			return nil, nil, undecryptable(err)
		}
	}
	content := evt.Content.AsEncrypted()
	decrypted, err := mach.DecryptMegolmEvent(ctx, evt)
	if errors.Is(err, crypto.ErrNoSessionFound) {
		log := zerolog.Ctx(ctx).With().Stringer("session_id", content.SessionID).Logger()
		log.Debug().Msg("Keys of an encrypted event have not arrived; waiting")
		if !mach.WaitForSession(ctx, evt.RoomID, content.SenderKey, content.SessionID, KeyWait) {
			log.Info().Msg("Keys still missing; asking the sender's devices")
			if rerr := mach.SendRoomKeyRequest(ctx, evt.RoomID, content.SenderKey, content.SessionID, "",
				map[id.UserID][]id.DeviceID{evt.Sender: {"*"}}); rerr != nil {
				log.Warn().Err(rerr).Msg("Could not send a room key request")
			}
			mach.WaitForSession(ctx, evt.RoomID, content.SenderKey, content.SessionID, KeyWait)
		}
		decrypted, err = mach.DecryptMegolmEvent(ctx, evt)
	}
	// Taken whatever the outcome, so a failed event leaves nothing behind;
	// an event that is not bridged needs no replay record.
	rows := e.store.takeSeal(evt.ID)
	if err != nil {
		return nil, nil, undecryptable(err)
	}
	if min := id.ParseTrustState(e.enc.VerificationLevels.Receive); decrypted.Mautrix.TrustState < min {
		return nil, nil, bridgev2.UnsupportedError(fmt.Sprintf("The bridge does not bridge messages from devices below %s trust (encryption.verification_levels.receive); verify the device you sent this from.", e.enc.VerificationLevels.Receive))
	}
	if msg, ok := decrypted.Content.Parsed.(*event.MessageEventContent); ok && msg.File != nil && msg.URL == "" {
		row, err := e.mediaKeyRow(msg.File)
		if err != nil {
			// Encoding the key fails only on a broken pickle key, which a
			// retry would not mend; storing it is the seal's part.
			return nil, nil, bridgev2.NewError("The bridge could not encrypt the key of your file for storage, so it was not sent.", err)
		}
		rows = append(rows, row)
		// Connectors hand out public URLs for content.URL, and the media
		// handler decrypts what is behind it: to them the file is plain.
		msg.URL = msg.File.URL
		msg.File = nil
	}
	if len(rows) == 0 {
		return decrypted, nil, nil
	}
	return decrypted, func(ctx context.Context, tx database.Execer) error {
		return e.db.Crypto.PutIn(ctx, tx, rows...)
	}, nil
}

// mediaKeyRow is the row of a file's key, pickled, for the file the user
// sent encrypted.
func (e *E2EE) mediaKeyRow(file *event.EncryptedFileInfo) (database.CryptoRow, error) {
	data, err := json.Marshal(file)
	if err != nil {
		return database.CryptoRow{}, err
	}
	pickled, err := libolmpickle.Pickle([]byte(e.enc.PickleKey), data)
	if err != nil {
		return database.CryptoRow{}, err
	}
	return database.CryptoRow{Kind: kindMediaKey, Key: string(file.URL), Value: string(pickled)}, nil
}

// DecryptMedia implements bridgev2.Crypto.
func (e *E2EE) DecryptMedia(ctx context.Context, uri id.ContentURIString, body io.ReadCloser) (io.ReadCloser, bool, error) {
	value, err := e.db.Crypto.Get(ctx, kindMediaKey, string(uri))
	if err != nil || value == "" {
		return nil, false, err
	}
	data, err := libolmpickle.Unpickle([]byte(e.enc.PickleKey), []byte(value))
	if err != nil {
		return nil, false, fmt.Errorf("unpickle media key: %w", err)
	}
	var file event.EncryptedFileInfo
	if err := json.Unmarshal(data, &file); err != nil {
		return nil, false, err
	}
	if err := file.PrepareForDecryption(); err != nil {
		return nil, false, err
	}
	return &decryptedBody{ReadSeekCloser: file.DecryptStream(body), raw: body}, true, nil
}

// decryptedBody closes both the decryption (which checks the hash) and the
// download.
type decryptedBody struct {
	io.ReadSeekCloser
	raw io.Closer
}

func (d *decryptedBody) Close() error {
	err := d.ReadSeekCloser.Close()
	_ = d.raw.Close()
	if errors.Is(err, attachment.ErrInvalidHash) {
		return fmt.Errorf("encrypted file failed its hash check: %w", err)
	}
	return err
}
