package twiliosim

import (
	"fmt"
	"net"
	"net/http"
	"syscall"
	"time"
)

// userAgent is what Twilio's webhook and callback requests say they are.
const userAgent = "TwilioProxy/1.1"

// newTargetClient returns the HTTP client the simulator uses to reach the
// bridge (webhooks, status callbacks, media fetches). Unless allowExternal is
// set, its dialer refuses every address that is not loopback, checked after
// name resolution, so that no test can make the simulator send traffic off
// the machine. Proxies from the environment are ignored for the same reason.
func newTargetClient(timeout time.Duration, allowExternal bool) *http.Client {
	dialer := &net.Dialer{Timeout: timeout}
	if !allowExternal {
		dialer.Control = func(network, address string, _ syscall.RawConn) error {
			host, _, err := net.SplitHostPort(address)
			if err != nil {
				return fmt.Errorf("twiliosim: target address %q: %w", address, err)
			}
			if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
				return fmt.Errorf("twiliosim: refusing to connect to non-loopback address %s (set Options.AllowNonLoopbackTargets to allow it)", address)
			}
			return nil
		}
	}
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         dialer.DialContext,
			MaxIdleConnsPerHost: 4,
			IdleConnTimeout:     30 * time.Second,
		},
	}
}
