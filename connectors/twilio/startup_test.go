package twilio

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/trestle-bridge/trestle/bridgev2"
	"github.com/trestle-bridge/trestle/bridgev2/networkid"
	"github.com/trestle-bridge/trestle/connectors/twilio/twiliosim"
)

// A bridge restarting with many numbers of one account checks the account
// and lists its numbers and its Conversations once, not once per number, keeps its start-up calls within a few at a
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
	var accountChecks, groupLists, numberChecks, numberLists, lists int
	for endpoint, count := range calls {
		switch {
		case endpoint == "GET conversations.twilio.com/v1/Conversations":
			groupLists += count
		case strings.HasSuffix(endpoint, "/Accounts/{Sid}.json"):
			accountChecks += count
		case strings.HasPrefix(endpoint, "GET ") && strings.Contains(endpoint, "/IncomingPhoneNumbers/"):
			numberChecks += count
		case endpoint == "GET api.twilio.com/2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers.json":
			numberLists += count
		case strings.HasPrefix(endpoint, "GET ") && strings.HasSuffix(endpoint, "/Messages.json"):
			lists += count
		}
	}
	t.Logf("Twilio calls for %d numbers at start-up: %v", n, calls)
	if accountChecks != 1 {
		t.Errorf("the account was checked %d times at start-up, want once", accountChecks)
	}
	if groupLists != 1 {
		t.Errorf("the account's Conversations were listed %d times at start-up, want once", groupLists)
	}
	if peak := e.sim.PeakConcurrentCalls(); peak > startupConcurrency {
		t.Errorf("%d Twilio calls were in flight at once at start-up, want at most %d", peak, startupConcurrency)
	}
	if numberChecks != 0 || numberLists != 1 {
		t.Errorf("start-up fetched %d numbers and listed the account's numbers %d times, want one listing for all %d", numberChecks, numberLists, n)
	}
	if lists != n {
		t.Errorf("start-up made %d catch-up listings for %d numbers", lists, n)
	}
}

// A routine catch-up may use the account's list of groups read moments
// ago, and so not see a group a phone started since; a catch-up that looks
// for lost texts (after a failed or missing webhook) lists the groups
// itself and finds it.
func TestACatchUpForLostTextsListsTheGroupsItself(t *testing.T) {
	e := newEnv(t, envOptions{})
	ul := e.login()
	cl := twClient(ul)
	hole := e.sim.BlackHoleWebhooks()
	// The webhook is lost, which the simulator reports as an error.
	_, _ = e.sim.SendGroupText(e.ctx(), twiliosim.GroupText{From: theirNumber, To: ourNumber, Others: []string{theirNumber2}, Body: "in a new group"})
	hole.Remove()
	listings := func() int { return e.acct.APICalls()["GET conversations.twilio.com/v1/Conversations"] }

	e.sim.ResetAPICalls()
	if err := cl.catchUp(e.ctx(), false); err != nil {
		t.Fatal(err)
	}
	if n := listings(); n != 0 {
		t.Fatalf("a routine catch-up just after start-up listed the account's groups %d times, want the shared listing", n)
	}
	if err := cl.catchUp(e.ctx(), true); err != nil {
		t.Fatal(err)
	}
	if n := listings(); n != 1 {
		t.Fatalf("a catch-up for lost texts listed the account's groups %d times, want once", n)
	}
	group, ok := e.acct.FindGroup(ourNumber, theirNumber, theirNumber2)
	if !ok {
		t.Fatal("the group is not on Twilio")
	}
	e.h.WaitForText(e.groupRoom(group.SID), e.ghost(theirNumber), "in a new group")
}

// A number released from the account stops its login with a sentence that
// says so, and the other numbers of the account keep working.
func TestANumberGoneFromTheAccountSaysSo(t *testing.T) {
	e := newEnv(t, envOptions{numbers: []string{ourNumber, ourNumber2}})
	first := e.login(e.creds(), map[string]string{"phone_number": ourNumber})
	second := e.login(e.creds(), map[string]string{"phone_number": ourNumber2})
	if err := e.acct.RemoveNumber(ourNumber2); err != nil {
		t.Fatal(err)
	}
	e.h.Restart()
	second = e.h.Bridge().GetLogin(second.ID)
	e.waitState(second, bridgev2.StateUnknownError)
	if msg := second.State().Message; !strings.Contains(msg, "is no longer a number of this Twilio account") {
		t.Fatalf("the login's state says %q", msg)
	}
	first = e.h.Bridge().GetLogin(first.ID)
	e.waitState(first, bridgev2.StateConnected)
}
