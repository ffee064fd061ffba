package twilio

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/bridgev2"
	"github.com/trestle-bridge/trestle/bridgev2/bridgeconfig"
	"github.com/trestle-bridge/trestle/bridgev2/networkid"
	"github.com/trestle-bridge/trestle/bridgev2/provisioning"
	"github.com/trestle-bridge/trestle/connectors/twilio/twiliosim"
)

// theirNumber3 is a third phone for groups.
const theirNumber3 = "+14155550102"

// groupRoom waits for the portal room of a group, joins alice and waits
// until the core has recorded it.
func (e *env) groupRoom(convSID string) id.RoomID {
	e.t.Helper()
	room := e.h.WaitForPortal(networkid.PortalKey{ID: networkid.PortalID(convSID), Receiver: ourLoginID}, alice)
	e.eventually("group portal recorded", func() bool {
		p, err := e.h.Bridge().GetPortalByRoom(e.ctx(), room)
		return err == nil && p != nil
	})
	return room
}

// groupText sends a phone's text to a group through the simulator.
func (e *env) groupText(in twiliosim.GroupText) twiliosim.EventResult {
	e.t.Helper()
	res, err := e.sim.SendGroupText(e.ctx(), in)
	if err != nil {
		e.t.Fatalf("group text: %v", err)
	}
	for _, ev := range res.Events {
		if ev.Err != "" || ev.Response.StatusCode != http.StatusOK {
			e.t.Fatalf("the bridge answered %s with %d %s", ev.EventType, ev.Response.StatusCode, ev.Err)
		}
	}
	return res
}

// startGroup runs start-chat with several numbers and returns the group
// Twilio now has and its room.
func (e *env) startGroup(numbers ...string) (twiliosim.Conversation, id.RoomID) {
	e.t.Helper()
	mgmt := e.h.ManagementRoom(alice)
	e.h.SendText(alice, mgmt, "start-chat "+strings.Join(numbers, ", "))
	e.h.WaitForText(mgmt, e.h.Matrix.BotUserID(), "Opened a group chat")
	group, ok := e.acct.FindGroup(ourNumber, numbers...)
	if !ok {
		e.t.Fatalf("Twilio has no group of %v: %+v", numbers, e.acct.Conversations())
	}
	return group, e.groupRoom(group.SID)
}

// waitMember waits until a user's membership of a room is want.
func (e *env) waitMember(room id.RoomID, user id.UserID, want string) {
	e.t.Helper()
	if err := e.h.Matrix.WaitForMembership(e.ctx(), room, user, want); err != nil {
		e.t.Fatalf("%v (is %q)", err, e.h.Matrix.Membership(room, user))
	}
}

func TestStartChatWithSeveralNumbersTextsThemAsAGroupMMS(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.login()
	group, room := e.startGroup(theirNumber, theirNumber2)
	var projected, phones []string
	for _, p := range group.Participants {
		if p.ProjectedAddress != "" {
			projected = append(projected, p.ProjectedAddress)
		} else {
			phones = append(phones, p.Address)
		}
	}
	slices.Sort(phones)
	if !slices.Equal(projected, []string{ourNumber}) || !slices.Equal(phones, []string{theirNumber, theirNumber2}) {
		t.Fatalf("the group texts from %v to %v", projected, phones)
	}
	for _, n := range []string{theirNumber, theirNumber2} {
		e.waitMember(room, e.ghost(n), "join")
	}

	e.h.SendText(alice, room, "dinner at eight?")
	convs, err := e.acct.WaitConversations(e.ctx(), func(cs []twiliosim.Conversation) bool {
		for _, c := range cs {
			if c.SID == group.SID && len(c.Messages) == 1 && c.Messages[0].Done {
				return true
			}
		}
		return false
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range convs {
		if c.SID != group.SID {
			continue
		}
		m := c.Messages[0]
		var to []string
		for _, d := range m.Deliveries {
			if d.From != ourNumber || d.Status != "delivered" {
				t.Errorf("copy to %s came from %s, %s", d.To, d.From, d.Status)
			}
			to = append(to, d.To)
		}
		slices.Sort(to)
		if m.Body != "dinner at eight?" || m.Author != ourNumber || !slices.Equal(to, []string{theirNumber, theirNumber2}) {
			t.Fatalf("group message %+v went to %v", m, to)
		}
	}
	if n := len(e.sim.Outbound()); n != 0 {
		t.Fatalf("%d one-to-one texts were sent for a group message", n)
	}
}

func TestGroupTextsAndOneToOneTextsNeverShareAPortal(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.login()
	res := e.groupText(twiliosim.GroupText{From: theirNumber, To: ourNumber, Others: []string{theirNumber2}, Body: "hi all"})
	group, ok := e.acct.FindGroup(ourNumber, theirNumber, theirNumber2)
	if !ok {
		t.Fatal("no group")
	}
	room := e.groupRoom(group.SID)
	e.h.WaitForText(room, e.ghost(theirNumber), "hi all")
	e.waitMember(room, e.ghost(theirNumber2), "join")

	// A text to a group the bridge knows costs one REST call.
	e.sim.ResetAPICalls()
	e.groupText(twiliosim.GroupText{ConversationSID: group.SID, From: theirNumber2, Body: "hello"})
	e.h.WaitForText(room, e.ghost(theirNumber2), "hello")
	if calls := e.acct.APICalls(); len(calls) != 1 || calls["GET conversations.twilio.com/v1/Conversations/{ConversationSid}/Participants"] != 1 {
		t.Fatalf("a group text cost the REST calls %v", calls)
	}

	// The same phone texts the login alone: that is the DM, not the group.
	e.inbound(theirNumber, "just you and me")
	dm := e.portalRoom(theirNumber)
	if dm == room {
		t.Fatal("the DM and the group share a room")
	}
	e.h.WaitForText(dm, e.ghost(theirNumber), "just you and me")
	if got := e.messagesFrom(room, e.ghost(theirNumber)); !slices.Equal(got, []string{"hi all"}) {
		t.Fatalf("the group shows %q", got)
	}
	if got := e.messagesFrom(dm, e.ghost(theirNumber)); !slices.Equal(got, []string{"just you and me"}) {
		t.Fatalf("the DM shows %q", got)
	}
	// A reply in the DM is a 1:1 text, and one in the group a group message.
	e.h.SendText(alice, dm, "sure")
	if msgs := e.outbound(1); msgs[0].To != theirNumber || msgs[0].Body != "sure" {
		t.Fatalf("DM reply %+v", msgs[0])
	}
	c, _ := e.acct.FindGroup(ourNumber, theirNumber, theirNumber2)
	if len(c.Messages) != 2 || c.Messages[0].SID != res.SID || slices.ContainsFunc(c.Messages, func(m twiliosim.ConversationMessage) bool { return m.Author == ourNumber }) {
		t.Fatalf("the DM reply reached the group: %+v", c.Messages)
	}
}

func TestGroupMediaArrivesAndIsSent(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.login()
	e.groupText(twiliosim.GroupText{From: theirNumber2, To: ourNumber, Others: []string{theirNumber}, Body: "look",
		Media: []twiliosim.MediaFile{{ContentType: "image/png", Data: pngBytes}}})
	group, _ := e.acct.FindGroup(ourNumber, theirNumber, theirNumber2)
	room := e.groupRoom(group.SID)
	e.h.WaitForText(room, e.ghost(theirNumber2), "look")
	var image *event.MessageEventContent
	for _, evt := range e.h.Matrix.Events(room) {
		if evt.Type == event.EventMessage && evt.Content.AsMessage().MsgType == event.MsgImage {
			image = evt.Content.AsMessage()
		}
	}
	if image == nil {
		t.Fatal("the group's image did not arrive")
	}
	if got, _, ok := e.h.Matrix.Media(image.URL); !ok || string(got) != string(pngBytes) {
		t.Fatalf("the image's bytes are %d long", len(got))
	}

	mxc := e.h.Matrix.PutMedia(pngBytes, "image/png")
	e.h.SendMatrix(alice, room, event.EventMessage, &event.MessageEventContent{
		MsgType: event.MsgImage, Body: "back at you", FileName: "dot.png", URL: mxc,
		Info: &event.FileInfo{MimeType: "image/png", Size: len(pngBytes)},
	})
	_, err := e.acct.WaitConversations(e.ctx(), func(cs []twiliosim.Conversation) bool {
		for _, c := range cs {
			for _, m := range c.Messages {
				if m.Author == ourNumber && m.Body == "back at you" && len(m.Media) == 1 && string(m.Media[0].Data) == string(pngBytes) {
					return true
				}
			}
		}
		return false
	})
	if err != nil {
		t.Fatalf("the image never reached the group: %v", err)
	}
}

func TestGroupMembershipFollowsBothSides(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.login()
	group, room := e.startGroup(theirNumber, theirNumber2)

	// Twilio's side: a third phone joins, then leaves.
	if _, err := e.acct.AddParticipant(e.ctx(), group.SID, theirNumber3); err != nil {
		t.Fatal(err)
	}
	e.waitMember(room, e.ghost(theirNumber3), "join")
	g, _ := e.acct.FindGroup(ourNumber, theirNumber, theirNumber2, theirNumber3)
	for _, p := range g.Participants {
		if p.Address == theirNumber3 {
			if _, err := e.acct.RemoveParticipant(e.ctx(), group.SID, p.SID); err != nil {
				t.Fatal(err)
			}
		}
	}
	e.waitMember(room, e.ghost(theirNumber3), "leave")

	// Matrix's side: alice kicks a phone, then invites it back.
	e.h.SendMembership(alice, room, e.ghost(theirNumber2), event.MembershipLeave)
	e.eventually("phone removed from the group", func() bool {
		_, still := e.acct.FindGroup(ourNumber, theirNumber, theirNumber2)
		_, smaller := e.acct.FindGroup(ourNumber, theirNumber)
		return !still && smaller
	})
	e.h.SendMembership(alice, room, e.ghost(theirNumber2), event.MembershipInvite)
	e.eventually("phone back in the group", func() bool {
		_, ok := e.acct.FindGroup(ourNumber, theirNumber, theirNumber2)
		return ok
	})
	e.waitMember(room, e.ghost(theirNumber2), "join")
}

func TestTwilioGroupLimitsAreSentences(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.login()
	mgmt := e.h.ManagementRoom(alice)

	e.h.SendText(alice, mgmt, "start-chat +14155550100, +33 1 42 68 53 00")
	e.h.WaitForText(mgmt, e.h.Matrix.BotUserID(), "Group texts work only between US and Canadian numbers, and +33 1 42 68 53 00 is not one.")

	e.h.SendText(alice, mgmt, "start-chat +14155550100, +15005550006")
	e.h.WaitForText(mgmt, e.h.Matrix.BotUserID(), "A group text needs at least two other numbers")

	many := make([]string, 10)
	for i := range many {
		many[i] = "+1415555011" + string(rune('0'+i))
	}
	e.h.SendText(alice, mgmt, "start-chat "+strings.Join(many, ", "))
	e.h.WaitForText(mgmt, e.h.Matrix.BotUserID(), "A group text can have at most 10 people, this login's number included; you named 10 other numbers.")
	if n := len(e.acct.Conversations()); n != 0 {
		t.Fatalf("%d conversations were created for refused groups", n)
	}

	// A group of nine phones is full: inviting a tenth is undone, with why.
	group, room := e.startGroup(many[:9]...)
	e.h.SendMembership(alice, room, e.ghost(theirNumber), event.MembershipInvite)
	e.h.WaitForText(room, e.h.Matrix.BotUserID(), "A group text can have at most 10 people")
	e.waitMember(room, e.ghost(theirNumber), "leave")
	if g, _ := e.acct.FindGroup(ourNumber, many[:9]...); g.SID != group.SID || len(g.Participants) != 10 {
		t.Fatalf("the group changed: %+v", g)
	}
}

func TestTwilioGroupErrorCodesHaveSentences(t *testing.T) {
	for _, code := range []int{50407, 50408, 50416, 50434, 50435, 50436, 50513} {
		if s := errorSentence(code, "raw"); strings.Contains(s, "raw") {
			t.Errorf("error %d has no sentence: %q", code, s)
		}
	}
}

func TestConversationWebhooksMustBeSigned(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.login()
	path := "/_trestle/twilio/" + idFromAddr(ourNumber) + "/conversations"
	form := url.Values{"AccountSid": {e.acct.SID()}, "EventType": {"onMessageAdded"}, "ConversationSid": {"CH" + strings.Repeat("0", 32)},
		"MessageSid": {"IM" + strings.Repeat("0", 32)}, "Author": {theirNumber}, "Body": {"forged"}}
	if status, _ := e.post(path, form, http.Header{"X-Twilio-Signature": {"bm90IGEgc2lnbmF0dXJl"}}); status != http.StatusForbidden {
		t.Fatalf("a forged group text got %d", status)
	}
}

func TestFindSentFindsAGroupMessageTwilioTookBeforeACrash(t *testing.T) {
	e := newEnv(t, envOptions{})
	ul := e.login()
	_, room := e.startGroup(theirNumber, theirNumber2)
	cl := twClient(ul)
	portal, err := e.h.Bridge().GetPortalByRoom(e.ctx(), room)
	if err != nil {
		t.Fatal(err)
	}
	msg := &bridgev2.MatrixMessage{
		Outgoing: bridgev2.Outgoing{Portal: portal, Login: ul, SendToken: "tok1", Progress: &bridgev2.SendProgress{}},
		Content:  &event.MessageEventContent{MsgType: event.MsgText, Body: "on my way"},
	}
	since := cl.conn.now().Add(-time.Second)
	if complete, err := cl.FindSent(e.ctx(), msg, since); err != nil || complete {
		t.Fatalf("nothing sent yet, but complete=%v (%v)", complete, err)
	}
	// Twilio took the message, and the bridge died before it heard.
	if err := cl.sendPlan(e.ctx(), &bridgev2.Outgoing{Progress: &bridgev2.SendProgress{}}, mustPlan(t, cl, msg)); err != nil {
		t.Fatal(err)
	}
	if complete, err := cl.FindSent(e.ctx(), msg, since); err != nil || !complete || msg.Progress.Count() != 1 {
		t.Fatalf("sent, but found %+v (complete %v, %v)", msg.Progress.Sent(), complete, err)
	}
}

// mustPlan plans a Matrix message.
func mustPlan(t *testing.T, cl *Client, msg *bridgev2.MatrixMessage) *sendPlan {
	t.Helper()
	plan, err := cl.planMessage(msg)
	if err != nil {
		t.Fatal(err)
	}
	return plan
}

func TestProvisioningCreateGroupMakesAGroupMMS(t *testing.T) {
	const secret = "provisioning-secret-0123456789abcdef"
	e := newEnv(t, envOptions{configure: func(c *bridgeconfig.Config) {
		c.Provisioning = bridgeconfig.Provisioning{Enabled: true, SharedSecret: secret}
	}})
	e.login()
	api := provisioning.New(e.h.Bridge(), zerolog.Nop())
	t.Cleanup(api.Close)
	mux := http.NewServeMux()
	api.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	post := func(participants ...string) (int, map[string]any) {
		body, _ := json.Marshal(map[string]any{"participants": participants})
		req, _ := http.NewRequestWithContext(e.ctx(), http.MethodPost,
			srv.URL+provisioning.PathPrefix+"v3/create_group/group?user_id="+url.QueryEscape(string(alice)), bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	status, out := post(theirNumber, theirNumber2)
	group, ok := e.acct.FindGroup(ourNumber, theirNumber, theirNumber2)
	if status != http.StatusOK || !ok || out["id"] != group.SID {
		t.Fatalf("create_group answered %d %v; Twilio has %+v", status, out, e.acct.Conversations())
	}
	room := e.groupRoom(group.SID)
	if string(room) != out["mxid"] {
		t.Fatalf("create_group named room %v, the group's room is %s", out["mxid"], room)
	}
	status, out = post(theirNumber, "+33 1 42 68 53 00")
	if msg, _ := out["error"].(string); status < 400 || !strings.Contains(msg, "US and Canadian") {
		t.Fatalf("a foreign number got %d %v", status, out)
	}
}

func TestAGroupReachesTheLoginItTextsFromWhicheverNumberSetTheWebhook(t *testing.T) {
	e := newEnv(t, envOptions{numbers: []string{ourNumber, ourNumber2}})
	e.login(e.creds(), map[string]string{"phone_number": ourNumber})
	// The second login points the account's one Conversations webhook at
	// its own path.
	e.login(e.creds(), map[string]string{"phone_number": ourNumber2})
	res := e.groupText(twiliosim.GroupText{From: theirNumber, To: ourNumber, Others: []string{theirNumber2}, Body: "to the first number"})
	if !strings.Contains(res.Events[len(res.Events)-1].Request.URL, "/"+idFromAddr(ourNumber2)+"/conversations") {
		t.Fatalf("the webhook went to %s", res.Events[len(res.Events)-1].Request.URL)
	}
	group, _ := e.acct.FindGroup(ourNumber, theirNumber, theirNumber2)
	room := e.groupRoom(group.SID)
	e.h.WaitForText(room, e.ghost(theirNumber), "to the first number")
	second := networkid.PortalKey{ID: networkid.PortalID(group.SID), Receiver: networkid.UserLoginID(idFromAddr(ourNumber2))}
	if p, err := e.h.Bridge().GetPortal(e.ctx(), second); err == nil && p.RoomID() != "" {
		t.Fatal("the group also opened a room for the second number")
	}
}

func TestGroupTextsSentWhileTheBridgeWasDownArriveAfterItStarts(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.login()
	e.groupText(twiliosim.GroupText{From: theirNumber, To: ourNumber, Others: []string{theirNumber2}, Body: "before"})
	known, _ := e.acct.FindGroup(ourNumber, theirNumber, theirNumber2)
	room := e.groupRoom(known.SID)
	e.h.WaitForText(room, e.ghost(theirNumber), "before")

	// The bridge is down: a text to the known group, and a new group.
	e.h.Stop()
	for _, in := range []twiliosim.GroupText{
		{ConversationSID: known.SID, From: theirNumber2, Body: "while down 1"},
		{ConversationSID: known.SID, From: theirNumber, Body: "while down 2"},
		{From: theirNumber3, To: ourNumber, Others: []string{theirNumber}, Body: "a new group"},
	} {
		// The stopped harness answers 503: the texts are only on Twilio.
		_, _ = e.sim.SendGroupText(e.ctx(), in)
	}
	e.h.Restart()
	e.h.WaitForText(room, e.ghost(theirNumber), "while down 2")
	var got []string
	for _, evt := range e.h.Matrix.Events(room) {
		if evt.Type == event.EventMessage {
			got = append(got, evt.Content.AsMessage().Body)
		}
	}
	if !slices.Equal(got, []string{"before", "while down 1", "while down 2"}) {
		t.Fatalf("the group shows %q", got)
	}
	fresh, ok := e.acct.FindGroup(ourNumber, theirNumber3, theirNumber)
	if !ok {
		t.Fatal("the new group is not on Twilio")
	}
	e.h.WaitForText(e.groupRoom(fresh.SID), e.ghost(theirNumber3), "a new group")

	// With nothing new, a catch-up reads each group's newest texts only.
	cl := twClient(e.h.Bridge().GetLogin(ourLoginID))
	e.sim.ResetAPICalls()
	if err := cl.catchUp(e.ctx(), true); err != nil {
		t.Fatal(err)
	}
	calls := e.acct.APICalls()
	if calls["GET conversations.twilio.com/v1/Conversations"] != 1 || calls["GET conversations.twilio.com/v1/Conversations/{ConversationSid}/Messages"] != 2 ||
		calls["GET conversations.twilio.com/v1/Conversations/{ConversationSid}/Participants"] != 0 {
		t.Fatalf("an idle catch-up with two groups cost %v", calls)
	}
}

func TestGroupTextsWhoseWebhooksNeverArrivedComeInByReconcile(t *testing.T) {
	e := newEnv(t, envOptions{network: "reconcile_interval: 1s\n"})
	e.login()
	e.groupText(twiliosim.GroupText{From: theirNumber, To: ourNumber, Others: []string{theirNumber2}, Body: "before"})
	group, _ := e.acct.FindGroup(ourNumber, theirNumber, theirNumber2)
	room := e.groupRoom(group.SID)
	e.h.WaitForText(room, e.ghost(theirNumber), "before")

	hole := e.sim.BlackHoleWebhooks()
	for _, body := range []string{"lost 1", "lost 2"} {
		res, err := e.sim.SendGroupText(e.ctx(), twiliosim.GroupText{ConversationSID: group.SID, From: theirNumber2, Body: body})
		if err == nil && len(res.Events) > 0 && res.Events[0].Response.StatusCode != 0 {
			t.Fatalf("the webhook of %q reached the bridge through the black hole", body)
		}
	}
	// Nothing reached the bridge; the periodic reconcile finds them.
	e.h.WaitForText(room, e.ghost(theirNumber2), "lost 2")
	hole.Remove()
	e.groupText(twiliosim.GroupText{ConversationSID: group.SID, From: theirNumber, Body: "after"})
	e.h.WaitForText(room, e.ghost(theirNumber), "after")
	var got []string
	for _, evt := range e.h.Matrix.Events(room) {
		if evt.Type == event.EventMessage {
			got = append(got, evt.Content.AsMessage().Body)
		}
	}
	if want := []string{"before", "lost 1", "lost 2", "after"}; !slices.Equal(got, want) {
		t.Fatalf("the group shows %q, want %q", got, want)
	}
}

func TestStartChatWithTheSamePhonesReusesTheGroup(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.login()
	group, room := e.startGroup(theirNumber, theirNumber2)
	mgmt := e.h.ManagementRoom(alice)
	bot := e.h.Matrix.BotUserID()

	// The same phones in another order, one typed nationally: the same
	// group and room, and no second Conversation.
	e.h.SendText(alice, mgmt, "start-chat (415) 555-0101, "+theirNumber)
	reply := e.h.WaitForText(mgmt, bot, "Opened a group chat with (415) 555-0101")
	if body := reply.Content.AsMessage().Body; !strings.Contains(body, string(room)) {
		t.Fatalf("the second start-chat answered %q, not the first group's room %s", body, room)
	}
	if convs := e.acct.Conversations(); len(convs) != 1 || convs[0].SID != group.SID {
		t.Fatalf("Twilio has %d conversations after the second start-chat, want the first only: %+v", len(convs), convs)
	}

	// Another set of phones is another group.
	e.h.SendText(alice, mgmt, "start-chat "+theirNumber+", "+theirNumber2+", "+theirNumber3)
	e.h.WaitForText(mgmt, bot, "Opened a group chat with "+theirNumber+", "+theirNumber2+", "+theirNumber3)
	if convs := e.acct.Conversations(); len(convs) != 2 {
		t.Fatalf("Twilio has %d conversations after a start-chat with a third phone, want 2", len(convs))
	}
}

// In a group room the user is a moderator: enough to add and remove
// phones, rename the room and turn encryption on.
func TestTheUserMayRunAGroupRoom(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.login()
	_, room := e.startGroup(theirNumber, theirNumber2)
	pl := e.fakeRoom(room).Request.PowerLevelOverride
	user := pl.Users[alice]
	for _, evt := range []event.Type{event.StateEncryption, event.StateRoomName} {
		if need := pl.Events[evt.Type]; need > user {
			t.Errorf("%s needs power level %d; the user has %d", evt.Type, need, user)
		}
	}
	if pl.Kick() > user || pl.Invite() > user {
		t.Errorf("inviting and kicking need %d and %d; the user has %d", pl.Invite(), pl.Kick(), user)
	}
}
