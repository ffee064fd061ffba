// Package e2ee gives the bridge bot a Matrix device for end-to-bridge
// encryption: mautrix's Olm machine (pure-Go goolm, vendored in
// internal/mautrixcrypto) over a store in the bridge's own database.
package e2ee

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"sync"
	"time"

	"maunium.net/go/mautrix/crypto/goolm/libolmpickle"
	"maunium.net/go/mautrix/crypto/goolm/session"
	"maunium.net/go/mautrix/crypto/olm"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/bridgev2/database"
	crypto "github.com/trestle-bridge/trestle/internal/mautrixcrypto"
)

// The kinds of crypto_state rows.
const (
	kindAccount     = "account"
	kindOlmSession  = "olm_session"
	kindInbound     = "megolm_inbound"
	kindWithheld    = "megolm_withheld"
	kindOutbound    = "megolm_outbound"
	kindShared      = "megolm_shared"
	kindIndex       = "message_index"
	kindOlmHash     = "olm_hash"
	kindDevices     = "device_list"
	kindOutdated    = "device_list_outdated"
	kindCrossSign   = "cross_signing"
	kindSignature   = "signature"
	kindSecret      = "secret"
	kindSyncToken   = "sync_token"
	keySep          = "|"
	olmHashLifetime = 7 * 24 * time.Hour
)

// Store is the Olm machine's store. Reads are served from memory (mautrix's
// MemoryStore, loaded from the database at start); every change is
// committed to the crypto_state table before the call returns, so the
// machine never sends a message under state the database does not have:
// after a kill -9 the bridge neither reuses a Megolm message index nor loses
// a session that messages went out under. Two changes are not committed
// each time: an outbound session's advance by one message, whose row is
// stored ahead of it (see putOutbound), which keeps the same promise; and a
// received message's index, which commits with the core's write for the
// same event (ValidateMessageIndex).
type Store struct {
	*crypto.MemoryStore
	db        *database.Database
	pickleKey []byte

	// stripes orders the writes of one object: two updates of the same
	// session must commit in the order they were pickled, while updates of
	// different objects still share group commits.
	stripes [64]sync.Mutex

	// resumeAt says, per room, where the stored outbound session resumes.
	resumeMu sync.Mutex
	resumeAt map[id.RoomID]storedOutbound

	// unsealed holds, per event, the message index rows its decryption
	// left for the core to commit (see ValidateMessageIndex).
	sealMu   sync.Mutex
	unsealed map[id.EventID][]database.CryptoRow

	sigMu sync.Mutex
	// signers maps a signer (user|key) to the signature rows it made, so
	// DropSignaturesByKey can delete them.
	signers map[string][]string
}

var _ crypto.Store = (*Store)(nil)

// outboundSkip is how many Megolm messages an outbound session may encrypt
// between two commits of its row: one commit per 32 texts instead of one
// per text, in the busiest path of an encrypted portal.
const outboundSkip = 32

// storedOutbound is where the committed row of a room's outbound session
// resumes.
type storedOutbound struct {
	session id.SessionID
	index   uint
}

// NewStore loads the crypto state from db. pickleKey encrypts the key
// material at rest.
func NewStore(ctx context.Context, db *database.Database, pickleKey string) (*Store, error) {
	s := &Store{
		MemoryStore: crypto.NewMemoryStore(nil),
		db:          db,
		pickleKey:   []byte(pickleKey),
		signers:     make(map[string][]string),
		resumeAt:    make(map[id.RoomID]storedOutbound),
		unsealed:    make(map[id.EventID][]database.CryptoRow),
	}
	if err := s.load(ctx); err != nil {
		return nil, fmt.Errorf("load the bridge's encryption keys: %w", err)
	}
	return s, nil
}

func (s *Store) lock(kind, key string) func() {
	h := fnv.New32a()
	_, _ = h.Write([]byte(kind + keySep + key))
	m := &s.stripes[h.Sum32()%uint32(len(s.stripes))]
	m.Lock()
	return m.Unlock
}

func (s *Store) put(ctx context.Context, kind, key string, value any) error {
	data, err := json.Marshal(value)
	if err != nil {
		return fmt.Errorf("encode crypto %s: %w", kind, err)
	}
	return s.db.Crypto.Put(ctx, database.CryptoRow{Kind: kind, Key: key, Value: string(data)})
}

type accountRow struct {
	Pickle           []byte              `json:"pickle"`
	Shared           bool                `json:"shared"`
	KeyBackupVersion id.KeyBackupVersion `json:"key_backup_version,omitempty"`
}

type olmSessionRow struct {
	SenderKey id.SenderKey           `json:"sender_key"`
	Pickle    []byte                 `json:"pickle"`
	Times     crypto.ExpirationMixin `json:"times"`
}

type inboundRow struct {
	Pickle           []byte               `json:"pickle"`
	SigningKey       id.Ed25519           `json:"signing_key"`
	SenderKey        id.Curve25519        `json:"sender_key"`
	RoomID           id.RoomID            `json:"room_id"`
	ForwardingChains []string             `json:"forwarding_chains,omitempty"`
	RatchetSafety    crypto.RatchetSafety `json:"ratchet_safety"`
	ReceivedAt       time.Time            `json:"received_at"`
	MaxAge           int64                `json:"max_age"`
	MaxMessages      int                  `json:"max_messages"`
	SharedHistory    *bool                `json:"shared_history,omitempty"`
	IsScheduled      bool                 `json:"is_scheduled,omitempty"`
	KeyBackupVersion id.KeyBackupVersion  `json:"key_backup_version,omitempty"`
	KeySource        id.KeySource         `json:"key_source,omitempty"`
	SourceUser       id.UserID            `json:"source_user,omitempty"`
}

type outboundRow struct {
	Pickle        []byte                 `json:"pickle"`
	Times         crypto.ExpirationMixin `json:"times"`
	MaxMessages   int                    `json:"max_messages"`
	MessageCount  int                    `json:"message_count"`
	SharedHistory *bool                  `json:"shared_history,omitempty"`
	Shared        bool                   `json:"shared"`
}

type indexRow struct {
	EventID   id.EventID `json:"event_id"`
	Timestamp int64      `json:"ts"`
}

type signatureRow struct {
	SignedUser id.UserID  `json:"signed_user"`
	SignedKey  id.Ed25519 `json:"signed_key"`
	SignerUser id.UserID  `json:"signer_user"`
	SignerKey  id.Ed25519 `json:"signer_key"`
	Signature  string     `json:"signature"`
}

// load fills the memory store from the database.
func (s *Store) load(ctx context.Context) error {
	m := s.MemoryStore
	each := func(kind string, fn func(r database.CryptoRow) error) error {
		rows, err := s.db.Crypto.All(ctx, kind)
		if err != nil {
			return err
		}
		for _, r := range rows {
			if err := fn(r); err != nil {
				return fmt.Errorf("crypto %s %q: %w", kind, r.Key, err)
			}
		}
		return nil
	}
	steps := []struct {
		kind string
		fn   func(r database.CryptoRow) error
	}{
		{kindAccount, func(r database.CryptoRow) error {
			var row accountRow
			if err := json.Unmarshal([]byte(r.Value), &row); err != nil {
				return err
			}
			acc, err := olm.AccountFromPickled(row.Pickle, s.pickleKey)
			if err != nil {
				return fmt.Errorf("unpickle (is encryption.pickle_key the one it was stored with?): %w", err)
			}
			m.Account = &crypto.OlmAccount{Internal: acc, Shared: row.Shared, KeyBackupVersion: row.KeyBackupVersion}
			return nil
		}},
		{kindOlmSession, func(r database.CryptoRow) error {
			var row olmSessionRow
			if err := json.Unmarshal([]byte(r.Value), &row); err != nil {
				return err
			}
			sess, err := olm.SessionFromPickled(row.Pickle, s.pickleKey)
			if err != nil {
				return err
			}
			return m.AddSession(ctx, row.SenderKey, &crypto.OlmSession{Internal: sess, ExpirationMixin: row.Times})
		}},
		{kindInbound, func(r database.CryptoRow) error {
			var row inboundRow
			if err := json.Unmarshal([]byte(r.Value), &row); err != nil {
				return err
			}
			sess, err := olm.InboundGroupSessionFromPickled(row.Pickle, s.pickleKey)
			if err != nil {
				return err
			}
			return m.PutGroupSession(ctx, &crypto.InboundGroupSession{
				Internal: sess, SigningKey: row.SigningKey, SenderKey: row.SenderKey, RoomID: row.RoomID,
				ForwardingChains: row.ForwardingChains, RatchetSafety: row.RatchetSafety, ReceivedAt: row.ReceivedAt,
				MaxAge: row.MaxAge, MaxMessages: row.MaxMessages, SharedHistory: row.SharedHistory,
				IsScheduled: row.IsScheduled, KeyBackupVersion: row.KeyBackupVersion, KeySource: row.KeySource,
				SourceUser: row.SourceUser,
			})
		}},
		{kindWithheld, func(r database.CryptoRow) error {
			var content event.RoomKeyWithheldEventContent
			if err := json.Unmarshal([]byte(r.Value), &content); err != nil {
				return err
			}
			return m.PutWithheldGroupSession(ctx, content)
		}},
		{kindOutbound, func(r database.CryptoRow) error {
			var row outboundRow
			if err := json.Unmarshal([]byte(r.Value), &row); err != nil {
				return err
			}
			sess, err := olm.OutboundGroupSessionFromPickled(row.Pickle, s.pickleKey)
			if err != nil {
				return err
			}
			return m.AddOutboundGroupSession(ctx, &crypto.OutboundGroupSession{
				Internal: sess, ExpirationMixin: row.Times, MaxMessages: row.MaxMessages, MessageCount: row.MessageCount,
				SharedHistory: row.SharedHistory, Shared: row.Shared, RoomID: id.RoomID(r.Key),
				Users: make(map[crypto.UserDevice]crypto.OGSState),
			})
		}},
		{kindShared, func(r database.CryptoRow) error {
			parts := strings.SplitN(r.Key, keySep, 3)
			if len(parts) != 3 {
				return fmt.Errorf("malformed key")
			}
			return m.MarkOutboundGroupSessionShared(ctx, id.UserID(parts[0]), id.IdentityKey(parts[1]), id.SessionID(parts[2]))
		}},
		{kindIndex, func(r database.CryptoRow) error {
			sessionID, index, ok := strings.Cut(r.Key, keySep)
			n, err := strconv.ParseUint(index, 10, 64)
			if !ok || err != nil {
				return fmt.Errorf("malformed key")
			}
			var row indexRow
			if err := json.Unmarshal([]byte(r.Value), &row); err != nil {
				return err
			}
			_, err = m.ValidateMessageIndex(ctx, id.SessionID(sessionID), row.EventID, uint(n), row.Timestamp)
			return err
		}},
		{kindOlmHash, func(r database.CryptoRow) error {
			hash, err := base64.RawStdEncoding.DecodeString(r.Key)
			if err != nil || len(hash) != 32 {
				return fmt.Errorf("malformed key")
			}
			return m.PutOlmHash(ctx, [32]byte(hash), time.Time{})
		}},
		{kindDevices, func(r database.CryptoRow) error {
			devices := map[id.DeviceID]*id.Device{}
			if err := json.Unmarshal([]byte(r.Value), &devices); err != nil {
				return err
			}
			return m.PutDevices(ctx, id.UserID(r.Key), devices)
		}},
		{kindOutdated, func(r database.CryptoRow) error {
			return m.MarkTrackedUsersOutdated(ctx, []id.UserID{id.UserID(r.Key)})
		}},
		{kindCrossSign, func(r database.CryptoRow) error {
			keys := map[id.CrossSigningUsage]id.CrossSigningKey{}
			if err := json.Unmarshal([]byte(r.Value), &keys); err != nil {
				return err
			}
			m.CrossSigningKeys[id.UserID(r.Key)] = keys
			return nil
		}},
		{kindSignature, func(r database.CryptoRow) error {
			var row signatureRow
			if err := json.Unmarshal([]byte(r.Value), &row); err != nil {
				return err
			}
			s.noteSigner(row.SignerUser, row.SignerKey, r.Key)
			return m.PutSignature(ctx, row.SignedUser, row.SignedKey, row.SignerUser, row.SignerKey, row.Signature)
		}},
		{kindSecret, func(r database.CryptoRow) error {
			plain, err := libolmpickle.Unpickle(s.pickleKey, []byte(r.Value))
			if err != nil {
				return err
			}
			return m.PutSecret(ctx, id.Secret(r.Key), string(plain))
		}},
	}
	for _, step := range steps {
		if err := each(step.kind, step.fn); err != nil {
			return err
		}
	}
	return nil
}

// PutAccount stores the bot device's Olm account.
func (s *Store) PutAccount(ctx context.Context, account *crypto.OlmAccount) error {
	defer s.lock(kindAccount, "")()
	pickled, err := account.Internal.Pickle(s.pickleKey)
	if err != nil {
		return fmt.Errorf("pickle olm account: %w", err)
	}
	if err := s.put(ctx, kindAccount, "", accountRow{Pickle: pickled, Shared: account.Shared, KeyBackupVersion: account.KeyBackupVersion}); err != nil {
		return err
	}
	return s.MemoryStore.PutAccount(ctx, account)
}

func (s *Store) putOlmSession(ctx context.Context, senderKey id.SenderKey, session *crypto.OlmSession) error {
	pickled, err := session.Internal.Pickle(s.pickleKey)
	if err != nil {
		return fmt.Errorf("pickle olm session: %w", err)
	}
	return s.put(ctx, kindOlmSession, string(senderKey)+keySep+string(session.ID()),
		olmSessionRow{SenderKey: senderKey, Pickle: pickled, Times: session.ExpirationMixin})
}

// AddSession stores a new Olm session.
func (s *Store) AddSession(ctx context.Context, senderKey id.SenderKey, session *crypto.OlmSession) error {
	defer s.lock(kindOlmSession, string(senderKey)+keySep+string(session.ID()))()
	if err := s.putOlmSession(ctx, senderKey, session); err != nil {
		return err
	}
	return s.MemoryStore.AddSession(ctx, senderKey, session)
}

// UpdateSession stores an Olm session after it was used.
func (s *Store) UpdateSession(ctx context.Context, senderKey id.SenderKey, session *crypto.OlmSession) error {
	defer s.lock(kindOlmSession, string(senderKey)+keySep+string(session.ID()))()
	return s.putOlmSession(ctx, senderKey, session)
}

// DeleteSession removes an Olm session.
func (s *Store) DeleteSession(ctx context.Context, senderKey id.SenderKey, session *crypto.OlmSession) error {
	key := string(senderKey) + keySep + string(session.ID())
	defer s.lock(kindOlmSession, key)()
	if err := s.db.Crypto.Delete(ctx, kindOlmSession, key); err != nil {
		return err
	}
	return s.MemoryStore.DeleteSession(ctx, senderKey, session)
}

// PutOlmHash remembers a handled Olm message, so a to-device event seen
// again after a restart is not decrypted twice.
func (s *Store) PutOlmHash(ctx context.Context, hash [32]byte, receivedAt time.Time) error {
	if err := s.put(ctx, kindOlmHash, base64.RawStdEncoding.EncodeToString(hash[:]), receivedAt.Unix()); err != nil {
		return err
	}
	return s.MemoryStore.PutOlmHash(ctx, hash, receivedAt)
}

// DeleteOldOlmHashes forgets handled Olm messages from before beforeTS.
func (s *Store) DeleteOldOlmHashes(ctx context.Context, beforeTS time.Time) error {
	rows, err := s.db.Crypto.All(ctx, kindOlmHash)
	if err != nil {
		return err
	}
	var old []string
	for _, r := range rows {
		if ts, err := strconv.ParseInt(r.Value, 10, 64); err == nil && time.Unix(ts, 0).Before(beforeTS) {
			old = append(old, r.Key)
		}
	}
	return s.db.Crypto.Delete(ctx, kindOlmHash, old...)
}

func (s *Store) putInbound(ctx context.Context, igs *crypto.InboundGroupSession) error {
	pickled, err := igs.Internal.Pickle(s.pickleKey)
	if err != nil {
		return fmt.Errorf("pickle megolm session: %w", err)
	}
	return s.put(ctx, kindInbound, string(igs.ID()), inboundRow{
		Pickle: pickled, SigningKey: igs.SigningKey, SenderKey: igs.SenderKey, RoomID: igs.RoomID,
		ForwardingChains: igs.ForwardingChains, RatchetSafety: igs.RatchetSafety, ReceivedAt: igs.ReceivedAt,
		MaxAge: igs.MaxAge, MaxMessages: igs.MaxMessages, SharedHistory: igs.SharedHistory, IsScheduled: igs.IsScheduled,
		KeyBackupVersion: igs.KeyBackupVersion, KeySource: igs.KeySource, SourceUser: igs.SourceUser,
	})
}

// PutGroupSession stores an inbound Megolm session.
func (s *Store) PutGroupSession(ctx context.Context, igs *crypto.InboundGroupSession) error {
	defer s.lock(kindInbound, string(igs.ID()))()
	if err := s.putInbound(ctx, igs); err != nil {
		return err
	}
	if err := s.db.Crypto.Delete(ctx, kindWithheld, string(igs.ID())); err != nil {
		return err
	}
	return s.MemoryStore.PutGroupSession(ctx, igs)
}

// RedactGroupSession removes an inbound Megolm session.
func (s *Store) RedactGroupSession(ctx context.Context, roomID id.RoomID, sessionID id.SessionID, reason string) error {
	if err := s.db.Crypto.Delete(ctx, kindInbound, string(sessionID)); err != nil {
		return err
	}
	return s.MemoryStore.RedactGroupSession(ctx, roomID, sessionID, reason)
}

// RedactGroupSessions removes the inbound Megolm sessions of a room and/or
// sender.
func (s *Store) RedactGroupSessions(ctx context.Context, roomID id.RoomID, senderKey id.SenderKey, reason string) ([]id.SessionID, error) {
	ids, err := s.MemoryStore.RedactGroupSessions(ctx, roomID, senderKey, reason)
	if err != nil {
		return nil, err
	}
	keys := make([]string, len(ids))
	for i, sid := range ids {
		keys[i] = string(sid)
	}
	return ids, s.db.Crypto.Delete(ctx, kindInbound, keys...)
}

// PutWithheldGroupSession records that a sender withheld a session.
func (s *Store) PutWithheldGroupSession(ctx context.Context, content event.RoomKeyWithheldEventContent) error {
	if existing, _ := s.MemoryStore.GetGroupSession(ctx, content.RoomID, content.SessionID); existing != nil {
		return nil
	}
	if err := s.put(ctx, kindWithheld, string(content.SessionID), content); err != nil {
		return err
	}
	return s.MemoryStore.PutWithheldGroupSession(ctx, content)
}

// putOutbound commits a room's outbound session skip messages ahead of
// where it is: the stored pickle resumes at index MessageIndex()+skip, so
// the next skip encryptions need no commit, and a bridge restarted from the
// row still never reuses an index. Receivers holding the key from an earlier
// index decrypt later ones, so the skipped indices cost nothing. The count
// towards rotation is stored ahead too, so a restart rotates early, never
// late.
func (s *Store) putOutbound(ctx context.Context, ogs *crypto.OutboundGroupSession, skip uint32) error {
	internal := ogs.Internal
	if skip > 0 {
		megolm, ok := ogs.Internal.(*session.MegolmOutboundSession)
		if !ok {
			return fmt.Errorf("megolm session of unexpected type %T", ogs.Internal)
		}
		ahead := *megolm
		ahead.Ratchet.AdvanceTo(ahead.Ratchet.Counter + skip)
		internal = &ahead
	}
	pickled, err := internal.Pickle(s.pickleKey)
	if err != nil {
		return fmt.Errorf("pickle megolm session: %w", err)
	}
	if err := s.put(ctx, kindOutbound, string(ogs.RoomID), outboundRow{
		Pickle: pickled, Times: ogs.ExpirationMixin, MaxMessages: ogs.MaxMessages, MessageCount: ogs.MessageCount + int(skip),
		SharedHistory: ogs.SharedHistory, Shared: ogs.Shared,
	}); err != nil {
		return err
	}
	s.resumeMu.Lock()
	s.resumeAt[ogs.RoomID] = storedOutbound{session: ogs.ID(), index: internal.MessageIndex()}
	s.resumeMu.Unlock()
	return nil
}

// AddOutboundGroupSession stores a room's new outbound Megolm session, or
// one whose sharing state changed.
func (s *Store) AddOutboundGroupSession(ctx context.Context, ogs *crypto.OutboundGroupSession) error {
	defer s.lock(kindOutbound, string(ogs.RoomID))()
	if err := s.putOutbound(ctx, ogs, 0); err != nil {
		return err
	}
	return s.MemoryStore.AddOutboundGroupSession(ctx, ogs)
}

// UpdateOutboundGroupSession is called after the session encrypted a
// message and before the ciphertext is handed back. The index just used
// must be below the one the stored row resumes at; when it is not, the row
// is committed outboundSkip indices further on.
func (s *Store) UpdateOutboundGroupSession(ctx context.Context, ogs *crypto.OutboundGroupSession) error {
	defer s.lock(kindOutbound, string(ogs.RoomID))()
	s.resumeMu.Lock()
	stored, ok := s.resumeAt[ogs.RoomID]
	s.resumeMu.Unlock()
	if ok && stored.session == ogs.ID() && ogs.Internal.MessageIndex() <= stored.index {
		return nil
	}
	return s.putOutbound(ctx, ogs, outboundSkip)
}

// RemoveOutboundGroupSession drops a room's outbound Megolm session.
func (s *Store) RemoveOutboundGroupSession(ctx context.Context, roomID id.RoomID) error {
	defer s.lock(kindOutbound, string(roomID))()
	if err := s.db.Crypto.Delete(ctx, kindOutbound, string(roomID)); err != nil {
		return err
	}
	s.resumeMu.Lock()
	delete(s.resumeAt, roomID)
	s.resumeMu.Unlock()
	return s.MemoryStore.RemoveOutboundGroupSession(ctx, roomID)
}

// MarkOutboundGroupSessionShared records that a device got a session's key.
func (s *Store) MarkOutboundGroupSessionShared(ctx context.Context, userID id.UserID, identityKey id.IdentityKey, sessionID id.SessionID) error {
	if err := s.put(ctx, kindShared, string(userID)+keySep+string(identityKey)+keySep+string(sessionID), true); err != nil {
		return err
	}
	return s.MemoryStore.MarkOutboundGroupSessionShared(ctx, userID, identityKey, sessionID)
}

// ValidateMessageIndex guards against replayed Megolm messages. The first
// sighting of an index is refused to any other event at once, in memory;
// its row waits for the event's seal (takeSeal), which the core commits
// with the event's next journal write, before the event leaves the bridge.
func (s *Store) ValidateMessageIndex(ctx context.Context, sessionID id.SessionID, eventID id.EventID, index uint, timestamp int64) (bool, error) {
	key := string(sessionID) + keySep + strconv.FormatUint(uint64(index), 10)
	defer s.lock(kindIndex, key)()
	ok, err := s.MemoryStore.ValidateMessageIndex(ctx, sessionID, eventID, index, timestamp)
	if err != nil || !ok || (eventID == "" && timestamp == 0) {
		return ok, err
	}
	data, err := json.Marshal(indexRow{EventID: eventID, Timestamp: timestamp})
	if err != nil {
		return false, fmt.Errorf("encode crypto %s: %w", kindIndex, err)
	}
	s.sealMu.Lock()
	s.unsealed[eventID] = append(s.unsealed[eventID], database.CryptoRow{Kind: kindIndex, Key: key, Value: string(data)})
	s.sealMu.Unlock()
	return true, nil
}

// takeSeal returns the rows an event's decryption left to commit, and
// forgets them.
func (s *Store) takeSeal(eventID id.EventID) []database.CryptoRow {
	s.sealMu.Lock()
	defer s.sealMu.Unlock()
	rows := s.unsealed[eventID]
	delete(s.unsealed, eventID)
	return rows
}

func (s *Store) putDeviceList(ctx context.Context, userID id.UserID) error {
	devices, err := s.MemoryStore.GetDevices(ctx, userID)
	if err != nil {
		return err
	}
	if devices == nil {
		devices = map[id.DeviceID]*id.Device{}
	}
	if err := s.put(ctx, kindDevices, string(userID), devices); err != nil {
		return err
	}
	return s.db.Crypto.Delete(ctx, kindOutdated, string(userID))
}

// PutDevice stores one device of a user.
func (s *Store) PutDevice(ctx context.Context, userID id.UserID, device *id.Device) error {
	defer s.lock(kindDevices, string(userID))()
	if err := s.MemoryStore.PutDevice(ctx, userID, device); err != nil {
		return err
	}
	return s.putDeviceList(ctx, userID)
}

// PutDevices replaces a user's device list, which also makes them tracked.
func (s *Store) PutDevices(ctx context.Context, userID id.UserID, devices map[id.DeviceID]*id.Device) error {
	defer s.lock(kindDevices, string(userID))()
	if err := s.MemoryStore.PutDevices(ctx, userID, devices); err != nil {
		return err
	}
	return s.putDeviceList(ctx, userID)
}

// MarkTrackedUsersOutdated flags device lists to fetch again.
func (s *Store) MarkTrackedUsersOutdated(ctx context.Context, users []id.UserID) error {
	tracked, err := s.MemoryStore.FilterTrackedUsers(ctx, append([]id.UserID(nil), users...))
	if err != nil {
		return err
	}
	rows := make([]database.CryptoRow, len(tracked))
	for i, u := range tracked {
		rows[i] = database.CryptoRow{Kind: kindOutdated, Key: string(u), Value: "true"}
	}
	if err := s.db.Crypto.Put(ctx, rows...); err != nil {
		return err
	}
	return s.MemoryStore.MarkTrackedUsersOutdated(ctx, tracked)
}

// PutCrossSigningKey stores a user's cross-signing key.
func (s *Store) PutCrossSigningKey(ctx context.Context, userID id.UserID, usage id.CrossSigningUsage, key id.Ed25519) error {
	defer s.lock(kindCrossSign, string(userID))()
	if err := s.MemoryStore.PutCrossSigningKey(ctx, userID, usage, key); err != nil {
		return err
	}
	keys, err := s.MemoryStore.GetCrossSigningKeys(ctx, userID)
	if err != nil {
		return err
	}
	return s.put(ctx, kindCrossSign, string(userID), keys)
}

// ResetMasterKeyTOFU trusts a user's changed master key.
func (s *Store) ResetMasterKeyTOFU(ctx context.Context, userID id.UserID, key id.Ed25519) error {
	defer s.lock(kindCrossSign, string(userID))()
	if err := s.MemoryStore.ResetMasterKeyTOFU(ctx, userID, key); err != nil {
		return err
	}
	keys, err := s.MemoryStore.GetCrossSigningKeys(ctx, userID)
	if err != nil {
		return err
	}
	return s.put(ctx, kindCrossSign, string(userID), keys)
}

func (s *Store) noteSigner(user id.UserID, key id.Ed25519, rowKey string) {
	s.sigMu.Lock()
	defer s.sigMu.Unlock()
	signer := string(user) + keySep + string(key)
	s.signers[signer] = append(s.signers[signer], rowKey)
}

// PutSignature stores a signature of a key.
func (s *Store) PutSignature(ctx context.Context, signedUser id.UserID, signedKey id.Ed25519, signerUser id.UserID, signerKey id.Ed25519, signature string) error {
	rowKey := strings.Join([]string{string(signedUser), string(signedKey), string(signerUser), string(signerKey)}, keySep)
	if err := s.put(ctx, kindSignature, rowKey, signatureRow{
		SignedUser: signedUser, SignedKey: signedKey, SignerUser: signerUser, SignerKey: signerKey, Signature: signature,
	}); err != nil {
		return err
	}
	s.noteSigner(signerUser, signerKey, rowKey)
	return s.MemoryStore.PutSignature(ctx, signedUser, signedKey, signerUser, signerKey, signature)
}

// DropSignaturesByKey deletes the signatures a key made.
func (s *Store) DropSignaturesByKey(ctx context.Context, userID id.UserID, key id.Ed25519) (int64, error) {
	s.sigMu.Lock()
	signer := string(userID) + keySep + string(key)
	rows := s.signers[signer]
	delete(s.signers, signer)
	s.sigMu.Unlock()
	if err := s.db.Crypto.Delete(ctx, kindSignature, rows...); err != nil {
		return 0, err
	}
	return s.MemoryStore.DropSignaturesByKey(ctx, userID, key)
}

// PutSecret stores a named secret, pickled like the keys.
func (s *Store) PutSecret(ctx context.Context, name id.Secret, value string) error {
	pickled, err := libolmpickle.Pickle(s.pickleKey, []byte(value))
	if err != nil {
		return fmt.Errorf("pickle secret: %w", err)
	}
	if err := s.db.Crypto.Put(ctx, database.CryptoRow{Kind: kindSecret, Key: string(name), Value: string(pickled)}); err != nil {
		return err
	}
	return s.MemoryStore.PutSecret(ctx, name, value)
}

// DeleteSecret removes a named secret.
func (s *Store) DeleteSecret(ctx context.Context, name id.Secret) error {
	if err := s.db.Crypto.Delete(ctx, kindSecret, string(name)); err != nil {
		return err
	}
	return s.MemoryStore.DeleteSecret(ctx, name)
}

// SyncToken returns where the bot's /sync left off.
func (s *Store) SyncToken(ctx context.Context) (string, error) {
	return s.db.Crypto.Get(ctx, kindSyncToken, "")
}

// PutSyncToken stores where the bot's /sync left off; called after the
// batch's to-device events are handled, so none is skipped after a crash.
func (s *Store) PutSyncToken(ctx context.Context, token string) error {
	return s.db.Crypto.Put(ctx, database.CryptoRow{Kind: kindSyncToken, Value: token})
}
