package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/trestle-bridge/trestle/connectors/twilio/twiliosim"
)

// inboundText is one text a remote phone sends to the bridge's number.
type inboundText struct {
	SID, Account, From, To, Body string
}

// postInbound posts text to webhookURL as Twilio's signed incoming-message
// webhook, records when it left in lat (keyed by its body) and fails unless
// the bridge answers 200.
func postInbound(ctx context.Context, client *http.Client, webhookURL, authToken string, text inboundText, lat *Latencies) error {
	form := url.Values{
		"MessageSid": {text.SID}, "AccountSid": {text.Account},
		"From": {text.From}, "To": {text.To}, "Body": {text.Body},
		"NumMedia": {"0"}, "ApiVersion": {"2010-04-01"}, "SmsStatus": {"received"},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, webhookURL, strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Twilio-Signature", twiliosim.Signature(authToken, webhookURL, form))
	lat.Sent(text.Body, time.Now())
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("webhook answered %d", resp.StatusCode)
	}
	return nil
}
