package twilio

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/trestle-bridge/trestle/bridgev2"
	"github.com/trestle-bridge/trestle/bridgev2/database"
	"github.com/trestle-bridge/trestle/bridgev2/networkid"
)

// noSendToken stands in the status callback path of a send that had no
// send token, so the path keeps its shape.
const noSendToken = "-"

// statusCallbackURL is where Twilio reports the statuses of one send; the
// path carries the core's send token, so a report that overtakes the
// send's own response can still be matched.
func (c *Client) statusCallbackURL(sendToken string) string {
	if sendToken == "" {
		sendToken = noSendToken
	}
	return c.conn.bridge.NetworkPublicURL("/" + string(c.loginID) + "/status/" + url.PathEscape(sendToken))
}

// deliveryState maps a MessageStatus to a delivery state; ok is false for
// statuses that report nothing new to the sender (queued, accepted,
// sending, scheduled, and unknown ones).
func deliveryState(status string) (state database.Delivery, ok bool) {
	switch status {
	case "sent":
		return database.DeliverySent, true
	case "delivered":
		return database.DeliveryDelivered, true
	case "read":
		return database.DeliveryRead, true
	case "undelivered", "failed", "canceled":
		return database.DeliveryFailed, true
	default:
		return "", false
	}
}

// serveStatus forwards a status callback to the core, which ranks reports,
// so out-of-order callbacks need no care here.
func (cl *Client) serveStatus(w http.ResponseWriter, r *http.Request, form url.Values, token string) {
	sid := form.Get("MessageSid")
	if !messageSIDPattern.MatchString(sid) {
		http.Error(w, "MessageSid is missing or malformed", http.StatusBadRequest)
		return
	}
	status := form.Get("MessageStatus")
	if status == "" {
		status = form.Get("SmsStatus")
	}
	log := cl.log.With().Str("message_sid", sid).Str("status", status).Logger()
	state, ok := deliveryState(status)
	if !ok {
		log.Debug().Msg("Ignored an intermediate message status")
		writeAck(w)
		return
	}
	to, err := parseStatusRecipient(form.Get("To"))
	if err != nil {
		http.Error(w, "To is not an E.164 phone number or WhatsApp address", http.StatusBadRequest)
		return
	}
	if token == noSendToken {
		token = ""
	}
	ds := &bridgev2.DeliveryStatus{State: state, Code: form.Get("ErrorCode"), SendToken: token}
	if state == database.DeliveryFailed {
		if status == "canceled" {
			ds.Message = "The message was canceled before it was sent."
		} else {
			ds.Message = deliveryFailureSentence(ds.Code, form.Get("ErrorMessage"))
		}
	}
	if state == database.DeliveryDelivered || state == database.DeliveryRead {
		ds.Message = cl.channelNote(to, form.Get("ChannelPrefix"))
	}
	evt := &bridgev2.RemoteEvent{
		Kind:      bridgev2.RemoteDeliveryStatus,
		Portal:    cl.portalKey(to),
		Sender:    bridgev2.EventSender{Sender: to.userID()},
		Target:    networkid.MessageID(sid),
		Timestamp: cl.conn.now(),
		Status:    ds,
	}
	if _, err := cl.login.Ingest(r.Context(), evt); err != nil {
		log.Err(err).Msg("Could not journal a status callback")
		http.Error(w, "could not store the status", http.StatusInternalServerError)
		return
	}
	if state == database.DeliveryRead {
		if err := cl.ingestRead(r.Context(), to, sid); err != nil {
			log.Err(err).Msg("Could not journal a read receipt")
			http.Error(w, "could not store the read receipt", http.StatusInternalServerError)
			return
		}
	}
	log.Debug().Msg("Status callback journalled")
	writeAck(w)
}

// writeAck answers a webhook Twilio only needs a 2xx for.
func writeAck(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, emptyTwiML)
}

// parseStatusRecipient reads the To of a status callback: a number, a
// WhatsApp address, or "rcs:+E164" for a text that went over RCS, which
// belongs to the SMS chat with the number.
func parseStatusRecipient(s string) (contact, error) {
	if rest, ok := strings.CutPrefix(s, rcsPrefix); ok {
		e164, err := parseTwilioNumber(rest)
		return contact{addr: e164}, err
	}
	return parseTwilioAddress(s)
}

// parseLoggedSender reads the From of a logged inbound text: what
// parseStatusRecipient accepts, a short code or an alphanumeric sender ID.
func parseLoggedSender(s string) (contact, error) {
	if strings.HasPrefix(s, rcsPrefix) {
		return parseStatusRecipient(s)
	}
	return parseSenderAddress(s)
}

// channelNote says which channel a delivered text took, for the sender's
// message status: with a Messaging Service, Twilio sends over RCS where
// the contact's phone has it and falls back to SMS otherwise. It is empty
// where there is no choice.
func (cl *Client) channelNote(to contact, channelPrefix string) string {
	switch {
	case channelPrefix == "rcs":
		return "Sent over RCS."
	case to.whatsapp || cl.serviceSID == "":
		return ""
	default:
		return "Sent over SMS."
	}
}

// ingestRead journals a read status as a read receipt from the contact's
// ghost. WhatsApp and RCS report reads; SMS never does.
func (cl *Client) ingestRead(ctx context.Context, to contact, sid string) error {
	_, err := cl.login.Ingest(ctx, &bridgev2.RemoteEvent{
		Kind:      bridgev2.RemoteReadReceipt,
		ID:        networkid.MessageID("read-" + sid),
		Portal:    cl.portalKey(to),
		Sender:    bridgev2.EventSender{Sender: to.userID()},
		Target:    networkid.MessageID(sid),
		Timestamp: cl.conn.now(),
	})
	return err
}
