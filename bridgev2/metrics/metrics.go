// Package metrics exports the bridge's measurements to Prometheus. Metrics
// implements bridgev2.Metrics for the core, including the API errors that
// the Matrix side and connectors report.
// Everything lives on the package's own registry, so nothing leaks in from
// (or out to) other libraries' global collectors.
package metrics

import (
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/trestle-bridge/trestle/bridgev2"
)

// namespace prefixes every metric name.
const namespace = "trestle"

// latencyBuckets span 1 ms (a message bridged straight away) to 60 s (one
// that waited out retries), roughly 2.5x apart.
var latencyBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

const (
	// maxCodesPerSystem caps the distinct error codes counted per system:
	// codes come from remote peers, and an unbounded label would let one
	// misbehaving peer grow the metrics without limit. Later codes are
	// counted as "other".
	maxCodesPerSystem = 100
	// maxLabelLength cuts overlong label values for the same reason.
	maxLabelLength = 64
)

// Metrics holds the bridge's Prometheus collectors. A nil *Metrics is
// valid and records nothing, so optional metrics need no nil checks.
type Metrics struct {
	registry *prometheus.Registry

	received      *prometheus.CounterVec
	bridged       *prometheus.CounterVec
	latency       *prometheus.HistogramVec
	queueDepth    *prometheus.GaugeVec
	activePortals prometheus.Gauge
	activeLogins  prometheus.Gauge
	portalCreated prometheus.Counter
	apiErrors     *prometheus.CounterVec
	outcomes      *prometheus.CounterVec
	leader        prometheus.Gauge

	codesMu sync.Mutex
	codes   map[string]map[string]struct{}
}

var _ bridgev2.Metrics = (*Metrics)(nil)

// New creates the collectors on a fresh registry, with the Go runtime and
// process collectors alongside.
func New() *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "events_received_total",
			Help: "Events journalled for bridging, by direction (inbound: remote to Matrix; outbound: Matrix to remote).",
		}, []string{"direction"}),
		bridged: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "messages_bridged_total",
			Help: "Events that reached a final outcome, by direction and outcome (success, failed).",
		}, []string{"direction", "outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "bridge_latency_seconds",
			Help:    "Time from an event's receipt to its outcome, by direction.",
			Buckets: latencyBuckets,
		}, []string{"direction"}),
		queueDepth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "queue_depth",
			Help: "Events waiting in a stage of the bridge.",
		}, []string{"stage"}),
		activePortals: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "active_portals",
			Help: "Portals loaded in memory.",
		}),
		activeLogins: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "active_logins",
			Help: "Logins loaded and connected.",
		}),
		portalCreated: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "portal_rooms_created_total",
			Help: "Portal rooms created on Matrix.",
		}),
		apiErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "api_errors_total",
			Help: "Errors answered by the homeserver (system matrix) or the remote network's API, by error code.",
		}, []string{"system", "code"}),
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "message_outcomes_shown_total",
			Help: "What the bridge put in rooms to tell senders what became of their messages: receipt (not a room event), status or notice (room events).",
		}, []string{"kind"}),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "leader",
			Help: "1 while this process is the leader that delivers from the journal, 0 while it is a standby that only ingests.",
		}),
		codes: make(map[string]map[string]struct{}),
	}
	m.registry.MustRegister(
		m.received, m.bridged, m.latency, m.queueDepth,
		m.activePortals, m.activeLogins, m.portalCreated, m.apiErrors, m.outcomes, m.leader,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// Registry returns the registry, for callers that add collectors of their
// own.
func (m *Metrics) Registry() *prometheus.Registry { return m.registry }

// Received implements bridgev2.Metrics.
func (m *Metrics) Received(direction string) {
	if m == nil {
		return
	}
	m.received.WithLabelValues(direction).Inc()
}

// Bridged implements bridgev2.Metrics.
func (m *Metrics) Bridged(direction, outcome string, latency time.Duration) {
	if m == nil {
		return
	}
	m.bridged.WithLabelValues(direction, outcome).Inc()
	m.latency.WithLabelValues(direction).Observe(latency.Seconds())
}

// QueueDepth implements bridgev2.Metrics.
func (m *Metrics) QueueDepth(stage string, delta int) {
	if m == nil {
		return
	}
	m.queueDepth.WithLabelValues(stage).Add(float64(delta))
}

// ActivePortals implements bridgev2.Metrics.
func (m *Metrics) ActivePortals(n int) {
	if m == nil {
		return
	}
	m.activePortals.Set(float64(n))
}

// ActiveLogins implements bridgev2.Metrics.
func (m *Metrics) ActiveLogins(n int) {
	if m == nil {
		return
	}
	m.activeLogins.Set(float64(n))
}

// PortalCreated implements bridgev2.Metrics.
func (m *Metrics) PortalCreated() {
	if m == nil {
		return
	}
	m.portalCreated.Inc()
}

// OutcomeShown implements bridgev2.Metrics.
func (m *Metrics) OutcomeShown(kind string) {
	if m == nil {
		return
	}
	m.outcomes.WithLabelValues(kind).Inc()
}

// Leading implements bridgev2.Metrics.
func (m *Metrics) Leading(leading bool) {
	if m == nil {
		return
	}
	if leading {
		m.leader.Set(1)
	} else {
		m.leader.Set(0)
	}
}

// APIError implements bridgev2.Metrics: it counts an error answered by an
// API the bridge calls, with label values kept short and the number of
// distinct codes per system bounded.
func (m *Metrics) APIError(system, code string) {
	if m == nil {
		return
	}
	system, code = cleanLabel(system), cleanLabel(code)
	m.apiErrors.WithLabelValues(system, m.boundCode(system, code)).Inc()
}

// boundCode returns code, or "other" once the system has used up its
// allowance of distinct codes.
func (m *Metrics) boundCode(system, code string) string {
	m.codesMu.Lock()
	defer m.codesMu.Unlock()
	seen := m.codes[system]
	if seen == nil {
		seen = make(map[string]struct{})
		m.codes[system] = seen
	}
	if _, ok := seen[code]; ok {
		return code
	}
	if len(seen) >= maxCodesPerSystem {
		return "other"
	}
	seen[code] = struct{}{}
	return code
}

// cleanLabel keeps label values short, valid UTF-8 (the client library
// panics on anything else) and never empty.
func cleanLabel(s string) string {
	if s == "" {
		return "unknown"
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) > maxLabelLength {
		cut := maxLabelLength
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	return s
}
