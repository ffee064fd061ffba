package twilio

import (
	"context"
	"errors"
	"time"

	"github.com/trestle-bridge/trestle/bridgev2"
	"github.com/trestle-bridge/trestle/bridgev2/database"
)

// whatsappWindow is WhatsApp's customer-service window: for this long after
// a contact's last message, a business may write to them freely; after it,
// only with an approved template (Twilio fails other messages with 63016).
const whatsappWindow = 24 * time.Hour

// inboundChatInfo is the chat info carried by a message from k at a time.
// For WhatsApp, the topic says until when free-form replies are possible, so
// the user knows before typing; a later message moves it.
func (c *Client) inboundChatInfo(ctx context.Context, k contact, at time.Time) *bridgev2.ChatInfo {
	info := c.chatInfo(ctx, k)
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

// noWindowTopic is the WhatsApp portal topic while the contact has never
// written: the chat can only start with a template.
const noWindowTopic = "WhatsApp. The contact has not written to this WhatsApp sender yet, so WhatsApp accepts only approved templates until they do."

// windowTopicNow is the WhatsApp portal topic as the stored messages say,
// for a chat the user opens.
func (c *Client) windowTopicNow(ctx context.Context, k contact) (string, error) {
	last, err := c.conn.bridge.DB.Messages.GetLastFrom(ctx, c.portalKey(k), k.userID())
	if errors.Is(err, database.ErrNotFound) {
		return noWindowTopic, nil
	} else if err != nil {
		return "", bridgev2.RetriableError("Could not read when the contact last wrote.", err)
	}
	return windowTopic(last.Timestamp.Add(whatsappWindow)), nil
}

// checkWindow refuses a free-form WhatsApp message outside the 24-hour
// window, with a sentence, instead of sending it to fail with 63016. The
// window is known from the newest message of the contact in the portal,
// which the core stores durably.
func (c *Client) checkWindow(ctx context.Context, k contact) error {
	last, err := c.conn.bridge.DB.Messages.GetLastFrom(ctx, c.portalKey(k), k.userID())
	if errors.Is(err, database.ErrNotFound) {
		return bridgev2.NewError(formatNumber(k.addr)+" has not written to this WhatsApp sender within 24 hours, so WhatsApp accepts only an approved template. "+c.templateHint(), nil)
	} else if err != nil {
		return bridgev2.RetriableError("Could not read when the contact last wrote.", err)
	}
	closes := last.Timestamp.Add(whatsappWindow)
	if c.conn.now().Before(closes) {
		return nil
	}
	return bridgev2.NewError("WhatsApp's 24-hour window with "+formatNumber(k.addr)+" closed on "+closes.UTC().Format("Mon 2 Jan 15:04 MST")+
		", so WhatsApp accepts only an approved template until they write again. "+c.templateHint(), nil)
}

// templateHint tells how to send a template instead.
func (c *Client) templateHint() string {
	return "List the templates with `" + c.conn.bridge.Config.Bridge.CommandPrefix + " templates`, then send one here with `" + templateCommand + " <SID> value | value`."
}
