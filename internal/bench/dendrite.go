package bench

import (
	"context"
	"errors"
)

// DendriteReport compares bridged throughput with what Dendrite accepts
// from a plain client in the same run.
type DendriteReport struct{}

// RunDendrite measures against the real Dendrite and the Twilio simulator.
func RunDendrite(ctx context.Context, opts Options) (*DendriteReport, error) {
	return nil, errors.New("not implemented yet")
}

// Text formats the report.
func (r *DendriteReport) Text() string { return "" }
