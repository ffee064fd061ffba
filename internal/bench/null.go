package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/internal/rig"
)

// Options configure a benchmark run.
type Options struct {
	// Dir holds the bridge's config, database and log.
	Dir string
	// DatabaseType and DatabaseURI select the store; SQLite in Dir by default.
	DatabaseType string
	DatabaseURI  string
	// Numbers is how many remote phone numbers (portals) take part.
	Numbers int
	// Messages is how many messages each phase sends.
	Messages int
	// Concurrency is how many webhooks are in flight at once.
	Concurrency int
	// Rate, if above zero, paces sending at that many messages per second
	// (open loop, for latency at a given load); zero sends as fast as the
	// bridge accepts (closed loop, for throughput).
	Rate float64
	// Batch is how many events an appservice transaction carries.
	Batch int
	// Inbound and Outbound select the phases.
	Inbound, Outbound bool
	// Progress receives human-readable progress lines.
	Progress io.Writer
	// StatusEvents turns on com.beeper.message_send_status events (off in
	// the shipped config), each one more event the homeserver stores per
	// message.
	StatusEvents bool
	// NoDeliveryReceipts turns off the bridge bot's delivery receipts (on in
	// the shipped config).
	NoDeliveryReceipts bool
	// ConfigEdits are further config keys (dotted paths) for the bridge.
	ConfigEdits map[string]any
	// Encryption runs with end-to-bridge encryption: portals are created
	// encrypted, and the bench user's own device encrypts what it sends and
	// decrypts what the bridge sends.
	Encryption bool
}

// Report is what a run measured.
type Report struct {
	Inbound, Outbound  Summary
	InboundCPUPer1000  time.Duration
	OutboundCPUPer1000 time.Duration
	PeakRSS            int64
	PortalCreation     Summary
	// InboundEvents and OutboundEvents are the room events the homeserver
	// accepted during each phase; ToDevice the to-device messages sent in
	// the whole run (key sharing, in encrypted runs).
	InboundEvents, OutboundEvents int64
	ToDevice                      int64
	// Encrypted says the run was encrypted.
	Encrypted bool
}

const (
	benchAccount = "AC00000000000000000000000000000001"
	benchToken   = "benchauthtoken0000000000000000001"
	benchNumber  = "+14155550000"
	benchUser    = "@bench:localhost"
	benchLogin   = "14155550000"
)

// nullRun is the state of a run against the null peers.
type nullRun struct {
	opts    Options
	hs      *NullHomeserver
	twilio  *NullTwilio
	bridge  *rig.BridgeProcess
	hsToken string
	client  *http.Client

	mu        sync.Mutex
	binary    string
	files     *rig.BridgeFiles
	dbType    string
	dbURI     string
	rooms     map[string]string // remote number -> room
	loggedIn  chan struct{}
	loginOnce sync.Once
	in, out   atomic.Pointer[Latencies]
	txnSeq    atomic.Int64
	// user is the bench user's device in encrypted runs (nil otherwise).
	user *userDevice
}

func (o *Options) progress(format string, args ...any) {
	if o.Progress != nil {
		fmt.Fprintf(o.Progress, format+"\n", args...)
	}
}

// RunNull measures the bridge against null peers.
func RunNull(ctx context.Context, opts Options) (*Report, error) {
	if opts.Numbers <= 0 || opts.Messages <= 0 || opts.Concurrency <= 0 {
		return nil, errors.New("numbers, messages and concurrency must be positive")
	}
	r, bridgeURL, cleanup, err := startNull(ctx, opts)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	report := &Report{Encrypted: opts.Encryption}
	opts.progress("creating %d portals (first text from each number)", opts.Numbers)
	if report.PortalCreation, err = r.inbound(ctx, bridgeURL, opts.Numbers, "first"); err != nil {
		return nil, fmt.Errorf("warm-up: %w", err)
	}
	opts.progress("portal creation: %s", report.PortalCreation)
	if opts.Inbound {
		before, _ := ReadProcStats(r.bridge.PID())
		events := r.hs.Events()
		if report.Inbound, err = r.inbound(ctx, bridgeURL, opts.Messages, "in"); err != nil {
			return nil, err
		}
		after, _ := ReadProcStats(r.bridge.PID())
		report.InboundEvents = r.hs.Events() - events
		report.InboundCPUPer1000 = (after.CPU - before.CPU) * 1000 / time.Duration(max(report.Inbound.Count, 1))
		opts.progress("inbound: %s; CPU %s per 1,000", report.Inbound, report.InboundCPUPer1000)
	}
	if opts.Outbound {
		if r.user != nil {
			// Each portal gets the user's Megolm session before timing, as
			// a client shares one before its first message in a room; a
			// session then lasts 100 messages.
			start := time.Now()
			if err := r.shareUserKeys(ctx, bridgeURL); err != nil {
				return nil, err
			}
			opts.progress("the user's keys shared in %d portals in %s", len(r.portals()), time.Since(start).Round(time.Millisecond))
		}
		before, _ := ReadProcStats(r.bridge.PID())
		events := r.hs.Events()
		if report.Outbound, err = r.outbound(ctx, bridgeURL); err != nil {
			return nil, err
		}
		after, _ := ReadProcStats(r.bridge.PID())
		report.OutboundEvents = r.hs.Events() - events
		report.OutboundCPUPer1000 = (after.CPU - before.CPU) * 1000 / time.Duration(max(report.Outbound.Count, 1))
		opts.progress("outbound: %s; CPU %s per 1,000", report.Outbound, report.OutboundCPUPer1000)
	}
	if r.hs.keys != nil {
		report.ToDevice = r.hs.keys.toDevice.Load()
	}
	st, _ := ReadProcStats(r.bridge.PID())
	report.PeakRSS = st.PeakRSS
	return report, nil
}

// startNull starts the null peers and the bridge, and logs the bench user
// in. cleanup stops everything.
func startNull(ctx context.Context, opts Options) (r *nullRun, bridgeURL string, cleanup func(), err error) {
	if opts.Batch <= 0 {
		opts.Batch = 1
	}
	var cleanups []func()
	cleanup = func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
	}
	defer func() {
		if err != nil {
			cleanup()
		}
	}()
	r = &nullRun{
		opts: opts, rooms: make(map[string]string), loggedIn: make(chan struct{}),
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1024, MaxConnsPerHost: 1024}, Timeout: time.Minute},
	}
	r.hs = NewNullHomeserver()
	r.hs.OnRoom = func(room, channel string) {
		r.mu.Lock()
		r.rooms[channel] = room
		r.mu.Unlock()
	}
	r.hs.OnMessage = r.onMatrixMessage
	r.twilio = &NullTwilio{AccountSID: benchAccount, Number: benchNumber}
	r.twilio.OnMessage = func(body, _ string, at time.Time) {
		if l := r.out.Load(); l != nil {
			l.Arrived(body, at)
		}
	}
	hsServer := httptest.NewServer(r.hs)
	cleanups = append(cleanups, hsServer.Close)
	twServer := httptest.NewServer(r.twilio)
	cleanups = append(cleanups, twServer.Close)

	binary, err := rig.BridgeBinary(ctx)
	if err != nil {
		return nil, "", cleanup, err
	}
	r.binary = binary
	port, err := rig.FreePort()
	if err != nil {
		return nil, "", cleanup, err
	}
	bridgeURL = fmt.Sprintf("http://127.0.0.1:%d", port)
	dbType, dbURI := opts.DatabaseType, opts.DatabaseURI
	if dbType == "" {
		dbType, dbURI = "sqlite", filepath.Join(opts.Dir, "trestle.db")
	}
	edits := map[string]any{
		"homeserver.address":           hsServer.URL,
		"homeserver.domain":            "localhost",
		"homeserver.sync_redactions":   false,
		"appservice.address":           bridgeURL,
		"appservice.port":              port,
		"appservice.public_address":    bridgeURL,
		"database.type":                dbType,
		"database.uri":                 dbURI,
		"bridge.permissions":           map[string]string{"localhost": "user"},
		"logging.level":                "info",
		"logging.format":               "json",
		"network.api_url":              twServer.URL,
		"network.max_send_rate":        0,
		"network.backfill_limit":       0,
		"bridge.message_status_events": opts.StatusEvents,
		"bridge.delivery_receipts":     !opts.NoDeliveryReceipts,
	}
	if opts.Encryption {
		if err := r.startEncryption(ctx, hsServer.URL, edits); err != nil {
			return nil, "", cleanup, err
		}
	}
	maps.Copy(edits, opts.ConfigEdits)
	files, err := rig.WriteBridgeConfig(opts.Dir, edits)
	if err != nil {
		return nil, "", cleanup, err
	}
	cfg, err := files.LoadConfig()
	if err != nil {
		return nil, "", cleanup, err
	}
	r.hsToken = cfg.AppService.HSToken
	r.files, r.dbType, r.dbURI = files, dbType, dbURI
	opts.progress("starting the bridge (%s)", dbType)
	r.bridge, err = rig.StartBridge(ctx, binary, files, filepath.Join(opts.Dir, "bridge.log"))
	if err != nil {
		return nil, "", cleanup, err
	}
	cleanups = append(cleanups, func() { _ = r.bridge.Stop() })
	if err := r.login(ctx, bridgeURL); err != nil {
		return nil, "", cleanup, err
	}
	if r.user != nil {
		if err := r.openOlmSession(ctx, bridgeURL); err != nil {
			return nil, "", cleanup, err
		}
	}
	return r, bridgeURL, cleanup, nil
}

func (r *nullRun) onMatrixMessage(body, sender, _ string, at time.Time) {
	if strings.HasPrefix(sender, "@twiliobot:") && strings.HasPrefix(body, "Logged in") {
		r.loginOnce.Do(func() { close(r.loggedIn) })
	}
	if l := r.in.Load(); l != nil {
		l.Arrived(body, at)
	}
}

// login logs the bench user in by acting as the homeserver: it pushes the
// DM invite and the answers to the bot's questions as transactions.
func (r *nullRun) login(ctx context.Context, bridgeURL string) error {
	mgmt := "!management:localhost"
	events := []map[string]any{{
		"type": "m.room.member", "state_key": "@twiliobot:localhost", "room_id": mgmt, "sender": benchUser,
		"event_id": "$invite", "origin_server_ts": time.Now().UnixMilli(),
		"content": map[string]any{"membership": "invite", "is_direct": true},
	}}
	for i, text := range []string{"login", benchAccount, benchToken} {
		events = append(events, map[string]any{
			"type": "m.room.message", "room_id": mgmt, "sender": benchUser, "event_id": fmt.Sprintf("$login%d", i),
			"origin_server_ts": time.Now().UnixMilli(), "content": map[string]any{"msgtype": "m.text", "body": text},
		})
	}
	if err := r.transaction(ctx, bridgeURL, events); err != nil {
		return err
	}
	select {
	case <-r.loggedIn:
		return nil
	case <-time.After(30 * time.Second):
		return fmt.Errorf("the bench user could not log in; bridge log:\n%s", r.bridge.LogTail(20))
	case <-ctx.Done():
		return ctx.Err()
	}
}

// transaction pushes events to the bridge as the homeserver does, with
// the to-device messages for the bridge's device queued since the last one
// (MSC2409, encryption.appservice), which the bridge handles first.
func (r *nullRun) transaction(ctx context.Context, bridgeURL string, events []map[string]any) error {
	payload := map[string]any{"events": events}
	if r.hs.keys != nil {
		if toDevice := r.hs.keys.takeForBot(); len(toDevice) > 0 {
			payload["de.sorunome.msc2409.to_device"] = toDevice
		}
	}
	body, err := json.Marshal(payload)
	if err != nil {
		return err
	}
	txn := r.txnSeq.Add(1)
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, fmt.Sprintf("%s/_matrix/app/v1/transactions/bench%d", bridgeURL, txn), bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+r.hsToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("transaction answered %d", resp.StatusCode)
	}
	return nil
}

func remoteNumber(i int) string { return fmt.Sprintf("+1415666%04d", i) }

// inbound sends count texts as signed webhooks from the remote numbers in
// turn and waits until each reached the homeserver.
func (r *nullRun) inbound(ctx context.Context, bridgeURL string, count int, tag string) (Summary, error) {
	lat := NewLatencies(count)
	r.in.Store(lat)
	defer r.in.Store(nil)
	webhookURL := bridgeURL + "/_trestle/twilio/" + benchLogin + "/incoming"
	var limiter *rate.Limiter
	if r.opts.Rate > 0 {
		limiter = rate.NewLimiter(rate.Limit(r.opts.Rate), 1)
	}
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, r.opts.Concurrency)
	for w := 0; w < r.opts.Concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= count || ctx.Err() != nil {
					return
				}
				if limiter != nil {
					if err := limiter.Wait(ctx); err != nil {
						return
					}
				}
				err := postInbound(ctx, r.client, webhookURL, benchToken, inboundText{
					SID: fmt.Sprintf("SM%s%026d", tagHex(tag), i), Account: benchAccount,
					From: remoteNumber(i % r.opts.Numbers), To: benchNumber, Body: fmt.Sprintf("%s-%d bench text", tag, i),
				}, lat)
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errs:
		return Summary{}, err
	default:
	}
	select {
	case <-lat.Done():
	case <-time.After(5 * time.Minute):
		return lat.Summarize(start), errors.New("not every text reached the homeserver within 5 minutes")
	case <-ctx.Done():
		return Summary{}, ctx.Err()
	}
	return lat.Summarize(start), nil
}

// tagHex turns a phase tag into hex digits for unique message SIDs.
func tagHex(tag string) string {
	return fmt.Sprintf("%06x", []byte(tag + "\x00\x00\x00")[:3])
}

// outbound sends Messages texts from the Matrix user into the portal rooms
// as the homeserver would: transactions of up to Batch events, one in
// flight at a time, and waits until each reached Twilio.
func (r *nullRun) outbound(ctx context.Context, bridgeURL string) (Summary, error) {
	rooms := r.portals()
	if len(rooms) == 0 {
		return Summary{}, errors.New("no portal rooms")
	}
	count := r.opts.Messages
	lat := NewLatencies(count)
	r.out.Store(lat)
	defer r.out.Store(nil)
	var limiter *rate.Limiter
	if r.opts.Rate > 0 {
		limiter = rate.NewLimiter(rate.Limit(r.opts.Rate), r.opts.Batch)
	}
	start := time.Now()
	for i := 0; i < count; {
		n := min(r.opts.Batch, count-i)
		if limiter != nil {
			if err := limiter.WaitN(ctx, n); err != nil {
				return Summary{}, err
			}
		}
		events := make([]map[string]any, 0, n)
		now := time.Now()
		for j := 0; j < n; j++ {
			token := fmt.Sprintf("out-%d bench text", i+j)
			lat.Sent(token, now)
			room := rooms[(i+j)%len(rooms)]
			evtType, content, err := r.userContent(ctx, room, token)
			if err != nil {
				return Summary{}, err
			}
			events = append(events, map[string]any{
				"type": evtType, "room_id": room, "sender": benchUser,
				"event_id": fmt.Sprintf("$out%d", i+j), "origin_server_ts": now.UnixMilli(),
				"content": content,
			})
		}
		if err := r.transaction(ctx, bridgeURL, events); err != nil {
			return Summary{}, err
		}
		i += n
	}
	select {
	case <-lat.Done():
	case <-time.After(5 * time.Minute):
		return lat.Summarize(start), errors.New("not every text reached Twilio within 5 minutes")
	case <-ctx.Done():
		return Summary{}, ctx.Err()
	}
	return lat.Summarize(start), nil
}

// portals lists the portal rooms created so far.
func (r *nullRun) portals() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	rooms := make([]string, 0, len(r.rooms))
	for _, room := range r.rooms {
		rooms = append(rooms, room)
	}
	return rooms
}

// userContent is the event the bench user sends for a text: encrypted by
// the user's device in encrypted runs.
func (r *nullRun) userContent(ctx context.Context, room, body string) (string, any, error) {
	if r.user == nil {
		return "m.room.message", map[string]any{"msgtype": "m.text", "body": body}, nil
	}
	sealed, err := r.user.seal(ctx, id.RoomID(room), body)
	if err != nil {
		return "", nil, err
	}
	return "m.room.encrypted", sealed, nil
}
