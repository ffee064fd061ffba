package twilio

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	openapi "github.com/twilio/twilio-go/rest/api/v2010"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/format"
	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/bridgev2"
	"github.com/trestle-bridge/trestle/bridgev2/database"
	"github.com/trestle-bridge/trestle/bridgev2/networkid"
)

// outPart is one message to create.
type outPart struct {
	Body string
	// MediaURL is the attachment's public URL on the bridge, which Twilio
	// fetches (DMs).
	MediaURL string
	// Upload is the attachment to upload to Twilio first (groups).
	Upload *uploadMedia
	// ContentSID and ContentVariables send an approved template instead
	// of Body (WhatsApp outside the 24-hour window).
	ContentSID       string
	ContentVariables string
}

// hasMedia reports whether the part carries an attachment.
func (p outPart) hasMedia() bool { return p.MediaURL != "" || p.Upload != nil }

// uploadMedia is a Matrix attachment a group message carries.
type uploadMedia struct {
	MXC      id.ContentURIString
	MimeType string
	Filename string
}

// sendPlan is what a Matrix event becomes on Twilio: one or more messages
// to one number or one group, in order.
type sendPlan struct {
	remote contact // for a DM
	// conversation is the group's Conversation SID, for a group.
	conversation string
	parts        []outPart
	// snippet is stored with every part, for quotes of it later.
	snippet string
}

// smsTextParser renders Matrix HTML as plain SMS text: no markdown markers,
// links as "text (url)", mentions as the display name, lists with bullets.
var smsTextParser = &format.HTMLParser{
	TabsToSpaces:   4,
	Newline:        "\n",
	HorizontalLine: "\n---\n",
	PillConverter:  format.DefaultPillConverter,
	BoldConverter:  func(s string, _ format.Context) string { return s },
	ItalicConverter: func(s string, _ format.Context) string {
		return s
	},
	StrikethroughConverter: func(s string, _ format.Context) string { return s },
	UnderlineConverter:     func(s string, _ format.Context) string { return s },
	MonospaceConverter:     func(s string, _ format.Context) string { return s },
	MonospaceBlockConverter: func(code, _ string, _ format.Context) string {
		return strings.TrimRight(code, "\n")
	},
	SpoilerConverter: func(text, reason string, _ format.Context) string {
		if reason != "" {
			return "[spoiler: " + reason + "] " + text
		}
		return "[spoiler] " + text
	},
	ImageConverter: func(src, alt, title, width, height string, isEmoji bool) string {
		if alt != "" {
			return alt
		}
		return "[image]"
	},
}

// htmlToText converts a Matrix formatted body to SMS text.
func htmlToText(html string) string {
	return strings.TrimSpace(smsTextParser.Parse(html, format.NewContext(context.Background())))
}

// contentText is the plain text of a Matrix message: its formatted body
// rendered when there is one, without a reply fallback.
func contentText(content *event.MessageEventContent) string {
	isReply := content.RelatesTo.GetReplyTo() != ""
	if content.Format == event.FormatHTML && content.FormattedBody != "" {
		html := content.FormattedBody
		if isReply {
			html = event.TrimReplyFallbackHTML(html)
		}
		return htmlToText(html)
	}
	body := content.Body
	if isReply {
		body = event.TrimReplyFallbackText(body)
	}
	return body
}

// replyQuote is the line quoting the message replied to.
func replyQuote(target *database.Message) string {
	if meta, ok := target.Metadata.(*MessageMetadata); ok && meta.Snippet != "" {
		return "> " + meta.Snippet
	}
	return "> (replying to an earlier message)"
}

// targetSnippet describes a message for reaction and edit texts.
func targetSnippet(target *database.Message) string {
	if target != nil {
		if meta, ok := target.Metadata.(*MessageMetadata); ok && meta.Snippet != "" {
			return meta.Snippet
		}
	}
	return ""
}

// planMessage works out the messages a Matrix message becomes. It does no
// I/O except minting the public URL of an attachment, so FindSent can call
// it to know what an interrupted send looked like.
func (c *Client) planMessage(msg *bridgev2.MatrixMessage) (*sendPlan, error) {
	target, err := c.chatTarget(msg.Portal)
	if err != nil {
		return nil, err
	}
	content := msg.Content
	whatsapp := strings.HasPrefix(target, whatsappPrefix)
	if whatsapp && (content.MsgType == event.MsgText || content.MsgType == event.MsgNotice) {
		sid, vars, ok, err := parseTemplateMessage(content.Body)
		if err != nil {
			return nil, err
		}
		if ok {
			remote, _ := parseTwilioAddress(target)
			return &sendPlan{remote: remote, snippet: "[template]", parts: []outPart{{ContentSID: sid, ContentVariables: vars}}}, nil
		}
	}
	relayed := msg.Relay != nil
	var text, mediaURL, snip string
	var upload *uploadMedia
	switch content.MsgType {
	case event.MsgText, event.MsgNotice:
		text = contentText(content)
	case event.MsgEmote:
		text = contentText(content)
		if !relayed {
			// The core already renders relayed emotes as "* Name ...".
			text = "* " + text
		}
	case event.MsgImage, event.MsgVideo, event.MsgAudio, event.MsgFile, "":
		if content.File != nil {
			return nil, bridgev2.UnsupportedError("Encrypted attachments cannot be sent as MMS.")
		}
		if content.URL == "" {
			return nil, bridgev2.UnsupportedError("This kind of message cannot be sent as SMS.")
		}
		mimeType, size := "", 0
		if content.Info != nil {
			mimeType, size = content.Info.MimeType, content.Info.Size
		}
		filename := content.GetFileName()
		check := outgoingMedia
		if whatsapp {
			check = outgoingWhatsAppMedia
		}
		mt, err := check(mimeType, filename, size)
		if err != nil {
			return nil, err
		}
		if isGroupPortal(msg.Portal.ID) {
			upload = &uploadMedia{MXC: content.URL, MimeType: mt, Filename: filename}
		} else if mediaURL, err = c.conn.bridge.PublicMediaURL(content.URL, mt, filename); err != nil {
			return nil, bridgev2.NewError("The attachment's Matrix URL is invalid.", err)
		}
		switch {
		case relayed:
			text = content.Body
		case content.GetCaption() != "":
			if html := content.GetFormattedCaption(); html != "" {
				text = htmlToText(html)
			} else {
				text = content.GetCaption()
			}
		}
		snip = "[" + mediaKind(mt) + "]"
	case event.MsgLocation:
		text = strings.TrimSpace(contentText(content) + " " + geoLink(content.GeoURI))
	default:
		return nil, bridgev2.UnsupportedError(fmt.Sprintf("%s messages cannot be sent as SMS.", content.MsgType))
	}
	if s := snippet(text); s != "" {
		snip = s
	}
	if msg.ReplyTo != nil {
		text = replyQuote(msg.ReplyTo) + "\n" + text
	}
	return c.planText(target, text, outPart{MediaURL: mediaURL, Upload: upload}, snip)
}

// chatTarget is where a portal's texts go: the Conversation SID of a
// group, or the address of a DM's contact ("+E164", "whatsapp:+E164").
func (c *Client) chatTarget(portal *bridgev2.Portal) (string, error) {
	if isGroupPortal(portal.ID) {
		return string(portal.ID), nil
	}
	k, err := c.portalContact(portal)
	if err != nil {
		return "", err
	}
	return k.address(), nil
}

// planText splits a text (with an optional attachment, as in attach, on
// the first part) as network.long_message says, for a chat target (see
// chatTarget).
func (c *Client) planText(target, text string, attach outPart, snip string) (*sendPlan, error) {
	text = strings.TrimSpace(text)
	if n := bodyUnits(text); n > maxBodyUnits && c.conn.cfg.LongMessage == LongMessageRefuse {
		return nil, bridgev2.NewError(fmt.Sprintf("The message is too long for SMS: %d characters, and the limit is %d.", n, maxBodyUnits), nil)
	}
	p := &sendPlan{snippet: snip}
	if conversationSIDPattern.MatchString(target) {
		p.conversation = target
	} else {
		remote, err := parseTwilioAddress(target)
		if err != nil {
			return nil, bridgev2.NewError("This chat is not with a phone number.", err)
		}
		p.remote = remote
	}
	for _, body := range smsBodies(text) {
		p.parts = append(p.parts, outPart{Body: body})
	}
	if attach.hasMedia() {
		if len(p.parts) == 0 {
			p.parts = []outPart{{}}
		}
		p.parts[0].MediaURL, p.parts[0].Upload = attach.MediaURL, attach.Upload
	}
	if len(p.parts) == 0 {
		return nil, bridgev2.NewError("The message is empty.", nil)
	}
	return p, nil
}

// geoLink turns a geo: URI into a map link a phone can open.
func geoLink(geo string) string {
	coords, ok := strings.CutPrefix(geo, "geo:")
	if !ok {
		return geo
	}
	coords, _, _ = strings.Cut(coords, ";")
	return "https://maps.google.com/?q=" + coords
}

// HandleMatrixMessage sends a Matrix message as one or more SMS/MMS.
func (c *Client) HandleMatrixMessage(ctx context.Context, msg *bridgev2.MatrixMessage) (*bridgev2.MatrixMessageResponse, error) {
	plan, err := c.planMessage(msg)
	if err != nil {
		return nil, err
	}
	if err := c.sendPlan(ctx, &msg.Outgoing, plan); err != nil {
		return nil, err
	}
	// Group messages get no status callbacks: once Twilio took them, they
	// are sent.
	return &bridgev2.MatrixMessageResponse{DeliveryReported: plan.conversation == "" || c.groupDeliveries.Load()}, nil
}

// sentMessage is what the core records of part i of a plan: the part ID
// is empty for a single message and the index for a split one, so the
// mapping is the same whether a part was recorded by the send or found by
// FindSent.
func (p *sendPlan) sentMessage(i int, sid string, created time.Time) bridgev2.SentMessage {
	var part networkid.PartID
	if len(p.parts) > 1 {
		part = networkid.PartID(strconv.Itoa(i))
	}
	return bridgev2.SentMessage{
		ID: networkid.MessageID(sid), PartID: part, Timestamp: created,
		Metadata: &MessageMetadata{Snippet: p.snippet},
	}
}

// sendPlan creates the plan's messages in order, after those the journal
// says earlier attempts created, recording each as soon as Twilio accepted
// it. Each create waits for the login's rate limiter. Failures go back to
// the core, which retries (reconciling first when Twilio may have created
// the message).
func (c *Client) sendPlan(ctx context.Context, out *bridgev2.Outgoing, plan *sendPlan) error {
	if plan.conversation != "" {
		return c.sendGroupPlan(ctx, out, plan)
	}
	if plan.remote.whatsapp && out.Progress.Count() == 0 && plan.parts[0].ContentSID == "" {
		if err := c.checkWindow(ctx, plan.remote); err != nil {
			return err
		}
	}
	if err := c.checkOptOut(ctx, plan.remote); err != nil {
		return err
	}
	overRCS := len(c.rcsSenders(ctx)) > 0
	for i := out.Progress.Count(); i < len(plan.parts); i++ {
		if c.limiter != nil {
			if err := c.limiter.Wait(ctx); err != nil {
				return err
			}
		}
		started := c.conn.now()
		m, err := c.rest.createMessage(ctx, c.createParams(plan.remote, plan.parts[i], out.SendToken, overRCS))
		if err != nil {
			var be *bridgev2.Error
			if i > 0 && errors.As(err, &be) && !be.Retriable {
				return bridgev2.NewError(fmt.Sprintf("Only %d of the %d parts of this long message were sent. %s", i, len(plan.parts), bridgev2.HumanMessage(err)), err)
			}
			return err
		}
		created := parseTwilioTime(m.DateCreated)
		if created.IsZero() {
			created = started
		}
		if err := out.Progress.Record(ctx, plan.sentMessage(i, deref(m.Sid), created)); err != nil {
			return err
		}
		c.log.Debug().Str("message_sid", deref(m.Sid)).Str("remote_id", string(plan.remote.portalID())).
			Int("part", i).Int("parts", len(plan.parts)).Msg("Sent message to Twilio")
	}
	return nil
}

// createParams builds the REST parameters of one part. overRCS says the
// login's Messaging Service has an RCS sender.
func (c *Client) createParams(remote contact, part outPart, sendToken string, overRCS bool) *openapi.CreateMessageParams {
	params := (&openapi.CreateMessageParams{}).SetTo(remote.address()).SetStatusCallback(c.statusCallbackURL(sendToken))
	switch {
	case remote.whatsapp:
		// WhatsApp goes out from the login's own WhatsApp sender, whether
		// or not SMS goes through a Messaging Service.
		params.SetFrom(c.ownAddress(remote))
	case c.serviceSID != "" && overRCS:
		// Without From, Twilio picks the service's RCS sender where the
		// phone takes RCS; its SMS fallback still comes from this login's
		// number.
		params.SetMessagingServiceSid(c.serviceSID).SetFallbackFrom(c.own)
	case c.serviceSID != "":
		// From is set with a Messaging Service too: Twilio then sends from
		// this login's number (which must be in the service's pool), so a
		// contact gets the reply from the number they texted, whichever
		// number the pool would have picked.
		params.SetFrom(c.own).SetMessagingServiceSid(c.serviceSID)
	default:
		params.SetFrom(c.own)
	}
	if part.Body != "" {
		params.SetBody(part.Body)
	}
	if part.MediaURL != "" {
		params.SetMediaUrl([]string{part.MediaURL})
	}
	if part.ContentSID != "" {
		params.SetContentSid(part.ContentSID)
		if part.ContentVariables != "" {
			params.SetContentVariables(part.ContentVariables)
		}
	}
	return params
}
