package sandbox

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

const (
	me    = id.UserID("@me:localhost")
	bot   = id.UserID("@twiliobot:localhost")
	ghost = id.UserID("@twilio_14155550101:localhost")
)

// newTestMatrixSide is a Matrix side fed by hand-written /sync responses; its
// client points nowhere.
func newTestMatrixSide(t *testing.T) *matrixSide {
	t.Helper()
	cli, err := mautrix.NewClient("http://127.0.0.1:1", me, "token")
	if err != nil {
		t.Fatal(err)
	}
	m, err := newMatrixSide(cli, bot, ghostNames{prefix: "twilio_", server: "localhost"}, newNotifier())
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// feed processes a /sync response written as JSON.
func feed(t *testing.T, m *matrixSide, syncJSON string) {
	t.Helper()
	var resp mautrix.RespSync
	if err := json.Unmarshal([]byte(syncJSON), &resp); err != nil {
		t.Fatalf("bad test sync: %v", err)
	}
	m.user.Record(&resp)
}

func member(user id.UserID, membership, name string) string {
	return fmt.Sprintf(`{"type":"m.room.member","state_key":%q,"sender":%q,"event_id":"$m-%s","origin_server_ts":1,"content":{"membership":%q,"displayname":%q}}`,
		user, user, user.Localpart(), membership, name)
}

func message(evtID string, sender id.UserID, ts int, content string) string {
	return fmt.Sprintf(`{"type":"m.room.message","sender":%q,"event_id":%q,"origin_server_ts":%d,"content":%s}`, sender, evtID, ts, content)
}

func status(evtID, target string, ts int, content string) string {
	return fmt.Sprintf(`{"type":"com.beeper.message_send_status","sender":%q,"event_id":%q,"origin_server_ts":%d,"content":{"m.relates_to":{"rel_type":"m.reference","event_id":%q},%s}}`,
		bot, evtID, ts, target, content)
}

func TestMatrixStateRendersPortalsAndTheBridgesStatuses(t *testing.T) {
	m := newTestMatrixSide(t)
	feed(t, m, `{"next_batch":"s1","rooms":{"join":{
		"!portal:localhost":{"state":{"events":[`+member(me, "join", "me")+`,`+member(ghost, "join", "+1 415-555-0101")+`,`+member(bot, "join", "Twilio bridge bot")+`]},
			"timeline":{"events":[
				`+message("$in", ghost, 1000, `{"msgtype":"m.text","body":"Hi from the phone"}`)+`,
				`+message("$out", me, 2000, `{"msgtype":"m.text","body":"Hi phone"}`)+`,
				`+status("$s1", "$out", 2100, `"status":"SUCCESS","delivered_to_users":[]`)+`,
				`+status("$s2", "$out", 2200, `"status":"SUCCESS","delivered_to_users":["@twilio_14155550101:localhost"]`)+`,
				`+status("$s3", "$out", 2300, `"status":"SUCCESS","delivered_to_users":[]`)+`,
				`+message("$stop", me, 3000, `{"msgtype":"m.text","body":"are you there"}`)+`,
				`+status("$s4", "$stop", 3100, `"status":"FAIL_PERMANENT","reason":"m_network_error","message":"The recipient has unsubscribed"`)+`,
				`+message("$pic", me, 4000, `{"msgtype":"m.image","body":"dot.png","url":"mxc://localhost/abc","info":{"mimetype":"image/png"}}`)+`,
				`+message("$edit", me, 5000, `{"msgtype":"m.text","body":"* Hi, phone","m.new_content":{"msgtype":"m.text","body":"Hi, phone"},"m.relates_to":{"rel_type":"m.replace","event_id":"$out"}}`)+`,
				`+message("$pending", me, 6000, `{"msgtype":"m.text","body":"still going"}`)+`,
				{"type":"m.room.redaction","sender":"@me:localhost","event_id":"$red","origin_server_ts":7000,"redacts":"$pic","content":{}}
			]}},
		"!mgmt:localhost":{"state":{"events":[`+member(me, "join", "me")+`,`+member(bot, "join", "Twilio bridge bot")+`]},
			"timeline":{"events":[`+message("$hello", bot, 500, `{"msgtype":"m.notice","body":"Hello, I'm the bridge bot."}`)+`]}}
	},"leave":{
		"!old:localhost":{"timeline":{"events":[`+member(me, "leave", "me")+`]}}
	}}}`)

	st := m.state(7)
	if st.Version != 7 || st.User != me || len(st.Rooms) != 2 {
		t.Fatalf("state: %+v", st)
	}
	portal, mgmt := st.Rooms[0], st.Rooms[1] // most recently active first
	if portal.Kind != "portal" || portal.Phone != "+14155550101" || portal.Name != "+14155550101" || portal.LastTS != 7000 {
		t.Fatalf("portal: %+v", portal)
	}
	if mgmt.Kind != "management" || mgmt.Name != "Twilio bridge bot" || len(mgmt.Messages) != 1 || mgmt.Messages[0].Status != nil {
		t.Fatalf("management room: %+v", mgmt)
	}

	byID := map[id.EventID]matrixMessage{}
	for _, msg := range portal.Messages {
		byID[msg.ID] = msg
	}
	if len(portal.Messages) != 5 {
		t.Fatalf("portal messages (the edit is folded in): %+v", portal.Messages)
	}
	if in := byID["$in"]; in.Mine || in.SenderName != "+1 415-555-0101" || in.Status != nil {
		t.Errorf("incoming: %+v", in)
	}
	// Delivered stays delivered when a late "sent" status comes in.
	if out := byID["$out"]; !out.Mine || out.Body != "Hi, phone" || !out.Edited || out.Status == nil || out.Status.State != "delivered" {
		t.Errorf("outgoing: %+v %+v", out, out.Status)
	}
	if stop := byID["$stop"]; stop.Status == nil || stop.Status.State != "failed" || stop.Status.Text != "The recipient has unsubscribed" {
		t.Errorf("failed: %+v", stop.Status)
	}
	if pic := byID["$pic"]; !pic.Redacted || pic.MediaURL != "" || pic.Body != "" {
		t.Errorf("redacted image: %+v", pic)
	}
	if pending := byID["$pending"]; pending.Status == nil || pending.Status.State != "sending" {
		t.Errorf("no status yet: %+v", pending.Status)
	}
}

func TestTheWhatsAppRoomOfANumberBelongsToItsWhatsAppPhone(t *testing.T) {
	m := newTestMatrixSide(t)
	name := func(n string) string {
		return fmt.Sprintf(`{"type":"m.room.name","state_key":"","sender":%q,"event_id":"$n-%s","origin_server_ts":1,"content":{"name":%q}}`, bot, n, n)
	}
	feed(t, m, `{"next_batch":"s1","rooms":{"join":{
		"!sms:localhost":{"state":{"events":[`+member(me, "join", "me")+`,`+member(ghost, "join", "+1 415-555-0101")+`,`+name("+1 415-555-0101")+`]},
			"timeline":{"events":[`+message("$a", ghost, 1000, `{"msgtype":"m.text","body":"by SMS"}`)+`]}},
		"!wa:localhost":{"state":{"events":[`+member(me, "join", "me")+`,`+member(ghost, "join", "+1 415-555-0101")+`,`+name("+1 415-555-0101 (WhatsApp)")+`]},
			"timeline":{"events":[`+message("$b", ghost, 2000, `{"msgtype":"m.text","body":"on WhatsApp"}`)+`]}}
	}}}`)
	phones := map[id.RoomID]string{}
	for _, r := range m.state(1).Rooms {
		phones[r.ID] = r.Phone
	}
	if phones["!sms:localhost"] != "+14155550101" || phones["!wa:localhost"] != "whatsapp:+14155550101" {
		t.Fatalf("rooms belong to %v", phones)
	}
}

func TestMatrixStatusProgression(t *testing.T) {
	delivered := []id.UserID{ghost}
	none := []id.UserID{}
	for _, tc := range []struct {
		cur  string
		evt  event.BeeperMessageStatusEventContent
		want string
	}{
		{"sending", event.BeeperMessageStatusEventContent{Status: event.MessageStatusSuccess}, "sent"},
		{"sending", event.BeeperMessageStatusEventContent{Status: event.MessageStatusSuccess, DeliveredToUsers: &none}, "sent"},
		{"sent", event.BeeperMessageStatusEventContent{Status: event.MessageStatusSuccess, DeliveredToUsers: &delivered}, "delivered"},
		{"delivered", event.BeeperMessageStatusEventContent{Status: event.MessageStatusSuccess, DeliveredToUsers: &none}, "delivered"},
		{"sending", event.BeeperMessageStatusEventContent{Status: event.MessageStatusRetriable, Message: "Twilio is down"}, "retrying"},
		{"sent", event.BeeperMessageStatusEventContent{Status: event.MessageStatusFail}, "failed"},
	} {
		got := nextStatus(&matrixStatus{State: tc.cur, Text: "before"}, &tc.evt)
		if got.State != tc.want || got.Text == "" {
			t.Errorf("%s + %s: %+v, want %s", tc.cur, tc.evt.Status, got, tc.want)
		}
	}
}

func TestGhostNames(t *testing.T) {
	g := ghostNames{prefix: "twilio_", suffix: "", server: "localhost"}
	for user, want := range map[id.UserID]string{
		"@twilio_14155550101:localhost": "+14155550101",
		"@twilio_14155550101:elsewhere": "",
		"@twiliobot:localhost":          "",
		"@twilio_:localhost":            "",
		"@twilio_1415x:localhost":       "",
		"@me:localhost":                 "",
	} {
		if got := g.phone(user); got != want {
			t.Errorf("phone(%s) = %q, want %q", user, got, want)
		}
	}
}

func TestWaitBotSkipsNoticesAndStopsAtFailures(t *testing.T) {
	m := newTestMatrixSide(t)
	room := `"!mgmt:localhost":{"state":{"events":[` + member(me, "join", "me") + `,` + member(bot, "join", "bot") + `]},"timeline":{"events":[%s]}}`
	feed(t, m, `{"rooms":{"join":{`+fmt.Sprintf(room, message("$cmd", me, 1, `{"msgtype":"m.text","body":"login"}`))+`}}}`)

	got := make(chan error, 1)
	go func() {
		body, err := m.waitBot(context.Background(), "!mgmt:localhost", "$cmd", "Account SID")
		if err == nil && !strings.Contains(body, "Account SID") {
			err = fmt.Errorf("unexpected reply %q", body)
		}
		got <- err
	}()
	// An unrelated notice first, then the answer.
	feed(t, m, `{"rooms":{"join":{`+fmt.Sprintf(room, message("$n", bot, 2, `{"msgtype":"m.notice","body":"+1 415-555-0100: CONNECTED"}`))+`}}}`)
	feed(t, m, `{"rooms":{"join":{`+fmt.Sprintf(room, message("$q", bot, 3, `{"msgtype":"m.notice","body":"Please send your **Account SID**"}`))+`}}}`)
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("waitBot did not see the answer")
	}

	// A failed login ends the wait at once, with the bot's words.
	feed(t, m, `{"rooms":{"join":{`+fmt.Sprintf(room, message("$sid", me, 4, `{"msgtype":"m.text","body":"ACnope"}`))+`}}}`)
	go func() {
		_, err := m.waitBot(context.Background(), "!mgmt:localhost", "$sid", "auth token")
		got <- err
	}()
	feed(t, m, `{"rooms":{"join":{`+fmt.Sprintf(room, message("$f", bot, 5, `{"msgtype":"m.notice","body":"Login failed: Twilio rejected the Account SID or auth token."}`))+`}}}`)
	select {
	case err := <-got:
		if err == nil || !strings.Contains(err.Error(), "Twilio rejected") {
			t.Fatalf("failure: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("waitBot did not stop at the failure")
	}
}

func TestMatrixAPIRefusesRoomsTheUserIsNotIn(t *testing.T) {
	m := newTestMatrixSide(t)
	mux := http.NewServeMux()
	m.routes(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/api/matrix/send", "application/x-www-form-urlencoded", strings.NewReader("room=%21elsewhere%3Alocalhost&body=hi"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("send to a foreign room: HTTP %d", resp.StatusCode)
	}
	resp, err = http.Get(srv.URL + "/api/matrix/media?uri=https://example.com/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("media that is not mxc: HTTP %d", resp.StatusCode)
	}
}
