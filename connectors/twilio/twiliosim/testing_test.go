package twiliosim

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestNotLinkedIntoProductionBinaries keeps the simulator, which signs
// webhooks with any token it is handed, out of the binaries people run.
func TestNotLinkedIntoProductionBinaries(t *testing.T) {
	const self = "github.com/trestle-bridge/trestle/connectors/twilio/twiliosim"
	for _, bin := range []string{"cmd/trestle-twilio", "cmd/trestle-webhookchat"} {
		out, err := exec.Command("go", "list", "-deps", "github.com/trestle-bridge/trestle/"+bin).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", bin, err, out)
		}
		deps := strings.Fields(string(out))
		if !slices.Contains(deps, "github.com/trestle-bridge/trestle/bridgev2") {
			t.Fatalf("go list -deps %s does not list the core; the check is broken:\n%s", bin, out)
		}
		if slices.Contains(deps, self) {
			t.Errorf("%s links the Twilio simulator", bin)
		}
	}
}

func TestStartForTestWithOptions(t *testing.T) {
	clock := NewManualClock(time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC))
	sim, acct := StartForTestWith(t, Options{Now: clock.Now}, ourNumber, ourNumber2)
	if len(acct.s.accounts[acct.SID()].numbers) != 2 || !strings.HasPrefix(sim.URL(), "http://127.0.0.1:") {
		t.Fatalf("numbers %v, URL %s", acct.s.accounts[acct.SID()].numbers, sim.URL())
	}
	if _, err := acct.AddHistory(Message{From: theirNumber, To: ourNumber, Body: "x"}); err != nil {
		t.Fatal(err)
	}
	if got := acct.Messages()[0].DateCreated; !got.Equal(clock.Now()) {
		t.Fatalf("date %v, want the manual clock's %v", got, clock.Now())
	}
}
