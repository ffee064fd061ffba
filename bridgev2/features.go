package bridgev2

import (
	"context"

	"maunium.net/go/mautrix/event"
)

// Room features: every portal room carries a com.beeper.room_features state
// event saying what the network supports (text length, media, edits,
// reactions, deletions, receipts), so a client can grey out what would
// fail before the user tries it. The provisioning API's capabilities route
// answers the same for a login.

// RoomFeaturesProvider is a client that says what its network supports in
// a chat (portal is nil when a login is asked in general). Without it,
// the core derives the features from the optional interfaces the client
// implements: edits if it is an EditHandler, and so on.
type RoomFeaturesProvider interface {
	RoomFeatures(ctx context.Context, portal *Portal) *event.RoomFeatures
}

// RoomFeatures returns what the network supports in portal's chat through
// the login, or in general with a nil portal.
func (l *UserLogin) RoomFeatures(ctx context.Context, portal *Portal) *event.RoomFeatures {
	if p, ok := l.Client.(RoomFeaturesProvider); ok {
		if f := p.RoomFeatures(ctx, portal); f != nil {
			return f
		}
	}
	_, edits := l.Client.(EditHandler)
	_, reactions := l.Client.(ReactionHandler)
	_, deletes := l.Client.(RedactionHandler)
	_, receipts := l.Client.(ReadReceiptHandler)
	_, typing := l.Client.(TypingHandler)
	return &event.RoomFeatures{
		ID:                  "net.trestle." + l.Bridge.Network.Info().ID + ".default",
		Edit:                supportLevel(edits),
		Reaction:            supportLevel(reactions),
		Delete:              supportLevel(deletes),
		ReadReceipts:        receipts,
		TypingNotifications: typing,
	}
}

// supportLevel is a feature a client either handles fully or refuses.
func supportLevel(supported bool) event.CapabilitySupportLevel {
	if supported {
		return event.CapLevelFullySupported
	}
	return event.CapLevelRejected
}
