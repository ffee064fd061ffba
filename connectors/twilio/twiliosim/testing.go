package twiliosim

import "testing"

// StartForTest starts a simulator for tb, with one account that owns the
// given numbers (each able to send SMS and MMS), and closes it when tb ends.
func StartForTest(tb testing.TB, numbers ...string) (*Server, *Account) {
	tb.Helper()
	return StartForTestWith(tb, Options{}, numbers...)
}

// StartForTestWith is StartForTest with Options, e.g. a ManualClock's Now
// for tests of the WhatsApp window or of an hour of API calls.
func StartForTestWith(tb testing.TB, opts Options, numbers ...string) (*Server, *Account) {
	tb.Helper()
	sim := New(opts)
	if err := sim.Start(); err != nil {
		tb.Fatalf("starting the Twilio simulator: %v", err)
	}
	tb.Cleanup(sim.Close)
	acct, err := sim.AddAccount("", "")
	if err != nil {
		tb.Fatal(err)
	}
	for _, n := range numbers {
		if _, err := acct.AddNumber(n, Capabilities{SMS: true, MMS: true}); err != nil {
			tb.Fatal(err)
		}
	}
	return sim, acct
}
