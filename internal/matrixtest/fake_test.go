package matrixtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"
)

// fakeHS is a tiny homeserver: /sync serves the pushed batches in order and
// long-polls for the next one; joins and sends are recorded.
type fakeHS struct {
	*httptest.Server

	mu           sync.Mutex
	changed      chan struct{}
	batches      []map[string]any
	failSyncs    int  // answer this many /syncs with 502
	unknownToken bool // answer incremental /syncs with M_UNKNOWN_TOKEN
	activeSyncs  int
	joins        []id.RoomID
	sent         []sentEvent
	// history is what /messages pages through, oldest first; a token
	// "h<N>" stands for the position before history[N].
	history  map[id.RoomID][]map[string]any
	messages int // /messages requests served
}

// sentEvent is a PUT /send the fake received.
type sentEvent struct {
	roomID  id.RoomID
	evtType string
	content map[string]any
}

func newFakeHS(t *testing.T) *fakeHS {
	f := &fakeHS{changed: make(chan struct{})}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

// client returns a mautrix client logged in as @alice:fake on the fake.
func (f *fakeHS) client(t *testing.T) *mautrix.Client {
	cli, err := mautrix.NewClient(f.URL, "@alice:fake", "token")
	if err != nil {
		t.Fatal(err)
	}
	return cli
}

// push queues a /sync response body.
func (f *fakeHS) push(batch map[string]any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.batches = append(f.batches, batch)
	f.notifyLocked()
}

func (f *fakeHS) notifyLocked() {
	close(f.changed)
	f.changed = make(chan struct{})
}

// waitUntil blocks until cond, checked under the lock, holds.
func (f *fakeHS) waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		f.mu.Lock()
		ok, changed := cond(), f.changed
		f.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("the fake homeserver never saw %s", what)
		}
	}
}

func (f *fakeHS) serve(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.Path, "/_matrix/client/v3/")
	switch {
	case path == "sync":
		f.serveSync(w, r)
	case strings.HasPrefix(path, "rooms/") && strings.HasSuffix(path, "/messages"):
		f.serveMessages(w, r, id.RoomID(strings.TrimSuffix(strings.TrimPrefix(path, "rooms/"), "/messages")))
	case strings.HasPrefix(path, "rooms/") && strings.HasSuffix(path, "/join"):
		roomID := id.RoomID(strings.TrimSuffix(strings.TrimPrefix(path, "rooms/"), "/join"))
		f.mu.Lock()
		f.joins = append(f.joins, roomID)
		f.notifyLocked()
		f.mu.Unlock()
		writeJSON(w, map[string]any{"room_id": roomID})
	case strings.HasPrefix(path, "rooms/") && strings.Contains(path, "/send/"):
		parts := strings.Split(path, "/") // rooms, ID, send, type, txn
		var content map[string]any
		_ = json.NewDecoder(r.Body).Decode(&content)
		f.mu.Lock()
		f.sent = append(f.sent, sentEvent{roomID: id.RoomID(parts[1]), evtType: parts[3], content: content})
		n := len(f.sent)
		f.notifyLocked()
		f.mu.Unlock()
		writeJSON(w, map[string]any{"event_id": fmt.Sprintf("$sent%d", n)})
	default:
		w.WriteHeader(http.StatusNotFound)
		writeJSON(w, map[string]any{"errcode": "M_UNRECOGNIZED"})
	}
}

func (f *fakeHS) serveSync(w http.ResponseWriter, r *http.Request) {
	since := r.URL.Query().Get("since")
	next, _ := strconv.Atoi(since)
	timeoutMS, _ := strconv.Atoi(r.URL.Query().Get("timeout"))
	deadline := time.After(time.Duration(timeoutMS) * time.Millisecond)

	f.mu.Lock()
	f.activeSyncs++
	f.notifyLocked()
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.activeSyncs--
		f.notifyLocked()
		f.mu.Unlock()
	}()

	for {
		f.mu.Lock()
		switch {
		case f.unknownToken && since != "":
			f.mu.Unlock()
			w.WriteHeader(http.StatusUnauthorized)
			writeJSON(w, map[string]any{"errcode": "M_UNKNOWN_TOKEN", "error": "token revoked"})
			return
		case f.failSyncs > 0:
			f.failSyncs--
			f.mu.Unlock()
			w.WriteHeader(http.StatusBadGateway)
			writeJSON(w, map[string]any{"errcode": "M_UNKNOWN", "error": "homeserver restarting"})
			return
		case next < len(f.batches):
			batch := f.batches[next]
			f.mu.Unlock()
			body := map[string]any{"next_batch": strconv.Itoa(next + 1)}
			for k, v := range batch {
				body[k] = v
			}
			writeJSON(w, body)
			return
		}
		changed := f.changed
		f.mu.Unlock()
		select {
		case <-changed:
		case <-deadline:
			writeJSON(w, map[string]any{"next_batch": strconv.Itoa(next)})
			return
		case <-r.Context().Done():
			return
		}
	}
}

// serveMessages pages backwards through f.history.
func (f *fakeHS) serveMessages(w http.ResponseWriter, r *http.Request, roomID id.RoomID) {
	q := r.URL.Query()
	pos, _ := strconv.Atoi(strings.TrimPrefix(q.Get("from"), "h"))
	limit, _ := strconv.Atoi(q.Get("limit"))
	limit = min(limit, 2) // small pages exercise the paging
	f.mu.Lock()
	defer f.mu.Unlock()
	f.messages++
	hist := f.history[roomID]
	chunk := []map[string]any{}
	for pos > 0 && len(chunk) < limit {
		pos--
		chunk = append(chunk, hist[pos])
	}
	resp := map[string]any{"start": q.Get("from"), "chunk": chunk}
	if pos > 0 {
		resp["end"] = "h" + strconv.Itoa(pos)
	}
	writeJSON(w, resp)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// joined is a /sync batch with timeline events in a joined room.
func joined(roomID id.RoomID, events ...map[string]any) map[string]any {
	return map[string]any{"rooms": map[string]any{"join": map[string]any{
		roomID.String(): map[string]any{"timeline": map[string]any{"events": events}},
	}}}
}

// joinedLimited is a /sync batch whose timeline has a gap before events,
// resumable with prevBatch.
func joinedLimited(roomID id.RoomID, prevBatch string, events ...map[string]any) map[string]any {
	return map[string]any{"rooms": map[string]any{"join": map[string]any{
		roomID.String(): map[string]any{"timeline": map[string]any{"events": events, "limited": true, "prev_batch": prevBatch}},
	}}}
}

// joinedEphemeral is a /sync batch with ephemeral events in a joined room.
func joinedEphemeral(roomID id.RoomID, events ...map[string]any) map[string]any {
	return map[string]any{"rooms": map[string]any{"join": map[string]any{
		roomID.String(): map[string]any{"ephemeral": map[string]any{"events": events}},
	}}}
}

// invited is a /sync batch inviting @alice:fake to roomID.
func invited(roomID id.RoomID, inviter id.UserID, isDirect bool) map[string]any {
	member := map[string]any{
		"type": "m.room.member", "state_key": "@alice:fake", "sender": inviter,
		"content": map[string]any{"membership": "invite", "is_direct": isDirect},
	}
	name := map[string]any{"type": "m.room.name", "state_key": "", "sender": inviter, "content": map[string]any{"name": "SMS"}}
	return map[string]any{"rooms": map[string]any{"invite": map[string]any{
		roomID.String(): map[string]any{"invite_state": map[string]any{"events": []any{name, member}}},
	}}}
}

func message(eventID id.EventID, sender id.UserID, body string) map[string]any {
	return map[string]any{
		"type": "m.room.message", "event_id": eventID, "sender": sender, "origin_server_ts": 1,
		"content": map[string]any{"msgtype": "m.text", "body": body},
	}
}

func member(eventID id.EventID, user id.UserID, membership string) map[string]any {
	return map[string]any{
		"type": "m.room.member", "event_id": eventID, "sender": user, "state_key": user, "origin_server_ts": 1,
		"content": map[string]any{"membership": membership},
	}
}
