// Command trestle-bench measures the bridge end to end: throughput,
// latency percentiles, CPU per message and peak memory of the real
// trestle-twilio binary, against null peers (the bridge's own cost) or
// against Dendrite and the Twilio simulator (the ceiling in practice).
//
//	go run ./cmd/trestle-bench -mode null -messages 20000 -numbers 1000 -concurrency 64
//	go run ./cmd/trestle-bench -mode null -rate 1000 -messages 20000      # latency at 1,000 msg/s
//	go run ./cmd/trestle-bench -mode null -encryption -messages 20000     # encrypted portals
//	go run ./cmd/trestle-bench -mode dendrite -messages 2000 -numbers 50
//	go run ./cmd/trestle-bench -mode scale     # 1M portals, 1M ghosts, 10M mappings: start-up and memory
//	go run ./cmd/trestle-bench -mode logins -logins 10000 # start-up with 10,000 logged-in numbers
//	go run ./cmd/trestle-bench -mode fairness -messages 10000  # one flooded portal, another's latency
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/trestle-bridge/trestle/internal/bench"
	"github.com/trestle-bridge/trestle/internal/rig"
)

func main() {
	mode := flag.String("mode", "null", "null (minimal fake homeserver and Twilio), dendrite (real Dendrite and the Twilio simulator) scale (start-up and memory with a big store), logins (start-up with many logins) or fairness (one flooded portal)")
	numbers := flag.Int("numbers", 1000, "remote phone numbers (portals)")
	messages := flag.Int("messages", 20000, "messages per direction")
	concurrency := flag.Int("concurrency", 64, "webhooks in flight at once")
	rateFlag := flag.Float64("rate", 0, "messages per second (0 = as fast as accepted)")
	batch := flag.Int("batch", 50, "events per appservice transaction (outbound)")
	direction := flag.String("direction", "both", "in, out or both")
	dbType := flag.String("db", "sqlite", "sqlite or postgres")
	dbURI := flag.String("db-uri", "", "PostgreSQL URL (with -db postgres)")
	keep := flag.String("dir", "", "directory for config, database and logs (default: a temporary one)")
	portals := flag.Int("portals", 1_000_000, "stored portals (-mode scale)")
	ghosts := flag.Int("ghosts", 1_000_000, "stored ghosts (-mode scale)")
	mappings := flag.Int("mappings", 10_000_000, "stored message mappings (-mode scale)")
	logins := flag.Int("logins", 10_000, "stored logins besides the bench's own (-mode logins)")
	latency := flag.Duration("twilio-latency", 100*time.Millisecond, "how long the null Twilio takes to answer (-mode logins)")
	active := flag.Int("active", 1000, "stored portals made active after start-up (-mode scale)")
	statuses := flag.Bool("status-events", false, "turn on message status events (each is one more homeserver event per message; off in the shipped config)")
	encryption := flag.Bool("encryption", false, "encrypted portals: the bridge encrypts and decrypts, and so does the bench user's own device (-mode null and dendrite)")
	noReceipts := flag.Bool("no-delivery-receipts", false, "turn off the bridge bot's delivery receipts (on in the shipped config)")
	flag.Parse()

	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	defer cancel()
	defer rig.CleanupBinary()
	dir := *keep
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "trestle-bench-"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		defer os.RemoveAll(dir)
	}
	opts := bench.Options{
		Dir: dir, Numbers: *numbers, Messages: *messages, Concurrency: *concurrency, Rate: *rateFlag, Batch: *batch,
		Inbound: *direction != "out", Outbound: *direction != "in", Progress: os.Stderr, StatusEvents: *statuses, NoDeliveryReceipts: *noReceipts,
		Encryption: *encryption,
	}
	if *dbType == "postgres" {
		opts.DatabaseType, opts.DatabaseURI = "postgres", *dbURI
	}
	var err error
	switch *mode {
	case "null":
		var report *bench.Report
		report, err = bench.RunNull(ctx, opts)
		if err == nil {
			fmt.Println(report.Text())
		}
	case "fairness":
		var report *bench.FairnessReport
		report, err = bench.RunFairness(ctx, opts)
		if err == nil {
			fmt.Println(report.Text())
		}
	case "scale":
		var report *bench.ScaleReport
		report, err = bench.RunScale(ctx, bench.ScaleOptions{Options: opts, Portals: *portals, Ghosts: *ghosts, Mappings: *mappings, Active: *active})
		if err == nil {
			fmt.Println(report.Text())
		}
	case "logins":
		var report *bench.LoginsReport
		report, err = bench.RunLogins(ctx, bench.LoginsOptions{Options: opts, Logins: *logins, Latency: *latency})
		if err == nil {
			fmt.Println(report.Text())
		}
	case "dendrite":
		var report *bench.DendriteReport
		report, err = bench.RunDendrite(ctx, opts)
		if err == nil {
			fmt.Println(report.Text())
		}
	default:
		err = fmt.Errorf("unknown -mode %q", *mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}
