package metrics

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// scrape fetches /metrics through the handler and returns each sample
// line's value by its series ("name{label="value",...}").
func scrape(t *testing.T, h http.Handler) map[string]string {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, Path, nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("scrape answered %d: %s", rec.Code, rec.Body)
	}
	return parseSamples(t, rec.Body)
}

func parseSamples(t *testing.T, r io.Reader) map[string]string {
	t.Helper()
	samples := map[string]string{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			t.Fatalf("malformed sample line %q", line)
		}
		samples[line[:i]] = line[i+1:]
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return samples
}

func expectSamples(t *testing.T, samples map[string]string, want map[string]string) {
	t.Helper()
	for series, value := range want {
		got, ok := samples[series]
		if !ok {
			t.Errorf("series %s missing", series)
		} else if got != value {
			t.Errorf("series %s = %s, want %s", series, got, value)
		}
	}
}

func TestCoreMetricsAreExported(t *testing.T) {
	m := New()
	m.Received("inbound")
	m.Received("inbound")
	m.Received("outbound")
	m.Bridged("inbound", "success", 3*time.Millisecond)
	m.Bridged("inbound", "success", 2*time.Second)
	m.Bridged("outbound", "failed", 45*time.Second)
	m.QueueDepth("inbound", 3)
	m.QueueDepth("inbound", -1)
	m.QueueDepth("outbound", 1)
	m.ActivePortals(7)
	m.ActiveLogins(2)
	m.ActiveLogins(3)
	m.PortalCreated()
	m.PortalCreated()
	m.APIError("matrix", "M_FORBIDDEN")
	m.APIError("twilio", "20003")
	m.APIError("twilio", "20003")
	m.OutcomeShown("receipt")
	m.OutcomeShown("notice")

	samples := scrape(t, m.Handler())
	expectSamples(t, samples, map[string]string{
		`trestle_events_received_total{direction="inbound"}`:                    "2",
		`trestle_events_received_total{direction="outbound"}`:                   "1",
		`trestle_messages_bridged_total{direction="inbound",outcome="success"}`: "2",
		`trestle_messages_bridged_total{direction="outbound",outcome="failed"}`: "1",
		`trestle_bridge_latency_seconds_bucket{direction="inbound",le="0.001"}`: "0",
		`trestle_bridge_latency_seconds_bucket{direction="inbound",le="0.005"}`: "1",
		`trestle_bridge_latency_seconds_bucket{direction="inbound",le="2.5"}`:   "2",
		`trestle_bridge_latency_seconds_bucket{direction="inbound",le="60"}`:    "2",
		`trestle_bridge_latency_seconds_bucket{direction="inbound",le="+Inf"}`:  "2",
		`trestle_bridge_latency_seconds_count{direction="inbound"}`:             "2",
		`trestle_bridge_latency_seconds_sum{direction="inbound"}`:               "2.003",
		`trestle_bridge_latency_seconds_bucket{direction="outbound",le="30"}`:   "0",
		`trestle_bridge_latency_seconds_bucket{direction="outbound",le="60"}`:   "1",
		`trestle_queue_depth{stage="inbound"}`:                                  "2",
		`trestle_queue_depth{stage="outbound"}`:                                 "1",
		`trestle_active_portals`:                                                "7",
		`trestle_active_logins`:                                                 "3",
		`trestle_portal_rooms_created_total`:                                    "2",
		`trestle_api_errors_total{code="M_FORBIDDEN",system="matrix"}`:          "1",
		`trestle_api_errors_total{code="20003",system="twilio"}`:                "2",
		`trestle_message_outcomes_shown_total{kind="receipt"}`:                  "1",
		`trestle_message_outcomes_shown_total{kind="notice"}`:                   "1",
	})
	// The runtime collectors are there too.
	if _, ok := samples["go_goroutines"]; !ok {
		t.Error("go_goroutines missing")
	}
	// Only what was recorded: no failed-inbound series appeared by itself.
	if _, ok := samples[`trestle_messages_bridged_total{direction="inbound",outcome="failed"}`]; ok {
		t.Error("unexpected series for an outcome never recorded")
	}
}

func TestAPIErrorLabelsAreBounded(t *testing.T) {
	m := New()
	for i := range maxCodesPerSystem + 50 {
		m.APIError("twilio", fmt.Sprint(i))
	}
	m.APIError("twilio", "0") // a known code still counts as itself
	m.APIError("", "")
	m.APIError("matrix", strings.Repeat("é", 100)+"\xff")

	samples := scrape(t, m.Handler())
	twilio := 0
	for series := range samples {
		if strings.HasPrefix(series, `trestle_api_errors_total{`) && strings.Contains(series, `system="twilio"`) {
			twilio++
		}
	}
	if twilio != maxCodesPerSystem+1 {
		t.Errorf("%d twilio series, want %d codes plus other", twilio, maxCodesPerSystem)
	}
	expectSamples(t, samples, map[string]string{
		`trestle_api_errors_total{code="other",system="twilio"}`:                                         "50",
		`trestle_api_errors_total{code="0",system="twilio"}`:                                             "2",
		`trestle_api_errors_total{code="unknown",system="unknown"}`:                                      "1",
		`trestle_api_errors_total{code="` + strings.Repeat("é", maxLabelLength/2) + `",system="matrix"}`: "1",
	})
}

func TestNilMetricsRecordNothing(t *testing.T) {
	var m *Metrics
	m.Received("inbound")
	m.Bridged("inbound", "success", time.Second)
	m.QueueDepth("inbound", 1)
	m.ActivePortals(1)
	m.ActiveLogins(1)
	m.PortalCreated()
	m.APIError("matrix", "M_UNKNOWN")
}

func TestServe(t *testing.T) {
	m := New()
	m.PortalCreated()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, l, m) }()

	resp, err := http.Get("http://" + l.Addr().String() + Path)
	if err != nil {
		t.Fatal(err)
	}
	samples := parseSamples(t, resp.Body)
	_ = resp.Body.Close()
	expectSamples(t, samples, map[string]string{"trestle_portal_rooms_created_total": "1"})
	resp, err = http.Get("http://" + l.Addr().String() + "/other")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("/other answered %d", resp.StatusCode)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve after cancel: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("serve did not stop")
	}
}

func TestServeReportsListenErrors(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// The address is taken.
	err = Serve(context.Background(), l.Addr().String(), New())
	if err == nil || !strings.Contains(err.Error(), "metrics.listen") {
		t.Fatalf("Serve on a taken address: %v", err)
	}
}
