package bridgev2

import "time"

// Metrics receives the core's measurements; package bridgev2/metrics
// exports them to Prometheus. Methods must be cheap and non-blocking.
type Metrics interface {
	// Received counts an event journalled in a direction ("inbound" is
	// remote -> Matrix, "outbound" is Matrix -> remote).
	Received(direction string)
	// Bridged records an event's outcome ("success", "failed") and the time
	// from receipt to outcome.
	Bridged(direction, outcome string, latency time.Duration)
	// QueueDepth adjusts the number of events waiting in a stage.
	QueueDepth(stage string, delta int)
	// ActivePortals and ActiveLogins report how many are loaded.
	ActivePortals(n int)
	ActiveLogins(n int)
	// PortalCreated counts a new portal room.
	PortalCreated()
	// OutcomeShown counts what the bridge put in a room to tell a sender
	// what became of a message: "receipt", "status" or "notice".
	OutcomeShown(kind string)
	// Leading reports whether this process leads (delivers).
	Leading(bool)
	// APIError counts an error answered by an API the bridge calls: system
	// names the API ("matrix", or the network's ID such as "twilio"), code
	// is its error code ("M_FORBIDDEN", "20003") or, for failures without
	// one, something like "http_503" or "network".
	APIError(system, code string)
}

type noopMetrics struct{}

func (noopMetrics) Received(string)                       {}
func (noopMetrics) Bridged(string, string, time.Duration) {}
func (noopMetrics) QueueDepth(string, int)                {}
func (noopMetrics) ActivePortals(int)                     {}
func (noopMetrics) ActiveLogins(int)                      {}
func (noopMetrics) PortalCreated()                        {}
func (noopMetrics) OutcomeShown(string)                   {}
func (noopMetrics) Leading(bool)                          {}
func (noopMetrics) APIError(string, string)               {}

// ReportAPIError counts an error that the network's API answered a call
// with, under the network's ID, so that trestle_api_errors_total shows
// what the remote side refuses. code is the network's error code or, for
// failures without one, something like "http_503" or "network". Connectors
// call it once per failed call; it is cheap and never blocks.
func (b *Bridge) ReportAPIError(code string) {
	b.metrics.APIError(b.Network.Info().ID, code)
}
