package twilio

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/trestle-bridge/trestle/bridgev2/networkid"
	"github.com/trestle-bridge/trestle/connectors/twilio/twiliosim"
)

// A bridge restarting with many numbers of one account checks the account
// once, not once per number, keeps its start-up calls within a few at a
// time, and still connects and catches up every one.
func TestStartUpChecksAnAccountOnceForAllItsNumbers(t *testing.T) {
	const n = 40
	numbers := make([]string, n)
	for i := range numbers {
		numbers[i] = fmt.Sprintf("+1500555%04d", 1000+i)
	}
	e := newEnv(t, envOptions{numbers: numbers})
	for _, num := range numbers {
		e.login(e.creds(), map[string]string{"phone_number": num})
	}
	// Every call takes a while, as over the Internet: without a bound, all
	// numbers' calls would be in flight at once.
	e.sim.InjectFault(twiliosim.Fault{Kind: twiliosim.FaultDelay, Delay: 20 * time.Millisecond})
	e.sim.ResetAPICalls()
	e.h.Restart()
	for _, num := range numbers {
		ul := e.h.Bridge().GetLogin(networkid.UserLoginID(idFromAddr(num)))
		if ul == nil {
			t.Fatalf("login %s not loaded after the restart", num)
		}
		e.waitCaughtUp(ul, 1)
	}
	calls := e.acct.APICalls()
	var accountChecks, numberChecks, lists int
	for endpoint, count := range calls {
		switch {
		case strings.HasSuffix(endpoint, "/Accounts/{Sid}.json"):
			accountChecks += count
		case strings.HasPrefix(endpoint, "GET ") && strings.Contains(endpoint, "/IncomingPhoneNumbers/"):
			numberChecks += count
		case strings.HasPrefix(endpoint, "GET ") && strings.HasSuffix(endpoint, "/Messages.json"):
			lists += count
		}
	}
	t.Logf("Twilio calls for %d numbers at start-up: %v", n, calls)
	if accountChecks != 1 {
		t.Errorf("the account was checked %d times at start-up, want once", accountChecks)
	}
	if peak := e.sim.PeakConcurrentCalls(); peak > startupConcurrency {
		t.Errorf("%d Twilio calls were in flight at once at start-up, want at most %d", peak, startupConcurrency)
	}
	if numberChecks != n || lists != n {
		t.Errorf("start-up made %d number checks and %d catch-up listings for %d numbers", numberChecks, lists, n)
	}
}
