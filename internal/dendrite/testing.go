package dendrite

import (
	"testing"
)

// StartForTest starts a Dendrite for t with its data in t.TempDir() (unless
// opts.DataDir is set) and stops it when the test ends, printing the end of
// Dendrite's log if the test failed. It skips the test under -short, since the
// first run builds Dendrite for a few minutes.
func StartForTest(t testing.TB, opts Options) *Server {
	t.Helper()
	if testing.Short() {
		t.Skip("skipping: needs a Dendrite homeserver, which -short leaves out")
	}
	if opts.DataDir == "" {
		opts.DataDir = t.TempDir()
	}
	srv, err := Start(t.Context(), opts)
	if err != nil {
		t.Fatalf("starting Dendrite: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("Dendrite log (%s), last lines:\n%s", srv.LogPath, srv.LogTail(60))
		}
		srv.Stop()
	})
	return srv
}
