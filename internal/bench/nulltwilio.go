package bench

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// NullTwilio answers the few Twilio REST calls the connector makes (account
// check, number listing and webhook update, message create and list) at
// once, for one account with one number.
type NullTwilio struct {
	AccountSID string
	Number     string
	// OnMessage is called with the body of every message created.
	OnMessage func(body, to string, at time.Time)
	// Latency delays every answer, as Twilio's round trip over the
	// Internet would.
	Latency time.Duration

	counter atomic.Int64

	mu             sync.Mutex
	calls          map[string]int // by method and path, SIDs folded
	inflight, peak int
}

// Calls returns how many requests each endpoint got, and the most that were
// in flight at once.
func (t *NullTwilio) Calls() (byEndpoint map[string]int, peak int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return maps.Clone(t.calls), t.peak
}

// ResetCalls zeroes the counts.
func (t *NullTwilio) ResetCalls() {
	t.mu.Lock()
	defer t.mu.Unlock()
	clear(t.calls)
	t.peak = t.inflight
}

// track counts a request until the returned func runs.
func (t *NullTwilio) track(r *http.Request) func() {
	endpoint := r.Method + " " + sidPattern.ReplaceAllString(r.URL.Path, "{Sid}")
	t.mu.Lock()
	if t.calls == nil {
		t.calls = map[string]int{}
	}
	t.calls[endpoint]++
	t.inflight++
	t.peak = max(t.peak, t.inflight)
	t.mu.Unlock()
	return func() {
		t.mu.Lock()
		t.inflight--
		t.mu.Unlock()
	}
}

// sidPattern matches Twilio SIDs in paths.
var sidPattern = regexp.MustCompile(`[A-Z]{2}[0-9a-f]{32}`)

func (t *NullTwilio) sid(prefix string) string {
	return fmt.Sprintf("%s%032x", prefix, t.counter.Add(1))
}

// ServeHTTP implements http.Handler.
func (t *NullTwilio) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer t.track(r)()
	if t.Latency > 0 {
		time.Sleep(t.Latency)
	}
	path := r.URL.Path
	base := "/2010-04-01/Accounts/" + t.AccountSID
	w.Header().Set("Content-Type", "application/json")
	switch {
	case path == base+".json":
		_ = json.NewEncoder(w).Encode(map[string]any{"sid": t.AccountSID, "status": "active", "friendly_name": "bench"})
	case path == base+"/IncomingPhoneNumbers.json":
		_ = json.NewEncoder(w).Encode(map[string]any{
			"incoming_phone_numbers": []map[string]any{{
				"sid": "PN" + strings.Repeat("0", 32), "phone_number": t.Number, "friendly_name": t.Number,
				"capabilities": map[string]any{"sms": true, "mms": true, "voice": false, "fax": false},
				"sms_url":      "", "sms_method": "POST",
			}},
			"page": 0, "page_size": 50, "next_page_uri": nil, "uri": path,
		})
	case strings.HasPrefix(path, base+"/IncomingPhoneNumbers/"):
		_ = json.NewEncoder(w).Encode(map[string]any{"sid": "PN" + strings.Repeat("0", 32), "phone_number": t.Number})
	case path == base+"/Messages.json" && r.Method == http.MethodPost:
		_ = r.ParseForm()
		sid := t.sid("SM")
		if t.OnMessage != nil {
			t.OnMessage(r.PostForm.Get("Body"), r.PostForm.Get("To"), time.Now())
		}
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(map[string]any{
			"sid": sid, "status": "queued", "to": r.PostForm.Get("To"), "from": t.Number,
			"body": r.PostForm.Get("Body"), "num_segments": "1", "num_media": "0", "direction": "outbound-api",
			"date_created": time.Now().UTC().Format(time.RFC1123Z), "account_sid": t.AccountSID,
		})
	case path == base+"/Messages.json":
		_ = json.NewEncoder(w).Encode(map[string]any{"messages": []any{}, "page": 0, "page_size": 50, "next_page_uri": nil, "uri": path})
	default:
		w.WriteHeader(http.StatusNotFound)
		_ = json.NewEncoder(w).Encode(map[string]any{"code": 20404, "message": "not found", "status": 404})
	}
}
