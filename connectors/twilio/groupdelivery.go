package twilio

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"

	conversations "github.com/twilio/twilio-go/rest/conversations/v1"

	"github.com/trestle-bridge/trestle/bridgev2"
	"github.com/trestle-bridge/trestle/bridgev2/database"
	"github.com/trestle-bridge/trestle/bridgev2/networkid"
)

// eventDeliveryUpdated is the Conversations webhook of a text's delivery to
// one participant.
const eventDeliveryUpdated = "onDeliveryUpdated"

// serveGroupDelivery handles onDeliveryUpdated: Twilio's report of one
// phone's copy of a text the bridge sent to a group. The sender learns of
// a phone it did not reach at once, and that the text was delivered once
// every phone has it (the same read receipt from the bot as for a
// one-to-one text), not once per phone: a receipt from a phone's ghost
// would say that person read it. "sent" says nothing new, since a group
// text shows as sent once Twilio took it.
func (cl *Client) serveGroupDelivery(w http.ResponseWriter, r *http.Request, form url.Values, convSID string) {
	msgSID := form.Get("MessageSid")
	if !convMessageSIDPattern.MatchString(msgSID) {
		http.Error(w, "MessageSid is missing or malformed", http.StatusBadRequest)
		return
	}
	state, ok := deliveryState(form.Get("Status"))
	if !ok || state == database.DeliverySent {
		writeAck(w)
		return
	}
	log := cl.log.With().Str("conversation_sid", convSID).Str("message_sid", msgSID).Str("status", form.Get("Status")).Logger()
	ds := &bridgev2.DeliveryStatus{State: state, Code: form.Get("ErrorCode")}
	if ds.Code == "0" {
		ds.Code = ""
	}
	// The message carries the core's send token: a report that overtakes
	// the send's own response waits for it instead of being dropped.
	m, err := cl.rest.fetchConvMessage(r.Context(), convSID, msgSID)
	if err != nil {
		log.Err(err).Msg("Could not read a group text's deliveries; Twilio will see a failed webhook")
		http.Error(w, "could not read the message", http.StatusInternalServerError)
		return
	}
	ds.SendToken = groupSendToken(deref(m.Attributes))
	if state != database.DeliveryFailed && !deliveredToAll(m, state) {
		// Delivered (or read) by this phone: the text is delivered once the
		// message's summary says every phone has it.
		writeAck(w)
		return
	}
	owner, parts, ok := cl.webhookGroupOwner(w, r, log, convSID)
	if !ok {
		return
	}
	if state == database.DeliveryFailed {
		ds.Message = groupFailureSentence(parts, form.Get("ParticipantSid"), ds.Code)
	}
	evt := &bridgev2.RemoteEvent{
		Kind:      bridgev2.RemoteDeliveryStatus,
		Portal:    owner.groupKey(convSID),
		Target:    networkid.MessageID(msgSID),
		Timestamp: owner.conn.now(),
		Status:    ds,
	}
	if _, err := owner.login.Ingest(r.Context(), evt); err != nil {
		log.Err(err).Msg("Could not journal a group delivery report")
		http.Error(w, "could not store the status", http.StatusInternalServerError)
		return
	}
	writeAck(w)
}

// groupAttributes are the attributes of a group message the bridge sends:
// its send token, which Twilio hands back with the message.
func groupAttributes(sendToken string) string {
	b, _ := json.Marshal(map[string]string{sendTokenAttribute: sendToken})
	return string(b)
}

// sendTokenAttribute is the key of the send token in a group message's
// attributes.
const sendTokenAttribute = "trestle_send_token"

// groupSendToken reads the send token from a group message's attributes,
// "" for a message without one.
func groupSendToken(attributes string) string {
	var attrs map[string]any
	if json.Unmarshal([]byte(attributes), &attrs) != nil {
		return ""
	}
	token, _ := attrs[sendTokenAttribute].(string)
	return token
}

// deliveredToAll reports whether the message's delivery summary says every
// phone has reached state (delivered, or read).
func deliveredToAll(m *conversations.ConversationsV1ConversationMessage, state database.Delivery) bool {
	if m == nil || m.Delivery == nil {
		return false
	}
	summary, _ := (*m.Delivery).(map[string]any)
	key := "delivered"
	if state == database.DeliveryRead {
		key = "read"
	}
	return summary[key] == "all"
}

// groupFailureSentence names the phone a group text did not reach, with
// the reason Twilio gave.
func groupFailureSentence(parts []groupParticipant, participantSID, code string) string {
	who := "one of the group's phones"
	for _, p := range parts {
		if p.SID == participantSID && p.Address != "" {
			who = formatNumber(p.Address)
		}
	}
	return "Not delivered to " + who + ". " + deliveryFailureSentence(code, "")
}

// fetchConvMessage reads one message of a Conversation, with its delivery
// summary.
func (r *restClient) fetchConvMessage(ctx context.Context, convSID, sid string) (*conversations.ConversationsV1ConversationMessage, error) {
	var out *conversations.ConversationsV1ConversationMessage
	err := r.conv(ctx, "fetch conversation message", idempotent, func(api *conversations.ApiService) error {
		var err error
		out, err = api.FetchConversationMessage(convSID, sid)
		return err
	})
	return out, err
}

// checkGroupDeliveries learns whether Twilio reports the delivery of group
// texts to the bridge: only then does a group text wait for "delivered"
// before the bot's receipt shows it (otherwise "sent" is all the sender
// gets). The account's Conversations webhook must ask for
// onDeliveryUpdated; one that points at this bridge but was set before the
// bridge asked for that event is brought up to date, once per account.
func (c *Client) checkGroupDeliveries(ctx context.Context) {
	creds := c.bgRest.creds
	hook, _, err := c.conn.groupHooks.get(accountKey(creds.AccountSID, creds.User+":"+creds.Pass), c.conn.now, sharedFetchTTL, func() (groupHook, error) {
		hook, err := c.bgRest.conversationsWebhook(ctx)
		if err != nil && groupCatchUpFatal(err) {
			return hook, err
		} else if err != nil {
			// Refused (an account or key without Conversations): no group
			// texts come, which its other logins need not ask again.
			return groupHook{}, nil
		}
		if slices.Contains(hook.filters, eventDeliveryUpdated) || !c.conn.isGroupHook(hook.url) {
			return hook, nil
		}
		if err := c.bgRest.setConversationsWebhook(ctx, hook.url); err != nil {
			return groupHook{}, err
		}
		c.log.Info().Msg("The account's Conversations webhook now reports the delivery of group texts")
		return groupHook{url: hook.url, filters: conversationEvents}, nil
	})
	if err != nil {
		c.log.Warn().Err(err).Msg("Could not read the account's Conversations webhook; group texts show as sent, not delivered")
	}
	c.groupDeliveries.Store(err == nil && slices.Contains(hook.filters, eventDeliveryUpdated))
}

// isGroupHook reports whether u is one of this bridge's Conversations
// webhook paths.
func (c *Connector) isGroupHook(u string) bool {
	rest, ok := strings.CutPrefix(u, c.bridge.NetworkPublicURL("/"))
	return ok && strings.HasSuffix(rest, "/conversations")
}
