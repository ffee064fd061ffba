package echo

import (
	"slices"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/bridgev2"
	"github.com/trestle-bridge/trestle/bridgev2/bridgeconfig"
	"github.com/trestle-bridge/trestle/bridgev2/bridgetest"
	"github.com/trestle-bridge/trestle/bridgev2/database"
	"github.com/trestle-bridge/trestle/bridgev2/database/dbtest"
	"github.com/trestle-bridge/trestle/bridgev2/networkid"
)

const alice = id.UserID("@alice:example.com")

// newHarness starts a bridge whose contacts answer at once, on SQLite or
// the given database.
func newHarness(t *testing.T, dialect ...database.Dialect) *bridgetest.Harness {
	opts := bridgetest.Options{NetworkConfig: "think_time: 0s"}
	if len(dialect) > 0 {
		opts.Dialect = dialect[0]
	}
	return bridgetest.New(t, func() bridgev2.NetworkConnector { return New() }, opts)
}

// onEachDatabase runs a test that restarts the bridge on SQLite, and on
// PostgreSQL too when TRESTLE_TEST_POSTGRES is set.
func onEachDatabase(t *testing.T, test func(t *testing.T, dialect database.Dialect)) {
	for _, dialect := range dbtest.Dialects() {
		t.Run(string(dialect), func(t *testing.T) { test(t, dialect) })
	}
}

// startChat has alice type start-chat in a new management room and returns
// the room she then joins and the contact's ghost.
func startChat(h *bridgetest.Harness, login *bridgev2.UserLogin, name string) (id.RoomID, id.UserID) {
	h.SendText(alice, h.ManagementRoom(alice), "start-chat "+name)
	room := h.WaitForPortal(networkid.PortalKey{ID: networkid.PortalID(name), Receiver: login.ID}, alice)
	return room, h.Matrix.GhostUserID(networkid.UserID(string(login.ID) + "." + name))
}

// countTexts counts the messages from sender in a room whose body is text.
func countTexts(h *bridgetest.Harness, room id.RoomID, sender id.UserID, text string) int {
	n := 0
	for _, evt := range h.Matrix.Events(room) {
		if msg, ok := evt.Content.Parsed.(*event.MessageEventContent); ok && evt.Sender == sender && msg.Body == text {
			n++
		}
	}
	return n
}

// redacts is the event a redaction by sender deletes, or "".
func redacts(evt *event.Event, sender id.UserID) id.EventID {
	if r, ok := evt.Content.Parsed.(*event.RedactionEventContent); ok && evt.Sender == sender {
		return r.Redacts
	}
	return ""
}

func waitForEvent(t *testing.T, h *bridgetest.Harness, room id.RoomID, what string, pred func(*event.Event) bool) *event.Event {
	t.Helper()
	evt, err := h.Matrix.WaitForEvent(h.Ctx(), room, what, pred)
	if err != nil {
		t.Fatal(err)
	}
	return evt
}

func TestALoginNeedsOnlyAName(t *testing.T) {
	h := newHarness(t)
	login := h.Login(alice, map[string]string{"name": " Alice "})
	if login.ID != "alice" || login.RemoteName != "alice" {
		t.Errorf("logged in as %q (%q), want alice", login.ID, login.RemoteName)
	}
	if _, err := h.TryLogin("@bob:example.com", map[string]string{"name": "bob.smith"}); err == nil ||
		!strings.Contains(bridgev2.HumanMessage(err), `"bob.smith" cannot be an echo name`) {
		t.Errorf("a name with a dot: %v", err)
	}
}

func TestStartChatOpensADMThatEchoesTexts(t *testing.T) {
	h := newHarness(t)
	login := h.Login(alice, map[string]string{"name": "alice"})
	mgmt := h.ManagementRoom(alice)
	h.SendText(alice, mgmt, "start-chat Bob")
	h.WaitForText(mgmt, h.Matrix.BotUserID(), "Opened a chat with bob (echo)")
	room := h.WaitForPortal(networkid.PortalKey{ID: "bob", Receiver: login.ID}, alice)
	bob := h.Matrix.GhostUserID("alice.bob")
	if got := h.Matrix.Profile(bob); got == nil || got.DisplayName != "bob (echo)" {
		t.Errorf("bob's profile: %+v", got)
	}

	sent := h.SendText(alice, room, "hello")
	h.WaitForText(room, bob, "You said: hello")
	waitForEvent(t, h, room, "the delivery report", func(evt *event.Event) bool {
		st, ok := evt.Content.Parsed.(*event.BeeperMessageStatusEventContent)
		return ok && st.RelatesTo.EventID == sent && st.DeliveredToUsers != nil && slices.Contains(*st.DeliveredToUsers, bob)
	})

	h.SendMatrix(alice, room, event.EventMessage, &event.MessageEventContent{MsgType: event.MsgText,
		Body: "bold", Format: event.FormatHTML, FormattedBody: "<b>bold</b>"})
	answer := h.WaitForText(room, bob, "You said: bold").Content.AsMessage()
	if answer.FormattedBody != "You said: <b>bold</b>" {
		t.Errorf("the answer to a formatted text is formatted %q", answer.FormattedBody)
	}

	h.SendText(alice, mgmt, "start-chat bob@example.com")
	h.WaitForText(mgmt, h.Matrix.BotUserID(), `"bob@example.com" cannot be an echo name`)
}

func TestAttachmentsComeBack(t *testing.T) {
	h := newHarness(t)
	room, bob := startChat(h, h.Login(alice, map[string]string{"name": "alice"}), "bob")
	for _, msg := range []*event.MessageEventContent{
		{MsgType: event.MsgImage, Body: "cat.png", Info: &event.FileInfo{MimeType: "image/png", Size: 9}},
		{MsgType: event.MsgFile, Body: "the notes", FileName: "notes.txt", Info: &event.FileInfo{MimeType: "text/plain", Size: 5}},
	} {
		data := []byte(msg.Info.MimeType)[:msg.Info.Size]
		msg.URL = h.Matrix.PutMedia(data, msg.Info.MimeType)
		h.SendMatrix(alice, room, event.EventMessage, msg)
		answer := h.WaitForText(room, bob, msg.Body).Content.AsMessage()
		got, mime, ok := h.Matrix.Media(answer.URL)
		if answer.MsgType != msg.MsgType || !ok || string(got) != string(data) || mime != msg.Info.MimeType ||
			answer.Info == nil || answer.Info.MimeType != msg.Info.MimeType {
			t.Errorf("%s came back as %s %q (%s)", msg.Body, answer.MsgType, got, mime)
		}
		if answer.GetFileName() != msg.GetFileName() {
			t.Errorf("%s came back named %q", msg.GetFileName(), answer.GetFileName())
		}
	}
}

// TestEditsReactionsAndDeletionsAreEchoed also runs across a restart
// between the message and what the user does to it: the contact still
// finds its answer.
func TestEditsReactionsAndDeletionsAreEchoed(t *testing.T) {
	t.Run("live", func(t *testing.T) { testEditsReactionsAndDeletions(t, newHarness(t), false) })
	t.Run("after a restart", func(t *testing.T) {
		onEachDatabase(t, func(t *testing.T, dialect database.Dialect) {
			testEditsReactionsAndDeletions(t, newHarness(t, dialect), true)
		})
	})
}

func testEditsReactionsAndDeletions(t *testing.T, h *bridgetest.Harness, restart bool) {
	room, bob := startChat(h, h.Login(alice, map[string]string{"name": "alice"}), "bob")
	sent := h.SendText(alice, room, "helo")
	answer := h.WaitForText(room, bob, "You said: helo").ID
	if restart {
		h.Restart()
	}

	h.SendMatrix(alice, room, event.EventMessage, &event.MessageEventContent{MsgType: event.MsgText, Body: "* hello",
		NewContent: &event.MessageEventContent{MsgType: event.MsgText, Body: "hello"},
		RelatesTo:  &event.RelatesTo{Type: event.RelReplace, EventID: sent}})
	waitForEvent(t, h, room, "the answer's edit", func(evt *event.Event) bool {
		msg, ok := evt.Content.Parsed.(*event.MessageEventContent)
		return ok && evt.Sender == bob && msg.RelatesTo.GetReplaceID() == answer &&
			msg.NewContent != nil && msg.NewContent.Body == "You said: hello"
	})

	reaction := h.SendMatrix(alice, room, event.EventReaction, &event.ReactionEventContent{
		RelatesTo: event.RelatesTo{Type: event.RelAnnotation, EventID: sent, Key: "👍"}})
	echoed := waitForEvent(t, h, room, "bob's reaction", func(evt *event.Event) bool {
		r, ok := evt.Content.Parsed.(*event.ReactionEventContent)
		return ok && evt.Sender == bob && r.RelatesTo.EventID == sent && r.RelatesTo.Key == "👍"
	}).ID
	h.SendMatrix(alice, room, event.EventRedaction, &event.RedactionEventContent{Redacts: reaction})
	waitForEvent(t, h, room, "bob's reaction removed", func(evt *event.Event) bool {
		return redacts(evt, bob) == echoed
	})

	h.SendMatrix(alice, room, event.EventRedaction, &event.RedactionEventContent{Redacts: sent})
	waitForEvent(t, h, room, "the answer deleted", func(evt *event.Event) bool {
		return redacts(evt, bob) == answer
	})
}

func TestAnAnswerCannotBeEdited(t *testing.T) {
	h := newHarness(t)
	room, bob := startChat(h, h.Login(alice, map[string]string{"name": "alice"}), "bob")
	h.SendText(alice, room, "hi")
	answer := h.WaitForText(room, bob, "You said: hi").ID
	edit := h.SendMatrix(alice, room, event.EventMessage, &event.MessageEventContent{MsgType: event.MsgText, Body: "* bye",
		NewContent: &event.MessageEventContent{MsgType: event.MsgText, Body: "bye"},
		RelatesTo:  &event.RelatesTo{Type: event.RelReplace, EventID: answer}})
	if st := h.WaitForStatus(room, edit, event.MessageStatusFail); st.Message != "Only your own messages can be edited." {
		t.Errorf("editing bob's answer: %q", st.Message)
	}
}

// TestContactsNamedAtLoginWriteFirst also checks that they do so once,
// not again at every start.
func TestContactsNamedAtLoginWriteFirst(t *testing.T) {
	onEachDatabase(t, testContactsWriteFirst)
}

func testContactsWriteFirst(t *testing.T, dialect database.Dialect) {
	h := newHarness(t, dialect)
	login := h.Login(alice, map[string]string{"name": "alice", "contacts": "carol Dave"})
	hello := map[string]string{"carol": "Hi, I'm carol. Send me anything and I will echo it.",
		"dave": "Hi, I'm dave. Send me anything and I will echo it."}
	rooms := map[string]id.RoomID{}
	for name, text := range hello {
		rooms[name] = h.WaitForPortal(networkid.PortalKey{ID: networkid.PortalID(name), Receiver: login.ID}, alice)
		h.WaitForText(rooms[name], h.Matrix.GhostUserID(networkid.UserID("alice."+name)), text)
	}

	h.Restart()
	carol := h.Matrix.GhostUserID("alice.carol")
	h.SendText(alice, rooms["carol"], "still there?")
	h.WaitForText(rooms["carol"], carol, "You said: still there?")
	if n := countTexts(h, rooms["carol"], carol, hello["carol"]); n != 1 {
		t.Errorf("carol said hello %d times", n)
	}
}

// TestTypesWhileThinkingAndAnswersOnceAfterAStop stops the bridge while
// bob thinks: the message stays journalled and bob answers it once after
// the restart.
func TestTypesWhileThinkingAndAnswersOnceAfterAStop(t *testing.T) {
	onEachDatabase(t, testAnswersOnceAfterAStop)
}

func testAnswersOnceAfterAStop(t *testing.T, dialect database.Dialect) {
	thinkTimes := []time.Duration{time.Minute, 0}
	h := bridgetest.New(t, func() bridgev2.NetworkConnector {
		n := New()
		n.cfg.ThinkTime, thinkTimes = thinkTimes[0], thinkTimes[1:]
		return n
	}, bridgetest.Options{Dialect: dialect, Configure: func(cfg *bridgeconfig.Config) { cfg.Bridge.ShutdownTimeout = 100 * time.Millisecond }})
	room, bob := startChat(h, h.Login(alice, map[string]string{"name": "alice"}), "bob")
	typing := make(chan struct{}, 1)
	h.Matrix.SetFailure(func(method string) error {
		if method == "SetTyping" {
			select {
			case typing <- struct{}{}:
			default:
			}
		}
		return nil
	})

	sent := h.SendText(alice, room, "are you there?")
	select {
	case <-typing:
	case <-h.Ctx().Done():
		t.Fatal("bob did not start typing")
	}
	if n := countTexts(h, room, bob, "You said: are you there?"); n != 0 {
		t.Fatal("bob answered before he was done thinking")
	}
	h.Restart()
	h.WaitForStatus(room, sent, event.MessageStatusSuccess)
	h.WaitForText(room, bob, "You said: are you there?")
	if n := countTexts(h, room, bob, "You said: are you there?"); n != 1 {
		t.Errorf("bob answered %d times", n)
	}
}

func TestExampleConfigFileHoldsTheDefaults(t *testing.T) {
	cfg, err := bridgeconfig.Parse(ExampleConfigFile)
	if err != nil {
		t.Fatal(err)
	}
	n := New()
	if err := bridgev2.ConfigureNetwork(cfg, n); err != nil {
		t.Fatal(err)
	}
	if n.cfg != New().cfg {
		t.Errorf("the example says %+v but the defaults are %+v", n.cfg, New().cfg)
	}
}

func TestValidateConfigNamesTheKey(t *testing.T) {
	n := New()
	n.cfg.ThinkTime = time.Hour
	if err := n.ValidateConfig(); err == nil || !strings.Contains(err.Error(), "network.think_time") {
		t.Errorf("ValidateConfig: %v", err)
	}
}
