package twilio

import (
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
	// WhatsApp and RCS reports name the contact with a channel prefix;
	// the chat is the same number's.
	bareTo := form.Get("To")
	for _, prefix := range []string{"rcs:", "whatsapp:"} {
		bareTo = strings.TrimPrefix(bareTo, prefix)
	}
	to, err := parseTwilioNumber(bareTo)
	if err != nil {
		http.Error(w, "To is not an E.164 phone number", http.StatusBadRequest)
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
	evt := &bridgev2.RemoteEvent{
		Kind:      bridgev2.RemoteDeliveryStatus,
		Portal:    cl.portalKey(to),
		Sender:    bridgev2.EventSender{Sender: userIDFromAddr(to)},
		Target:    networkid.MessageID(sid),
		Timestamp: cl.conn.now(),
		Status:    ds,
	}
	events := []*bridgev2.RemoteEvent{evt}
	if state == database.DeliveryRead {
		// Read (WhatsApp, RCS) is also the contact's read receipt, which
		// Matrix clients show on the message.
		events = append(events, &bridgev2.RemoteEvent{
			Kind:      bridgev2.RemoteReadReceipt,
			ID:        networkid.MessageID(sid),
			Portal:    evt.Portal,
			Sender:    evt.Sender,
			Target:    evt.Target,
			Timestamp: evt.Timestamp,
		})
	}
	for _, evt := range events {
		if _, err := cl.login.Ingest(r.Context(), evt); err != nil {
			log.Err(err).Msg("Could not journal a status callback")
			http.Error(w, "could not store the status", http.StatusInternalServerError)
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
