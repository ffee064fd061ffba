package twilio

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/trestle-bridge/trestle/bridgev2"
)

// Twilio's MMS limits for outgoing media.
const (
	maxOutgoingMediaBytes = 5 << 20
	// mediaDownloadTimeout bounds a whole inbound media download, body
	// included, so a stalled CDN cannot hold a portal forever.
	mediaDownloadTimeout = 2 * time.Minute
)

// errMediaHost is wrapped when a media URL points outside Twilio's API.
var errMediaHost = errors.New("media URL host is not a Twilio API host")

// acceptedMediaTypes are the content types Twilio accepts for outgoing MMS
// ("Accepted content types for media"); JPEG, GIF and PNG are also
// resized for the handset, the others are passed through.
var acceptedMediaTypes = map[string]bool{
	"image/jpeg": true, "image/jpg": true, "image/gif": true, "image/png": true, "image/bmp": true,
	"audio/basic": true, "audio/l24": true, "audio/mp4": true, "audio/mpeg": true, "audio/ogg": true,
	"audio/vnd.rn-realaudio": true, "audio/vnd.wave": true, "audio/3gpp": true, "audio/3gpp2": true,
	"audio/ac3": true, "audio/webm": true, "audio/amr-nb": true, "audio/amr": true,
	"video/mpeg": true, "video/mp4": true, "video/quicktime": true, "video/webm": true, "video/3gpp": true,
	"video/3gpp2": true, "video/3gpp-tt": true, "video/h261": true, "video/h263": true,
	"video/h263-1998": true, "video/h263-2000": true, "video/h264": true,
	"text/vcard": true, "text/x-vcard": true, "text/csv": true, "text/rtf": true, "text/richtext": true,
	"text/calendar": true, "text/directory": true,
	"application/pdf": true, "application/vcard": true, "application/vnd.apple.pkpass": true,
}

// fileExtensions are the usual extensions of common MMS types; Go's mime
// table lists ".jfif" first for JPEG, which no one expects.
var fileExtensions = map[string]string{
	"image/jpeg": ".jpg", "image/jpg": ".jpg", "image/png": ".png", "image/gif": ".gif", "image/bmp": ".bmp",
	"image/webp": ".webp", "image/heic": ".heic", "video/mp4": ".mp4", "video/3gpp": ".3gp",
	"video/quicktime": ".mov", "audio/mpeg": ".mp3", "audio/amr": ".amr", "audio/mp4": ".m4a",
	"audio/ogg": ".ogg", "text/vcard": ".vcf", "text/x-vcard": ".vcf", "application/vcard": ".vcf",
	"text/plain": ".txt", "application/pdf": ".pdf", "text/calendar": ".ics",
}

// baseMime strips parameters and lowercases a content type.
func baseMime(ct string) string {
	if mt, _, err := mime.ParseMediaType(ct); err == nil {
		return mt
	}
	ct, _, _ = strings.Cut(ct, ";")
	return strings.ToLower(strings.TrimSpace(ct))
}

// mediaKind is a word for an attachment in texts: "image", "contact card".
func mediaKind(ct string) string {
	mt := baseMime(ct)
	switch {
	case strings.HasPrefix(mt, "image/"):
		return "image"
	case strings.HasPrefix(mt, "video/"):
		return "video"
	case strings.HasPrefix(mt, "audio/"):
		return "audio"
	case strings.Contains(mt, "vcard"):
		return "contact card"
	default:
		return "file"
	}
}

// mediaFilename names the n-th attachment of an MMS, which Twilio delivers
// without a name: "MMS image 1.jpg".
func mediaFilename(ct string, n int) string {
	mt := baseMime(ct)
	ext, ok := fileExtensions[mt]
	if !ok {
		if exts, _ := mime.ExtensionsByType(mt); len(exts) > 0 {
			ext = exts[0]
		} else {
			ext = ".bin"
		}
	}
	return "MMS " + mediaKind(mt) + " " + strconv.Itoa(n) + ext
}

// allowedMediaURL is the SSRF guard of DownloadMedia: media is fetched, with
// the account's credentials, only from Twilio's API hosts over HTTPS
// (api.twilio.com and its edge/region forms) or from network.api_url.
func (c *Connector) allowedMediaURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil {
		return nil, fmt.Errorf("%w: %q", errMediaHost, raw)
	}
	if base := c.cfg.apiBase; base != nil && strings.EqualFold(u.Scheme, base.Scheme) && strings.EqualFold(u.Host, base.Host) {
		return u, nil
	}
	host := strings.ToLower(u.Hostname())
	if u.Scheme == "https" && (u.Port() == "" || u.Port() == "443") && isTwilioAPIHost(host) {
		return u, nil
	}
	return nil, fmt.Errorf("%w: %s", errMediaHost, u.Host)
}

// isTwilioAPIHost accepts api.twilio.com, api.{region}.twilio.com and
// api.{edge}.{region}.twilio.com, and the Media Content Service that
// holds group MMS attachments, mcs.{region}.twilio.com.
func isTwilioAPIHost(host string) bool {
	rest, ok := strings.CutSuffix(host, ".twilio.com")
	if !ok {
		return false
	}
	labels := strings.Split(rest, ".")
	if (labels[0] != "api" && labels[0] != "mcs") || len(labels) > 3 {
		return false
	}
	for _, l := range labels[1:] {
		if !isDNSLabel(l) {
			return false
		}
	}
	return true
}

// DownloadMedia fetches an inbound attachment with the account's
// credentials. The media URL answers with a redirect to a CDN; Go drops the
// Authorization header on redirects to another host, as it should.
func (c *Client) DownloadMedia(ctx context.Context, ref *bridgev2.MediaRef) (io.ReadCloser, *bridgev2.MediaInfo, error) {
	u, err := c.conn.allowedMediaURL(ref.URL)
	if err != nil {
		c.log.Warn().Err(err).Msg("Refused to download media from outside Twilio")
		return nil, nil, bridgev2.NewError("The attachment's URL does not point at Twilio, so the bridge did not fetch it.", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, nil, bridgev2.NewError("The attachment's URL is invalid.", err)
	}
	creds := c.rest.creds
	req.SetBasicAuth(creds.User, creds.Pass)
	hc := &http.Client{
		Transport: &callTransport{base: c.conn.transport, apiBase: c.conn.cfg.apiBase},
		Timeout:   mediaDownloadTimeout,
	}
	resp, err := hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		c.conn.reportAPIError("network")
		return nil, nil, bridgev2.RetriableError("The attachment could not be downloaded from Twilio.", err)
	}
	if resp.StatusCode != http.StatusOK {
		c.conn.reportAPIError("http_" + strconv.Itoa(resp.StatusCode))
	}
	switch {
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests:
		resp.Body.Close()
		return nil, nil, bridgev2.RetriableError(fmt.Sprintf("Twilio could not serve the attachment (HTTP %d).", resp.StatusCode), nil)
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		resp.Body.Close()
		return nil, nil, bridgev2.NewError("The attachment no longer exists on Twilio (it may have been deleted).", nil)
	case resp.StatusCode != http.StatusOK:
		resp.Body.Close()
		return nil, nil, bridgev2.NewError(fmt.Sprintf("Twilio refused the attachment download (HTTP %d).", resp.StatusCode), nil)
	}
	limit := c.conn.mediaLimit()
	if resp.ContentLength > limit {
		resp.Body.Close()
		return nil, nil, bridgev2.NewError(fmt.Sprintf("The attachment is larger than the bridge's limit of %d MB.", limit>>20), bridgev2.ErrMediaTooLarge)
	}
	mimeType := baseMime(resp.Header.Get("Content-Type"))
	if mimeType == "" || mimeType == "application/octet-stream" {
		mimeType = baseMime(ref.MimeType)
	}
	filename := ref.Filename
	if filename == "" {
		filename = path.Base(u.Path)
	}
	info := &bridgev2.MediaInfo{MimeType: mimeType, Filename: filename, Size: resp.ContentLength}
	return &limitedBody{rc: resp.Body, left: limit}, info, nil
}

// mediaLimit is the largest inbound attachment, the bridge's own limit.
func (c *Connector) mediaLimit() int64 {
	if c.bridge != nil && c.bridge.Config != nil && c.bridge.Config.Bridge.MaxMediaSize > 0 {
		return c.bridge.Config.Bridge.MaxMediaSize
	}
	return 100 << 20
}

// limitedBody fails a read that goes past the limit, rather than silently
// truncating the file.
type limitedBody struct {
	rc   io.ReadCloser
	left int64
}

// Read reads on, failing once the limit is passed.
func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		var one [1]byte
		if n, _ := b.rc.Read(one[:]); n > 0 {
			return 0, bridgev2.ErrMediaTooLarge
		}
		return 0, io.EOF
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	return n, err
}

// Close closes the response body.
func (b *limitedBody) Close() error { return b.rc.Close() }

// outgoingMedia checks a Matrix attachment against Twilio's MMS limits and
// returns its MIME type.
func outgoingMedia(mimeType, filename string, size int) (string, error) {
	mt := baseMime(mimeType)
	if mt == "" || mt == "application/octet-stream" {
		if guess := baseMime(mime.TypeByExtension(path.Ext(filename))); guess != "" {
			mt = guess
		}
	}
	if mt == "" {
		return "", bridgev2.NewError("The attachment has no file type, and MMS needs one.", nil)
	}
	if !acceptedMediaTypes[mt] {
		return "", bridgev2.NewError(fmt.Sprintf("MMS cannot carry %s files; send a JPEG, PNG or GIF image, an MP4 video, an MP3 audio file, a PDF or a contact card instead.", mt), nil)
	}
	if size > maxOutgoingMediaBytes {
		return "", bridgev2.NewError(fmt.Sprintf("The attachment is %.1f MB; MMS allows at most 5 MB.", float64(size)/(1<<20)), nil)
	}
	return mt, nil
}
