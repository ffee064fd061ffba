package bench

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/trestle-bridge/trestle/internal/rig"
)

func TestMain(m *testing.M) {
	code := m.Run()
	rig.CleanupBinary() // the bridge binary the runs built
	os.Exit(code)
}

// TestNullEncryptedRunBridgesBothWays runs the encrypted null mode small:
// every text must come out the other side, which needs the bridge's device
// and the bench user's to have exchanged keys through the null homeserver,
// and each to have decrypted the other's texts.
func TestNullEncryptedRunBridgesBothWays(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	report, err := RunNull(ctx, Options{
		Dir: t.TempDir(), Numbers: 4, Messages: 40, Concurrency: 4, Batch: 5,
		Inbound: true, Outbound: true, Encryption: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if report.Inbound.Count != 40 || report.Outbound.Count != 40 {
		t.Fatalf("bridged %d in and %d out of 40 each", report.Inbound.Count, report.Outbound.Count)
	}
	if report.InboundEvents != 40 {
		t.Errorf("inbound cost %d homeserver events for 40 texts, want one each", report.InboundEvents)
	}
	// At least the Olm warm-up share and a room key each way per portal.
	if least := int64(1 + 2*4); report.ToDevice < least {
		t.Errorf("%d to-device messages, want at least %d", report.ToDevice, least)
	}
}
