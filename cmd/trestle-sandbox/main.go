// Command trestle-sandbox runs the whole Twilio bridge on this machine for
// someone without a Twilio account: Dendrite, the trestle-twilio binary and
// the Twilio simulator on loopback, a Matrix user already logged in to the
// bridge with a simulated number, and a web page that plays the phones
// texting that number.
//
//	go run ./cmd/trestle-sandbox                    fresh sandbox, removed at exit
//	go run ./cmd/trestle-sandbox -dir ~/sandbox     keep state across runs
//	go run ./cmd/trestle-sandbox -listen 127.0.0.1:9000
//
// Run it from the Trestle checkout: it builds the bridge from
// ./cmd/trestle-twilio, and Dendrite into the user cache on the first run.
// It is test equipment and listens on loopback addresses only. Ctrl-C stops
// everything it started.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/trestle-bridge/trestle/internal/sandbox"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// After the first Ctrl-C, a second one ends the process at once;
		// the children die with it (they are started with Pdeathsig).
		<-ctx.Done()
		stop()
	}()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "trestle-sandbox:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("trestle-sandbox", flag.ContinueOnError)
	dir := fs.String("dir", "", "keep the sandbox's state (Matrix account and rooms, bridge database, logs) in `directory` across runs; default: a temporary directory removed at exit")
	listen := fs.String("listen", sandbox.DefaultListen, "loopback `address` of the phone page; a free port is used if it is taken")
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		return nil
	} else if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return sandbox.Run(ctx, sandbox.Options{Dir: *dir, Listen: *listen, Out: os.Stdout})
}
