package twilio

import (
	"context"
	"strings"

	"maunium.net/go/mautrix/event"

	"github.com/trestle-bridge/trestle/bridgev2"
	"github.com/trestle-bridge/trestle/bridgev2/networkid"
)

// RoomFeatures tells clients what a text can carry: plain text (limited
// to one message's length when network.long_message refuses longer ones),
// the MMS media types Twilio accepts up to its size limit, no deletions,
// receipts or typing, and edits and reactions only as the readable texts
// of network.unsupported_actions: fallback.
//
// A WhatsApp chat offers WhatsApp's media types and limits instead; it too
// has no read receipts: Matrix read receipts are not sent to WhatsApp.
func (c *Client) RoomFeatures(_ context.Context, portal *bridgev2.Portal) *event.RoomFeatures {
	cfg := c.conn.cfg
	kind, types := "sms", map[string]int{}
	for mimeType := range acceptedMediaTypes {
		types[mimeType] = maxOutgoingMediaBytes
	}
	if k, err := contactFromPortalID(portalID(portal)); err == nil && k.whatsapp {
		kind, types = "whatsapp", whatsappMediaTypes
	}
	actions := event.CapLevelRejected
	if cfg.UnsupportedActions == ActionsFallback {
		actions = event.CapLevelPartialSupport
	}
	files := event.FileFeatureMap{}
	for mimeType, maxSize := range types {
		var msgType event.CapabilityMsgType
		switch {
		case strings.HasPrefix(mimeType, "image/"):
			msgType = event.MsgImage
		case strings.HasPrefix(mimeType, "audio/"):
			msgType = event.MsgAudio
		case strings.HasPrefix(mimeType, "video/"):
			msgType = event.MsgVideo
		default:
			msgType = event.MsgFile
		}
		if files[msgType] == nil {
			files[msgType] = &event.FileFeatures{MimeTypes: map[string]event.CapabilitySupportLevel{},
				Caption: event.CapLevelPartialSupport}
		}
		files[msgType].MimeTypes[mimeType] = event.CapLevelFullySupported
		files[msgType].MaxSize = max(files[msgType].MaxSize, int64(maxSize))
	}
	f := &event.RoomFeatures{
		ID:       "net.trestle.twilio." + kind + "?actions=" + cfg.UnsupportedActions + "&long=" + cfg.LongMessage,
		File:     files,
		Reply:    event.CapLevelPartialSupport,
		Edit:     actions,
		Reaction: actions,
		Delete:   event.CapLevelRejected,
	}
	if cfg.LongMessage == LongMessageRefuse {
		f.MaxTextLength = maxBodyUnits
	}
	return f
}

// portalID is the ID of a portal, or none for a nil one.
func portalID(portal *bridgev2.Portal) networkid.PortalID {
	if portal == nil {
		return ""
	}
	return portal.ID
}
