package twilio

import (
	"context"
	"fmt"
	"mime"
	"path"
	"strings"

	"github.com/twilio/twilio-go/client"
	messagingv1 "github.com/twilio/twilio-go/rest/messaging/v1"
	messagingv2 "github.com/twilio/twilio-go/rest/messaging/v2"

	"github.com/trestle-bridge/trestle/bridgev2"
	"github.com/trestle-bridge/trestle/bridgev2/networkid"
)

// whatsappPrefix starts the Messages API's WhatsApp addresses:
// "whatsapp:+14155550100".
const whatsappPrefix = "whatsapp:"

// rcsPrefix starts the RCS addresses Twilio reports for texts that went out
// over RCS: "rcs:+14155550100".
const rcsPrefix = "rcs:"

// whatsappPortalPrefix starts the portal ID of a WhatsApp chat, so that the
// WhatsApp chat with a person is another portal (and room) than the SMS chat
// with the same number: "wa14155550100" next to "14155550100".
const whatsappPortalPrefix = "wa"

// contact is the other end of a chat: a phone number, reached by SMS/MMS or
// over WhatsApp, or a sender that is not a phone (a short code or an
// alphanumeric sender ID), which only texts in.
type contact struct {
	// addr is the number in E.164, or the short code or sender ID.
	addr string
	// kind says which of these addr is.
	kind senderKind
	// whatsapp is set for the WhatsApp chat with the number.
	whatsapp bool
}

// parseTwilioAddress checks an address Twilio sent (webhook To, list
// entries): an E.164 number, or one with the "whatsapp:" prefix.
func parseTwilioAddress(s string) (contact, error) {
	if rest, ok := strings.CutPrefix(s, whatsappPrefix); ok {
		e164, err := parseTwilioNumber(rest)
		return contact{addr: e164, whatsapp: true}, err
	}
	e164, err := parseTwilioNumber(s)
	return contact{addr: e164}, err
}

// parseSenderAddress checks the From of an inbound text: what
// parseTwilioAddress accepts, a short code or an alphanumeric sender ID.
func parseSenderAddress(s string) (contact, error) {
	if strings.HasPrefix(s, whatsappPrefix) {
		return parseTwilioAddress(s)
	}
	addr, kind, err := parseSender(s)
	return contact{addr: addr, kind: kind}, err
}

// address is the contact as the Messages API writes it.
func (k contact) address() string {
	if k.whatsapp {
		return whatsappPrefix + k.addr
	}
	return k.addr
}

// userID is the contact's ghost: one person on both channels.
func (k contact) userID() networkid.UserID { return userIDFromAddr(k.addr) }

// portalID is the ID of the chat with the contact.
func (k contact) portalID() networkid.PortalID {
	if k.whatsapp {
		return networkid.PortalID(whatsappPortalPrefix + idFromAddr(k.addr))
	}
	return networkid.PortalID(idFromAddr(k.addr))
}

// contactFromPortalID reverses portalID, refusing IDs this connector did not
// make.
func contactFromPortalID(id networkid.PortalID) (contact, error) {
	if rest, ok := strings.CutPrefix(string(id), whatsappPortalPrefix); ok {
		e164, err := e164FromID(rest)
		return contact{addr: e164, whatsapp: true}, err
	}
	addr, kind, err := addrFromID(string(id))
	return contact{addr: addr, kind: kind}, err
}

// ownAddress is the login's sender for a chat with k: its WhatsApp sender
// for WhatsApp chats, its number otherwise. It is empty when the login has
// no WhatsApp sender and k is a WhatsApp contact.
func (c *Client) ownAddress(k contact) string {
	if !k.whatsapp {
		if c.whatsappOnly {
			return ""
		}
		return c.own
	}
	if c.whatsapp == "" {
		return ""
	}
	return whatsappPrefix + c.whatsapp
}

// chatName is the room name of the chat with k: the contact's name, marked
// "(WhatsApp)" for the WhatsApp chat so the user can tell it from the SMS
// chat with the same person.
func (c *Client) chatName(ctx context.Context, k contact) string {
	name := c.conn.cfg.displayName(k.addr)
	// The core keeps the ghosts of active chats in memory, so this is a
	// database read only for a contact it has not met since it started
	// (and that read warms the ghost the text needs anyway).
	if g, err := c.conn.bridge.GetGhost(ctx, k.userID()); err == nil && g.DisplayName() != "" {
		name = g.DisplayName()
	}
	return channelName(name, k)
}

// channelName is a chat name for the contact's name on k's channel.
func channelName(name string, k contact) string {
	if k.whatsapp {
		name += " (WhatsApp)"
	}
	return name
}

// portalContact is the contact of a portal the user sends to; errors are
// sentences for the user.
func (c *Client) portalContact(portal *bridgev2.Portal) (contact, error) {
	k, err := contactFromPortalID(portal.ID)
	if err != nil {
		return k, bridgev2.NewError("This chat is not with a phone number.", err)
	}
	if why := replyRefusal(k.addr, k.kind); why != "" {
		return k, bridgev2.NewError(why, nil)
	}
	if c.ownAddress(k) == "" && !k.whatsapp {
		return k, bridgev2.NewError("This login is a WhatsApp sender without an SMS number; it cannot text.", nil)
	} else if c.ownAddress(k) == "" {
		return k, bridgev2.NewError("This login has no WhatsApp sender any more; log in again with one to reply here.", nil)
	}
	return k, nil
}

// listWhatsAppSenders lists the numbers (E.164) of the account's online
// WhatsApp senders.
func (r *restClient) listWhatsAppSenders(ctx context.Context) ([]string, error) {
	var out []string
	token, page := "", ""
	for range maxListPages {
		var resp *messagingv2.ListChannelsSenderResponse
		err := r.call(ctx, "list WhatsApp senders", idempotent, func(h *client.RequestHandler) error {
			var err error
			resp, err = messagingv2.NewApiService(h).PageChannelsSender((&messagingv2.ListChannelsSenderParams{}).SetChannel("whatsapp").SetPageSize(100), token, page)
			return err
		})
		if err != nil {
			return nil, err
		}
		for _, s := range resp.Senders {
			k, err := parseTwilioAddress(deref(s.SenderId))
			if err != nil || !k.whatsapp || (s.Status != nil && *s.Status != "ONLINE") {
				continue
			}
			out = append(out, k.addr)
		}
		var ok bool
		if token, page, ok = nextPage(resp.Meta.NextPageUrl); !ok {
			return out, nil
		}
	}
	return out, nil
}

// whatsappMediaTypes are the types WhatsApp accepts through Twilio, with
// their size limits (Twilio's "Supported file types" for WhatsApp: images
// 5 MB, the rest 16 MB).
var whatsappMediaTypes = map[string]int{
	"image/jpeg": 5 << 20, "image/jpg": 5 << 20, "image/png": 5 << 20,
	"audio/ogg": 16 << 20, "audio/amr": 16 << 20, "audio/3gpp": 16 << 20, "audio/mp4": 16 << 20, "audio/mpeg": 16 << 20,
	"video/mp4": 16 << 20, "video/3gpp": 16 << 20,
	"application/pdf": 16 << 20, "application/msword": 16 << 20,
	"application/vnd.openxmlformats-officedocument.wordprocessingml.document": 16 << 20,
	"application/vnd.ms-excel": 16 << 20,
	"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet":         16 << 20,
	"application/vnd.ms-powerpoint":                                             16 << 20,
	"application/vnd.openxmlformats-officedocument.presentationml.presentation": 16 << 20,
	"text/plain": 16 << 20, "text/vcard": 16 << 20,
}

// outgoingWhatsAppMedia checks a Matrix attachment against WhatsApp's
// limits and returns its MIME type.
func outgoingWhatsAppMedia(mimeType, filename string, size int) (string, error) {
	mt := baseMime(mimeType)
	if mt == "" || mt == "application/octet-stream" {
		if guess := baseMime(mime.TypeByExtension(path.Ext(filename))); guess != "" {
			mt = guess
		}
	}
	limit, ok := whatsappMediaTypes[mt]
	if !ok {
		return "", bridgev2.NewError(fmt.Sprintf("WhatsApp cannot carry %s files; send a JPEG or PNG image, an MP4 video, an OGG, MP3 or AMR audio file, or a PDF or Office document instead.", mtOrUnknown(mt)), nil)
	}
	if size > limit {
		return "", bridgev2.NewError(fmt.Sprintf("The attachment is %.1f MB; WhatsApp allows at most %d MB for this kind of file.", float64(size)/(1<<20), limit>>20), nil)
	}
	return mt, nil
}

// mtOrUnknown names a MIME type in a sentence.
func mtOrUnknown(mt string) string {
	if mt == "" {
		return "untyped"
	}
	return mt
}

// rcsSenders returns the RCS senders ("rcs:<agent>") of the login's
// Messaging Service, where replies over RCS are logged; listed once per
// client, since a service's senders rarely change. A failure to list them
// is logged and retried at the next catch-up.
func (c *Client) rcsSenders(ctx context.Context) []string {
	if c.serviceSID == "" || c.whatsappOnly {
		return nil
	}
	c.rcsMu.Lock()
	defer c.rcsMu.Unlock()
	if c.rcsListed {
		return c.rcs
	}
	var out []string
	token, page := "", ""
	for range maxListPages {
		var resp *messagingv1.ListChannelSenderResponse
		err := c.bgRest.call(ctx, "list the Messaging Service's channel senders", idempotent, func(h *client.RequestHandler) error {
			var err error
			resp, err = messagingv1.NewApiService(h).PageChannelSender(c.serviceSID, (&messagingv1.ListChannelSenderParams{}).SetPageSize(100), token, page)
			return err
		})
		if err != nil {
			// Catch-up of the number and WhatsApp sender must not hang
			// on this: without the list, RCS replies whose webhook failed
			// wait for the next catch-up.
			c.log.Warn().Err(err).Msg("Could not list the Messaging Service's RCS senders")
			return nil
		}
		for _, s := range resp.Senders {
			if addr := deref(s.Sender); strings.HasPrefix(addr, rcsPrefix) {
				out = append(out, addr)
			}
		}
		var ok bool
		if token, page, ok = nextPage(resp.Meta.NextPageUrl); !ok {
			break
		}
	}
	c.rcs, c.rcsListed = out, true
	return out
}
