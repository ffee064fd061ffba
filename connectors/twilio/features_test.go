package twilio

import (
	"encoding/json"
	"testing"

	"maunium.net/go/mautrix/event"
)

func TestPortalRoomsSayWhatSMSCanCarry(t *testing.T) {
	for _, tc := range []struct {
		network string
		edit    event.CapabilitySupportLevel
		maxText int
	}{
		{"", event.CapLevelPartialSupport, 0},
		{"unsupported_actions: refuse\nlong_message: refuse\n", event.CapLevelRejected, maxBodyUnits},
	} {
		e := newEnv(t, envOptions{network: tc.network})
		e.login()
		e.inbound(theirNumber, "hi")
		room := e.portalRoom(theirNumber)
		var f *event.RoomFeatures
		for _, r := range e.h.Matrix.Rooms() {
			if st := r.State[event.StateBeeperRoomFeatures.Type+"|"]; r.ID == room && st != nil {
				raw, _ := json.Marshal(st.Content.Parsed)
				f = &event.RoomFeatures{}
				if err := json.Unmarshal(raw, f); err != nil {
					t.Fatal(err)
				}
			}
		}
		if f == nil {
			t.Fatal("the portal room has no room features")
		}
		if f.Edit != tc.edit || f.Reaction != tc.edit || f.Delete != event.CapLevelRejected || f.MaxTextLength != tc.maxText {
			t.Errorf("config %q: features %+v", tc.network, f)
		}
		img := f.File[event.MsgImage]
		if img == nil || img.MimeTypes["image/jpeg"] != event.CapLevelFullySupported || img.MaxSize != maxOutgoingMediaBytes {
			t.Errorf("config %q: images %+v", tc.network, img)
		}
		if f.ReadReceipts || f.TypingNotifications {
			t.Errorf("config %q: SMS has no receipts or typing, features say %+v", tc.network, f)
		}
	}
}
