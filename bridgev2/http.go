package bridgev2

import (
	"context"
	"net/http"
	"runtime/debug"
	"time"
)

// HTTPHandler serves what the bridge exposes besides the appservice API:
// the connector's webhooks, public media URLs for the remote network, and
// health probes. Every request is guarded against panics.
func (b *Bridge) HTTPHandler() http.Handler {
	mux := http.NewServeMux()
	if provider, ok := b.Network.(HTTPHandlerProvider); ok {
		mux.Handle(b.NetworkPathPrefix(), provider.HTTPHandler())
	}
	mux.HandleFunc(mediaPathPrefix, b.serveMedia)
	mux.HandleFunc("GET /_trestle/health", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}`))
	})
	mux.HandleFunc("GET /_trestle/ready", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		w.Header().Set("Content-Type", "application/json")
		if b.Stopping() {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"status":"stopping"}`))
			return
		}
		if err := b.Ready(ctx); err != nil {
			b.Log.Warn().Err(err).Msg("Readiness check failed")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"status":"unavailable"}`))
			return
		}
		_, _ = w.Write([]byte(`{"status":"ready"}`))
	})
	return RecoverHandler(b, mux)
}

// RecoverHandler turns a panic in a request handler into a 500 and a log
// line with the stack, so one malformed request cannot crash the bridge.
func RecoverHandler(b *Bridge, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if rec := recover(); rec != nil {
				if rec == http.ErrAbortHandler {
					panic(rec)
				}
				b.Log.Error().Any("panic", rec).Str("path", r.URL.Path).Str("stack", string(debug.Stack())).
					Msg("Recovered from a panic in an HTTP handler")
				http.Error(w, "internal error", http.StatusInternalServerError)
			}
		}()
		next.ServeHTTP(w, r)
	})
}
