package twilio_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/connectors/twilio/twiliosim"
	"github.com/trestle-bridge/trestle/internal/matrixtest"
)

// whatsappPerson is a person whose Twilio number also has a WhatsApp
// sender, logged in.
func whatsappPerson(t *testing.T) *person {
	t.Helper()
	p := newPerson(t)
	if _, err := p.Account.AddWhatsAppSender(p.Number, "Alice's Shop"); err != nil {
		t.Fatal(err)
	}
	p.login("")
	return p
}

// whatsappFrom sends a WhatsApp message from a contact to the person's
// WhatsApp sender.
func (p *person) whatsappFrom(remote, body string, media ...twiliosim.MediaFile) twiliosim.InboundResult {
	p.t.Helper()
	res, err := env.Sim.SendInbound(ctx(p.t), twiliosim.InboundMessage{From: "whatsapp:" + remote, To: "whatsapp:" + p.Number, Body: body, Media: media})
	if err != nil {
		p.t.Fatal(err)
	}
	if res.Response.StatusCode != http.StatusOK {
		p.t.Fatalf("the bridge answered the WhatsApp webhook of %q with %d: %s", body, res.Response.StatusCode, res.Response.Body)
	}
	return res
}

// inviteName is the room name that came with an invite.
func inviteName(inv *matrixtest.Invite) string {
	for _, st := range inv.State {
		if st.Type == event.StateRoomName {
			return st.Content.AsRoomName().Name
		}
	}
	return ""
}

// whatsappPortalFor waits for the invite to the WhatsApp chat with a
// contact, told from their SMS chat by its name, and for the join.
func (p *person) whatsappPortalFor(remote string) id.RoomID {
	p.t.Helper()
	inv := p.WaitForInvite(func(inv *matrixtest.Invite) bool {
		return inv.Sender == ghost(remote) && strings.HasSuffix(inviteName(inv), "(WhatsApp)")
	})
	p.WaitForMembership(inv.RoomID, p.ID, event.MembershipJoin)
	return inv.RoomID
}

func TestWhatsAppTextsGoBothWaysInARoomApartFromTheSMSChatWithThePerson(t *testing.T) {
	alice := whatsappPerson(t)
	bob := uniqueNumber()

	alice.textFrom(bob, "Bob here, by SMS")
	smsRoom := alice.portalFor(bob)
	alice.WaitForMessage(smsRoom, ghost(bob), "Bob here, by SMS")
	alice.whatsappFrom(bob, "Bob here, on WhatsApp")
	waRoom := alice.whatsappPortalFor(bob)
	if waRoom == smsRoom {
		t.Fatal("the WhatsApp and SMS chats with Bob are one room")
	}
	alice.WaitForMessage(waRoom, ghost(bob), "Bob here, on WhatsApp")
	if got := alice.bodiesFrom(smsRoom, ghost(bob)); len(got) != 1 {
		t.Errorf("the SMS room shows %q from Bob, want only the SMS", got)
	}
	name := alice.State(waRoom, event.StateRoomName, "")
	if name == nil || name.Content.AsRoomName().Name != international(bob)+" (WhatsApp)" {
		t.Errorf("the WhatsApp room is named %v, want %q", name, international(bob)+" (WhatsApp)")
	}
	if topic := alice.State(waRoom, event.StateTopic, ""); topic == nil || !strings.Contains(topic.Content.AsTopic().Topic, "Replies are possible until") {
		t.Errorf("the WhatsApp room's topic %v does not say until when replies are possible", topic)
	}

	reply := alice.Send(waRoom, "Hi Bob, WhatsApp works")
	out := waitOutbound(t, func(m twiliosim.OutboundMessage) bool { return m.Body == "Hi Bob, WhatsApp works" })
	if out.From != "whatsapp:"+alice.Number || out.To != "whatsapp:"+bob {
		t.Errorf("the reply went from %s to %s, want over WhatsApp", out.From, out.To)
	}
	alice.waitStatus(waRoom, reply, isDeliveredTo(ghost(bob)))
	smsReply := alice.Send(smsRoom, "and SMS still works")
	out = waitOutbound(t, func(m twiliosim.OutboundMessage) bool { return m.Body == "and SMS still works" })
	if out.From != alice.Number || out.To != bob {
		t.Errorf("the SMS reply went from %s to %s", out.From, out.To)
	}
	alice.waitStatus(smsRoom, smsReply, isDeliveredTo(ghost(bob)))
}

func TestWhatsAppMediaGoesBothWays(t *testing.T) {
	alice := whatsappPerson(t)
	bob := uniqueNumber()
	photo := testJPEG(t, 64, 48)

	alice.whatsappFrom(bob, "the view from here", twiliosim.MediaFile{ContentType: "image/jpeg", Data: photo})
	room := alice.whatsappPortalFor(bob)
	img := alice.WaitForMessage(room, ghost(bob), "the view from here").Content.AsMessage()
	if img.MsgType != event.MsgImage {
		t.Fatalf("the WhatsApp photo arrived as %s, want one m.image with its caption", img.MsgType)
	}
	mxc, err := img.URL.Parse()
	if err != nil {
		t.Fatal(err)
	}
	got, err := alice.Matrix.DownloadBytes(ctx(t), mxc)
	if err != nil || !bytes.Equal(got, photo) {
		t.Fatalf("the photo downloads as %d bytes (%v), want the %d Bob sent", len(got), err, len(photo))
	}

	picture := testPNG(t, 32, 32)
	sent := alice.SendImage(room, picture, "image/png", "map.png")
	out := waitOutbound(t, func(m twiliosim.OutboundMessage) bool { return m.To == "whatsapp:"+bob && len(m.Media) > 0 })
	if out.From != "whatsapp:"+alice.Number || out.Media[0].Err != "" || !bytes.Equal(out.Media[0].Data, picture) {
		t.Fatalf("the image went from %s and Twilio fetched %d bytes (%s)", out.From, len(out.Media[0].Data), out.Media[0].Err)
	}
	alice.waitStatus(room, sent, isDeliveredTo(ghost(bob)))
}

func TestOutsideTheWhatsAppWindowATextIsRefusedWithANoticeAndATemplateGoesOut(t *testing.T) {
	alice := whatsappPerson(t)
	carol := uniqueNumber()
	hx, err := alice.Account.AddContent(twiliosim.ContentTemplate{FriendlyName: "order_ready", Body: "Hi {{1}}, your order is ready at {{2}}.",
		Variables: map[string]string{"1": "name", "2": "time"}, Approval: twiliosim.ApprovalApproved})
	if err != nil {
		t.Fatal(err)
	}

	alice.command("start-chat whatsapp:"+carol, "Opened a chat")
	room := alice.whatsappPortalFor(carol)
	refused := alice.Send(room, "Hello Carol!")
	st := alice.waitStatus(room, refused, isFailure)
	if !strings.Contains(st.Message, "within 24 hours") {
		t.Errorf("the refusal says %q, want the 24-hour rule", st.Message)
	}
	alice.WaitForMessageAfter(room, refused, bot(), "within 24 hours")
	if n := len(outboundTo("whatsapp:" + carol)); n != 0 {
		t.Fatalf("%d messages reached Twilio; a refused text must not", n)
	}

	list := alice.command("templates", "order_ready").Content.AsMessage().Body
	if !strings.Contains(list, hx) {
		t.Fatalf("the templates list %q does not give the SID %s", list, hx)
	}
	asked := alice.Send(room, "!tw templates")
	alice.WaitForMessageAfter(room, asked, bot(), hx)
	sent := alice.Send(room, "/template "+hx+" Carol | 5 pm")
	out := waitOutbound(t, func(m twiliosim.OutboundMessage) bool { return m.To == "whatsapp:"+carol })
	if out.ContentSID != hx || out.Body != "Hi Carol, your order is ready at 5 pm." {
		t.Fatalf("the template went out as %q with ContentSid %q", out.Body, out.ContentSID)
	}
	alice.waitStatus(room, sent, isDeliveredTo(ghost(carol)))
}

func TestAWhatsAppReadStatusArrivesAsTheContactsReadReceipt(t *testing.T) {
	alice := whatsappPerson(t)
	dave := uniqueNumber()
	alice.whatsappFrom(dave, "ping")
	room := alice.whatsappPortalFor(dave)
	alice.WaitForMessage(room, ghost(dave), "ping")

	sent := alice.Send(room, "pong")
	out := waitOutbound(t, func(m twiliosim.OutboundMessage) bool { return m.Body == "pong" && m.Done })
	alice.waitStatus(room, sent, isDeliveredTo(ghost(dave)))
	if err := env.Sim.MarkRead(ctx(t), out.SID); err != nil {
		t.Fatal(err)
	}
	alice.WaitForReceipt(room, ghost(dave), sent)
}
