package sandbox

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"

	"maunium.net/go/mautrix/id"
)

// web holds the page: plain HTML, CSS and JavaScript, no build step and
// nothing loaded from elsewhere.
//
//go:embed web
var web embed.FS

// pageInfo is the answer of GET /api/info: what the page needs to know once.
type pageInfo struct {
	TwilioNumber string    `json:"twilioNumber"`
	MatrixUser   id.UserID `json:"matrixUser"`
	Homeserver   string    `json:"homeserver"`
	AccountSID   string    `json:"accountSid"`
	// SuggestedPhones are the phones offered before any has texted.
	SuggestedPhones []string `json:"suggestedPhones"`
	MatrixEnabled   bool     `json:"matrixEnabled"`
}

// newPageHandler serves the page and its JSON API. matrix may be nil, for
// tests of the phone side alone; the page then hides the Matrix pane.
func newPageHandler(info pageInfo, phone *phoneSide, matrix *matrixSide) http.Handler {
	mux := http.NewServeMux()
	static, err := fs.Sub(web, "web")
	if err != nil {
		panic(err) // the embedded directory is there at compile time
	}
	mux.Handle("GET /", http.FileServerFS(static))
	info.MatrixEnabled = matrix != nil
	info.SuggestedPhones = SuggestedPhones
	mux.HandleFunc("GET /api/info", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, info)
	})
	phone.routes(mux)
	if matrix != nil {
		matrix.routes(mux)
	}
	return guard(mux)
}

// guard protects the page's API, which acts as the sandbox user, from other
// websites open in the same browser: cross-origin writes are refused, and so
// is any Host but a loopback one, which stops DNS rebinding. It also keeps
// the page itself from loading or running anything but its own files.
func guard(next http.Handler) http.Handler {
	cop := http.NewCrossOriginProtection()
	protected := cop.Handler(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !loopbackHost(r.Host) {
			http.Error(w, "the sandbox answers only to loopback host names", http.StatusMisdirectedRequest)
			return
		}
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		// Media answers replace this with a stricter policy of their own.
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' blob:; media-src 'self' blob:; frame-ancestors 'none'; form-action 'self'")
		protected.ServeHTTP(w, r)
	})
}

// loopbackHost reports whether a Host header names this machine.
func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// DefaultListen is where the page is served unless told otherwise.
const DefaultListen = "127.0.0.1:8088"

// listenLoopback listens on addr, which must be a loopback address, or on
// a free port of the same host when addr's port is taken, so that a second
// sandbox or another program on 8088 does not stop a newcomer. The note
// says when that happened.
func listenLoopback(addr string) (l net.Listener, note string, err error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, "", fmt.Errorf("page address %q: %w", addr, err)
	}
	if host == "localhost" {
		host = "127.0.0.1" // never let name resolution pick another interface
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return nil, "", fmt.Errorf("refusing to serve the page on %q: the sandbox is test equipment and listens on loopback addresses only (such as 127.0.0.1)", addr)
	}
	l, err = net.Listen("tcp", net.JoinHostPort(host, port))
	if errors.Is(err, syscall.EADDRINUSE) && port != "0" {
		l, err = net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err == nil {
			note = fmt.Sprintf("%s is taken, so the page is on port %d instead", net.JoinHostPort(host, port), l.Addr().(*net.TCPAddr).Port)
		}
	}
	if err != nil {
		return nil, "", fmt.Errorf("listening for the page: %w", err)
	}
	return l, note, nil
}

// newHTTPServer returns the page's server. Long polls end when the server's
// base context is cancelled, which Close does before shutting it down.
func newHTTPServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
}
