package bridgemain

import (
	"context"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/rs/zerolog"

	"github.com/trestle-bridge/trestle/bridgev2"
)

// routes are what the bridge serves on its one listener besides the
// appservice API and provisioning: the connector's webhooks, public media
// URLs for the remote network, and health probes.
func routes(mux *http.ServeMux, br *bridgev2.Bridge) {
	if provider, ok := br.Network.(bridgev2.HTTPHandlerProvider); ok {
		mux.Handle(br.NetworkPathPrefix(), provider.HTTPHandler())
	}
	mux.Handle(bridgev2.MediaPathPrefix, br.MediaHandler())
	mux.HandleFunc("GET /_trestle/health", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}`))
	})
	mux.HandleFunc("GET /_trestle/ready", func(w http.ResponseWriter, r *http.Request) { ready(w, r, br) })
	mux.HandleFunc("GET /_trestle/leader", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if !br.Leading() {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"leader":false}`))
			return
		}
		_, _ = w.Write([]byte(`{"leader":true}`))
	})
}

// leaderOnly answers requests only the leader can serve (the provisioning
// API keeps login processes in memory) with 503 on a standby.
func leaderOnly(br *bridgev2.Bridge, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !br.Leading() {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Retry-After", "5")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"errcode":"M_UNKNOWN","error":"This bridge process is a standby; send provisioning requests to the leader (GET /_trestle/leader answers 200 there)."}`))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// ready answers a load balancer's readiness probe: 200 while the database
// and the homeserver answer and the bridge is not shutting down.
func ready(w http.ResponseWriter, r *http.Request, br *bridgev2.Bridge) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	w.Header().Set("Content-Type", "application/json")
	if br.Stopping() {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"status":"stopping"}`))
		return
	}
	if err := br.Ready(ctx); err != nil {
		br.Log.Warn().Err(err).Msg("Readiness check failed")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"status":"unavailable"}`))
		return
	}
	_, _ = w.Write([]byte(`{"status":"ready"}`))
}

// recoverPanics turns a panic in a request handler into a 500 and a log
// line with the stack, so one malformed request cannot crash the bridge.
// It wraps the whole listener once.
func recoverPanics(log zerolog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if rec := recover(); rec != nil {
				if rec == http.ErrAbortHandler {
					panic(rec)
				}
				log.Error().Any("panic", rec).Str("path", r.URL.Path).Str("stack", string(debug.Stack())).
					Msg("Recovered from a panic in an HTTP handler")
				http.Error(w, "internal error", http.StatusInternalServerError)
			}
		}()
		next.ServeHTTP(w, r)
	})
}
