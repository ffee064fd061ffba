// Package matrix is the bridge's Matrix side: it implements the core's
// bridgev2.Matrix over the client-server API as an application service
// (acting as the bot or any ghost via ?user_id= identity assertion), and
// serves the appservice API the homeserver pushes transactions to.
//
// It relies only on stable spec endpoints, so it works with Synapse, Conduit
// and Dendrite alike (Dendrite advertises only spec v1.2).
package matrix

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/bridgev2"
	"github.com/trestle-bridge/trestle/bridgev2/bridgeconfig"
	"github.com/trestle-bridge/trestle/bridgev2/networkid"
)

// Homeserver implements bridgev2.Matrix.
type Homeserver struct {
	url        *url.URL
	serverName string
	asToken    string
	bot        id.UserID
	cfg        *bridgeconfig.Config
	http       *http.Client
	log        zerolog.Logger
}

var (
	_ bridgev2.Matrix       = (*Homeserver)(nil)
	_ bridgev2.EventFinder  = (*Homeserver)(nil)
	_ bridgev2.MemberLister = (*Homeserver)(nil)
)

// NewHomeserver prepares the client side from the config.
func NewHomeserver(cfg *bridgeconfig.Config, log zerolog.Logger) (*Homeserver, error) {
	hsURL, err := mautrix.ParseAndNormalizeBaseURL(cfg.Homeserver.Address)
	if err != nil {
		return nil, fmt.Errorf("config key homeserver.address: %w", err)
	}
	transport := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 256,
		// Bounds concurrent requests to the homeserver; portal workers queue
		// here instead of opening thousands of connections during a burst.
		MaxConnsPerHost:       128,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
	}
	return &Homeserver{
		url:        hsURL,
		serverName: cfg.Homeserver.Domain,
		asToken:    cfg.AppService.ASToken,
		bot:        cfg.BotUserID(),
		cfg:        cfg,
		http:       &http.Client{Transport: transport, Timeout: 2 * time.Minute},
		log:        log,
	}, nil
}

// client returns a client acting as the given appservice user. Clients are
// cheap structs sharing one connection pool, so none are cached.
func (h *Homeserver) client(as id.UserID) *mautrix.Client {
	return &mautrix.Client{
		HomeserverURL:       h.url,
		UserID:              as,
		AccessToken:         h.asToken,
		UserAgent:           "trestle",
		Client:              h.http,
		Log:                 h.log,
		SetAppServiceUserID: true,
		// The core retries with its own policy (and durable journal), so
		// the client must not sleep on its own.
		DefaultHTTPRetries: 0,
		IgnoreRateLimit:    true,
	}
}

// BotUserID implements bridgev2.Matrix.
func (h *Homeserver) BotUserID() id.UserID { return h.bot }

// ServerName implements bridgev2.Matrix.
func (h *Homeserver) ServerName() string { return h.serverName }

// GhostUserID implements bridgev2.Matrix.
func (h *Homeserver) GhostUserID(user networkid.UserID) id.UserID { return h.cfg.GhostUserID(user) }

// ParseGhostUserID implements bridgev2.Matrix.
func (h *Homeserver) ParseGhostUserID(userID id.UserID) (networkid.UserID, bool) {
	return h.cfg.ParseGhostUserID(userID)
}

// classify turns a client error into the core's terms: retriable when the
// homeserver is unreachable, overloaded or failing; ErrForbidden when the
// user is not allowed (usually: not in the room yet); permanent otherwise.
func classify(what string, err error) error {
	if err == nil {
		return nil
	}
	var httpErr mautrix.HTTPError
	if errors.As(err, &httpErr) && httpErr.Response != nil {
		status := httpErr.Response.StatusCode
		switch {
		case status == http.StatusTooManyRequests || status >= 500:
			return bridgev2.RetriableError("The homeserver is unavailable; retrying.", fmt.Errorf("%s: %w", what, err))
		case errors.Is(err, mautrix.MForbidden):
			return fmt.Errorf("%s: %w: %w", what, bridgev2.ErrForbidden, err)
		default:
			return bridgev2.NewError("The homeserver refused the request.", fmt.Errorf("%s: %w", what, err))
		}
	}
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("%s: %w", what, err)
	}
	// No HTTP response at all: connection refused, timeout, DNS.
	return bridgev2.RetriableError("The homeserver is unreachable; retrying.", fmt.Errorf("%s: %w", what, err))
}

// EnsureRegistered implements bridgev2.Matrix.
func (h *Homeserver) EnsureRegistered(ctx context.Context, userID id.UserID) error {
	localpart, _, err := userID.Parse()
	if err != nil {
		return err
	}
	cli := h.client(userID)
	_, err = cli.MakeRequest(ctx, http.MethodPost, cli.BuildClientURL("v3", "register"), &mautrix.ReqRegister[any]{
		Username:     localpart,
		Type:         mautrix.AuthTypeAppservice,
		InhibitLogin: true,
	}, nil)
	if err != nil && !errors.Is(err, mautrix.MUserInUse) {
		return classify("register "+string(userID), err)
	}
	return nil
}

// SetProfile implements bridgev2.Matrix.
func (h *Homeserver) SetProfile(ctx context.Context, userID id.UserID, displayName string, avatar id.ContentURIString) error {
	cli := h.client(userID)
	if displayName != "" {
		if err := cli.SetDisplayName(ctx, displayName); err != nil {
			return classify("set displayname", err)
		}
	}
	if avatar != "" {
		uri, err := avatar.Parse()
		if err != nil {
			return err
		}
		if err := cli.SetAvatarURL(ctx, uri); err != nil {
			return classify("set avatar", err)
		}
	}
	return nil
}

// CreateRoom implements bridgev2.Matrix.
func (h *Homeserver) CreateRoom(ctx context.Context, as id.UserID, req *mautrix.ReqCreateRoom) (id.RoomID, error) {
	resp, err := h.client(as).CreateRoom(ctx, req)
	if err != nil {
		return "", classify("create room", err)
	}
	return resp.RoomID, nil
}

// JoinRoom implements bridgev2.Matrix.
func (h *Homeserver) JoinRoom(ctx context.Context, as id.UserID, roomID id.RoomID) error {
	_, err := h.client(as).JoinRoomByID(ctx, roomID)
	return classify("join room", err)
}

// InviteUser implements bridgev2.Matrix.
func (h *Homeserver) InviteUser(ctx context.Context, as id.UserID, roomID id.RoomID, target id.UserID) error {
	_, err := h.client(as).InviteUser(ctx, roomID, &mautrix.ReqInviteUser{UserID: target})
	if err != nil {
		var httpErr mautrix.HTTPError
		// Inviting someone who is already in the room is a 403 with a
		// message to that effect; membership is what was wanted.
		if errors.As(err, &httpErr) && httpErr.RespError != nil && containsAny(httpErr.RespError.Err, "already in the room", "already joined", "is already") {
			return nil
		}
	}
	return classify("invite user", err)
}

// LeaveRoom implements bridgev2.Matrix.
func (h *Homeserver) LeaveRoom(ctx context.Context, as id.UserID, roomID id.RoomID) error {
	_, err := h.client(as).LeaveRoom(ctx, roomID)
	return classify("leave room", err)
}

// SendMessage implements bridgev2.Matrix.
func (h *Homeserver) SendMessage(ctx context.Context, as id.UserID, roomID id.RoomID, evtType event.Type, content any, txnID string, ts time.Time) (id.EventID, error) {
	cli := h.client(as)
	req := mautrix.ReqSendEvent{TransactionID: txnID}
	if txnID == "" {
		req.TransactionID = "trestle_" + strconv.FormatInt(time.Now().UnixNano(), 36) + "_" + randomSuffix()
	}
	if !ts.IsZero() {
		req.Timestamp = ts.UnixMilli()
	}
	resp, err := cli.SendMessageEvent(ctx, roomID, evtType, content, req)
	if err != nil {
		return "", classify("send "+evtType.Type, err)
	}
	return resp.EventID, nil
}

// SendState implements bridgev2.Matrix.
func (h *Homeserver) SendState(ctx context.Context, as id.UserID, roomID id.RoomID, evtType event.Type, stateKey string, content any) (id.EventID, error) {
	resp, err := h.client(as).SendStateEvent(ctx, roomID, evtType, stateKey, content)
	if err != nil {
		return "", classify("set state "+evtType.Type, err)
	}
	return resp.EventID, nil
}

// Redact implements bridgev2.Matrix.
func (h *Homeserver) Redact(ctx context.Context, as id.UserID, roomID id.RoomID, target id.EventID, reason, txnID string) (id.EventID, error) {
	resp, err := h.client(as).RedactEvent(ctx, roomID, target, mautrix.ReqRedact{Reason: reason, TxnID: txnID})
	if err != nil {
		return "", classify("redact", err)
	}
	return resp.EventID, nil
}

// MarkRead implements bridgev2.Matrix.
func (h *Homeserver) MarkRead(ctx context.Context, as id.UserID, roomID id.RoomID, eventID id.EventID) error {
	return classify("mark read", h.client(as).MarkRead(ctx, roomID, eventID))
}

// SetTyping implements bridgev2.Matrix.
func (h *Homeserver) SetTyping(ctx context.Context, as id.UserID, roomID id.RoomID, timeout time.Duration) error {
	_, err := h.client(as).UserTyping(ctx, roomID, timeout > 0, timeout)
	return classify("set typing", err)
}

// Upload implements bridgev2.Matrix.
func (h *Homeserver) Upload(ctx context.Context, as id.UserID, data io.Reader, size int64, mimeType, filename string) (id.ContentURIString, error) {
	resp, err := h.client(as).UploadMedia(ctx, mautrix.ReqUploadMedia{
		Content: data, ContentLength: size, ContentType: mimeType, FileName: filename,
	})
	if err != nil {
		return "", classify("upload media", err)
	}
	return resp.ContentURI.CUString(), nil
}

// Download implements bridgev2.Matrix. It uses authenticated media (spec
// v1.11) and falls back to the legacy endpoint for older homeservers.
func (h *Homeserver) Download(ctx context.Context, uri id.ContentURIString) (io.ReadCloser, *bridgev2.MediaInfo, error) {
	parsed, err := uri.Parse()
	if err != nil {
		return nil, nil, err
	}
	cli := h.client(h.bot)
	resp, err := cli.Download(ctx, parsed)
	if err != nil {
		var httpErr mautrix.HTTPError
		if errors.As(err, &httpErr) && (httpErr.IsStatus(http.StatusNotFound) || httpErr.IsStatus(http.StatusMethodNotAllowed)) &&
			(httpErr.RespError == nil || httpErr.RespError.ErrCode == "M_UNRECOGNIZED") {
			resp, err = h.legacyDownload(ctx, cli, parsed)
		}
	}
	if err != nil {
		return nil, nil, classify("download media", err)
	}
	info := &bridgev2.MediaInfo{MimeType: resp.Header.Get("Content-Type"), Size: resp.ContentLength}
	return resp.Body, info, nil
}

func (h *Homeserver) legacyDownload(ctx context.Context, cli *mautrix.Client, uri id.ContentURI) (*http.Response, error) {
	_, resp, err := cli.MakeFullRequestWithResp(ctx, mautrix.FullRequest{
		Method:           http.MethodGet,
		URL:              cli.BuildURL(mautrix.MediaURLPath{"v3", "download", uri.Homeserver, uri.FileID}),
		DontReadResponse: true,
	})
	return resp, err
}

// Ping implements bridgev2.Matrix.
func (h *Homeserver) Ping(ctx context.Context) error {
	_, err := h.client(h.bot).Versions(ctx)
	return classify("ping homeserver", err)
}

// JoinedMembers implements bridgev2.MemberLister, as the bridge bot, which
// is in every portal.
func (h *Homeserver) JoinedMembers(ctx context.Context, roomID id.RoomID) ([]id.UserID, error) {
	resp, err := h.client(h.bot).JoinedMembers(ctx, roomID)
	if err != nil {
		return nil, classify("list room members", err)
	}
	out := make([]id.UserID, 0, len(resp.Joined))
	for u := range resp.Joined {
		out = append(out, u)
	}
	return out, nil
}

// FindSent implements bridgev2.EventFinder: it reads the newest limit
// message events of the room as the bridge bot, which is in every portal.
func (h *Homeserver) FindSent(ctx context.Context, roomID id.RoomID, txnID string, limit int) (id.EventID, error) {
	// In encrypted rooms the marker is on the outside of m.room.encrypted.
	filter := &mautrix.FilterPart{Types: []event.Type{event.EventMessage, event.EventEncrypted}}
	resp, err := h.client(h.bot).Messages(ctx, roomID, "", "", mautrix.DirectionBackward, filter, limit)
	if err != nil {
		return "", classify("read recent events", err)
	}
	for _, evt := range resp.Chunk {
		if marker, ok := evt.Content.Raw[bridgev2.TxnMarkerKey].(string); ok && marker == txnID {
			return evt.ID, nil
		}
	}
	return "", nil
}
