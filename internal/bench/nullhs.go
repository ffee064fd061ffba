// Package bench measures the bridge end to end: it drives the real
// trestle-twilio binary with signed webhooks and appservice transactions
// and times what comes out the other side, either at minimal in-process
// peers (to measure the bridge's own cost) or at the real Dendrite and the
// Twilio simulator.
package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"maunium.net/go/mautrix/id"
)

// NullHomeserver accepts every client-server call an appservice bridge
// makes and answers at once with made-up IDs, so the bridge is measured
// without a homeserver's cost. It reports the text of every message event
// it accepts.
type NullHomeserver struct {
	// OnMessage is called with the body of every m.room.message accepted,
	// its sender, and its room.
	OnMessage func(body, sender, room string, at time.Time)
	// OnRoom is called when a room is created, with its m.bridge channel
	// ID (the remote number).
	OnRoom func(room, channel string)
	// Decrypt, in encrypted runs, turns the content of an m.room.encrypted
	// event into the text's body, as the bench user's device reads it; the
	// body then goes to OnMessage.
	Decrypt func(room, sender, eventID string, content []byte) (string, error)

	// keys, in encrypted runs, serves what Olm machines need.
	keys *nullKeys
	// events counts the room events accepted (messages, state, redactions).
	events  atomic.Int64
	counter atomic.Int64
	mu      sync.Mutex
	txns    map[string]string
}

// NewNullHomeserver returns a null homeserver.
func NewNullHomeserver() *NullHomeserver {
	return &NullHomeserver{txns: make(map[string]string)}
}

func (h *NullHomeserver) id(prefix string) string {
	return fmt.Sprintf("%s%d", prefix, h.counter.Add(1))
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// ServeHTTP implements http.Handler.
func (h *NullHomeserver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	if h.keys != nil && h.keys.serve(w, r) {
		return
	}
	switch {
	case strings.HasSuffix(path, "/versions"):
		writeJSON(w, map[string]any{"versions": []string{"v1.2", "v1.11"}})
	case strings.HasSuffix(path, "/register"):
		writeJSON(w, map[string]any{"user_id": "@x:localhost"})
	case strings.Contains(path, "/profile/"):
		writeJSON(w, map[string]any{})
	case strings.HasSuffix(path, "/createRoom"):
		var req struct {
			Invite       []id.UserID `json:"invite"`
			InitialState []struct {
				Type    string `json:"type"`
				Content struct {
					Channel struct {
						ID string `json:"id"`
					} `json:"channel"`
				} `json:"content"`
			} `json:"initial_state"`
		}
		body, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(body, &req)
		room := "!" + h.id("room") + ":localhost"
		if h.keys != nil {
			h.keys.noteRoom(room, id.UserID(r.URL.Query().Get("user_id")), req.Invite)
		}
		for _, st := range req.InitialState {
			if st.Type == "m.bridge" && h.OnRoom != nil {
				h.OnRoom(room, st.Content.Channel.ID)
			}
		}
		writeJSON(w, map[string]any{"room_id": room})
	case strings.HasSuffix(path, "/join"), strings.HasSuffix(path, "/invite"), strings.HasSuffix(path, "/leave"),
		strings.HasSuffix(path, "/receipt/m.read"), strings.Contains(path, "/typing/"), strings.Contains(path, "/read_markers"):
		writeJSON(w, map[string]any{"room_id": "!x:localhost"})
	case strings.Contains(path, "/send/"), strings.Contains(path, "/state/"), strings.Contains(path, "/redact/"):
		h.send(w, r)
	case strings.Contains(path, "/media/") && r.Method == http.MethodPost:
		_, _ = io.Copy(io.Discard, r.Body)
		writeJSON(w, map[string]any{"content_uri": "mxc://localhost/" + h.id("m")})
	case strings.HasSuffix(path, "/account/whoami"):
		writeJSON(w, map[string]any{"user_id": r.URL.Query().Get("user_id")})
	default:
		w.WriteHeader(http.StatusNotFound)
		writeJSON(w, map[string]any{"errcode": "M_UNRECOGNIZED", "error": "null homeserver: " + path})
	}
}

// send accepts an event, returning the same event ID for a repeated
// transaction ID as a real homeserver does.
func (h *NullHomeserver) send(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	parts := strings.Split(r.URL.Path, "/")
	key := r.URL.Path + "?" + r.URL.Query().Get("user_id")
	h.mu.Lock()
	eventID, seen := h.txns[key]
	if !seen {
		eventID = "$" + h.id("ev")
		if len(h.txns) > 1_000_000 {
			h.txns = make(map[string]string)
		}
		h.txns[key] = eventID
	}
	h.mu.Unlock()
	if !seen && r.Method == http.MethodPut {
		h.events.Add(1)
	}
	plain := strings.Contains(r.URL.Path, "/send/m.room.message/")
	sealed := h.Decrypt != nil && strings.Contains(r.URL.Path, "/send/m.room.encrypted/")
	if !seen && h.OnMessage != nil && (plain || sealed) {
		at := time.Now()
		room := ""
		for i, p := range parts {
			if p == "rooms" && i+1 < len(parts) {
				room = parts[i+1]
			}
		}
		sender := r.URL.Query().Get("user_id")
		var content struct {
			Body string `json:"body"`
		}
		if sealed {
			var err error
			if content.Body, err = h.Decrypt(room, sender, eventID, body); err != nil {
				// Reported as a text that never arrives: the run fails on
				// its timeout, with this in the bench's output.
				fmt.Fprintf(os.Stderr, "null homeserver: cannot decrypt %s in %s: %v\n", eventID, room, err)
			}
		} else {
			_ = json.Unmarshal(body, &content)
		}
		h.OnMessage(content.Body, sender, room, at)
	}
	writeJSON(w, map[string]any{"event_id": eventID})
}

// Events is how many room events the null homeserver has accepted so far.
func (h *NullHomeserver) Events() int64 { return h.events.Load() }
