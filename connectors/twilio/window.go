package twilio

import (
	"time"

	"github.com/trestle-bridge/trestle/bridgev2"
)

// whatsappWindow is WhatsApp's customer-service window: for this long after
// a contact's last message, a business may write to them freely; after it,
// only with an approved template (Twilio fails other messages with 63016).
const whatsappWindow = 24 * time.Hour

// inboundChatInfo is the chat info carried by a message from k at a time.
// For WhatsApp, the topic says until when free-form replies are possible, so
// the user knows before typing; a later message moves it.
func (c *Client) inboundChatInfo(k contact, at time.Time) *bridgev2.ChatInfo {
	info := c.chatInfo(k)
	if k.whatsapp {
		topic := windowTopic(at.Add(whatsappWindow))
		info.Topic = &topic
	}
	return info
}

// windowTopic is the WhatsApp portal topic for a window that closes then.
func windowTopic(closes time.Time) string {
	return "WhatsApp. Replies are possible until " + closes.UTC().Format("Mon 2 Jan 15:04 MST") +
		" (24 hours after the contact's last message); after that, WhatsApp accepts only approved templates."
}
