package webhookchat_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/bridgev2"
	"github.com/trestle-bridge/trestle/bridgev2/bridgetest"
	"github.com/trestle-bridge/trestle/bridgev2/networkid"
	"github.com/trestle-bridge/trestle/connectors/webhookchat"
)

const (
	alice  = id.UserID("@alice:example.com")
	secret = "s3cret-shared-with-the-service"
)

// service plays a chat service: it records the signed events the bridge
// sends, answers them as told, and hosts files.
type service struct {
	t   *testing.T
	srv *httptest.Server

	mu       sync.Mutex
	got      []webhookchat.Event
	answers  []answer // the next answers, in order; then 200 with an ID
	sent     int
	files    map[string][]byte
	received chan struct{}
}

type answer struct {
	status int
	body   string
}

func newService(t *testing.T) *service {
	s := &service{t: t, files: map[string][]byte{}, received: make(chan struct{}, 100)}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *service) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.Method == http.MethodGet {
		if data, ok := s.files[r.URL.Path]; ok {
			_, _ = w.Write(data)
		} else {
			http.NotFound(w, r)
		}
		return
	}
	body, _ := io.ReadAll(r.Body)
	if r.Header.Get(webhookchat.SignatureHeader) != webhookchat.Sign(secret, body) {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"error":"Bad signature."}`))
		return
	}
	var evt webhookchat.Event
	if err := json.Unmarshal(body, &evt); err != nil {
		s.t.Errorf("the bridge sent a body that is not an event: %s", body)
	}
	s.got = append(s.got, evt)
	select {
	case s.received <- struct{}{}:
	default: // a waiter is already due to look
	}
	if evt.Type == "ping" {
		return
	}
	if len(s.answers) > 0 {
		a := s.answers[0]
		s.answers = s.answers[1:]
		w.WriteHeader(a.status)
		_, _ = w.Write([]byte(a.body))
		return
	}
	s.sent++
	fmt.Fprintf(w, `{"id":"srv-%d"}`, s.sent)
}

func (s *service) answerNext(answers ...answer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.answers = append(s.answers, answers...)
}

// waitFor waits for the nth (from 1) event the service received of a type.
func (s *service) waitFor(typ string, nth int) webhookchat.Event {
	s.t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		s.mu.Lock()
		seen := 0
		for _, evt := range s.got {
			if evt.Type == typ {
				if seen++; seen == nth {
					s.mu.Unlock()
					return evt
				}
			}
		}
		s.mu.Unlock()
		select {
		case <-s.received:
		case <-deadline:
			s.t.Fatalf("the service never received %s #%d; it got %+v", typ, nth, s.got)
		}
	}
}

// setup starts a bridge and logs alice in as the service "shop".
func setup(t *testing.T) (*bridgetest.Harness, *service) {
	svc := newService(t)
	h := bridgetest.New(t, func() bridgev2.NetworkConnector { return webhookchat.New() },
		bridgetest.Options{NetworkConfig: "max_body: 4096\nrequest_timeout: 5s\nallow_private_networks: true\n"})
	h.Login(alice, map[string]string{"name": "shop", "send_url": svc.srv.URL + "/send", "secret": secret})
	return h, svc
}

// deliver POSTs an event to the bridge as the service does, signed with
// sig (the right signature if empty), and returns the status and answer.
func deliver(h *bridgetest.Harness, login string, evt webhookchat.Event, sig string) (int, string) {
	h.T.Helper()
	body, _ := json.Marshal(evt)
	if sig == "" {
		sig = webhookchat.Sign(secret, body)
	}
	return post(h, login, body, sig)
}

func post(h *bridgetest.Harness, login string, body []byte, sig string) (int, string) {
	h.T.Helper()
	req, _ := http.NewRequest(http.MethodPost, h.URL+"/_trestle/webhookchat/"+login+"/events", bytes.NewReader(body))
	if sig != "-" {
		req.Header.Set(webhookchat.SignatureHeader, sig)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.T.Fatal(err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(answer)
}

func mustDeliver(h *bridgetest.Harness, evt webhookchat.Event) {
	h.T.Helper()
	if status, answer := deliver(h, "shop", evt, ""); status != http.StatusOK || answer != `{"ok":true}` {
		h.T.Fatalf("delivering %+v: %d %s", evt, status, answer)
	}
}

var bobDM = networkid.PortalKey{ID: "bob", Receiver: "shop"}

// bobSays bridges a message from bob in his DM and returns its Matrix event.
func bobSays(h *bridgetest.Harness, msgID, text string) (id.RoomID, *event.Event) {
	h.T.Helper()
	mustDeliver(h, webhookchat.Event{Type: "message", ID: msgID, Chat: "bob", Sender: "bob", SenderName: "Bob Builder", Text: text})
	room := h.WaitForPortal(bobDM, alice)
	return room, h.WaitForText(room, h.Matrix.GhostUserID("shop.bob"), text)
}

func TestLogin(t *testing.T) {
	h, svc := setup(t)
	if ping := svc.waitFor("ping", 1); ping.Type != "ping" {
		t.Fatalf("login sent %+v", ping)
	}
	// The complete step tells the user where to point the service.
	process, err := h.Bridge().Network.CreateLogin(h.Ctx(), h.User("@dave:example.com"), "webhook")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := process.Start(h.Ctx()); err != nil {
		t.Fatal(err)
	}
	step, err := process.SubmitUserInput(h.Ctx(), map[string]string{"name": "desk", "send_url": svc.srv.URL, "secret": secret})
	if err != nil {
		t.Fatal(err)
	}
	if want := h.URL + "/_trestle/webhookchat/desk/events"; !strings.Contains(step.Instructions, want) {
		t.Errorf("instructions %q do not name %s", step.Instructions, want)
	}

	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	for name, tc := range map[string]struct{ url, secret, want string }{
		"not http":    {"ftp://example.com/send", secret, "http:// or https://"},
		"unreachable": {closed.URL, secret, "could not be reached"},
		"refused":     {svc.srv.URL, "wrong secret", "Bad signature."},
	} {
		_, err := h.TryLogin("@eve:example.com", map[string]string{"name": "eve", "send_url": tc.url, "secret": tc.secret})
		if err == nil || !strings.Contains(bridgev2.HumanMessage(err), tc.want) {
			t.Errorf("%s: login error %v, want one saying %q", name, err, tc.want)
		}
	}
	if h.Bridge().GetLogin("eve") != nil {
		t.Error("a failed login was stored")
	}
}

func TestInboundMessageAndRejects(t *testing.T) {
	h, _ := setup(t)
	room, _ := bobSays(h, "m1", "hello alice")
	ghost := h.Matrix.GhostUserID("shop.bob")
	if p := h.Matrix.Profile(ghost); p == nil || p.DisplayName != "Bob Builder" {
		t.Errorf("ghost profile %+v", p)
	}

	good := webhookchat.Event{Type: "message", ID: "m1", Chat: "bob", Sender: "bob", Text: "hello alice"}
	mustDeliver(h, good) // a redelivery
	forged := webhookchat.Event{Type: "message", ID: "m2", Chat: "bob", Sender: "bob", Text: "forged"}
	body, _ := json.Marshal(forged)
	for name, tc := range map[string]struct {
		login, sig string
		body       []byte
		status     int
	}{
		"bad signature":     {"shop", webhookchat.Sign("guess", body), body, http.StatusUnauthorized},
		"missing signature": {"shop", "-", body, http.StatusUnauthorized},
		"unknown login":     {"nobody", "", body, http.StatusNotFound},
		"not JSON":          {"shop", webhookchat.Sign(secret, []byte("{")), []byte("{"), http.StatusBadRequest},
		"too large":         {"shop", "", bytes.Repeat([]byte(" "), 5000), http.StatusRequestEntityTooLarge},
	} {
		sig := tc.sig
		if sig == "" {
			sig = webhookchat.Sign(secret, tc.body)
		}
		if status, answer := post(h, tc.login, tc.body, sig); status != tc.status || !strings.Contains(answer, `"error":"`) {
			t.Errorf("%s: %d %s, want %d with an error sentence", name, status, answer, tc.status)
		}
	}
	status, answer := deliver(h, "shop", webhookchat.Event{Type: "edit", ID: "e", Chat: "bob", Sender: "bob"}, "")
	if status != http.StatusBadRequest || !strings.Contains(answer, "needs a target message ID") {
		t.Errorf("an edit without target: %d %s", status, answer)
	}

	// Events of a chat are delivered in order: once this one is in, the
	// rejected ones would have been too.
	mustDeliver(h, webhookchat.Event{Type: "message", ID: "m3", Chat: "bob", Sender: "bob", Text: "after"})
	h.WaitForText(room, ghost, "after")
	count := map[string]int{}
	for _, evt := range h.Matrix.Events(room) {
		if evt.Type == event.EventMessage {
			count[evt.Content.AsMessage().Body]++
		}
	}
	if count["hello alice"] != 1 || count["forged"] != 0 {
		t.Errorf("timeline bodies %v: want one hello and no forgery", count)
	}
}

func TestInboundEditsReactionsDeletes(t *testing.T) {
	h, _ := setup(t)
	room, original := bobSays(h, "m1", "helo")
	ghost := h.Matrix.GhostUserID("shop.bob")
	relatedTo := func(what string, typ event.Type, target id.EventID) *event.Event {
		t.Helper()
		evt, err := h.Matrix.WaitForEvent(h.Ctx(), room, what, func(evt *event.Event) bool {
			if evt.Type != typ || evt.Sender != ghost {
				return false
			}
			switch typ {
			case event.EventReaction:
				return evt.Content.AsReaction().RelatesTo.EventID == target
			case event.EventRedaction:
				return evt.Content.AsRedaction().Redacts == target
			}
			rel := evt.Content.AsMessage().RelatesTo
			return rel != nil && rel.GetReplaceID() == target
		})
		if err != nil {
			t.Fatal(err)
		}
		return evt
	}

	mustDeliver(h, webhookchat.Event{Type: "edit", ID: "e1", Chat: "bob", Sender: "bob", Target: "m1", Text: "hello"})
	if edit := relatedTo("the edit", event.EventMessage, original.ID); edit.Content.AsMessage().NewContent.Body != "hello" {
		t.Errorf("edit content %s", edit.Content.VeryRaw)
	}
	mustDeliver(h, webhookchat.Event{Type: "reaction", ID: "r1", Chat: "bob", Sender: "bob", Target: "m1", Emoji: "👍"})
	reaction := relatedTo("the reaction", event.EventReaction, original.ID)
	mustDeliver(h, webhookchat.Event{Type: "reaction_remove", ID: "r2", Chat: "bob", Sender: "bob", Target: "m1", Emoji: "👍"})
	relatedTo("the reaction's removal", event.EventRedaction, reaction.ID)
	mustDeliver(h, webhookchat.Event{Type: "delete", ID: "d1", Chat: "bob", Sender: "bob", Target: "m1"})
	relatedTo("the deletion", event.EventRedaction, original.ID)

	// A group chat is named after chat_name, and renamed when it changes.
	mustDeliver(h, webhookchat.Event{Type: "message", ID: "g1", Chat: "team", ChatName: "Team", Sender: "carol", Text: "hi all"})
	group := h.WaitForPortal(networkid.PortalKey{ID: "team", Receiver: "shop"}, alice)
	for _, r := range h.Matrix.Rooms() { // in no particular order, whatever its doc says
		if r.ID == group && (r.Request.Name != "Team" || r.Request.IsDirect) {
			t.Errorf("group room created with name %q, direct %v", r.Request.Name, r.Request.IsDirect)
		}
	}
	mustDeliver(h, webhookchat.Event{Type: "message", ID: "g2", Chat: "team", ChatName: "Team B", Sender: "carol", SenderName: "Carol", Text: "renamed"})
	h.WaitForText(group, h.Matrix.GhostUserID("shop.carol"), "renamed")
	if _, err := h.Matrix.WaitForEvent(h.Ctx(), group, "the rename", func(evt *event.Event) bool {
		return evt.Type == event.StateRoomName && strings.Contains(string(evt.Content.VeryRaw), "Team B")
	}); err != nil {
		t.Error(err)
	}
	if p := h.Matrix.Profile(h.Matrix.GhostUserID("shop.carol")); p == nil || p.DisplayName != "Carol" {
		t.Errorf("carol's profile after she got a name: %+v", p)
	}
}

func TestMatrixToService(t *testing.T) {
	h, svc := setup(t)
	room, original := bobSays(h, "m1", "question?")

	reply := &event.MessageEventContent{MsgType: event.MsgText, Body: "answer"}
	reply.RelatesTo = (&event.RelatesTo{}).SetReplyTo(original.ID)
	mine := h.SendMatrix(alice, room, event.EventMessage, reply)
	got := svc.waitFor("message", 1)
	if got.Chat != "bob" || got.Text != "answer" || got.ReplyTo != "m1" || got.IdempotencyKey == "" {
		t.Errorf("the service got %+v", got)
	}
	h.WaitForStatus(room, mine, event.MessageStatusSuccess)

	edit := &event.MessageEventContent{MsgType: event.MsgText, Body: "* answer!", NewContent: &event.MessageEventContent{MsgType: event.MsgText, Body: "answer!"}}
	edit.RelatesTo = (&event.RelatesTo{}).SetReplace(mine)
	h.SendMatrix(alice, room, event.EventMessage, edit)
	if got := svc.waitFor("edit", 1); got.Target != "srv-1" || got.Text != "answer!" {
		t.Errorf("edit %+v", got)
	}
	react := h.SendMatrix(alice, room, event.EventReaction, &event.ReactionEventContent{RelatesTo: event.RelatesTo{Type: event.RelAnnotation, EventID: original.ID, Key: "🎉"}})
	if got := svc.waitFor("reaction", 1); got.Target != "m1" || got.Emoji != "🎉" {
		t.Errorf("reaction %+v", got)
	}
	h.SendMatrix(alice, room, event.EventRedaction, &event.RedactionEventContent{Redacts: react})
	if got := svc.waitFor("reaction_remove", 1); got.Target != "m1" || got.Emoji != "🎉" {
		t.Errorf("reaction removal %+v", got)
	}
	h.SendMatrix(alice, room, event.EventRedaction, &event.RedactionEventContent{Redacts: mine})
	if got := svc.waitFor("delete", 1); got.Target != "srv-1" {
		t.Errorf("deletion %+v", got)
	}
}

func TestServiceFailures(t *testing.T) {
	h, svc := setup(t)
	room, _ := bobSays(h, "m1", "hi")

	svc.answerNext(answer{http.StatusServiceUnavailable, `{"error":"Down for maintenance."}`})
	retried := h.SendText(alice, room, "are you there?")
	if st := h.WaitForStatus(room, retried, event.MessageStatusRetriable); !strings.Contains(st.Message, "unavailable") {
		t.Errorf("retrying status says %q", st.Message)
	}
	h.WaitForStatus(room, retried, event.MessageStatusSuccess)
	if first, second := svc.waitFor("message", 1), svc.waitFor("message", 2); first.IdempotencyKey != second.IdempotencyKey {
		t.Errorf("a retry changed the idempotency key: %q then %q", first.IdempotencyKey, second.IdempotencyKey)
	}

	svc.answerNext(answer{http.StatusBadRequest, `{"error":"Bob has blocked you."}`})
	refused := h.SendText(alice, room, "hello?")
	if st := h.WaitForStatus(room, refused, event.MessageStatusFail); st.Message != "Bob has blocked you." {
		t.Errorf("failure status says %q", st.Message)
	}
	h.WaitForText(room, h.Matrix.BotUserID(), "Bob has blocked you.")
}

func TestAttachments(t *testing.T) {
	h, svc := setup(t)
	png := []byte("\x89PNG\r\n\x1a\n not really a picture")
	svc.mu.Lock()
	svc.files["/files/cat.png"] = png
	svc.mu.Unlock()

	mustDeliver(h, webhookchat.Event{Type: "message", ID: "m1", Chat: "bob", Sender: "bob", Text: "my cat",
		Attachment: &webhookchat.Attachment{URL: svc.srv.URL + "/files/cat.png", Mime: "image/png", Name: "cat.png"}})
	room := h.WaitForPortal(bobDM, alice)
	msg := h.WaitForText(room, h.Matrix.GhostUserID("shop.bob"), "my cat").Content.AsMessage()
	if data, _, _ := h.Matrix.Media(msg.URL); msg.MsgType != event.MsgImage || msg.FileName != "cat.png" || !bytes.Equal(data, png) {
		t.Errorf("bridged attachment %+v with %q", msg, data)
	}

	pdf := []byte("%PDF-1.4 the report")
	h.SendMatrix(alice, room, event.EventMessage, &event.MessageEventContent{MsgType: event.MsgFile, Body: "see attached",
		FileName: "report.pdf", URL: h.Matrix.PutMedia(pdf, "application/pdf"), Info: &event.FileInfo{MimeType: "application/pdf"}})
	got := svc.waitFor("message", 1)
	if got.Text != "see attached" || got.Attachment == nil || got.Attachment.Name != "report.pdf" || got.Attachment.Mime != "application/pdf" {
		t.Fatalf("the service got %+v", got)
	}
	resp, err := http.Get(got.Attachment.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if data, _ := io.ReadAll(resp.Body); !bytes.Equal(data, pdf) {
		t.Errorf("the attachment URL served %q", data)
	}
}

func TestRestartKeepsMappings(t *testing.T) {
	h, svc := setup(t)
	room, original := bobSays(h, "m1", "before")
	mine := h.SendText(alice, room, "mine")
	svc.waitFor("message", 1)
	h.WaitForStatus(room, mine, event.MessageStatusSuccess)

	h.Restart()

	mustDeliver(h, webhookchat.Event{Type: "message", ID: "m1", Chat: "bob", Sender: "bob", Text: "before"})
	mustDeliver(h, webhookchat.Event{Type: "reaction", ID: "r1", Chat: "bob", Sender: "bob", Target: "m1", Emoji: "❤️"})
	if _, err := h.Matrix.WaitForEvent(h.Ctx(), room, "the reaction after the restart", func(evt *event.Event) bool {
		return evt.Type == event.EventReaction && evt.Content.AsReaction().RelatesTo.EventID == original.ID
	}); err != nil {
		t.Fatal(err)
	}
	edit := &event.MessageEventContent{MsgType: event.MsgText, Body: "* mine!", NewContent: &event.MessageEventContent{MsgType: event.MsgText, Body: "mine!"}}
	edit.RelatesTo = (&event.RelatesTo{}).SetReplace(mine)
	h.SendMatrix(alice, room, event.EventMessage, edit)
	if got := svc.waitFor("edit", 1); got.Target != "srv-1" {
		t.Errorf("edit after the restart %+v", got)
	}
	count := 0
	for _, evt := range h.Matrix.Events(room) {
		if evt.Type == event.EventMessage && evt.Content.AsMessage().Body == "before" {
			count++
		}
	}
	if count != 1 {
		t.Errorf("a redelivery after the restart was bridged again (%d copies)", count)
	}
	if rooms := h.Matrix.Rooms(); len(rooms) != 1 {
		t.Errorf("%d rooms after the restart, want the one portal", len(rooms))
	}
}

// A user who may log in must not be able to point the bridge at internal
// hosts: without allow_private_networks, a loopback send URL is refused.
func TestLoginToAnInternalAddressIsRefused(t *testing.T) {
	svc := newService(t)
	h := bridgetest.New(t, func() bridgev2.NetworkConnector { return webhookchat.New() },
		bridgetest.Options{NetworkConfig: "max_body: 4096\nrequest_timeout: 5s\n"})
	_, err := h.TryLogin(alice, map[string]string{"name": "shop", "send_url": svc.srv.URL + "/send", "secret": secret})
	if err == nil || !strings.Contains(err.Error(), "private") {
		t.Fatalf("login to a loopback service: %v, want a refusal naming allow_private_networks", err)
	}
	if len(svc.got) != 0 {
		t.Fatal("the bridge contacted the internal service anyway")
	}
}
