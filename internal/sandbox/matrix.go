package sandbox

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
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

// matrixSide is the sandbox user as a Matrix client sees things: a mautrix
// client logged in as that user inside the sandbox process, with a /sync loop
// recording the rooms, their members and timelines. It joins every room it
// is invited to, as a person would accept the bridge's invites to portals,
// and serves the page's Matrix pane.
type matrixSide struct {
	cli    *mautrix.Client
	me     id.UserID
	bot    id.UserID
	ghosts ghostNames
	notify *notifier

	cancel context.CancelFunc
	done   chan struct{} // closed when the sync loop has returned

	mu      sync.Mutex
	rooms   map[id.RoomID]*roomLog
	syncErr error // the last failed /sync, cleared by the next success
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

// roomLog is what the client knows about one room.
type roomLog struct {
	id       id.RoomID
	name     string
	members  map[id.UserID]*event.MemberEventContent
	timeline []*event.Event
	index    map[id.EventID]int
}

func newMatrixSide(cli *mautrix.Client, bot id.UserID, ghosts ghostNames, n *notifier) *matrixSide {
	return &matrixSide{
		cli:    cli,
		me:     cli.UserID,
		bot:    bot,
		ghosts: ghosts,
		notify: n,
		rooms:  map[id.RoomID]*roomLog{},
	}
}

// start does an initial /sync, so that everything the account could see is
// recorded when it returns, then keeps syncing in the background until stop.
func (m *matrixSide) start(ctx context.Context) error {
	filter, err := json.Marshal(mautrix.Filter{Room: &mautrix.RoomFilter{Timeline: &mautrix.FilterPart{Limit: timelineLimit}}})
	if err != nil {
		return fmt.Errorf("encoding the sync filter: %w", err)
	}
	resp, err := m.cli.FullSyncRequest(ctx, mautrix.ReqSync{FilterID: string(filter)})
	if err != nil {
		return fmt.Errorf("initial /sync of %s: %w", m.me, err)
	}
	m.process(resp)
	m.autoJoin(ctx, resp)
	loopCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	m.cancel, m.done = cancel, make(chan struct{})
	go m.loop(loopCtx, string(filter), resp.NextBatch)
	return nil
}

// stop ends the sync loop and waits for it.
func (m *matrixSide) stop() {
	if m.cancel != nil {
		m.cancel()
		<-m.done
	}
}

// loop syncs until ctx ends, retrying failures with a growing pause: the
// homeserver may be slow or restarting, and the sandbox should outlive that.
func (m *matrixSide) loop(ctx context.Context, filter, since string) {
	defer close(m.done)
	const minBackoff, maxBackoff = 100 * time.Millisecond, 5 * time.Second
	backoff := minBackoff
	for ctx.Err() == nil {
		resp, err := m.cli.FullSyncRequest(ctx, mautrix.ReqSync{
			Timeout:  int(syncTimeout.Milliseconds()),
			Since:    since,
			FilterID: filter,
		})
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			m.mu.Lock()
			m.syncErr = err
			m.mu.Unlock()
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, maxBackoff)
			continue
		}
		backoff = minBackoff
		m.process(resp)
		m.autoJoin(ctx, resp)
		since = resp.NextBatch
	}
}

// process records a /sync response and wakes the page and any waiter.
func (m *matrixSide) process(resp *mautrix.RespSync) {
	m.mu.Lock()
	defer m.notify.bump()
	defer m.mu.Unlock()
	m.syncErr = nil
	for roomID, data := range resp.Rooms.Join {
		r := m.room(roomID)
		for _, evt := range data.State.Events {
			prepare(roomID, evt, event.StateEventType)
			r.setState(evt)
		}
		for _, evt := range data.Timeline.Events {
			prepare(roomID, evt, event.MessageEventType)
			r.append(evt)
		}
	}
	for roomID, data := range resp.Rooms.Leave {
		r := m.room(roomID)
		for _, evt := range data.Timeline.Events {
			prepare(roomID, evt, event.MessageEventType)
			r.append(evt)
		}
		for _, evt := range data.State.Events {
			prepare(roomID, evt, event.StateEventType)
			r.setState(evt)
		}
	}
}

// autoJoin accepts every invite, as the sandbox user would: the bridge
// invites the user to a new portal when a phone texts for the first time.
func (m *matrixSide) autoJoin(ctx context.Context, resp *mautrix.RespSync) {
	for roomID := range resp.Rooms.Invite {
		if _, err := m.cli.JoinRoomByID(ctx, roomID); err != nil && ctx.Err() == nil {
			m.mu.Lock()
			m.syncErr = fmt.Errorf("joining %s: %w", roomID, err)
			m.mu.Unlock()
		}
	}
}

// prepare fills in what /sync leaves implicit: the room ID, the type class
// and the parsed content.
func prepare(roomID id.RoomID, evt *event.Event, class event.TypeClass) {
	evt.RoomID = roomID
	if evt.StateKey != nil {
		class = event.StateEventType
	}
	evt.Type.Class = class
	// Unknown event types stay unparsed; they are not shown anyway.
	_ = evt.Content.ParseRaw(evt.Type)
}

// room returns the log of a room, creating it. The caller holds m.mu.
func (m *matrixSide) room(roomID id.RoomID) *roomLog {
	r, ok := m.rooms[roomID]
	if !ok {
		r = &roomLog{id: roomID, members: map[id.UserID]*event.MemberEventContent{}, index: map[id.EventID]int{}}
		m.rooms[roomID] = r
	}
	return r
}

func (r *roomLog) append(evt *event.Event) {
	if _, dup := r.index[evt.ID]; dup {
		return
	}
	r.index[evt.ID] = len(r.timeline)
	r.timeline = append(r.timeline, evt)
	if evt.StateKey != nil {
		r.setState(evt)
	}
}

func (r *roomLog) setState(evt *event.Event) {
	switch evt.Type {
	case event.StateRoomName:
		r.name = evt.Content.AsRoomName().Name
	case event.StateMember:
		r.members[id.UserID(evt.GetStateKey())] = evt.Content.AsMember()
	}
}

// membership returns a user's membership as last seen. The caller holds m.mu.
func (r *roomLog) membership(user id.UserID) event.Membership {
	if c := r.members[user]; c != nil {
		return c.Membership
	}
	return ""
}

// displayName returns a member's display name, falling back to the
// localpart. The caller holds m.mu.
func (r *roomLog) displayName(user id.UserID) string {
	if c := r.members[user]; c != nil && c.Displayname != "" {
		return c.Displayname
	}
	return user.Localpart()
}

// joined reports whether both users are joined to a room the client knows.
func (m *matrixSide) joined(roomID id.RoomID, users ...id.UserID) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.rooms[roomID]
	if !ok {
		return false
	}
	for _, u := range users {
		if r.membership(u) != event.MembershipJoin {
			return false
		}
	}
	return true
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
	// Kind is "portal" (a chat with a phone), "management" (the DM with the
	// bridge bot) or "other".
	Kind string `json:"kind"`
	// Phone is the E.164 number a portal bridges to.
	Phone    string          `json:"phone,omitempty"`
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
	m.mu.Lock()
	defer m.mu.Unlock()
	st := matrixState{Version: version, User: m.me, Rooms: []matrixRoom{}}
	if m.syncErr != nil {
		st.SyncError = m.syncErr.Error()
	}
	for _, r := range m.rooms {
		if r.membership(m.me) != event.MembershipJoin {
			continue
		}
		st.Rooms = append(st.Rooms, m.render(r))
	}
	slices.SortFunc(st.Rooms, func(a, b matrixRoom) int {
		return cmp.Or(cmp.Compare(b.LastTS, a.LastTS), strings.Compare(string(a.ID), string(b.ID)))
	})
	return st
}

// render turns a room's timeline into messages: edits are applied to their
// targets, redactions blank them, and the bridge's status events become each
// sent message's status. The caller holds m.mu.
func (m *matrixSide) render(r *roomLog) matrixRoom {
	out := matrixRoom{ID: r.id, Name: r.name, Kind: "other", Messages: []matrixMessage{}}
	others := 0
	for user, c := range r.members {
		if user == m.me || (c.Membership != event.MembershipJoin && c.Membership != event.MembershipInvite) {
			continue
		}
		others++
		if phone := m.ghosts.phone(user); phone != "" {
			out.Kind, out.Phone = "portal", phone
		}
	}
	if out.Kind == "other" && others == 1 && r.membership(m.bot) == event.MembershipJoin {
		out.Kind = "management"
	}
	if out.Name == "" {
		switch out.Kind {
		case "management":
			out.Name = r.displayName(m.bot)
		case "portal":
			out.Name = out.Phone
		default:
			out.Name = string(r.id)
		}
	}

	byID := map[id.EventID]int{}
	for _, evt := range r.timeline {
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
				SenderName: r.displayName(evt.Sender),
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
			if msg.Mine && out.Kind == "portal" {
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
