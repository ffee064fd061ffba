package sandbox

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/internal/matrixtest"
)

const (
	// timelineLimit is how many events of each room one /sync returns,
	// which also bounds the history a restarted sandbox shows.
	timelineLimit = 200
	// shownMessages is how many of the latest messages of a room the page
	// gets.
	shownMessages = 200
	// syncTimeout is the long-poll timeout of each /sync.
	syncTimeout = 30 * time.Second
)

// matrixSide is the sandbox user as a Matrix client sees things: a
// matrixtest client, logged in as that user inside the sandbox process,
// whose /sync loop records the rooms, their members and timelines and joins
// every room the user is invited to, as a person would accept the bridge's
// invites to portals. It serves the page's Matrix pane.
type matrixSide struct {
	cli    *mautrix.Client
	user   *matrixtest.Client
	me     id.UserID
	bot    id.UserID
	ghosts ghostNames
	notify *notifier

	cancel context.CancelFunc
	done   chan struct{} // closed when the page is no longer told of changes
}

// ghostNames recognises the bridge's ghost users from the bridge config's
// username_template, split around its {{.}}.
type ghostNames struct {
	prefix, suffix, server string
}

// phone returns the E.164 number of a ghost user ID, or "" for other users.
// Twilio ghosts carry the number without its '+'.
func (g ghostNames) phone(user id.UserID) string {
	local, server, err := user.Parse()
	if err != nil || server != g.server || !strings.HasPrefix(local, g.prefix) || !strings.HasSuffix(local, g.suffix) {
		return ""
	}
	digits := strings.TrimSuffix(strings.TrimPrefix(local, g.prefix), g.suffix)
	if digits == "" || strings.Trim(digits, "0123456789") != "" {
		return ""
	}
	return "+" + digits
}

func newMatrixSide(cli *mautrix.Client, bot id.UserID, ghosts ghostNames, n *notifier) (*matrixSide, error) {
	user, err := matrixtest.New(cli, matrixtest.Options{
		AutoJoin: true, PollTimeout: syncTimeout, TimelineLimit: timelineLimit,
		// Its own device's encryption, so encrypted portals read as in Element.
		Crypto: true,
	})
	if err != nil {
		return nil, err
	}
	return &matrixSide{cli: cli, user: user, me: cli.UserID, bot: bot, ghosts: ghosts, notify: n}, nil
}

// start does an initial /sync, so that everything the account could see is
// recorded when it returns, then keeps syncing in the background until stop,
// waking the page at every change.
func (m *matrixSide) start(ctx context.Context) error {
	if err := m.user.Run(context.WithoutCancel(ctx)); err != nil {
		return err
	}
	fwdCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	m.cancel, m.done = cancel, make(chan struct{})
	go func() {
		defer close(m.done)
		for {
			select {
			case <-m.user.Changed():
				m.notify.bump()
			case <-fwdCtx.Done():
				return
			}
		}
	}()
	return nil
}

// stop ends the sync loop and waits for it.
func (m *matrixSide) stop() {
	m.user.Stop()
	if m.cancel != nil {
		m.cancel()
		<-m.done
	}
}

// joined reports whether all the users are joined to a room.
func (m *matrixSide) joined(roomID id.RoomID, users ...id.UserID) bool {
	for _, u := range users {
		if m.user.Membership(roomID, u) != event.MembershipJoin {
			return false
		}
	}
	return true
}

// members returns the member events of a room by user.
func (m *matrixSide) members(roomID id.RoomID) map[id.UserID]*event.MemberEventContent {
	out := map[id.UserID]*event.MemberEventContent{}
	for _, evt := range m.user.StateEvents(roomID, event.StateMember) {
		out[id.UserID(evt.GetStateKey())] = evt.Content.AsMember()
	}
	return out
}

// displayName returns a member's display name, falling back to the
// localpart.
func displayName(members map[id.UserID]*event.MemberEventContent, user id.UserID) string {
	if c := members[user]; c != nil && c.Displayname != "" {
		return c.Displayname
	}
	return user.Localpart()
}

// matrixState is the answer of GET /api/matrix.
type matrixState struct {
	Version uint64       `json:"version"`
	User    id.UserID    `json:"user"`
	Rooms   []matrixRoom `json:"rooms"` // most recently active first
	// SyncError tells the page that what it shows may be stale.
	SyncError string `json:"syncError,omitempty"`
}

// matrixRoom is one joined room as the page shows it.
type matrixRoom struct {
	ID   id.RoomID `json:"id"`
	Name string    `json:"name"`
	// Kind is "portal" (a chat with a phone), "group" (a group text with
	// several phones), "management" (the DM with the bridge bot) or
	// "other".
	Kind string `json:"kind"`
	// Phone is the E.164 number a portal bridges to.
	Phone string `json:"phone,omitempty"`
	// Phones are the E.164 numbers of a group's phones.
	Phones   []string        `json:"phones,omitempty"`
	LastTS   int64           `json:"lastTs"`
	Messages []matrixMessage `json:"messages"`
}

// matrixMessage is one m.room.message with what became of it.
type matrixMessage struct {
	ID         id.EventID `json:"id"`
	Sender     id.UserID  `json:"sender"`
	SenderName string     `json:"senderName"`
	Mine       bool       `json:"mine"`
	Type       string     `json:"type"` // m.text, m.notice, m.image...
	Body       string     `json:"body"`
	MediaURL   string     `json:"mediaUrl,omitempty"`
	MimeType   string     `json:"mimeType,omitempty"`
	TS         int64      `json:"ts"`
	Edited     bool       `json:"edited,omitempty"`
	Redacted   bool       `json:"redacted,omitempty"`
	// Status is what the bridge reported about a message the user sent to
	// a portal (com.beeper.message_send_status events).
	Status *matrixStatus `json:"status,omitempty"`
}

// matrixStatus is the bridge's report on one sent message.
type matrixStatus struct {
	// State is sending, sent, delivered, retrying or failed.
	State string `json:"state"`
	Text  string `json:"text"`
}

// state renders every joined room for the page.
func (m *matrixSide) state(version uint64) matrixState {
	st := matrixState{Version: version, User: m.me, Rooms: []matrixRoom{}}
	if err := m.user.Err(); err != nil {
		st.SyncError = err.Error()
	}
	for _, roomID := range m.user.Rooms() {
		if m.user.Membership(roomID, m.me) != event.MembershipJoin {
			continue
		}
		st.Rooms = append(st.Rooms, m.render(roomID))
	}
	slices.SortFunc(st.Rooms, func(a, b matrixRoom) int {
		return cmp.Or(cmp.Compare(b.LastTS, a.LastTS), strings.Compare(string(a.ID), string(b.ID)))
	})
	return st
}

// render turns a room's timeline into messages: edits are applied to their
// targets, redactions blank them, and the bridge's status events become each
// sent message's status.
func (m *matrixSide) render(roomID id.RoomID) matrixRoom {
	out := matrixRoom{ID: roomID, Kind: "other", Messages: []matrixMessage{}}
	if evt := m.user.State(roomID, event.StateRoomName, ""); evt != nil {
		out.Name = evt.Content.AsRoomName().Name
	}
	members := m.members(roomID)
	others := 0
	var phones []string
	for user, c := range members {
		if user == m.me || (c.Membership != event.MembershipJoin && c.Membership != event.MembershipInvite) {
			continue
		}
		others++
		if phone := m.ghosts.phone(user); phone != "" {
			phones = append(phones, phone)
		}
	}
	switch slices.Sort(phones); {
	case len(phones) == 1:
		out.Kind, out.Phone = "portal", phones[0]
	case len(phones) > 1:
		out.Kind, out.Phones = "group", phones
	}
	if out.Kind == "portal" && strings.HasSuffix(out.Name, " (WhatsApp)") {
		// The bridge names the WhatsApp chat with a person so; the page's
		// WhatsApp phone of that number is its other end.
		out.Phone = whatsappPrefix + out.Phone
	}
	if out.Kind == "other" && others == 1 && m.joined(roomID, m.bot) {
		out.Kind = "management"
	}
	if out.Name == "" {
		switch out.Kind {
		case "management":
			out.Name = displayName(members, m.bot)
		case "portal":
			out.Name = out.Phone
		case "group":
			out.Name = strings.Join(out.Phones, ", ")
		default:
			out.Name = string(roomID)
		}
	}

	byID := map[id.EventID]int{}
	for _, evt := range m.user.Events(roomID) {
		out.LastTS = max(out.LastTS, evt.Timestamp)
		switch evt.Type {
		case event.EventMessage:
			content := evt.Content.AsMessage()
			if target := content.RelatesTo.GetReplaceID(); target != "" {
				if i, ok := byID[target]; ok && content.NewContent != nil {
					out.Messages[i].Body = content.NewContent.Body
					out.Messages[i].Edited = true
				}
				continue
			}
			msg := matrixMessage{
				ID:         evt.ID,
				Sender:     evt.Sender,
				SenderName: displayName(members, evt.Sender),
				Mine:       evt.Sender == m.me,
				Type:       string(content.MsgType),
				Body:       content.Body,
				TS:         evt.Timestamp,
				Redacted:   evt.Unsigned.RedactedBecause != nil,
			}
			if content.URL != "" {
				msg.MediaURL = "/api/matrix/media?uri=" + url.QueryEscape(string(content.URL))
				if content.Info != nil {
					msg.MimeType = content.Info.MimeType
				}
			}
			if msg.Mine && (out.Kind == "portal" || out.Kind == "group") {
				msg.Status = &matrixStatus{State: "sending", Text: "waiting for the bridge"}
			}
			byID[evt.ID] = len(out.Messages)
			out.Messages = append(out.Messages, msg)
		case event.EventRedaction:
			target := evt.Redacts
			if target == "" {
				target = evt.Content.AsRedaction().Redacts
			}
			if i, ok := byID[target]; ok {
				out.Messages[i].Redacted = true
			}
		case event.BeeperMessageStatus:
			content, ok := evt.Content.Parsed.(*event.BeeperMessageStatusEventContent)
			if !ok || evt.Sender != m.bot {
				continue
			}
			if i, ok := byID[content.RelatesTo.EventID]; ok && out.Messages[i].Status != nil {
				out.Messages[i].Status = nextStatus(out.Messages[i].Status, content)
			}
		}
	}
	for i := range out.Messages {
		if out.Messages[i].Redacted {
			out.Messages[i].Body, out.Messages[i].MediaURL = "", ""
		}
	}
	if len(out.Messages) > shownMessages {
		out.Messages = out.Messages[len(out.Messages)-shownMessages:]
	}
	return out
}

// nextStatus applies one status event to a message's status. A delivery
// report never goes back to "sent", in case events arrive out of order.
func nextStatus(cur *matrixStatus, c *event.BeeperMessageStatusEventContent) *matrixStatus {
	switch c.Status {
	case event.MessageStatusSuccess:
		switch {
		case c.DeliveredToUsers != nil && len(*c.DeliveredToUsers) > 0:
			return &matrixStatus{State: "delivered", Text: "delivered to the phone"}
		case cur.State == "delivered":
			return cur
		case c.DeliveredToUsers != nil:
			return &matrixStatus{State: "sent", Text: "sent through Twilio; waiting for the delivery report"}
		default:
			return &matrixStatus{State: "sent", Text: "sent through Twilio"}
		}
	case event.MessageStatusPending, event.MessageStatusRetriable:
		return &matrixStatus{State: "retrying", Text: orElse(c.Message, "the bridge is retrying")}
	case event.MessageStatusFail:
		return &matrixStatus{State: "failed", Text: orElse(c.Message, "the bridge could not send it")}
	}
	return cur
}

func orElse(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// routes registers the Matrix API on mux.
func (m *matrixSide) routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/matrix", m.handleState)
	mux.HandleFunc("POST /api/matrix/send", m.handleSend)
	mux.HandleFunc("GET /api/matrix/media", m.handleMedia)
}

func (m *matrixSide) handleState(w http.ResponseWriter, r *http.Request) {
	seen, _ := strconv.ParseUint(r.URL.Query().Get("since"), 10, 64)
	version := m.notify.wait(r.Context(), seen, longPoll)
	writeJSON(w, http.StatusOK, m.state(version))
}

// handleSend sends a message as the sandbox user: a multipart form with
// "room", "body" and optionally one "media" file, sent as an image (or file)
// before the text.
func (m *matrixSide) handleSend(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxMessageBytes)
	if err := r.ParseMultipartForm(maxMessageBytes); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("reading the message: %w", err))
		return
	}
	defer func() { _ = r.MultipartForm.RemoveAll() }()
	roomID := id.RoomID(r.FormValue("room"))
	if !m.joined(roomID, m.me) {
		writeError(w, http.StatusBadRequest, fmt.Errorf("%s is not a room %s is in", roomID, m.me))
		return
	}
	body := strings.TrimSpace(r.FormValue("body"))
	media, err := readAttachments(r.MultipartForm.File["media"])
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	if body == "" && len(media) == 0 {
		writeError(w, http.StatusBadRequest, errors.New("type a message or attach a file"))
		return
	}
	// As with texts from the phone: a reload must not cancel the send.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), inboundTimeout)
	defer cancel()
	var sent []id.EventID
	for _, f := range media {
		up, err := m.cli.UploadBytesWithName(ctx, f.Data, f.ContentType, f.Filename)
		if err != nil {
			writeError(w, http.StatusBadGateway, fmt.Errorf("uploading %s: %w", f.Filename, err))
			return
		}
		msgType := event.MsgFile
		if strings.HasPrefix(f.ContentType, "image/") {
			msgType = event.MsgImage
		}
		resp, err := m.cli.SendMessageEvent(ctx, roomID, event.EventMessage, &event.MessageEventContent{
			MsgType:  msgType,
			Body:     f.Filename,
			FileName: f.Filename,
			URL:      up.ContentURI.CUString(),
			Info:     &event.FileInfo{MimeType: f.ContentType, Size: len(f.Data)},
		})
		if err != nil {
			writeError(w, http.StatusBadGateway, fmt.Errorf("sending %s: %w", f.Filename, err))
			return
		}
		sent = append(sent, resp.EventID)
	}
	if body != "" {
		resp, err := m.cli.SendText(ctx, roomID, body)
		if err != nil {
			writeError(w, http.StatusBadGateway, fmt.Errorf("sending the message: %w", err))
			return
		}
		sent = append(sent, resp.EventID)
	}
	writeJSON(w, http.StatusOK, struct {
		EventIDs []id.EventID `json:"eventIds"`
	}{sent})
}

// handleMedia serves Matrix media to the page (?uri=mxc://...), which cannot
// fetch it itself: authenticated media needs the user's access token.
func (m *matrixSide) handleMedia(w http.ResponseWriter, r *http.Request) {
	uri, err := id.ParseContentURI(r.URL.Query().Get("uri"))
	if err != nil || !uri.IsValid() {
		writeError(w, http.StatusBadRequest, errors.New("uri must be an mxc:// URI"))
		return
	}
	resp, err := m.download(r.Context(), uri)
	if err != nil {
		writeError(w, http.StatusBadGateway, err)
		return
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxMessageBytes))
	if err != nil {
		writeError(w, http.StatusBadGateway, fmt.Errorf("downloading %s: %w", uri, err))
		return
	}
	serveMedia(w, resp.Header.Get("Content-Type"), data)
}

// download fetches media with authenticated media (Matrix 1.11), falling
// back to the legacy endpoint for homeservers without it.
func (m *matrixSide) download(ctx context.Context, uri id.ContentURI) (*http.Response, error) {
	resp, err := m.cli.Download(ctx, uri)
	var httpErr mautrix.HTTPError
	if err != nil && errors.As(err, &httpErr) && (httpErr.IsStatus(http.StatusNotFound) || httpErr.IsStatus(http.StatusMethodNotAllowed)) &&
		(httpErr.RespError == nil || httpErr.RespError.ErrCode == "M_UNRECOGNIZED") {
		_, resp, err = m.cli.MakeFullRequestWithResp(ctx, mautrix.FullRequest{
			Method:           http.MethodGet,
			URL:              m.cli.BuildURL(mautrix.MediaURLPath{"v3", "download", uri.Homeserver, uri.FileID}),
			DontReadResponse: true,
		})
	}
	if err != nil {
		return nil, fmt.Errorf("downloading %s: %w", uri, err)
	}
	return resp, nil
}
