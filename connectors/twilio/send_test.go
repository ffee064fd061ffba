package twilio

import (
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/bridgev2"
	"github.com/trestle-bridge/trestle/connectors/twilio/twiliosim"
)

// chat logs in and opens the portal with theirNumber by receiving a text.
func (e *env) chat() id.RoomID {
	e.t.Helper()
	e.login()
	e.inbound(theirNumber, "hello there, how are you doing today?")
	room := e.portalRoom(theirNumber)
	e.waitMapped(e.h.WaitForText(room, e.ghost(theirNumber), "hello there").ID)
	return room
}

// outbound waits for n outbound messages in total and returns them.
func (e *env) outbound(n int) []twiliosim.OutboundMessage {
	e.t.Helper()
	msgs, err := e.sim.WaitOutbound(e.ctx(), func(m []twiliosim.OutboundMessage) bool { return len(m) >= n })
	if err != nil {
		e.t.Fatalf("%v (have %d)", err, len(msgs))
	}
	return msgs
}

func TestSendTextFormattedAndReply(t *testing.T) {
	e := newEnv(t, envOptions{})
	room := e.chat()
	e.h.SendMatrix(alice, room, event.EventMessage, &event.MessageEventContent{
		MsgType: event.MsgText, Body: "**bold** [site](https://example.com)", Format: event.FormatHTML,
		FormattedBody: `<strong>bold</strong> <a href="https://example.com">site</a> and <a href="https://matrix.to/#/@bob:example.com">Bob</a><ul><li>one</li><li>two</li></ul>`,
	})
	msgs := e.outbound(1)
	if want := "bold site (https://example.com) and Bob\n* one\n* two"; msgs[0].Body != want {
		t.Fatalf("formatted body %q, want %q", msgs[0].Body, want)
	}
	if msgs[0].From != ourNumber || msgs[0].To != theirNumber {
		t.Fatalf("from %s to %s", msgs[0].From, msgs[0].To)
	}
	incoming := e.h.WaitForText(room, e.ghost(theirNumber), "hello there")
	reply := &event.MessageEventContent{MsgType: event.MsgText, Body: "> <@x:example.com> hello\n\nfine thanks"}
	reply.RelatesTo = (&event.RelatesTo{}).SetReplyTo(incoming.ID)
	e.h.SendMatrix(alice, room, event.EventMessage, reply)
	msgs = e.outbound(2)
	if want := "> hello there, how are you doing today?\nfine thanks"; msgs[1].Body != want {
		t.Fatalf("reply body %q", msgs[1].Body)
	}
	e.h.SendMatrix(alice, room, event.EventMessage, &event.MessageEventContent{MsgType: event.MsgEmote, Body: "waves"})
	if msgs = e.outbound(3); msgs[2].Body != "* waves" {
		t.Fatalf("emote %q", msgs[2].Body)
	}
}

func TestSendLongMessageSplits(t *testing.T) {
	e := newEnv(t, envOptions{})
	room := e.chat()
	long := strings.Repeat("lorem ipsum dolor sit amet ", 100) // 2700 characters
	evtID := e.h.SendText(alice, room, long)
	msgs := e.outbound(2)
	if len(msgs) != 2 || msgs[0].Body+" "+msgs[1].Body != strings.TrimSpace(long) {
		t.Fatalf("split into %d: %+v", len(msgs), msgs)
	}
	e.eventually("both parts mapped", func() bool {
		parts, err := e.h.Bridge().DB.Messages.GetAllByMXID(e.ctx(), evtID)
		return err == nil && len(parts) == 2 && parts[0].PartID == "0" && parts[1].PartID == "1"
	})
}

func TestSendLongMessageRefused(t *testing.T) {
	e := newEnv(t, envOptions{network: "long_message: refuse\n"})
	room := e.chat()
	evtID := e.h.SendText(alice, room, strings.Repeat("x ", 900))
	st := e.h.WaitForStatus(room, evtID, event.MessageStatusFail)
	if !strings.Contains(st.Message, "too long") {
		t.Fatalf("status %+v", st)
	}
	if len(e.sim.Outbound()) != 0 {
		t.Fatal("a refused message was sent")
	}
}

func TestSendMedia(t *testing.T) {
	e := newEnv(t, envOptions{})
	room := e.chat()
	mxc := e.h.Matrix.PutMedia(pngBytes, "image/png")
	e.h.SendMatrix(alice, room, event.EventMessage, &event.MessageEventContent{
		MsgType: event.MsgImage, Body: "a caption", FileName: "dot.png", URL: id.ContentURIString(mxc),
		Info: &event.FileInfo{MimeType: "image/png", Size: len(pngBytes)},
	})
	msgs := e.outbound(1)
	if msgs[0].Body != "a caption" || len(msgs[0].MediaURLs) != 1 || !strings.HasPrefix(msgs[0].MediaURLs[0], e.h.URL+"/_trestle/media/") {
		t.Fatalf("MMS %+v", msgs[0])
	}
	done, err := e.sim.WaitMessage(e.ctx(), msgs[0].SID, nil)
	if err != nil || len(done.Media) != 1 || string(done.Media[0].Data) != string(pngBytes) {
		t.Fatalf("Twilio could not fetch the media: %v %+v", err, done.Media)
	}

	big := e.h.SendMatrix(alice, room, event.EventMessage, &event.MessageEventContent{
		MsgType: event.MsgVideo, Body: "big.mp4", URL: id.ContentURIString(mxc), Info: &event.FileInfo{MimeType: "video/mp4", Size: 6 << 20},
	})
	if st := e.h.WaitForStatus(room, big, event.MessageStatusFail); !strings.Contains(st.Message, "5 MB") {
		t.Fatalf("oversize: %+v", st)
	}
	odd := e.h.SendMatrix(alice, room, event.EventMessage, &event.MessageEventContent{
		MsgType: event.MsgFile, Body: "x.exe", URL: id.ContentURIString(mxc), Info: &event.FileInfo{MimeType: "application/x-msdownload", Size: 10},
	})
	if st := e.h.WaitForStatus(room, odd, event.MessageStatusFail); !strings.Contains(st.Message, "cannot carry") {
		t.Fatalf("unsupported type: %+v", st)
	}
}

func TestFallbackActions(t *testing.T) {
	e := newEnv(t, envOptions{})
	room := e.chat()
	incoming := e.h.WaitForText(room, e.ghost(theirNumber), "hello there")
	mine := e.h.SendText(alice, room, "see you at 5")
	e.outbound(1)
	e.h.WaitForStatus(room, mine, event.MessageStatusSuccess)

	edit := &event.MessageEventContent{MsgType: event.MsgText, Body: "* see you at 6",
		NewContent: &event.MessageEventContent{MsgType: event.MsgText, Body: "see you at 6"}}
	edit.RelatesTo = (&event.RelatesTo{}).SetReplace(mine)
	e.h.SendMatrix(alice, room, event.EventMessage, edit)
	if msgs := e.outbound(2); msgs[1].Body != "Edit: see you at 6" {
		t.Fatalf("edit %q", msgs[1].Body)
	}
	e.h.SendMatrix(alice, room, event.EventReaction, &event.ReactionEventContent{RelatesTo: event.RelatesTo{
		Type: event.RelAnnotation, EventID: incoming.ID, Key: "👍"}})
	if msgs := e.outbound(3); msgs[2].Body != `Reacted 👍 to "hello there, how are you doing today?"` {
		t.Fatalf("reaction %q", msgs[2].Body)
	}
	var reaction id.EventID
	e.eventually("reaction recorded", func() bool {
		for _, evt := range e.h.Matrix.Events(room) {
			if evt.Type == event.EventReaction {
				reaction = evt.ID
			}
		}
		r, err := e.h.Bridge().DB.Reactions.GetByMXID(e.ctx(), reaction)
		return err == nil && r != nil
	})
	e.h.SendMatrix(alice, room, event.EventRedaction, &event.RedactionEventContent{Redacts: reaction})
	if msgs := e.outbound(4); msgs[3].Body != `Removed reaction 👍 from "hello there, how are you doing today?"` {
		t.Fatalf("reaction removal %q", msgs[3].Body)
	}
	redaction := e.h.SendMatrix(alice, room, event.EventRedaction, &event.RedactionEventContent{Redacts: mine})
	if st := e.h.WaitForStatus(room, redaction, event.MessageStatusFail); st.Message != "SMS messages cannot be deleted once sent." {
		t.Fatalf("redaction %+v", st)
	}
}

func TestRefusedActions(t *testing.T) {
	e := newEnv(t, envOptions{network: "unsupported_actions: refuse\n"})
	room := e.chat()
	incoming := e.h.WaitForText(room, e.ghost(theirNumber), "hello there")
	react := e.h.SendMatrix(alice, room, event.EventReaction, &event.ReactionEventContent{RelatesTo: event.RelatesTo{
		Type: event.RelAnnotation, EventID: incoming.ID, Key: "👍"}})
	if st := e.h.WaitForStatus(room, react, event.MessageStatusFail); !strings.Contains(st.Message, "Reactions cannot be sent") {
		t.Fatalf("reaction %+v", st)
	}
	if len(e.sim.Outbound()) != 0 {
		t.Fatal("a refused action was sent")
	}
}

func TestSendFailureSentence(t *testing.T) {
	e := newEnv(t, envOptions{})
	room := e.chat()
	e.sim.SetRecipient(theirNumber, twiliosim.RecipientConfig{Behavior: twiliosim.Unsubscribed})
	evtID := e.h.SendText(alice, room, "are you there?")
	if st := e.h.WaitForStatus(room, evtID, event.MessageStatusFail); st.Message != errorSentences[21610] {
		t.Fatalf("status %+v", st)
	}
}

func TestFindSentReconcilesPartialSends(t *testing.T) {
	e := newEnv(t, envOptions{})
	room := e.chat()
	ul := e.h.Bridge().GetLogin(ourLoginID)
	cl := twClient(ul)
	portal, err := e.h.Bridge().GetPortalByRoom(e.ctx(), room)
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("alpha beta gamma delta ", 100)
	message := func() *bridgev2.MatrixMessage {
		return &bridgev2.MatrixMessage{
			Outgoing: bridgev2.Outgoing{Portal: portal, Login: ul, SendToken: "tok1", Progress: &bridgev2.SendProgress{}},
			Content:  &event.MessageEventContent{MsgType: event.MsgText, Body: long},
		}
	}
	msg := message()
	since := cl.conn.now().Add(-time.Minute)
	if complete, err := cl.FindSent(e.ctx(), msg, since); err != nil || complete || msg.Progress.Count() != 0 {
		t.Fatalf("nothing sent yet, found %+v (complete %v, %v)", msg.Progress.Sent(), complete, err)
	}
	plan, err := cl.planMessage(msg)
	if err != nil || len(plan.parts) != 2 {
		t.Fatalf("plan %+v %v", plan, err)
	}
	// The first part went out before a crash, and the journal never heard.
	if _, err := cl.rest.createMessage(e.ctx(), cl.createParams(contact{addr: theirNumber}, plan.parts[0], "tok1", false)); err != nil {
		t.Fatal(err)
	}
	if complete, err := cl.FindSent(e.ctx(), msg, since); err != nil || complete || msg.Progress.Count() != 1 {
		t.Fatalf("half sent: found %+v (complete %v, %v)", msg.Progress.Sent(), complete, err)
	}
	if _, err := cl.HandleMatrixMessage(e.ctx(), msg); err != nil {
		t.Fatalf("resume: %v", err)
	}
	if n := len(e.sim.Outbound()); n != 2 {
		t.Fatalf("%d messages created, want 2 (no part twice)", n)
	}
	again := message()
	complete, err := cl.FindSent(e.ctx(), again, since)
	if err != nil || !complete || again.Progress.Sent()[0].ID != msg.Progress.Sent()[0].ID || again.Progress.Sent()[1].PartID != "1" {
		t.Fatalf("all sent: found %+v (complete %v, %v)", again.Progress.Sent(), complete, err)
	}
}
