package bench

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/connectors/twilio/twiliosim"
	"github.com/trestle-bridge/trestle/internal/dendrite"
	"github.com/trestle-bridge/trestle/internal/matrixtest"
	"github.com/trestle-bridge/trestle/internal/rig"
)

// DendriteReport compares bridged throughput with what the same Dendrite
// accepts from a plain client in the same run: the ceiling a bridge can
// reach.
type DendriteReport struct {
	PortalCreation   Summary
	CreationCeiling  Summary
	Inbound          Summary
	InboundCeiling   Summary
	Outbound         Summary
	OutboundCeiling  Summary
	InboundCPUPer1K  time.Duration
	OutboundCPUPer1K time.Duration
	// OutboundStatuses is how many room events (message status events and
	// notices) the bridge bot sent for the outbound texts, counted once the
	// ceiling run is over: each is one more event Dendrite takes for a
	// bridged text.
	OutboundStatuses int64
	// OutboundReceipts is how many read receipts the bridge bot sent for
	// them, and ReceiptedRooms how many portals ended with the bot's
	// receipt on their newest text (the sender sees every text delivered).
	OutboundReceipts int64
	ReceiptedRooms   int
	OutboundRooms    int
	PeakRSS          int64
	// Encrypted says the portals (and the ceilings' rooms) were encrypted.
	Encrypted bool
}

// Text formats the report.
func (r *DendriteReport) Text() string {
	var sb strings.Builder
	if r.Encrypted {
		sb.WriteString("encrypted portals (end-to-bridge encryption); the user's client encrypts and decrypts\n")
	}
	fmt.Fprintf(&sb, "portal creation (first text from each new number): %s\n", r.PortalCreation)
	fmt.Fprintf(&sb, "room creation ceiling (a plain appservice client creates the same rooms and sends the text): %s\n", r.CreationCeiling)
	if r.Inbound.Count > 0 {
		fmt.Fprintf(&sb, "inbound bridged (webhook -> user's sync): %s; bridge CPU %s per 1,000\n", r.Inbound, r.InboundCPUPer1K)
		fmt.Fprintf(&sb, "inbound ceiling (appservice sends the same to Dendrite directly): %s\n", r.InboundCeiling)
		fmt.Fprintf(&sb, "inbound bridged / ceiling: %.0f%%\n", 100*r.Inbound.Throughput/r.InboundCeiling.Throughput)
	}
	if r.Outbound.Count > 0 {
		fmt.Fprintf(&sb, "outbound bridged (user's send -> Twilio simulator): %s; bridge CPU %s per 1,000\n", r.Outbound, r.OutboundCPUPer1K)
		fmt.Fprintf(&sb, "outbound ceiling (the user sends the same to Dendrite, as many unbridged rooms): %s\n", r.OutboundCeiling)
		fmt.Fprintf(&sb, "outbound bridged / ceiling: %.0f%%\n", 100*r.Outbound.Throughput/r.OutboundCeiling.Throughput)
		perText := 1 + float64(r.OutboundStatuses)/float64(r.Outbound.Count)
		fmt.Fprintf(&sb, "outbound homeserver events per bridged text: %.2f (the text and %d status events or notices for %d texts), %.0f events/s\n",
			perText, r.OutboundStatuses, r.Outbound.Count, perText*r.Outbound.Throughput)
		fmt.Fprintf(&sb, "outbound delivery receipts: %d for %d texts; %d of %d portals show their newest text delivered\n",
			r.OutboundReceipts, r.Outbound.Count, r.ReceiptedRooms, r.OutboundRooms)
	}
	fmt.Fprintf(&sb, "bridge peak RSS: %.1f MB", float64(r.PeakRSS)/(1<<20))
	return sb.String()
}

// dendriteRun is the state of a run against Dendrite and the simulator.
type dendriteRun struct {
	opts    Options
	env     *rig.Env
	user    *mautrix.Client
	account *twiliosim.Account
	number  string
	arrived atomic.Pointer[Latencies]
	// statuses counts the status events and notices the bot's sync saw
	// from the bot; receipted is the newest event of each room it saw the
	// bot's read receipt on.
	statuses  atomic.Int64
	receipted sync.Map // room ID -> event ID
	// sentMu guards sentIndex (event ID -> send number) and roomNewest
	// (room ID -> highest send number in it).
	sentMu     sync.Mutex
	sentIndex  map[id.EventID]int
	roomNewest map[id.RoomID]int
	// botPaused stops the bot's sync, which only times inbound texts, so
	// that it costs Dendrite nothing while outbound is measured; botSyncs
	// counts its completed syncs.
	botPaused atomic.Bool
	botSyncs  atomic.Int64
	rooms     sync.Map // remote number -> room ID
	// crypt is the user's encrypting client in encrypted runs (nil
	// otherwise); sealed holds the encrypted texts the bot's sync saw
	// before the user's device had their keys, to be decrypted later.
	crypt  *matrixtest.Client
	sealed []sealedArrival
}

// RunDendrite measures against the real Dendrite and the Twilio simulator.
func RunDendrite(ctx context.Context, opts Options) (*DendriteReport, error) {
	if opts.Numbers <= 0 || opts.Messages <= 0 || opts.Concurrency <= 0 {
		return nil, errors.New("numbers, messages and concurrency must be positive")
	}
	opts.progress("starting Dendrite, the Twilio simulator and the bridge (the first run builds Dendrite)")
	metricsPort, err := rig.FreePort()
	if err != nil {
		return nil, err
	}
	metricsURL := fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort)
	env, err := rig.StartEnv(ctx, rig.EnvOptions{
		Dir: opts.Dir, DatabaseType: opts.DatabaseType, DatabaseURI: opts.DatabaseURI,
		ConfigEdits: map[string]any{
			"network.max_send_rate": 0, "network.backfill_limit": 0, "logging.level": "info",
			"homeserver.sync_redactions": false, "bridge.message_status_events": opts.StatusEvents,
			"bridge.delivery_receipts": !opts.NoDeliveryReceipts,
			"metrics.enabled":          true, "metrics.listen": fmt.Sprintf("127.0.0.1:%d", metricsPort),
			// The rig generates the pickle key; to-device events come through
			// the bot's /sync, as Dendrite offers no MSC2409.
			"encryption.allow": opts.Encryption, "encryption.default": opts.Encryption,
		},
		DendriteOptions: rigDendriteQuiet(),
	})
	if err != nil {
		return nil, err
	}
	defer env.Close()
	r := &dendriteRun{opts: opts, env: env, number: "+14155550000"}
	if err := r.setup(ctx); err != nil {
		return nil, err
	}
	cfg, err := env.Files.LoadConfig()
	if err != nil {
		return nil, err
	}
	// Arrival is timed through the bridge bot's own /sync: it is in every
	// portal from the start, so the time is when the text reached the
	// homeserver, not when a client got round to joining the room.
	botCli, err := mautrix.NewClient(cfg.Homeserver.Address, id.NewUserID("twiliobot", "localhost"), cfg.AppService.ASToken)
	if err != nil {
		return nil, err
	}
	botCli.SetAppServiceUserID = true
	go r.syncLoop(ctx, botCli, true)
	if r.crypt == nil {
		go r.syncLoop(ctx, r.user, false)
	}

	report := &DendriteReport{Encrypted: opts.Encryption}
	opts.progress("first texts from %d new numbers (portal creation)", opts.Numbers)
	if report.PortalCreation, err = r.inbound(ctx, opts.Numbers, "first"); err != nil {
		return nil, err
	}
	opts.progress("portal creation: %s", report.PortalCreation)
	if report.CreationCeiling, err = r.creationCeiling(ctx); err != nil {
		return nil, err
	}
	opts.progress("room creation ceiling: %s", report.CreationCeiling)
	if opts.Inbound {
		before, _ := ReadProcStats(env.Bridge.PID())
		if report.Inbound, err = r.inbound(ctx, opts.Messages, "in"); err != nil {
			return nil, err
		}
		after, _ := ReadProcStats(env.Bridge.PID())
		report.InboundCPUPer1K = (after.CPU - before.CPU) * 1000 / time.Duration(max(report.Inbound.Count, 1))
		opts.progress("inbound bridged: %s", report.Inbound)
		if report.InboundCeiling, err = r.inboundCeiling(ctx); err != nil {
			return nil, err
		}
		opts.progress("inbound ceiling: %s", report.InboundCeiling)
	}
	if opts.Outbound {
		r.botPaused.Store(true)
		before, _ := ReadProcStats(env.Bridge.PID())
		statusesBefore := r.statuses.Load()
		receiptsBefore, _ := scrapeCounter(ctx, metricsURL, `trestle_message_outcomes_shown_total{kind="receipt"}`)
		if report.Outbound, err = r.outbound(ctx, false); err != nil {
			return nil, err
		}
		after, _ := ReadProcStats(env.Bridge.PID())
		report.OutboundCPUPer1K = (after.CPU - before.CPU) * 1000 / time.Duration(max(report.Outbound.Count, 1))
		opts.progress("outbound bridged: %s", report.Outbound)
		if report.OutboundCeiling, err = r.outbound(ctx, true); err != nil {
			return nil, err
		}
		// Resumed, the bot's sync catches up on the status events.
		r.botPaused.Store(false)
		if err := r.awaitBotSyncs(ctx, 2); err != nil {
			return nil, err
		}
		report.OutboundStatuses = r.statuses.Load() - statusesBefore
		report.ReceiptedRooms, report.OutboundRooms = r.awaitReceipts(ctx, 30*time.Second)
		receiptsAfter, err := scrapeCounter(ctx, metricsURL, `trestle_message_outcomes_shown_total{kind="receipt"}`)
		if err != nil {
			return nil, err
		}
		report.OutboundReceipts = int64(receiptsAfter - receiptsBefore)
		opts.progress("outbound ceiling: %s", report.OutboundCeiling)
	}
	st, _ := ReadProcStats(env.Bridge.PID())
	report.PeakRSS = st.PeakRSS
	return report, nil
}

// setup creates the Matrix user and the Twilio account, and logs in
// through the bot as a person would.
func (r *dendriteRun) setup(ctx context.Context) error {
	var err error
	if r.user, err = r.env.NewUser(ctx, "benchuser", "benchuser-password"); err != nil {
		return err
	}
	if r.opts.Encryption {
		// The user's own device, as Element's: it joins the portals, gets
		// the bridge's keys through its /sync, and encrypts what it sends.
		if r.crypt, err = matrixtest.Start(ctx, r.user, matrixtest.Options{AutoJoin: true, Crypto: true}); err != nil {
			return err
		}
	}
	if r.account, err = r.env.Sim.AddAccount("", ""); err != nil {
		return err
	}
	if _, err := r.account.AddNumber(r.number, twiliosim.Capabilities{SMS: true, MMS: true}); err != nil {
		return err
	}
	bot := id.NewUserID("twiliobot", "localhost")
	resp, err := r.user.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "trusted_private_chat", IsDirect: true, Invite: []id.UserID{bot}})
	if err != nil {
		return err
	}
	// The homeserver only passes on messages in rooms the bot has joined.
	for joined := false; !joined; {
		members, err := r.user.JoinedMembers(ctx, resp.RoomID)
		if err != nil {
			return err
		}
		_, joined = members.Joined[bot]
		if !joined {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	for _, answer := range []string{"login", r.account.SID(), r.account.AuthToken()} {
		if _, err := r.sendText(ctx, resp.RoomID, answer); err != nil {
			return err
		}
	}
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if url, _ := r.account.SMSURL(r.number); url != "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("the bench user could not log in; bridge log:\n%s", r.env.Bridge.LogTail(20))
}

// syncLoop follows a client's /sync. For the user it accepts portal
// invites (so the user can send in them); for the bot (timing) it records
// the arrival of every text and counts the status events.
func (r *dendriteRun) syncLoop(ctx context.Context, cli *mautrix.Client, timing bool) {
	since := ""
	// Dendrite does not wake a long-polling /sync for rooms joined after it
	// began, so the bot polls in short steps; the timing error is at most
	// one step.
	timeout := 30000
	if timing {
		timeout = 100
	}
	// A timeline limit above any burst, so a busy room's sync is never
	// "limited" (which would skip events and lose their timing).
	filter := ""
	if timing {
		filter = `{"presence":{"types":[]},"account_data":{"types":[]},"room":{"state":{"types":[]},"ephemeral":{"types":["m.receipt"]},` +
			`"account_data":{"types":[]},"timeline":{"types":["m.room.message","m.room.encrypted","com.beeper.message_send_status"],"limit":5000}}}`
	}
	for ctx.Err() == nil {
		if timing && r.botPaused.Load() {
			select {
			case <-ctx.Done():
			case <-time.After(20 * time.Millisecond):
			}
			continue
		}
		resp, err := cli.SyncRequest(ctx, timeout, since, filter, false, event.PresenceOffline)
		if err != nil {
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		now := time.Now()
		since = resp.NextBatch
		if !timing {
			for roomID := range resp.Rooms.Invite {
				go func(roomID id.RoomID) { _, _ = cli.JoinRoomByID(ctx, roomID) }(roomID)
			}
			continue
		}
		bot := id.NewUserID("twiliobot", "localhost")
		for roomID, room := range resp.Rooms.Join {
			for _, evt := range room.Ephemeral.Events {
				_ = evt.Content.ParseRaw(evt.Type)
				for eventID, byType := range *evt.Content.AsReceipt() {
					if _, ok := byType[event.ReceiptTypeRead][bot]; ok {
						r.receipted.Store(roomID, eventID)
					}
				}
			}
			for _, evt := range room.Timeline.Events {
				if evt.Type == event.BeeperMessageStatus || (evt.Type == event.EventEncrypted && evt.Sender == bot) {
					// In encrypted portals statuses and notices are encrypted.
					r.statuses.Add(1)
				}
				if evt.Type == event.EventEncrypted && evt.Sender != bot {
					evt.RoomID = roomID
					r.sealed = append(r.sealed, sealedArrival{evt: evt, at: now, lat: r.arrived.Load()})
					continue
				}
				if evt.Type != event.EventMessage {
					continue
				}
				_ = evt.Content.ParseRaw(evt.Type)
				if evt.Sender == bot {
					r.statuses.Add(1) // a notice
					continue
				}
				r.textArrived(r.arrived.Load(), evt.Sender, roomID, evt.Content.AsMessage().Body, now)
			}
		}
		r.openSealed(ctx)
		r.botSyncs.Add(1)
	}
}

// textArrived records a text the bot's sync saw in a room at a time, in
// the latencies of the phase it was seen in.
func (r *dendriteRun) textArrived(lat *Latencies, sender id.UserID, roomID id.RoomID, body string, at time.Time) {
	// The creation ceiling's rooms (texts tagged "ceil-") look like
	// portals but are not bridged: outbound must not use them.
	if remote, ok := strings.CutPrefix(string(sender), "@twilio_"); ok && !strings.HasPrefix(body, "ceil-") {
		r.rooms.LoadOrStore("+"+strings.SplitN(remote, ":", 2)[0], roomID)
	}
	if lat != nil {
		lat.Arrived(body, at)
	}
}

// inbound sends count signed webhooks from the remote numbers in turn, at
// the configured concurrency, and times their arrival at the user.
func (r *dendriteRun) inbound(ctx context.Context, count int, tag string) (Summary, error) {
	lat := NewLatencies(count)
	r.arrived.Store(lat)
	defer r.arrived.Store(nil)
	login := strings.TrimPrefix(r.number, "+")
	webhookURL := r.env.BridgeURL + "/_trestle/twilio/" + login + "/incoming"
	start := time.Now()
	err := parallel(ctx, count, r.opts.Concurrency, func(i int) error {
		return postInbound(ctx, http.DefaultClient, webhookURL, r.account.AuthToken(), inboundText{
			SID: fmt.Sprintf("SM%s%026d", tagHex(tag), i), Account: r.account.SID(),
			From: remoteNumber(i % r.opts.Numbers), To: r.number, Body: fmt.Sprintf("%s-%d bench text", tag, i),
		}, lat)
	})
	if err != nil {
		return Summary{}, err
	}
	return waitAll(ctx, lat, start)
}

// inboundCeiling sends the same number of texts straight to Dendrite as
// the contacts' ghosts, with a plain appservice client, and times their
// arrival at the user the same way.
func (r *dendriteRun) inboundCeiling(ctx context.Context) (Summary, error) {
	cfg, err := r.env.Files.LoadConfig()
	if err != nil {
		return Summary{}, err
	}
	count := r.opts.Messages
	lat := NewLatencies(count)
	r.arrived.Store(lat)
	defer r.arrived.Store(nil)
	start := time.Now()
	err = parallel(ctx, count, r.opts.Concurrency, func(i int) error {
		remote := remoteNumber(i % r.opts.Numbers)
		room, ok := r.rooms.Load(remote)
		if !ok {
			return fmt.Errorf("no room for %s", remote)
		}
		ghost := id.NewUserID("twilio_"+strings.TrimPrefix(remote, "+"), "localhost")
		cli, err := mautrix.NewClient(cfg.Homeserver.Address, ghost, cfg.AppService.ASToken)
		if err != nil {
			return err
		}
		cli.SetAppServiceUserID = true
		token := fmt.Sprintf("ceiling-%d bench text", i)
		lat.Sent(token, time.Now())
		_, err = cli.SendText(ctx, room.(id.RoomID), token)
		return err
	})
	if err != nil {
		return Summary{}, err
	}
	return waitAll(ctx, lat, start)
}

// creationCeiling does what the bridge does for a first text from a new
// number, with a plain appservice client and nothing else: register a
// ghost, set its name, create the DM with the same state, have the bot
// join, send the text; for as many numbers, at the same concurrency. It is
// what Dendrite allows, and so the bound on portal creation.
func (r *dendriteRun) creationCeiling(ctx context.Context) (Summary, error) {
	cfg, err := r.env.Files.LoadConfig()
	if err != nil {
		return Summary{}, err
	}
	count := r.opts.Numbers
	lat := NewLatencies(count)
	r.arrived.Store(lat)
	defer r.arrived.Store(nil)
	bot := id.NewUserID("twiliobot", "localhost")
	asClient := func(user id.UserID) (*mautrix.Client, error) {
		cli, err := mautrix.NewClient(cfg.Homeserver.Address, user, cfg.AppService.ASToken)
		if err == nil {
			cli.SetAppServiceUserID = true
		}
		return cli, err
	}
	botCli, err := asClient(bot)
	if err != nil {
		return Summary{}, err
	}
	start := time.Now()
	err = parallel(ctx, count, r.opts.Concurrency, func(i int) error {
		token := fmt.Sprintf("ceil-first-%d bench text", i)
		// Timed from the start, like the bridge's texts, which all arrive
		// at once: queueing for a turn is part of the latency.
		lat.Sent(token, start)
		localpart := fmt.Sprintf("twilio_1555777%04d", i)
		ghost, err := asClient(id.NewUserID(localpart, "localhost"))
		if err != nil {
			return err
		}
		if _, err := ghost.MakeRequest(ctx, http.MethodPost, ghost.BuildClientURL("v3", "register"), &mautrix.ReqRegister[any]{
			Username: localpart, Type: mautrix.AuthTypeAppservice, InhibitLogin: true}, nil); err != nil {
			return err
		}
		if err := ghost.SetDisplayName(ctx, "+1 555-777-"+fmt.Sprintf("%04d", i)); err != nil {
			return err
		}
		info := map[string]any{"bridgebot": bot, "protocol": map[string]string{"id": "twilio"}, "channel": map[string]string{"id": localpart}}
		resp, err := ghost.CreateRoom(ctx, &mautrix.ReqCreateRoom{
			Visibility: "private", Preset: "private_chat", Name: "+1 555-777", IsDirect: true,
			Invite: []id.UserID{r.user.UserID, bot},
			InitialState: append([]*event.Event{
				{Type: event.StateBridge, StateKey: &localpart, Content: event.Content{Raw: info}},
				{Type: event.StateHalfShotBridge, StateKey: &localpart, Content: event.Content{Raw: info}},
			}, r.encryptionState()...),
			PowerLevelOverride: &event.PowerLevelsEventContent{Users: map[id.UserID]int{ghost.UserID: 100, bot: 100}},
		})
		if err != nil {
			return err
		}
		if _, err := botCli.JoinRoomByID(ctx, resp.RoomID); err != nil {
			return err
		}
		_, err = ghost.SendText(ctx, resp.RoomID, token)
		return err
	})
	if err != nil {
		return Summary{}, err
	}
	return waitAll(ctx, lat, start)
}

// outbound has the user send texts into the portal rooms and times their
// arrival at the simulator; with ceiling, the same texts go to as many rooms
// that are not bridged and are timed until Dendrite accepted them.
func (r *dendriteRun) outbound(ctx context.Context, ceiling bool) (Summary, error) {
	var rooms []id.RoomID
	r.rooms.Range(func(_, v any) bool {
		rooms = append(rooms, v.(id.RoomID))
		return true
	})
	if ceiling {
		// As many rooms as there are portals: Dendrite orders sends per
		// room, so one room would understate what it accepts.
		n := len(rooms)
		rooms = rooms[:0]
		for range n {
			resp, err := r.user.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", InitialState: r.encryptionState()})
			if err != nil {
				return Summary{}, err
			}
			rooms = append(rooms, resp.RoomID)
		}
	}
	if len(rooms) == 0 {
		return Summary{}, errors.New("no portal rooms")
	}
	if err := r.awaitEncrypted(ctx, rooms); err != nil {
		return Summary{}, err
	}
	count := r.opts.Messages
	lat := NewLatencies(count)
	tag := "out"
	if ceiling {
		tag = "outceiling"
	}
	stop := make(chan struct{})
	defer close(stop)
	if !ceiling {
		go r.watchSimulator(lat, stop)
	}
	start := time.Now()
	err := parallel(ctx, count, r.opts.Concurrency, func(i int) error {
		token := fmt.Sprintf("%s-%d bench text", tag, i)
		lat.Sent(token, time.Now())
		room := rooms[i%len(rooms)]
		eventID, err := r.sendText(ctx, room, token)
		if ceiling && err == nil {
			lat.Arrived(token, time.Now())
		}
		if !ceiling && err == nil {
			r.noteSent(room, eventID, i)
		}
		return err
	})
	if err != nil {
		return Summary{}, err
	}
	return waitAll(ctx, lat, start)
}

// noteSent remembers the order of the user's outbound texts per portal.
func (r *dendriteRun) noteSent(room id.RoomID, eventID id.EventID, i int) {
	r.sentMu.Lock()
	defer r.sentMu.Unlock()
	if r.sentIndex == nil {
		r.sentIndex, r.roomNewest = map[id.EventID]int{}, map[id.RoomID]int{}
	}
	r.sentIndex[eventID] = i
	if n, ok := r.roomNewest[room]; !ok || i > n {
		r.roomNewest[room] = i
	}
}

// awaitReceipts waits, at most limit, for the bridge bot's receipt on the
// newest text of every portal the user sent in, and returns how many got it
// of how many. Texts sent at the same time have no newest among them, so a
// receipt on any of the last Concurrency texts of a portal counts.
func (r *dendriteRun) awaitReceipts(ctx context.Context, limit time.Duration) (receipted, rooms int) {
	deadline := time.Now().Add(limit)
	for {
		r.sentMu.Lock()
		receipted, rooms = 0, len(r.roomNewest)
		for room, newest := range r.roomNewest {
			if got, ok := r.receipted.Load(room); ok {
				if i, ok := r.sentIndex[got.(id.EventID)]; ok && i > newest-r.opts.Concurrency {
					receipted++
				}
			}
		}
		r.sentMu.Unlock()
		if receipted == rooms || time.Now().After(deadline) || ctx.Err() != nil {
			return receipted, rooms
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// watchSimulator polls the simulator's outbound log for new messages.
func (r *dendriteRun) watchSimulator(lat *Latencies, stop <-chan struct{}) {
	seen := map[string]bool{}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		now := time.Now()
		for _, m := range r.env.Sim.Outbound() {
			if !seen[m.SID] {
				seen[m.SID] = true
				lat.Arrived(m.Body, now)
			}
		}
	}
}

// awaitBotSyncs waits until the bot's sync completed n more times.
func (r *dendriteRun) awaitBotSyncs(ctx context.Context, n int64) error {
	want := r.botSyncs.Load() + n
	deadline := time.Now().Add(time.Minute)
	for r.botSyncs.Load() < want {
		if time.Now().After(deadline) {
			return errors.New("the bot's sync did not resume")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// parallel runs fn for 0..count-1 on workers goroutines.
func parallel(ctx context.Context, count, workers int, fn func(i int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Pointer[error]
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= count || ctx.Err() != nil || firstErr.Load() != nil {
					return
				}
				if err := fn(i); err != nil {
					firstErr.CompareAndSwap(nil, &err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if p := firstErr.Load(); p != nil {
		return *p
	}
	return nil
}

func waitAll(ctx context.Context, lat *Latencies, start time.Time) (Summary, error) {
	select {
	case <-lat.Done():
		return lat.Summarize(start), nil
	case <-time.After(10 * time.Minute):
		return lat.Summarize(start), errors.New("not every message arrived within 10 minutes")
	case <-ctx.Done():
		return Summary{}, ctx.Err()
	}
}

// rigDendriteQuiet keeps Dendrite's own logging from costing CPU that the
// measurement would then attribute to the homeserver's ceiling.
func rigDendriteQuiet() dendrite.Options { return dendrite.Options{LogLevel: "warn"} }
