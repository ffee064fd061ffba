// Command twiliosim runs the Twilio simulator (package
// connectors/twilio/twiliosim) on its own, for manual testing of the bridge.
//
// It is test equipment: it listens on loopback addresses only, keeps
// everything in memory and prints the credentials it accepts.
//
//	twiliosim -listen 127.0.0.1:8089 -number +15005550006 -sms-url http://127.0.0.1:29333/twilio/sms
//
// Point the bridge's Twilio client at the printed URL instead of
// https://api.twilio.com. Each line typed on standard input of the form
// "+15551230001 some text" is delivered as an inbound text from that number
// to the first simulated number; with -whatsapp, a line
// "whatsapp:+15551230001 some text" arrives as a WhatsApp message.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/trestle-bridge/trestle/connectors/twilio/twiliosim"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "twiliosim:", err)
		os.Exit(1)
	}
}

// run starts the simulator as the flags in args say, prints how to reach it
// to out, serves until ctx ends, and sends each "FROM BODY" line of in as an
// inbound text.
func run(ctx context.Context, args []string, in io.Reader, out io.Writer) error {
	fs := flag.NewFlagSet("twiliosim", flag.ContinueOnError)
	fs.SetOutput(out)
	listen := fs.String("listen", "127.0.0.1:8089", "loopback `address` to listen on (port 0 picks a free one)")
	accountSID := fs.String("account-sid", "", "account `SID` to create (default: generated)")
	authToken := fs.String("auth-token", "", "auth `token` of the account (default: generated)")
	numbers := fs.String("number", "+15005550006", "comma-separated E.164 `numbers` the account owns (SMS and MMS capable)")
	smsURL := fs.String("sms-url", "", "incoming-message webhook `URL` to set on every number")
	service := fs.Bool("messaging-service", false, "also create a Messaging Service holding the numbers")
	apiKey := fs.Bool("api-key", false, "also create a Main API key and print its SID and secret")
	whatsApp := fs.Bool("whatsapp", false, "also make every number a WhatsApp sender (its webhook is the number's sms_url)")
	if err := fs.Parse(args); err != nil {
		return err
	}

	sim := twiliosim.New(twiliosim.Options{Addr: *listen})
	if err := sim.Start(); err != nil {
		return err
	}
	defer sim.Close()
	acct, err := sim.AddAccount(*accountSID, *authToken)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "twiliosim (test equipment) serving %s\n", sim.URL())
	fmt.Fprintf(out, "account SID  %s\nauth token   %s\n", acct.SID(), acct.AuthToken())

	var owned []string
	for _, n := range strings.Split(*numbers, ",") {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		sid, err := acct.AddNumber(n, twiliosim.Capabilities{SMS: true, MMS: true, Voice: true})
		if err != nil {
			return err
		}
		if *smsURL != "" {
			if err := acct.SetSMSURL(n, *smsURL); err != nil {
				return err
			}
		}
		owned = append(owned, n)
		fmt.Fprintf(out, "number       %s (%s) sms_url=%q\n", n, sid, *smsURL)
		if *whatsApp {
			xe, err := acct.AddWhatsAppSender(n, "twiliosim")
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "whatsapp     whatsapp:%s (%s)\n", n, xe)
		}
	}
	if *service {
		sid, err := acct.AddMessagingService("", owned...)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "service      %s\n", sid)
	}
	if *apiKey {
		key, err := acct.AddAPIKey("", "", twiliosim.APIKeyMain)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "API key      %s secret %s\n", key.SID, key.Secret)
	}
	if len(owned) > 0 {
		fmt.Fprintf(out, "type \"+15551230001 some text\" lines to text %s\n", owned[0])
		go readInbound(ctx, sim, owned[0], in, out)
	}

	<-ctx.Done()
	return nil
}

// readInbound turns "FROM BODY" lines into inbound texts to number.
func readInbound(ctx context.Context, sim *twiliosim.Server, number string, in io.Reader, out io.Writer) {
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		from, body, _ := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		if from == "" {
			continue
		}
		to := number
		if strings.HasPrefix(from, twiliosim.ChannelWhatsApp+":") {
			to = twiliosim.ChannelWhatsApp + ":" + number
		}
		res, err := sim.SendInbound(ctx, twiliosim.InboundMessage{From: from, To: to, Body: body})
		switch {
		case errors.Is(err, twiliosim.ErrNoWebhook):
			fmt.Fprintf(out, "%s logged; no webhook URL to post it to\n", res.MessageSID)
		case err != nil:
			fmt.Fprintf(out, "%s: %v\n", res.MessageSID, err)
		default:
			fmt.Fprintf(out, "%s -> webhook answered %d\n", res.MessageSID, res.Response.StatusCode)
		}
	}
}
