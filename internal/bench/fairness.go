package bench

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// FairnessReport is what RunFairness measured.
type FairnessReport struct {
	Flood     Summary
	Bystander Summary
}

// Text formats the report.
func (r *FairnessReport) Text() string {
	return fmt.Sprintf("flood into one portal: %s\nbystander portal during the flood: %s", r.Flood, r.Bystander)
}

// RunFairness floods one portal with opts.Messages texts while another
// portal gets one text every 20 ms, and reports the bystander's latency: one
// busy chat must not hold up the others.
func RunFairness(ctx context.Context, opts Options) (*FairnessReport, error) {
	opts.Numbers = 2
	r, bridgeURL, cleanup, err := startNull(ctx, opts)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	// Create both portals first: room creation is not what is measured.
	if _, err := r.inbound(ctx, bridgeURL, 2, "first"); err != nil {
		return nil, err
	}
	flood := NewLatencies(opts.Messages)
	bystanders := (opts.Messages / max(int(opts.Rate), 1000)) * 50
	bystanders = max(bystanders, 100)
	by := NewLatencies(bystanders)
	r.hs.OnMessage = func(body, _, _ string, at time.Time) {
		flood.Arrived(body, at)
		by.Arrived(body, at)
	}
	webhookURL := bridgeURL + "/_trestle/twilio/" + benchLogin + "/incoming"
	send := func(from, token string, n int, lat *Latencies) error {
		return postInbound(ctx, r.client, webhookURL, benchToken, inboundText{
			SID: fmt.Sprintf("SM%s%026d", tagHex(token[:3]), n), Account: benchAccount,
			From: from, To: benchNumber, Body: token,
		}, lat)
	}
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	wg.Add(1)
	go func() {
		defer wg.Done()
		errs <- parallel(ctx, opts.Messages, opts.Concurrency, func(i int) error {
			return send(remoteNumber(0), fmt.Sprintf("flo-%d bench text", i), i, flood)
		})
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := 0; i < bystanders; i++ {
			<-tick.C
			if err := send(remoteNumber(1), fmt.Sprintf("bys-%d bench text", i), i, by); err != nil {
				errs <- err
				return
			}
		}
		errs <- nil
	}()
	wg.Wait()
	for i := 0; i < 2; i++ {
		if err := <-errs; err != nil {
			return nil, err
		}
	}
	floodSummary, err := waitAll(ctx, flood, start)
	if err != nil {
		return nil, err
	}
	bySummary, err := waitAll(ctx, by, start)
	if err != nil {
		return nil, err
	}
	return &FairnessReport{Flood: floodSummary, Bystander: bySummary}, nil
}
