package matrixtest

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

const (
	testRoom = id.RoomID("!room:fake")
	bot      = id.UserID("@bot:fake")
)

// start starts a client against the fake and stops it at the end of the test.
func start(t *testing.T, f *fakeHS, opts Options) *Client {
	t.Helper()
	c, err := Start(t.Context(), f.client(t), opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(c.Stop)
	return c
}

func shortCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestWaitSeesEventsReceivedBeforeIt(t *testing.T) {
	f := newFakeHS(t)
	f.push(joined(testRoom, member("$join", bot, "join"), message("$hello", bot, "Hello, I am the SMS bridge")))
	c := start(t, f, Options{})

	evt, err := c.WaitForMessage(shortCtx(t, 5*time.Second), testRoom, bot, "SMS bridge")
	if err != nil {
		t.Fatal(err)
	}
	if evt.ID != "$hello" || evt.RoomID != testRoom {
		t.Errorf("got %s in %s, want $hello in %s", evt.ID, evt.RoomID, testRoom)
	}
	if got := c.Membership(testRoom, bot); got != event.MembershipJoin {
		t.Errorf("bot membership %q, want join", got)
	}
	if n := len(c.Events(testRoom)); n != 2 {
		t.Errorf("recorded %d events, want 2", n)
	}
}

func TestWaitForMessageAfterIgnoresEarlierMatches(t *testing.T) {
	f := newFakeHS(t)
	f.push(joined(testRoom, message("$old", bot, "pong")))
	c := start(t, f, Options{})

	got := make(chan *event.Event, 1)
	errs := make(chan error, 1)
	go func() {
		evt, err := c.WaitForMessageAfter(shortCtx(t, 5*time.Second), testRoom, "$ping", bot, "pong")
		got <- evt
		errs <- err
	}()
	// Whether these arrive before or after the wait starts must not matter.
	f.push(joined(testRoom, message("$ping", "@alice:fake", "ping")))
	f.push(joined(testRoom, message("$new", bot, "pong")))
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	if evt := <-got; evt.ID != "$new" {
		t.Errorf("got %s, want $new (the pong after $ping)", evt.ID)
	}
}

func TestGapsInTheTimelineAreBackfilled(t *testing.T) {
	f := newFakeHS(t)
	create := map[string]any{"type": "m.room.create", "event_id": "$create", "sender": bot, "state_key": "", "content": map[string]any{}}
	history := []map[string]any{create, member("$join", bot, "join"),
		message("$m1", bot, "one"), message("$m2", bot, "two"), message("$m3", bot, "three"), message("$m4", bot, "four")}
	f.history = map[id.RoomID][]map[string]any{testRoom: history}
	// The client first sees the room up to $m1, then a gap, then $m4.
	f.push(joined(testRoom, history[:3]...))
	c := start(t, f, Options{})
	f.push(joinedLimited(testRoom, "h5", history[5]))

	if _, err := c.WaitForMessage(shortCtx(t, 5*time.Second), testRoom, bot, "four"); err != nil {
		t.Fatal(err)
	}
	var ids []id.EventID
	for _, evt := range c.Events(testRoom) {
		ids = append(ids, evt.ID)
	}
	want := []id.EventID{"$create", "$join", "$m1", "$m2", "$m3", "$m4"}
	if !slices.Equal(ids, want) {
		t.Errorf("timeline %v, want %v", ids, want)
	}

	// A newly joined room whose timeline starts at m.room.create is whole,
	// even if the server calls it limited as Dendrite does.
	f.mu.Lock()
	before := f.messages
	f.mu.Unlock()
	f.push(joinedLimited("!new:fake", "h0", create, member("$j2", bot, "join")))
	if _, err := c.WaitForMembership(shortCtx(t, 5*time.Second), "!new:fake", bot, event.MembershipJoin); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.messages != before {
		t.Errorf("backfilled a timeline that starts at m.room.create")
	}
}

func TestWaitFailureTellsWhatWasAwaitedAndSeen(t *testing.T) {
	f := newFakeHS(t)
	f.push(joined(testRoom, message("$1", bot, "Unknown command"), message("$2", bot, "Try help")))
	c := start(t, f, Options{})

	_, err := c.WaitForMessage(shortCtx(t, 100*time.Millisecond), testRoom, bot, "Commands:")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want a deadline error", err)
	}
	for _, want := range []string{
		`@alice:fake waiting for a message from @bot:fake containing "Commands:" in !room:fake`,
		"seen 2 timeline",
		`$2 m.room.message from @bot:fake: m.text "Try help"`,
		"syncs done",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}

	_, err = c.WaitForEvent(shortCtx(t, 50*time.Millisecond), "!elsewhere:fake", func(*event.Event) bool { return true })
	if err == nil || !strings.Contains(err.Error(), "has seen nothing in !elsewhere:fake") {
		t.Errorf("waiting in an unknown room: got %v", err)
	}
}

func TestInvitesAreRecordedAndAutoJoined(t *testing.T) {
	f := newFakeHS(t)
	c := start(t, f, Options{AutoJoin: true})
	f.push(invited("!dm:fake", bot, true))

	inv, err := c.WaitForInvite(shortCtx(t, 5*time.Second), func(inv *Invite) bool { return inv.Sender == bot })
	if err != nil {
		t.Fatal(err)
	}
	if inv.RoomID != "!dm:fake" || !inv.IsDirect || len(inv.State) != 2 {
		t.Errorf("got invite %+v, want a direct one to !dm:fake with 2 state events", inv)
	}
	f.waitUntil(t, "the auto-join", func() bool { return len(f.joins) == 1 && f.joins[0] == "!dm:fake" })
}

func TestTransientSyncErrorsAreRetried(t *testing.T) {
	f := newFakeHS(t)
	c := start(t, f, Options{})
	f.mu.Lock()
	f.failSyncs = 3
	f.mu.Unlock()
	f.push(joined(testRoom, message("$after", bot, "back online")))

	if _, err := c.WaitForMessage(shortCtx(t, 10*time.Second), testRoom, bot, "back online"); err != nil {
		t.Fatal(err)
	}
}

func TestUnknownTokenEndsTheLoopAndFailsWaitsAtOnce(t *testing.T) {
	f := newFakeHS(t)
	c := start(t, f, Options{})
	f.mu.Lock()
	f.unknownToken = true
	f.notifyLocked() // wake the pending long-poll
	f.mu.Unlock()

	_, err := c.WaitForMessage(shortCtx(t, 10*time.Second), testRoom, bot, "never")
	if err == nil || errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "access token is no longer valid") {
		t.Fatalf("got %v, want an immediate error about the access token", err)
	}
}

func TestStopEndsTheSyncLoop(t *testing.T) {
	f := newFakeHS(t)
	c := start(t, f, Options{PollTimeout: time.Minute})
	f.waitUntil(t, "a pending long-poll", func() bool { return f.activeSyncs == 1 })

	c.Stop()
	c.Stop() // idempotent
	select {
	case <-c.done:
	default:
		t.Fatal("the sync loop is still running after Stop")
	}
	f.waitUntil(t, "the long-poll being abandoned", func() bool { return f.activeSyncs == 0 })
	if _, err := c.WaitForInvite(t.Context(), nil); err == nil || !strings.Contains(err.Error(), "stopped") {
		t.Errorf("waiting after Stop: got %v, want an error saying the loop stopped", err)
	}
}

func TestReceiptsAndTyping(t *testing.T) {
	f := newFakeHS(t)
	c := start(t, f, Options{})
	f.push(joinedEphemeral(testRoom,
		map[string]any{"type": "m.typing", "content": map[string]any{"user_ids": []string{bot.String()}}},
		map[string]any{"type": "m.receipt", "content": map[string]any{
			"$msg": map[string]any{"m.read": map[string]any{bot.String(): map[string]any{"ts": 1}}},
		}},
	))
	if _, err := c.WaitForReceipt(shortCtx(t, 5*time.Second), testRoom, bot, "$msg"); err != nil {
		t.Fatal(err)
	}
	typing, err := c.WaitForEphemeral(shortCtx(t, 5*time.Second), testRoom, func(e *event.Event) bool {
		return e.Type == event.EphemeralEventTyping
	})
	if err != nil {
		t.Fatal(err)
	}
	if users := typing.Content.AsTyping().UserIDs; len(users) != 1 || users[0] != bot {
		t.Errorf("typing users %v, want [%s]", users, bot)
	}
}

func TestSendHelpersProduceSpecContent(t *testing.T) {
	f := newFakeHS(t)
	c := start(t, f, Options{})
	ctx := shortCtx(t, 5*time.Second)

	steps := []func() (id.EventID, error){
		func() (id.EventID, error) { return c.Send(ctx, testRoom, "plain") },
		func() (id.EventID, error) { return c.SendNotice(ctx, testRoom, "notice") },
		func() (id.EventID, error) { return c.SendEmote(ctx, testRoom, "waves") },
		func() (id.EventID, error) { return c.SendHTML(ctx, testRoom, "bold", "<b>bold</b>") },
		func() (id.EventID, error) { return c.SendReply(ctx, testRoom, "$orig", "a reply") },
		func() (id.EventID, error) { return c.Edit(ctx, testRoom, "$orig", "fixed") },
		func() (id.EventID, error) { return c.React(ctx, testRoom, "$orig", "👍") },
	}
	for i, step := range steps {
		if _, err := step(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.sent) != len(steps) {
		t.Fatalf("the fake got %d events, want %d", len(f.sent), len(steps))
	}
	msgtype := func(i int) any { return f.sent[i].content["msgtype"] }
	if msgtype(0) != "m.text" || msgtype(1) != "m.notice" || msgtype(2) != "m.emote" {
		t.Errorf("msgtypes %v %v %v, want m.text m.notice m.emote", msgtype(0), msgtype(1), msgtype(2))
	}
	if html := f.sent[3].content; html["format"] != "org.matrix.custom.html" || html["formatted_body"] != "<b>bold</b>" {
		t.Errorf("HTML content %v", html)
	}
	reply := f.sent[4].content["m.relates_to"].(map[string]any)
	if reply["m.in_reply_to"].(map[string]any)["event_id"] != "$orig" {
		t.Errorf("reply relation %v", reply)
	}
	edit := f.sent[5].content
	if rel := edit["m.relates_to"].(map[string]any); rel["rel_type"] != "m.replace" || rel["event_id"] != "$orig" {
		t.Errorf("edit relation %v", rel)
	}
	if edit["body"] != "* fixed" || edit["m.new_content"].(map[string]any)["body"] != "fixed" {
		t.Errorf("edit content %v", edit)
	}
	if f.sent[6].evtType != "m.reaction" {
		t.Errorf("reaction sent as %s", f.sent[6].evtType)
	}
}

func TestStartRejectsALoggedOutClient(t *testing.T) {
	f := newFakeHS(t)
	cli := f.client(t)
	cli.AccessToken = ""
	if _, err := Start(t.Context(), cli, Options{}); err == nil {
		t.Error("Start accepted a client without an access token")
	}
}
