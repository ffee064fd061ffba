package twilio

import (
	"context"
	"slices"
	"strings"

	"github.com/trestle-bridge/trestle/bridgev2"
)

// Values of the OptOutType webhook parameter, which Twilio sets when a
// contact's text is an opt-out, opt-in or help keyword.
const (
	optOutStop  = "STOP"
	optOutStart = "START"
	optOutHelp  = "HELP"
)

// defaultOptOutKeywords are Twilio's default keywords, by OptOutType. The
// message log does not say which kind a text was, so a text recovered from
// it is matched against these; webhooks carry OptOutType, which also covers
// an account's own keywords (Advanced Opt-Out).
var defaultOptOutKeywords = map[string][]string{
	optOutStop:  {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"},
	optOutStart: {"START", "YES", "UNSTOP"},
	optOutHelp:  {"HELP", "INFO"},
}

// optOutFromBody is the OptOutType Twilio gives a text with this body
// under the default keywords, or "".
func optOutFromBody(body string) string {
	word := strings.ToUpper(strings.TrimSpace(body))
	for kind, words := range defaultOptOutKeywords {
		if slices.Contains(words, word) {
			return kind
		}
	}
	return ""
}

// optOutNotice is what the portal says about an opt-out keyword.
func optOutNotice(kind string) string {
	switch kind {
	case optOutStop:
		return "This contact replied STOP; Twilio blocks texts to them until they send START."
	case optOutStart:
		return "This contact sent START: texts to them are delivered again."
	case optOutHelp:
		return "This contact asked for HELP; Twilio answered them with the account's help message."
	}
	return ""
}

// optOutKey is the bridge_kv key of a contact's opt-out from this login's
// sender: the Messaging Service when it sends through one (Twilio keeps
// opt-outs per service), else the number. Opt-outs are an SMS matter:
// WhatsApp chats have none.
func (c *Client) optOutKey(contact string) string {
	scope := c.own
	if c.serviceSID != "" {
		scope = c.serviceSID
	}
	return "twilio:optout:" + c.accountSID + ":" + scope + ":" + contact
}

// recordOptOut stores a STOP (or lifts it on START) before the text that
// said so is journalled, so that a reply after it is refused even if the
// bridge restarts in between.
func (c *Client) recordOptOut(ctx context.Context, kind string, k contact) error {
	if k.whatsapp {
		return nil
	}
	contact := k.addr
	switch kind {
	case optOutStop:
		return c.conn.bridge.DB.KV.Set(ctx, c.optOutKey(contact), optOutStop)
	case optOutStart:
		return c.conn.bridge.DB.KV.Set(ctx, c.optOutKey(contact), "")
	}
	return nil
}

// checkOptOut refuses a text to a contact who replied STOP: Twilio would
// fail it with 21610 after the fact.
func (c *Client) checkOptOut(ctx context.Context, k contact) error {
	if k.whatsapp {
		return nil
	}
	v, err := c.conn.bridge.DB.KV.Get(ctx, c.optOutKey(k.addr))
	if err != nil {
		return bridgev2.RetriableError("The bridge could not read whether this contact opted out.", err)
	}
	if v == optOutStop {
		return bridgev2.NewError(optOutNotice(optOutStop), nil)
	}
	return nil
}

// withOptOutNotice adds the portal's notice about an opt-out keyword to
// the parts of the text that said it.
func withOptOutNotice(parts []bridgev2.MessagePart, kind string) []bridgev2.MessagePart {
	if notice := optOutNotice(kind); notice != "" {
		parts = append(parts, bridgev2.MessagePart{ID: "optout", Type: "m.notice", Text: notice})
	}
	return parts
}
