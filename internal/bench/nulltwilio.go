package bench

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"strconv"
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
	// MoreNumbers is how many numbers the account has besides Number: those
	// of the logins fillLogins stores (see loginNumber).
	MoreNumbers int

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
		t.listNumbers(w, r, path)
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
	case path == "/v1/Configuration/Webhooks":
		_ = json.NewEncoder(w).Encode(map[string]any{
			"account_sid": t.AccountSID, "method": "POST", "filters": []string{}, "target": "webhook",
			"pre_webhook_url": nil, "post_webhook_url": nil, "url": path,
		})
	case path == "/v1/Conversations":
		// An account with Conversations and no groups: the catch-up lists
		// them as it does on a real account.
		_ = json.NewEncoder(w).Encode(map[string]any{"conversations": []any{}, "meta": map[string]any{
			"page": 0, "page_size": 100, "first_page_url": path, "previous_page_url": nil,
			"url": path, "next_page_url": nil, "key": "conversations",
		}})
	default:
		w.WriteHeader(http.StatusNotFound)
		_ = json.NewEncoder(w).Encode(map[string]any{"code": 20404, "message": "not found", "status": 404})
	}
}

// listNumbers serves the account's numbers a page at a time: Number first,
// then the MoreNumbers of the stored logins.
func (t *NullTwilio) listNumbers(w http.ResponseWriter, r *http.Request, path string) {
	q := r.URL.Query()
	size, _ := strconv.Atoi(q.Get("PageSize"))
	if size <= 0 {
		size = 50
	}
	page, _ := strconv.Atoi(q.Get("Page"))
	total := 1 + t.MoreNumbers
	first, last := min(page*size, total), min((page+1)*size, total)
	numbers := make([]map[string]any, 0, last-first)
	for i := first; i < last; i++ {
		sid, number := "PN"+strings.Repeat("0", 32), t.Number
		if i > 0 {
			sid, number = loginNumber(i - 1)
		}
		numbers = append(numbers, map[string]any{
			"sid": sid, "phone_number": number, "friendly_name": number,
			"capabilities": map[string]any{"sms": true, "mms": true, "voice": false, "fax": false},
			"sms_url":      "", "sms_method": "POST",
		})
	}
	var next any
	if last < total {
		next = fmt.Sprintf("%s?PageSize=%d&Page=%d&PageToken=PA%d", path, size, page+1, last)
	}
	_ = json.NewEncoder(w).Encode(map[string]any{
		"incoming_phone_numbers": numbers, "page": page, "page_size": size, "next_page_uri": next, "uri": path,
	})
}
