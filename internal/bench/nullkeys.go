package bench

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// nullKeys is the part of the null homeserver that Olm machines need, for
// encrypted runs: device logins, key upload, query and claim, to-device
// messages and room member lists. It does no more checking than the rest
// of the null homeserver: it stores what devices upload and hands it to
// whoever asks.
type nullKeys struct {
	// toUser receives every to-device message for the bench user, before
	// the sender's request is answered: as with a homeserver's /sync, the
	// room key is there before the event encrypted with it.
	toUser func(evt *event.Event)
	user   id.UserID

	mu      sync.Mutex
	tokens  map[string]deviceRef
	devices map[id.UserID]map[id.DeviceID]json.RawMessage
	otks    map[id.UserID]map[id.DeviceID]map[id.KeyID]json.RawMessage
	members map[string][]id.UserID // room -> creator and invitees
	// forBot holds the to-device messages for the bridge's device, which
	// the bench delivers in its next appservice transaction (MSC2409).
	forBot []*event.Event

	// toDevice counts the to-device messages sent, to report what key
	// sharing cost.
	toDevice atomic.Int64
	seq      atomic.Int64
}

// deviceRef names a device.
type deviceRef struct {
	user   id.UserID
	device id.DeviceID
}

func newNullKeys(user id.UserID, toUser func(*event.Event)) *nullKeys {
	return &nullKeys{
		user: user, toUser: toUser,
		tokens:  make(map[string]deviceRef),
		devices: make(map[id.UserID]map[id.DeviceID]json.RawMessage),
		otks:    make(map[id.UserID]map[id.DeviceID]map[id.KeyID]json.RawMessage),
		members: make(map[string][]id.UserID),
	}
}

// addDevice registers an access token for a device that did not log in
// through /login (the bench user's).
func (k *nullKeys) addDevice(token string, user id.UserID, device id.DeviceID) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.tokens[token] = deviceRef{user, device}
}

// hasDeviceKeys reports whether the user has uploaded keys for a device.
func (k *nullKeys) hasDeviceKeys(user id.UserID) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.devices[user]) > 0
}

// takeForBot returns and forgets the to-device messages queued for the
// bridge's device.
func (k *nullKeys) takeForBot() []*event.Event {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := k.forBot
	k.forBot = nil
	return out
}

// noteRoom records who a new room's members are, for /members.
func (k *nullKeys) noteRoom(room string, creator id.UserID, invites []id.UserID) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.members[room] = append([]id.UserID{creator}, invites...)
}

func (k *nullKeys) caller(r *http.Request) (deviceRef, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	ref, ok := k.tokens[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
	return ref, ok
}

// serve answers the requests it knows and reports whether it did.
func (k *nullKeys) serve(w http.ResponseWriter, r *http.Request) bool {
	path := r.URL.Path
	switch {
	case strings.HasSuffix(path, "/login") && r.Method == http.MethodPost:
		k.login(w, r)
	case strings.HasSuffix(path, "/keys/upload"):
		k.upload(w, r)
	case strings.HasSuffix(path, "/keys/query"):
		k.query(w, r)
	case strings.HasSuffix(path, "/keys/claim"):
		k.claim(w, r)
	case strings.Contains(path, "/sendToDevice/"):
		k.sendToDevice(w, r)
	case strings.HasSuffix(path, "/members") && r.Method == http.MethodGet:
		k.roomMembers(w, r)
	case strings.Contains(path, "/state/m.room.encryption") && r.Method == http.MethodGet:
		// Portals are known encrypted from their creation; any other room
		// (the management room) is not.
		w.WriteHeader(http.StatusNotFound)
		writeJSON(w, map[string]any{"errcode": "M_NOT_FOUND", "error": "no encryption"})
	default:
		return false
	}
	return true
}

func (k *nullKeys) login(w http.ResponseWriter, r *http.Request) {
	var req mautrix.ReqLogin
	_ = json.NewDecoder(r.Body).Decode(&req)
	device := req.DeviceID
	if device == "" {
		device = id.DeviceID(fmt.Sprintf("NULLDEV%d", k.seq.Add(1)))
	}
	user := id.UserID(req.Identifier.User)
	token := fmt.Sprintf("nulltoken%d", k.seq.Add(1))
	k.mu.Lock()
	k.tokens[token] = deviceRef{user, device}
	k.mu.Unlock()
	writeJSON(w, mautrix.RespLogin{UserID: user, DeviceID: device, AccessToken: token})
}

func (k *nullKeys) upload(w http.ResponseWriter, r *http.Request) {
	ref, ok := k.caller(r)
	if !ok {
		w.WriteHeader(http.StatusUnauthorized)
		writeJSON(w, map[string]any{"errcode": "M_UNKNOWN_TOKEN", "error": "null homeserver: unknown token"})
		return
	}
	var req struct {
		DeviceKeys  json.RawMessage              `json:"device_keys"`
		OneTimeKeys map[id.KeyID]json.RawMessage `json:"one_time_keys"`
	}
	_ = json.NewDecoder(r.Body).Decode(&req)
	k.mu.Lock()
	if len(req.DeviceKeys) > 0 && string(req.DeviceKeys) != "null" {
		if k.devices[ref.user] == nil {
			k.devices[ref.user] = make(map[id.DeviceID]json.RawMessage)
		}
		k.devices[ref.user][ref.device] = req.DeviceKeys
	}
	if k.otks[ref.user] == nil {
		k.otks[ref.user] = make(map[id.DeviceID]map[id.KeyID]json.RawMessage)
	}
	pool := k.otks[ref.user][ref.device]
	if pool == nil {
		pool = make(map[id.KeyID]json.RawMessage)
		k.otks[ref.user][ref.device] = pool
	}
	for keyID, key := range req.OneTimeKeys {
		pool[keyID] = key
	}
	count := len(pool)
	k.mu.Unlock()
	writeJSON(w, map[string]any{"one_time_key_counts": map[string]int{"signed_curve25519": count}})
}

func (k *nullKeys) query(w http.ResponseWriter, r *http.Request) {
	var req struct {
		DeviceKeys map[id.UserID][]id.DeviceID `json:"device_keys"`
	}
	_ = json.NewDecoder(r.Body).Decode(&req)
	out := make(map[id.UserID]map[id.DeviceID]json.RawMessage, len(req.DeviceKeys))
	k.mu.Lock()
	for user := range req.DeviceKeys {
		devices := make(map[id.DeviceID]json.RawMessage)
		for device, keys := range k.devices[user] {
			devices[device] = keys
		}
		out[user] = devices
	}
	k.mu.Unlock()
	writeJSON(w, map[string]any{"device_keys": out, "failures": map[string]any{}})
}

func (k *nullKeys) claim(w http.ResponseWriter, r *http.Request) {
	var req mautrix.ReqClaimKeys
	_ = json.NewDecoder(r.Body).Decode(&req)
	out := make(map[id.UserID]map[id.DeviceID]map[id.KeyID]json.RawMessage)
	k.mu.Lock()
	for user, devices := range req.OneTimeKeys {
		for device := range devices {
			for keyID, key := range k.otks[user][device] {
				// A one-time key is handed out once, as on a real server.
				delete(k.otks[user][device], keyID)
				if out[user] == nil {
					out[user] = make(map[id.DeviceID]map[id.KeyID]json.RawMessage)
				}
				out[user][device] = map[id.KeyID]json.RawMessage{keyID: key}
				break
			}
		}
	}
	k.mu.Unlock()
	writeJSON(w, map[string]any{"one_time_keys": out, "failures": map[string]any{}})
}

func (k *nullKeys) sendToDevice(w http.ResponseWriter, r *http.Request) {
	ref, ok := k.caller(r)
	if !ok {
		w.WriteHeader(http.StatusUnauthorized)
		writeJSON(w, map[string]any{"errcode": "M_UNKNOWN_TOKEN", "error": "null homeserver: unknown token"})
		return
	}
	parts := strings.Split(r.URL.Path, "/")
	evtType := ""
	for i, p := range parts {
		if p == "sendToDevice" && i+1 < len(parts) {
			evtType = parts[i+1]
		}
	}
	var req struct {
		Messages map[id.UserID]map[id.DeviceID]json.RawMessage `json:"messages"`
	}
	_ = json.NewDecoder(r.Body).Decode(&req)
	var forUser []*event.Event
	k.mu.Lock()
	for user, devices := range req.Messages {
		for device, content := range devices {
			evt := &event.Event{
				Type: event.Type{Type: evtType, Class: event.ToDeviceEventType}, Sender: ref.user,
				ToUserID: user, ToDeviceID: device, Content: event.Content{VeryRaw: content},
			}
			k.toDevice.Add(1)
			if user == k.user {
				forUser = append(forUser, evt)
			} else {
				k.forBot = append(k.forBot, evt)
			}
		}
	}
	k.mu.Unlock()
	for _, evt := range forUser {
		k.toUser(evt)
	}
	writeJSON(w, map[string]any{})
}

func (k *nullKeys) roomMembers(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(r.URL.Path, "/")
	room := ""
	for i, p := range parts {
		if p == "rooms" && i+1 < len(parts) {
			room = parts[i+1]
		}
	}
	k.mu.Lock()
	members := k.members[room]
	k.mu.Unlock()
	chunk := make([]map[string]any, 0, len(members))
	for _, user := range members {
		chunk = append(chunk, map[string]any{
			"type": "m.room.member", "state_key": user, "sender": user, "room_id": room,
			"event_id": "$member" + string(user), "content": map[string]any{"membership": "join"},
		})
	}
	writeJSON(w, map[string]any{"chunk": chunk})
}
