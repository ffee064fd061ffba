package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Latencies matches sends to arrivals by a token and keeps the delays.
type Latencies struct {
	mu      sync.Mutex
	sent    map[string]time.Time
	delays  []time.Duration
	arrived int
	first   time.Time
	last    time.Time
	// done is signalled when arrived reaches want.
	want int
	done chan struct{}
}

// NewLatencies expects want arrivals.
func NewLatencies(want int) *Latencies {
	return &Latencies{sent: make(map[string]time.Time, want), want: want, done: make(chan struct{})}
}

// Sent records when the message with token left.
func (l *Latencies) Sent(token string, at time.Time) {
	l.mu.Lock()
	l.sent[token] = at
	l.mu.Unlock()
}

// Arrived records the arrival of a message with token; unknown tokens
// (status events, notices) are ignored.
func (l *Latencies) Arrived(token string, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	start, ok := l.sent[token]
	if !ok {
		return
	}
	delete(l.sent, token)
	l.delays = append(l.delays, at.Sub(start))
	if l.arrived == 0 {
		l.first = at
	}
	l.last = at
	l.arrived++
	if l.arrived == l.want {
		close(l.done)
	}
}

// Done is closed when every expected message arrived.
func (l *Latencies) Done() <-chan struct{} { return l.done }

// Summary is a measured run.
type Summary struct {
	Count      int
	Duration   time.Duration
	Throughput float64
	P50        time.Duration
	P95        time.Duration
	P99        time.Duration
	Max        time.Duration
}

// Summarize computes throughput over the wall time from start and the
// latency percentiles.
func (l *Latencies) Summarize(start time.Time) Summary {
	l.mu.Lock()
	defer l.mu.Unlock()
	d := append([]time.Duration(nil), l.delays...)
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	pct := func(p float64) time.Duration {
		if len(d) == 0 {
			return 0
		}
		return d[min(len(d)-1, int(float64(len(d))*p))]
	}
	s := Summary{Count: len(d), P50: pct(0.50), P95: pct(0.95), P99: pct(0.99)}
	if len(d) > 0 {
		s.Max = d[len(d)-1]
		s.Duration = l.last.Sub(start)
		s.Throughput = float64(len(d)) / s.Duration.Seconds()
	}
	return s
}

func (s Summary) String() string {
	return fmt.Sprintf("%d messages in %.2fs: %.0f msg/s; latency p50 %s, p95 %s, p99 %s, max %s",
		s.Count, s.Duration.Seconds(), s.Throughput, ms(s.P50), ms(s.P95), ms(s.P99), ms(s.Max))
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d.Microseconds())/1000) }

// ProcStats are a process's CPU time and peak memory, from /proc.
type ProcStats struct {
	CPU     time.Duration
	PeakRSS int64 // bytes
	RSS     int64 // bytes
}

// ReadProcStats reads utime+stime and VmHWM/VmRSS of a Linux process.
func ReadProcStats(pid int) (ProcStats, error) {
	var st ProcStats
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return st, err
	}
	// Fields after the parenthesised command name; utime and stime are the
	// 14th and 15th fields overall.
	s := string(stat)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(fields) < 13 {
		return st, fmt.Errorf("short /proc stat")
	}
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	// Linux reports clock ticks; USER_HZ is 100 on every mainstream build.
	st.CPU = time.Duration(utime+stime) * 10 * time.Millisecond
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return st, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		var kb int64
		if _, err := fmt.Sscanf(line, "VmHWM: %d kB", &kb); err == nil {
			st.PeakRSS = kb * 1024
		}
		if _, err := fmt.Sscanf(line, "VmRSS: %d kB", &kb); err == nil {
			st.RSS = kb * 1024
		}
	}
	return st, nil
}

// Text formats the report for humans and BENCHMARKS.md.
func (r *Report) Text() string {
	var sb strings.Builder
	if r.Encrypted {
		sb.WriteString("encrypted portals (end-to-bridge encryption)\n")
	}
	fmt.Fprintf(&sb, "portal creation (first text from each number): %s\n", r.PortalCreation)
	if r.Inbound.Count > 0 {
		fmt.Fprintf(&sb, "inbound (webhook -> homeserver): %s; bridge CPU %s per 1,000; %.2f homeserver events per text\n",
			r.Inbound, r.InboundCPUPer1000, float64(r.InboundEvents)/float64(r.Inbound.Count))
	}
	if r.Outbound.Count > 0 {
		fmt.Fprintf(&sb, "outbound (transaction -> Twilio): %s; bridge CPU %s per 1,000; %.2f homeserver events per text\n",
			r.Outbound, r.OutboundCPUPer1000, float64(r.OutboundEvents)/float64(r.Outbound.Count))
	}
	if r.Encrypted {
		fmt.Fprintf(&sb, "to-device messages (key sharing, both sides, whole run): %d\n", r.ToDevice)
	}
	fmt.Fprintf(&sb, "bridge peak RSS: %.1f MB", float64(r.PeakRSS)/(1<<20))
	return sb.String()
}

// scrapeCounter reads one sample of a Prometheus text exposition, by its
// full name with labels as printed; a series not exported yet reads 0.
func scrapeCounter(ctx context.Context, url, series string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(body), "\n") {
		if value, ok := strings.CutPrefix(line, series+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(value), 64)
		}
	}
	return 0, nil
}
