package twilio

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"maunium.net/go/mautrix/event"

	"github.com/trestle-bridge/trestle/bridgev2/bridgeconfig"
	"github.com/trestle-bridge/trestle/connectors/twilio/twiliosim"
)

// freeAddr returns a loopback address with a port that was free a moment
// ago, for listeners whose port cannot be learnt after they start.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// scrape returns the metrics page, or "" while it is not served yet.
func scrape(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body)
}

func TestTwilioAPIErrorsAreCountedByCode(t *testing.T) {
	addr := freeAddr(t)
	e := newEnv(t, envOptions{configure: func(cfg *bridgeconfig.Config) {
		cfg.Metrics.Enabled, cfg.Metrics.Listen = true, addr
	}})
	room := e.chat()
	if page := scrape(t, addr); strings.Contains(page, "trestle_api_errors_total{") {
		t.Fatalf("errors counted before any failed:\n%s", page)
	}
	// Twilio answers the first attempt with a 500 and the core's retry
	// goes through: one error, counted under Twilio's code.
	fault := e.sim.InjectFault(twiliosim.Fault{Kind: twiliosim.FaultServerError, Method: http.MethodPost, Path: "/2010-04-01/Accounts/*/Messages.json", Times: 1})
	e.h.SendMatrix(alice, room, event.EventMessage, &event.MessageEventContent{MsgType: event.MsgText, Body: "are you there?"})
	e.outbound(1)
	if fault.Hits() != 1 {
		t.Fatalf("fault hit %d times", fault.Hits())
	}
	want := `trestle_api_errors_total{code="20500",system="twilio"} 1`
	e.eventually("the error in the metrics", func() bool { return strings.Contains(scrape(t, addr), want) })
}
