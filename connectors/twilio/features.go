package twilio

import (
	"context"
	"strings"

	"maunium.net/go/mautrix/event"

	"github.com/trestle-bridge/trestle/bridgev2"
)

// RoomFeatures tells clients what a text can carry: plain text (limited
// to one message's length when network.long_message refuses longer ones),
// the MMS media types Twilio accepts up to its size limit, no deletions,
// receipts or typing, and edits and reactions only as the readable texts
// of network.unsupported_actions: fallback.
func (c *Client) RoomFeatures(_ context.Context, _ *bridgev2.Portal) *event.RoomFeatures {
	cfg := c.conn.cfg
	actions := event.CapLevelRejected
	if cfg.UnsupportedActions == ActionsFallback {
		actions = event.CapLevelPartialSupport
	}
	files := event.FileFeatureMap{}
	for mimeType := range acceptedMediaTypes {
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
				Caption: event.CapLevelPartialSupport, MaxSize: maxOutgoingMediaBytes}
		}
		files[msgType].MimeTypes[mimeType] = event.CapLevelFullySupported
	}
	f := &event.RoomFeatures{
		ID:       "net.trestle.twilio.sms?actions=" + cfg.UnsupportedActions + "&long=" + cfg.LongMessage,
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
