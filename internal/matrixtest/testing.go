package matrixtest

import (
	"context"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// T is a Client bound to a test, so that a test reads like a specification:
// each method fails the test on error (with t.Fatal, so call it from the test
// goroutine only) and bounds its work by Timeout. The embedded Client offers
// the context-and-error form of every method and the read-only accessors.
type T struct {
	*Client
	// Timeout bounds each call, waits included. Defaults to 30s.
	Timeout time.Duration

	t testing.TB
}

// StartForTest starts a Client for t and stops it when the test ends.
func StartForTest(t testing.TB, cli *mautrix.Client, opts Options) *T {
	t.Helper()
	c, err := Start(t.Context(), cli, opts)
	if err != nil {
		t.Fatalf("starting the Matrix test client: %v", err)
	}
	t.Cleanup(c.Stop)
	return c.For(t)
}

// For binds the client to a test.
func (c *Client) For(t testing.TB) *T {
	return &T{Client: c, Timeout: 30 * time.Second, t: t}
}

func (m *T) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(m.t.Context(), m.Timeout)
}

// check fails the test if err is set.
func (m *T) check(err error) {
	m.t.Helper()
	if err != nil {
		m.t.Fatal(err)
	}
}

// DM opens a direct chat with user and waits until user has joined it.
func (m *T) DM(user id.UserID) id.RoomID {
	m.t.Helper()
	ctx, cancel := m.ctx()
	defer cancel()
	roomID, err := m.Client.DM(ctx, user)
	m.check(err)
	return roomID
}

// Join joins a room.
func (m *T) Join(roomID id.RoomID) {
	m.t.Helper()
	ctx, cancel := m.ctx()
	defer cancel()
	m.check(m.Client.Join(ctx, roomID))
}

// Leave leaves a room.
func (m *T) Leave(roomID id.RoomID) {
	m.t.Helper()
	ctx, cancel := m.ctx()
	defer cancel()
	m.check(m.Client.Leave(ctx, roomID))
}

// Send sends a plain text message and returns its event ID.
func (m *T) Send(roomID id.RoomID, text string) id.EventID {
	m.t.Helper()
	return m.sent(func(ctx context.Context) (id.EventID, error) { return m.Client.Send(ctx, roomID, text) })
}

// SendNotice sends an m.notice.
func (m *T) SendNotice(roomID id.RoomID, text string) id.EventID {
	m.t.Helper()
	return m.sent(func(ctx context.Context) (id.EventID, error) { return m.Client.SendNotice(ctx, roomID, text) })
}

// SendEmote sends an m.emote.
func (m *T) SendEmote(roomID id.RoomID, text string) id.EventID {
	m.t.Helper()
	return m.sent(func(ctx context.Context) (id.EventID, error) { return m.Client.SendEmote(ctx, roomID, text) })
}

// SendHTML sends a formatted message.
func (m *T) SendHTML(roomID id.RoomID, plain, html string) id.EventID {
	m.t.Helper()
	return m.sent(func(ctx context.Context) (id.EventID, error) { return m.Client.SendHTML(ctx, roomID, plain, html) })
}

// SendReply sends a text reply to the event to.
func (m *T) SendReply(roomID id.RoomID, to id.EventID, text string) id.EventID {
	m.t.Helper()
	return m.sent(func(ctx context.Context) (id.EventID, error) { return m.Client.SendReply(ctx, roomID, to, text) })
}

// Edit replaces the text of the message target.
func (m *T) Edit(roomID id.RoomID, target id.EventID, newText string) id.EventID {
	m.t.Helper()
	return m.sent(func(ctx context.Context) (id.EventID, error) { return m.Client.Edit(ctx, roomID, target, newText) })
}

// SendImage uploads data and sends it as an m.image.
func (m *T) SendImage(roomID id.RoomID, data []byte, contentType, fileName string) id.EventID {
	m.t.Helper()
	return m.sent(func(ctx context.Context) (id.EventID, error) {
		return m.Client.SendImage(ctx, roomID, data, contentType, fileName)
	})
}

// SendMedia uploads data and sends it as a media message of msgType.
func (m *T) SendMedia(roomID id.RoomID, msgType event.MessageType, data []byte, contentType, fileName string) id.EventID {
	m.t.Helper()
	return m.sent(func(ctx context.Context) (id.EventID, error) {
		return m.Client.SendMedia(ctx, roomID, msgType, data, contentType, fileName)
	})
}

// React reacts to the event target with key.
func (m *T) React(roomID id.RoomID, target id.EventID, key string) id.EventID {
	m.t.Helper()
	return m.sent(func(ctx context.Context) (id.EventID, error) { return m.Client.React(ctx, roomID, target, key) })
}

// Redact redacts the event target.
func (m *T) Redact(roomID id.RoomID, target id.EventID, reason string) id.EventID {
	m.t.Helper()
	return m.sent(func(ctx context.Context) (id.EventID, error) { return m.Client.Redact(ctx, roomID, target, reason) })
}

// MarkRead sends a read receipt for eventID.
func (m *T) MarkRead(roomID id.RoomID, eventID id.EventID) {
	m.t.Helper()
	ctx, cancel := m.ctx()
	defer cancel()
	m.check(m.Client.MarkRead(ctx, roomID, eventID))
}

// SetTyping starts or stops the typing notification in a room.
func (m *T) SetTyping(roomID id.RoomID, typing bool) {
	m.t.Helper()
	ctx, cancel := m.ctx()
	defer cancel()
	m.check(m.Client.SetTyping(ctx, roomID, typing))
}

// WaitForInvite waits for an invite that pred accepts (any if nil).
func (m *T) WaitForInvite(pred func(*Invite) bool) *Invite {
	m.t.Helper()
	ctx, cancel := m.ctx()
	defer cancel()
	inv, err := m.Client.WaitForInvite(ctx, pred)
	m.check(err)
	return inv
}

// WaitForEvent waits for a timeline event in roomID that pred accepts.
func (m *T) WaitForEvent(roomID id.RoomID, pred func(*event.Event) bool) *event.Event {
	m.t.Helper()
	return m.waited(func(ctx context.Context) (*event.Event, error) { return m.Client.WaitForEvent(ctx, roomID, pred) })
}

// WaitForEventAfter waits for a timeline event after the event after.
func (m *T) WaitForEventAfter(roomID id.RoomID, after id.EventID, pred func(*event.Event) bool) *event.Event {
	m.t.Helper()
	return m.waited(func(ctx context.Context) (*event.Event, error) {
		return m.Client.WaitForEventAfter(ctx, roomID, after, pred)
	})
}

// WaitForMessage waits for a message from sender (anyone if empty)
// containing bodyContains.
func (m *T) WaitForMessage(roomID id.RoomID, sender id.UserID, bodyContains string) *event.Event {
	m.t.Helper()
	return m.waited(func(ctx context.Context) (*event.Event, error) {
		return m.Client.WaitForMessage(ctx, roomID, sender, bodyContains)
	})
}

// WaitForMessageAfter waits for such a message after the event after.
func (m *T) WaitForMessageAfter(roomID id.RoomID, after id.EventID, sender id.UserID, bodyContains string) *event.Event {
	m.t.Helper()
	return m.waited(func(ctx context.Context) (*event.Event, error) {
		return m.Client.WaitForMessageAfter(ctx, roomID, after, sender, bodyContains)
	})
}

// WaitForMembership waits for user's membership in roomID to become the given one.
func (m *T) WaitForMembership(roomID id.RoomID, user id.UserID, membership event.Membership) *event.Event {
	m.t.Helper()
	return m.waited(func(ctx context.Context) (*event.Event, error) {
		return m.Client.WaitForMembership(ctx, roomID, user, membership)
	})
}

// WaitForEphemeral waits for a typing notification or receipt that pred accepts.
func (m *T) WaitForEphemeral(roomID id.RoomID, pred func(*event.Event) bool) *event.Event {
	m.t.Helper()
	return m.waited(func(ctx context.Context) (*event.Event, error) { return m.Client.WaitForEphemeral(ctx, roomID, pred) })
}

// WaitForReceipt waits for a read receipt from user on eventID.
func (m *T) WaitForReceipt(roomID id.RoomID, user id.UserID, eventID id.EventID) *event.Event {
	m.t.Helper()
	return m.waited(func(ctx context.Context) (*event.Event, error) {
		return m.Client.WaitForReceipt(ctx, roomID, user, eventID)
	})
}

func (m *T) sent(send func(context.Context) (id.EventID, error)) id.EventID {
	m.t.Helper()
	ctx, cancel := m.ctx()
	defer cancel()
	evtID, err := send(ctx)
	m.check(err)
	return evtID
}

func (m *T) waited(wait func(context.Context) (*event.Event, error)) *event.Event {
	m.t.Helper()
	ctx, cancel := m.ctx()
	defer cancel()
	evt, err := wait(ctx)
	m.check(err)
	return evt
}

// SendEncryptedImage encrypts data as an attachment and sends it as an
// m.image, as clients do in encrypted rooms.
func (m *T) SendEncryptedImage(roomID id.RoomID, data []byte, contentType, fileName string) id.EventID {
	m.t.Helper()
	return m.sent(func(ctx context.Context) (id.EventID, error) {
		return m.Client.SendEncryptedMedia(ctx, roomID, event.MsgImage, data, contentType, fileName)
	})
}

// DownloadMedia fetches (and if need be decrypts) the file of a media
// message.
func (m *T) DownloadMedia(content *event.MessageEventContent) []byte {
	m.t.Helper()
	ctx, cancel := m.ctx()
	defer cancel()
	data, err := m.Client.DownloadMedia(ctx, content)
	m.check(err)
	return data
}
