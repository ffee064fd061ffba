package bridgev2

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"image"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	// Decoders for image.DecodeConfig, which reads only the header to get
	// dimensions cheaply.
	_ "image/gif"
	_ "image/jpeg"
	_ "image/png"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// ErrMediaTooLarge is wrapped when media exceeds bridge.max_media_size.
var ErrMediaTooLarge = errors.New("media is too large")

// convertRemotePart builds the Matrix content of one remote message part,
// downloading and re-uploading media. A media item that cannot be fetched
// becomes a notice naming what is missing, so the rest of the message still
// arrives; a retriable fetch failure is retried a few times first.
func (p *Portal) convertRemotePart(ctx context.Context, login *UserLogin, as id.UserID, part *MessagePart, attempt int) (*event.MessageEventContent, error) {
	if part.Media == nil {
		content := &event.MessageEventContent{MsgType: part.Type, Body: part.Text}
		if content.MsgType == "" {
			content.MsgType = event.MsgText
		}
		if part.HTML != "" {
			content.Format, content.FormattedBody = event.FormatHTML, part.HTML
		}
		return content, nil
	}
	content, err := p.Bridge.bridgeMedia(ctx, login, as, part.Media)
	if err != nil {
		if isRetriable(err) && attempt < 4 {
			return nil, err
		}
		p.Log.Warn().Err(err).Str("media", part.Media.MimeType).Msg("Could not bridge an attachment")
		return &event.MessageEventContent{
			MsgType: event.MsgNotice,
			Body:    fmt.Sprintf("⚠️ An attachment could not be bridged (%s): %s", describeMedia(part.Media), HumanMessage(err)),
		}, nil
	}
	if part.Text != "" {
		// A caption travels with the file, as Matrix v1.10 media captions.
		content.FileName = content.Body
		content.Body = part.Text
	}
	return content, nil
}

func describeMedia(ref *MediaRef) string {
	kind := ref.MimeType
	if kind == "" {
		kind = "file"
	}
	if ref.Filename != "" {
		return kind + ", " + ref.Filename
	}
	return kind
}

// bridgeMedia downloads remote media through the login's client and
// uploads it to the homeserver.
func (b *Bridge) bridgeMedia(ctx context.Context, login *UserLogin, as id.UserID, ref *MediaRef) (*event.MessageEventContent, error) {
	dl, ok := login.Client.(MediaDownloader)
	if !ok {
		return nil, NewError("This network cannot download media.", ErrUnsupported)
	}
	body, info, err := dl.DownloadMedia(ctx, ref)
	if err != nil {
		return nil, err
	}
	defer body.Close()
	limit := b.Config.Bridge.MaxMediaSize
	tooLarge := NewError(fmt.Sprintf("The attachment is larger than the bridge's limit of %d MB.", limit>>20), ErrMediaTooLarge)
	data, err := io.ReadAll(io.LimitReader(body, limit+1))
	if errors.Is(err, ErrMediaTooLarge) {
		// The connector's own guard stopped a download that ran past
		// the limit: final, not an interruption to retry.
		return nil, tooLarge
	} else if err != nil {
		return nil, RetriableError("The attachment download was interrupted.", err)
	}
	if int64(len(data)) > limit {
		return nil, tooLarge
	}
	mimeType := firstNonEmpty(info.MimeType, ref.MimeType, http.DetectContentType(data))
	mimeType, _, _ = strings.Cut(mimeType, ";")
	filename := firstNonEmpty(info.Filename, ref.Filename)
	if filename == "" {
		filename = defaultFilename(mimeType)
	}
	mxc, err := b.Matrix.Upload(ctx, as, bytes.NewReader(data), int64(len(data)), mimeType, filename)
	if err != nil {
		return nil, err
	}
	content := &event.MessageEventContent{
		MsgType: msgTypeForMime(mimeType),
		Body:    filename,
		URL:     mxc,
		Info:    &event.FileInfo{MimeType: mimeType, Size: len(data)},
	}
	if content.MsgType == event.MsgImage {
		if cfg, _, err := image.DecodeConfig(bytes.NewReader(data)); err == nil {
			content.Info.Width, content.Info.Height = cfg.Width, cfg.Height
		}
	}
	return content, nil
}

func (b *Bridge) uploadAvatar(ctx context.Context, login *UserLogin, as id.UserID, avatar *Avatar) (id.ContentURIString, error) {
	if avatar.Remove || avatar.Media == nil {
		return "", nil
	}
	if login == nil {
		return "", errors.New("no login to download the avatar with")
	}
	content, err := b.bridgeMedia(ctx, login, as, avatar.Media)
	if err != nil {
		return "", err
	}
	return content.URL, nil
}

func msgTypeForMime(mimeType string) event.MessageType {
	switch {
	case strings.HasPrefix(mimeType, "image/"):
		return event.MsgImage
	case strings.HasPrefix(mimeType, "video/"):
		return event.MsgVideo
	case strings.HasPrefix(mimeType, "audio/"):
		return event.MsgAudio
	default:
		return event.MsgFile
	}
}

// defaultFilename names a file that came without a name after its type,
// e.g. "image.jpeg", so clients that save it get a usable extension.
func defaultFilename(mimeType string) string {
	base, sub, _ := strings.Cut(mimeType, "/")
	if base == "" || base == "application" {
		base = "file"
	}
	ext := ""
	if exts, _ := mime.ExtensionsByType(mimeType); len(exts) > 0 {
		ext = exts[0]
		for _, e := range exts {
			if strings.TrimPrefix(e, ".") == sub {
				ext = e
			}
		}
	}
	return base + ext
}

func firstNonEmpty(values ...string) string {
	for _, v := range values {
		if v != "" {
			return v
		}
	}
	return ""
}

// MediaPathPrefix is where public media URLs are served.
const MediaPathPrefix = "/_trestle/media/"

// PublicMediaURL returns an unguessable URL under appservice.public_address
// at which the remote network can fetch a Matrix file until it expires
// (bridge.media_url_lifetime). The URL carries its own HMAC signature, so
// nothing is stored and nothing but this bridge can mint one.
func (b *Bridge) PublicMediaURL(uri id.ContentURIString, mimeType, filename string) (string, error) {
	parsed, err := uri.Parse()
	if err != nil || parsed.IsEmpty() {
		return "", fmt.Errorf("not a Matrix content URI: %q", uri)
	}
	expiry := time.Now().Add(b.Config.Bridge.MediaURLLifetime).Unix()
	payload := strings.Join([]string{string(uri), strconv.FormatInt(expiry, 10), mimeType}, "\n")
	enc := base64.RawURLEncoding.EncodeToString([]byte(payload))
	name := filename
	if name == "" {
		name = defaultFilename(mimeType)
	}
	return strings.TrimRight(b.Config.AppService.PublicAddress, "/") + MediaPathPrefix +
		enc + "/" + b.signMedia(enc) + "/" + urlPathEscape(name), nil
}

func (b *Bridge) signMedia(payload string) string {
	mac := hmac.New(sha256.New, b.mediaKey)
	mac.Write([]byte(payload))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// MediaHandler serves the files behind PublicMediaURLs, under
// MediaPathPrefix.
func (b *Bridge) MediaHandler() http.Handler { return http.HandlerFunc(b.serveMedia) }

// serveMedia serves a file behind a PublicMediaURL. Anything malformed,
// forged or expired gets a 404 that reveals nothing about why.
func (b *Bridge) serveMedia(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	rest := strings.TrimPrefix(r.URL.Path, MediaPathPrefix)
	parts := strings.SplitN(rest, "/", 3)
	if len(parts) != 3 || !hmac.Equal([]byte(b.signMedia(parts[0])), []byte(parts[1])) {
		http.NotFound(w, r)
		return
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		http.NotFound(w, r)
		return
	}
	fields := strings.SplitN(string(raw), "\n", 3)
	if len(fields) != 3 {
		http.NotFound(w, r)
		return
	}
	expiry, err := strconv.ParseInt(fields[1], 10, 64)
	if err != nil || time.Now().Unix() > expiry {
		http.NotFound(w, r)
		return
	}
	body, info, err := b.Matrix.Download(r.Context(), id.ContentURIString(fields[0]))
	if err != nil {
		b.Log.Warn().Err(err).Msg("Could not fetch Matrix media for a public URL")
		http.Error(w, "media unavailable", http.StatusBadGateway)
		return
	}
	if b.Crypto != nil {
		// A file the user sent in an encrypted room is stored encrypted on
		// the homeserver: the remote network fetches it decrypted.
		decrypted, ok, err := b.Crypto.DecryptMedia(r.Context(), id.ContentURIString(fields[0]), body)
		if err != nil {
			_ = body.Close()
			b.Log.Warn().Err(err).Msg("Could not decrypt Matrix media for a public URL")
			http.Error(w, "media unavailable", http.StatusBadGateway)
			return
		}
		if ok {
			body = decrypted
		}
	}
	defer body.Close()
	mimeType := firstNonEmpty(fields[2], info.MimeType, "application/octet-stream")
	w.Header().Set("Content-Type", mimeType)
	w.Header().Set("Cache-Control", "private, max-age=3600")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if info.Size > 0 {
		w.Header().Set("Content-Length", strconv.FormatInt(info.Size, 10))
	}
	if r.Method == http.MethodHead {
		return
	}
	if _, err := io.Copy(w, io.LimitReader(body, b.Config.Bridge.MaxMediaSize)); err != nil {
		b.Log.Debug().Err(err).Msg("Public media download interrupted")
	}
}

// urlPathEscape makes a filename safe as the last path segment.
func urlPathEscape(s string) string {
	return url.PathEscape(strings.ReplaceAll(s, "/", "_"))
}
