package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Path is where Serve exposes the metrics.
const Path = "/metrics"

// Handler serves the metrics in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{
		// Count scrape failures on the same registry, so they are seen.
		Registry: m.registry,
		// A collector failing must not hide all the other metrics.
		ErrorHandling: promhttp.ContinueOnError,
	})
}

// Serve listens on listen (metrics.listen, e.g. "127.0.0.1:8001") and
// serves m at Path until ctx ends. It returns nil after a clean shutdown
// and an error if it cannot listen or serving fails. It runs apart from
// the appservice listener so that metrics can stay on a private address.
func Serve(ctx context.Context, listen string, m *Metrics) error {
	l, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listen for metrics on %s (metrics.listen): %w", listen, err)
	}
	return serve(ctx, l, m)
}

func serve(ctx context.Context, l net.Listener, m *Metrics) error {
	mux := http.NewServeMux()
	mux.Handle("GET "+Path, m.Handler())
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdownCtx)
	}()
	err := srv.Serve(l)
	if errors.Is(err, http.ErrServerClosed) {
		<-stopped
		return nil
	}
	return fmt.Errorf("serve metrics: %w", err)
}
