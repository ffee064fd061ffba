package twiliosim

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	openapi "github.com/twilio/twilio-go/rest/api/v2010"
)

func TestFaultsThroughTwilioGo(t *testing.T) {
	sim, acct := startSim(t, Options{})
	api := accountAPI(t, sim, acct)
	create := func() error {
		_, err := api.CreateMessage((&openapi.CreateMessageParams{}).SetTo(theirNumber).SetFrom(ourNumber).SetBody("x"))
		return err
	}
	messages := "/2010-04-01/Accounts/*/Messages.json"

	t.Run("429 for the next two creates, then success", func(t *testing.T) {
		h := sim.InjectFault(Fault{Kind: FaultRateLimit, Method: http.MethodPost, Path: messages, Times: 2, RetryAfter: 1500 * time.Millisecond})
		defer h.Remove()
		restError(t, create(), http.StatusTooManyRequests, CodeTooManyRequests)
		// A GET does not match the rule.
		if _, err := api.ListMessage(nil); err != nil {
			t.Fatalf("GET hit a POST fault: %v", err)
		}
		resp := rawPost(t, sim, messagesURI(acct.SID()), acct, "To=%2B15551230001&From=%2B15005550006&Body=x")
		if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "2" {
			t.Fatalf("second: %d Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
		}
		if err := create(); err != nil {
			t.Fatalf("third create: %v", err)
		}
		if h.Hits() != 2 {
			t.Fatalf("hits = %d", h.Hits())
		}
	})
	t.Run("500 until removed", func(t *testing.T) {
		h := sim.InjectFault(Fault{Kind: FaultServerError, Path: messages})
		for range 3 {
			restError(t, create(), http.StatusInternalServerError, CodeInternalError)
		}
		h.Remove()
		if err := create(); err != nil {
			t.Fatalf("after Remove: %v", err)
		}
	})
	t.Run("503", func(t *testing.T) {
		sim.InjectFault(Fault{Kind: FaultUnavailable, Times: 1})
		restError(t, create(), http.StatusServiceUnavailable, CodeServiceUnavailable)
	})
	t.Run("bad credentials", func(t *testing.T) {
		sim.InjectFault(Fault{Kind: FaultBadCredentials, Times: 1})
		_, err := api.FetchAccount(acct.SID())
		restError(t, err, http.StatusUnauthorized, CodeAuthenticate)
	})
	t.Run("account scoped", func(t *testing.T) {
		other, _ := sim.AddAccount("", "")
		sim.InjectFault(Fault{Kind: FaultServerError, Account: other.SID()})
		defer sim.ClearFaults()
		if _, err := api.ListMessage(nil); err != nil {
			t.Fatalf("unfaulted account: %v", err)
		}
		_, err := accountAPI(t, sim, other).ListMessage(nil)
		restError(t, err, http.StatusInternalServerError, CodeInternalError)
	})
	t.Run("delay then normal answer", func(t *testing.T) {
		sim.InjectFault(Fault{Kind: FaultDelay, Delay: 50 * time.Millisecond, Times: 1})
		start := time.Now()
		if _, err := api.FetchAccount(acct.SID()); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d < 50*time.Millisecond {
			t.Fatalf("answered after %v", d)
		}
	})
}

func TestHangRespectsCancellation(t *testing.T) {
	sim, acct := startSim(t, Options{})
	h := sim.InjectFault(Fault{Kind: FaultHang, Path: "/2010-04-01/Accounts/*/Messages.json"})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, sim.URL()+messagesURI(acct.SID()), nil)
		req.SetBasicAuth(acct.SID(), acct.AuthToken())
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	// Wait until the request is being held, then give up on it.
	if err := h.WaitHits(testCtx(t), 1); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("hung request ended with %v", err)
	}
	// A hang held at Close must not block Close (t.Cleanup calls it).
	h2 := sim.InjectFault(Fault{Kind: FaultHang})
	go func() {
		resp, err := http.Get(sim.URL() + "/anything")
		if err == nil {
			resp.Body.Close()
		}
	}()
	if err := h2.WaitHits(testCtx(t), 1); err != nil {
		t.Fatal(err)
	}
}

func TestOutages(t *testing.T) {
	sim, acct := startSim(t, Options{})
	api := accountAPI(t, sim, acct)
	if _, err := api.FetchAccount(acct.SID()); err != nil { // opens a keep-alive connection
		t.Fatal(err)
	}

	if err := sim.SetOutage(OutageRefuse); err != nil {
		t.Fatal(err)
	}
	_, err := api.FetchAccount(acct.SID())
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("during refuse outage: %v", err)
	}
	if err := sim.SetOutage(OutageUnavailable); err != nil {
		t.Fatal(err)
	}
	_, err = api.FetchAccount(acct.SID())
	restError(t, err, http.StatusServiceUnavailable, CodeServiceUnavailable)
	if err := sim.SetOutage(OutageNone); err != nil {
		t.Fatal(err)
	}
	if _, err := api.FetchAccount(acct.SID()); err != nil {
		t.Fatalf("after outage: %v", err)
	}
	// And back from a refusal straight to service.
	if err := sim.SetOutage(OutageRefuse); err != nil {
		t.Fatal(err)
	}
	if err := sim.SetOutage(OutageNone); err != nil {
		t.Fatal(err)
	}
	if _, err := api.FetchAccount(acct.SID()); err != nil {
		t.Fatalf("after refuse outage: %v", err)
	}
}

func TestStartBindsLoopbackOnly(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0", "192.0.2.1:0", "example.com:0", "nonsense"} {
		sim := New(Options{Addr: addr})
		err := sim.Start()
		sim.Close()
		if err == nil {
			t.Fatalf("Start on %q succeeded", addr)
		}
	}
	sim := New(Options{Addr: "localhost:0"})
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	if !strings.HasPrefix(sim.URL(), "http://127.0.0.1:") {
		t.Fatalf("URL = %s", sim.URL())
	}
}

func rawPost(t *testing.T, sim *Server, path string, acct *Account, body string) *http.Response {
	t.Helper()
	return rawRequest(t, sim, http.MethodPost, path, acct, body)
}

// rawRequest sends a form-encoded request as acct without twilio-go.
func rawRequest(t *testing.T, sim *Server, method, path string, acct *Account, body string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(method, sim.URL()+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(acct.SID(), acct.AuthToken())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}
