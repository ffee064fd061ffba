package twilio

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	openapi "github.com/twilio/twilio-go/rest/api/v2010"
	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/bridgev2"
	"github.com/trestle-bridge/trestle/bridgev2/networkid"
	"github.com/trestle-bridge/trestle/connectors/twilio/twiliosim"
)

// restEnv is a REST client on the simulator without a bridge.
type restEnv struct {
	sim          *twiliosim.Server
	acct         *twiliosim.Account
	conn         *Connector
	rest         *restClient
	badCreds     atomic.Int32
	unreachables atomic.Int32
}

func newRestEnv(t *testing.T, configure func(*Config)) *restEnv {
	t.Helper()
	sim, acct := twiliosim.StartForTest(t, ourNumber)
	conn := New()
	conn.cfg.APIURL = sim.URL()
	conn.cfg.RequestTimeout = 2 * time.Second
	if configure != nil {
		configure(&conn.cfg)
	}
	if err := conn.cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	env := &restEnv{sim: sim, acct: acct, conn: conn}
	env.rest = &restClient{
		conn: conn, creds: restCreds{AccountSID: acct.SID(), User: acct.SID(), Pass: acct.AuthToken()}, log: conn.log,
		onBadCredentials: func(context.Context, *restError) { env.badCreds.Add(1) },
		onUnreachable:    func(*restError) { env.unreachables.Add(1) },
	}
	return env
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func retriable(err error) bool {
	var be *bridgev2.Error
	return errors.As(err, &be) && be.Retriable
}

// classified reads the core's view of a REST failure.
func classified(t *testing.T, err error) *bridgev2.Error {
	t.Helper()
	var be *bridgev2.Error
	if !errors.As(err, &be) {
		t.Fatalf("%v is not a classified *bridgev2.Error", err)
	}
	return be
}

func TestRestRateLimitIsHandedToTheCoreWithItsRetryAfter(t *testing.T) {
	e := newRestEnv(t, nil)
	fault := e.sim.InjectFault(twiliosim.Fault{Kind: twiliosim.FaultRateLimit, Method: http.MethodPost, Times: 1, RetryAfter: 7 * time.Second})
	_, err := e.rest.createMessage(testContext(t), (&openapi.CreateMessageParams{}).SetTo(theirNumber).SetFrom(ourNumber).SetBody("hi"))
	be := classified(t, err)
	if !be.Retriable || be.RetryAfter != 7*time.Second || be.MayHaveSent || !strings.Contains(be.Message, "rate-limiting") {
		t.Fatalf("429 classified as %+v", be)
	}
	if fault.Hits() != 1 || len(e.sim.Outbound()) != 0 {
		t.Fatalf("the connector retried by itself (hits %d) or sent (%d)", fault.Hits(), len(e.sim.Outbound()))
	}
	if e.unreachables.Load() != 0 {
		t.Fatal("a rate limit counted as unreachable")
	}
}

func TestRestServerErrorsAreTemporaryAndUnconfirmedOnlyForCreates(t *testing.T) {
	e := newRestEnv(t, nil)
	fault := e.sim.InjectFault(twiliosim.Fault{Kind: twiliosim.FaultServerError, Path: "/2010-04-01/Accounts/*"})
	_, err := e.rest.fetchAccount(testContext(t))
	if be := classified(t, err); !be.Retriable || be.MayHaveSent || fault.Hits() != 1 || e.unreachables.Load() != 1 {
		t.Fatalf("read after 500: %+v, hits %d, unreachable %d", be, fault.Hits(), e.unreachables.Load())
	}
	fault.Remove()

	// A 500 on a create may have created the message.
	params := (&openapi.CreateMessageParams{}).SetTo(theirNumber).SetFrom(ourNumber).SetBody("hi")
	fault = e.sim.InjectFault(twiliosim.Fault{Kind: twiliosim.FaultServerError, Method: http.MethodPost, Times: 1})
	_, err = e.rest.createMessage(testContext(t), params)
	if be := classified(t, err); !be.Retriable || !be.MayHaveSent || fault.Hits() != 1 {
		t.Fatalf("create after 500: %+v (hits %d)", be, fault.Hits())
	}
	// A 503 proves nothing was created.
	fault = e.sim.InjectFault(twiliosim.Fault{Kind: twiliosim.FaultUnavailable, Method: http.MethodPost, Times: 1})
	_, err = e.rest.createMessage(testContext(t), params)
	if be := classified(t, err); !be.Retriable || be.MayHaveSent || fault.Hits() != 1 {
		t.Fatalf("create after 503: %+v", be)
	}
}

func TestRestNetworkFailures(t *testing.T) {
	e := newRestEnv(t, nil)
	if err := e.sim.SetOutage(twiliosim.OutageRefuse); err != nil {
		t.Fatal(err)
	}
	_, err := e.rest.createMessage(testContext(t), (&openapi.CreateMessageParams{}).SetTo(theirNumber).SetFrom(ourNumber).SetBody("x"))
	if be := classified(t, err); !be.Retriable || be.MayHaveSent || be.Message != "Twilio could not be reached." {
		t.Fatalf("refused connection: %+v", be)
	}
	_ = e.sim.SetOutage(twiliosim.OutageNone)
	// A create that times out is in doubt.
	e.conn.cfg.RequestTimeout = 100 * time.Millisecond
	e.sim.InjectFault(twiliosim.Fault{Kind: twiliosim.FaultHang, Method: http.MethodPost, Times: 1})
	_, err = e.rest.createMessage(testContext(t), (&openapi.CreateMessageParams{}).SetTo(theirNumber).SetFrom(ourNumber).SetBody("x"))
	if be := classified(t, err); !be.Retriable || !be.MayHaveSent {
		t.Fatalf("timeout: %+v", be)
	}
}

func TestRestPermanentErrors(t *testing.T) {
	e := newRestEnv(t, nil)
	e.sim.SetRecipient(theirNumber, twiliosim.RecipientConfig{Behavior: twiliosim.Unsubscribed})
	_, err := e.rest.createMessage(testContext(t), (&openapi.CreateMessageParams{}).SetTo(theirNumber).SetFrom(ourNumber).SetBody("hi"))
	if retriable(err) || bridgev2.HumanMessage(err) != errorSentences[21610] {
		t.Fatalf("unsubscribed: %v", err)
	}
	e.sim.InjectFault(twiliosim.Fault{Kind: twiliosim.FaultBadCredentials, Times: 1})
	_, err = e.rest.fetchAccount(testContext(t))
	if retriable(err) || e.badCreds.Load() != 1 || !isAuthFailure(err) {
		t.Fatalf("bad credentials: %v (%d)", err, e.badCreds.Load())
	}
}

func TestRestEdgeRegionAndPaging(t *testing.T) {
	e := newRestEnv(t, func(c *Config) { c.Edge, c.Region = "dublin", "ie1" })
	for i := range 120 {
		n := fmt.Sprintf("+1500555%04d", i+100)
		if _, err := e.acct.AddNumber(n, twiliosim.Capabilities{SMS: i%2 == 0}); err != nil {
			t.Fatal(err)
		}
	}
	nums, err := e.rest.listSMSNumbers(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(nums) != 61 {
		t.Fatalf("%d SMS numbers, want 61", len(nums))
	}
}

func TestParseRetryAfter(t *testing.T) {
	if d := parseRetryAfter("3"); d != 3*time.Second {
		t.Fatal(d)
	}
	if d := parseRetryAfter(time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)); d < 59*time.Minute {
		t.Fatal(d)
	}
	if parseRetryAfter("soon") != 0 || parseRetryAfter("-1") != 0 {
		t.Fatal("junk Retry-After")
	}
}

func TestBadCredentialsAndOutageChangeLoginState(t *testing.T) {
	e := newEnv(t, envOptions{})
	ul := e.login()
	e.waitState(ul, bridgev2.StateConnected)

	// Twilio goes away: a send gives up, the login is reported disconnected,
	// and a text that arrives meanwhile is only in Twilio's log.
	if err := e.sim.SetOutage(twiliosim.OutageUnavailable); err != nil {
		t.Fatal(err)
	}
	e.inbound(theirNumber, "before")
	room := e.portalRoom(theirNumber)
	e.h.SendText(alice, room, "during the outage")
	e.waitState(ul, bridgev2.StateTransientDisconnect)
	if _, err := e.sim.SendInbound(e.ctx(), twiliosim.InboundMessage{From: theirNumber, To: ourNumber, Body: "missed webhook", LogOnly: true}); err != nil {
		t.Fatal(err)
	}
	_ = e.sim.SetOutage(twiliosim.OutageNone)
	e.waitState(ul, bridgev2.StateConnected)
	e.h.WaitForText(room, e.ghost(theirNumber), "missed webhook")
	if _, err := e.sim.WaitOutbound(e.ctx(), func(m []twiliosim.OutboundMessage) bool {
		return len(m) == 1 && m[0].Body == "during the outage"
	}); err != nil {
		t.Fatal(err)
	}

	// The token is revoked: the next call flips the login to BAD_CREDENTIALS.
	e.sim.InjectFault(twiliosim.Fault{Kind: twiliosim.FaultBadCredentials})
	evt := e.h.SendText(alice, room, "after revocation")
	e.waitState(ul, bridgev2.StateBadCredentials)
	if st := ul.State(); st.Error != "twilio-20003" || !strings.Contains(st.Message, "auth token") {
		t.Fatalf("state %+v", st)
	}
	e.h.WaitForStatus(room, evt, "FAIL_PERMANENT")
}

func TestConnectRetriesInTheBackground(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.login()
	e.h.Stop()
	if err := e.sim.SetOutage(twiliosim.OutageRefuse); err != nil {
		t.Fatal(err)
	}
	e.h.Restart()
	ul := e.h.Bridge().GetLogin(ourLoginID)
	e.waitState(ul, bridgev2.StateTransientDisconnect)
	if err := e.sim.SetOutage(twiliosim.OutageNone); err != nil {
		t.Fatal(err)
	}
	e.waitState(ul, bridgev2.StateConnected)
	e.waitCaughtUp(ul, 1)
}

func TestSendRateLimit(t *testing.T) {
	e := newEnv(t, envOptions{network: "max_send_rate: 10\n"})
	room := e.chat()
	start := time.Now()
	for i := range 4 {
		e.h.SendText(alice, room, fmt.Sprintf("burst %d", i))
	}
	e.outbound(4)
	if took := time.Since(start); took < 250*time.Millisecond {
		t.Fatalf("4 sends at 10/s took %v", took)
	}
}

func TestSendRateLimitNeverHoldsBackAnotherSender(t *testing.T) {
	e := newEnv(t, envOptions{network: "max_send_rate: 1\n", numbers: []string{ourNumber, ourNumber2}})
	first := e.login(e.creds(), map[string]string{"phone_number": ourNumber})
	second := e.login(e.creds(), map[string]string{"phone_number": ourNumber2})
	rooms := map[*bridgev2.UserLogin]id.RoomID{}
	for ul, number := range map[*bridgev2.UserLogin]string{first: ourNumber, second: ourNumber2} {
		if _, err := e.sim.SendInbound(e.ctx(), twiliosim.InboundMessage{From: theirNumber, To: number, Body: "hi " + number}); err != nil {
			t.Fatal(err)
		}
		key := networkid.PortalKey{ID: networkid.PortalID(idFromAddr(theirNumber)), Receiver: ul.ID}
		rooms[ul] = e.h.WaitForPortal(key, alice)
		e.h.WaitForText(rooms[ul], e.ghost(theirNumber), "hi "+number)
	}

	// At 1 text/s the first number's burst takes over two seconds; the
	// second number has a limiter of its own and sends at once.
	for i := range 3 {
		e.h.SendText(alice, rooms[first], fmt.Sprintf("burst %d", i))
	}
	e.h.SendText(alice, rooms[second], "from the other number")
	var order []string
	for _, m := range e.outbound(4) {
		order = append(order, m.Body)
	}
	if order[3] == "from the other number" {
		t.Fatalf("the other number's text waited behind the first number's burst: %q", order)
	}
}

func TestResolveIdentifier(t *testing.T) {
	e := newEnv(t, envOptions{})
	cl := twClient(e.login())
	r, err := cl.ResolveIdentifier(e.ctx(), "(415) 555-0101")
	if err != nil || r.UserID != "14155550101" || r.Chat.ID != "14155550101" || r.Chat.Receiver != ourLoginID ||
		*r.UserInfo.Name != "+1 415-555-0101" || !r.ChatInfo.IsDM {
		t.Fatalf("resolved %+v %v", r, err)
	}
	if _, err := cl.ResolveIdentifier(e.ctx(), "pizza"); err == nil || !strings.Contains(bridgev2.HumanMessage(err), "not a valid phone number") {
		t.Fatalf("pizza: %v", err)
	}
	if _, err := cl.ResolveIdentifier(e.ctx(), ourNumber); err == nil {
		t.Fatal("own number resolved")
	}
}
