package bridgev2_test

import (
	"encoding/json"
	"testing"
	"time"

	"maunium.net/go/mautrix/event"

	"github.com/trestle-bridge/trestle/bridgev2"
	"github.com/trestle-bridge/trestle/bridgev2/bridgeconfig"
	"github.com/trestle-bridge/trestle/bridgev2/bridgetest"
	"github.com/trestle-bridge/trestle/bridgev2/bridgetest/testnet"
	"github.com/trestle-bridge/trestle/bridgev2/networkid"
)

// fromMe is alice's own text in the chat with bob, sent outside Matrix.
func fromMe(login *bridgev2.UserLogin, msgID, text string) *bridgev2.RemoteEvent {
	return &bridgev2.RemoteEvent{
		Kind: bridgev2.RemoteMessage, ID: networkid.MessageID(msgID),
		Portal: networkid.PortalKey{ID: "bob", Receiver: login.ID},
		Sender: bridgev2.EventSender{IsFromMe: true, Sender: networkid.UserID(login.ID)}, Timestamp: time.Now(),
		Parts: []bridgev2.MessagePart{{Text: text}},
	}
}

func TestWithLoginMatrixTheUsersOwnTextsAppearAsThemAndAreNotBridgedBack(t *testing.T) {
	setup(t, func(t *testing.T, h *bridgetest.Harness, remote *testnet.Remote, login *bridgev2.UserLogin) {
		_, room := chatWithBob(t, h, remote, login)
		bot := h.Matrix.BotUserID()
		mgmt := h.ManagementRoom(alice)

		// Without double puppeting, alice's own text comes from the ghost
		// of her remote ID.
		receive(t, h, remote, fromMe(login, "me0", "sent from my phone"))
		h.WaitForText(room, h.Matrix.GhostUserID(networkid.UserID(login.ID)), "sent from my phone")

		h.Matrix.AddAccessToken("@bob:example.com", "bobs-token")
		h.SendText(alice, mgmt, "login-matrix bobs-token")
		h.WaitForText(mgmt, bot, "belongs to @bob:example.com")
		h.SendText(alice, mgmt, "login-matrix made-up")
		h.WaitForText(mgmt, bot, "did not accept that access token")

		h.Matrix.AddAccessToken(alice, "alices-token")
		secret := h.SendText(alice, mgmt, "login-matrix alices-token")
		h.WaitForText(mgmt, bot, "now appear as your Matrix account")
		if _, err := h.Matrix.WaitForEvent(h.Ctx(), mgmt, "the token's redaction", func(e *event.Event) bool {
			return e.Type == event.EventRedaction && e.Content.AsRedaction().Redacts == secret
		}); err != nil {
			t.Error(err)
		}

		if res := receive(t, h, remote, fromMe(login, "me1", "also from my phone")); res != bridgev2.Journalled {
			t.Fatalf("ingest: %v", res)
		}
		mine := h.WaitForText(room, alice, "also from my phone")
		// The same text again (a webhook redelivered) is a duplicate.
		if res := receive(t, h, remote, fromMe(login, "me1", "also from my phone")); res != bridgev2.Duplicate {
			t.Errorf("the redelivered text was %v, want a duplicate", res)
		}

		// The homeserver pushes the event back: it is the bridge's own.
		raw, err := json.Marshal(map[string]any{
			"event_id": mine.ID, "room_id": room, "sender": alice, "type": "m.room.message",
			"origin_server_ts": mine.Timestamp, "content": json.RawMessage(mine.Content.VeryRaw),
		})
		if err != nil {
			t.Fatal(err)
		}
		h.Transaction([]json.RawMessage{raw})
		h.SendText(alice, room, "typed in Matrix")
		if _, err := remote.WaitForCall(h.Ctx(), func(c testnet.Call) bool { return c.Text == "typed in Matrix" }); err != nil {
			t.Fatal(err)
		}
		for _, c := range remote.Calls() {
			if c.Text == "also from my phone" {
				t.Errorf("the double puppet's own event was bridged back out: %+v", c)
			}
		}

		// A restart keeps the token.
		h.Restart()
		receive(t, h, remote, fromMe(login, "me2", "after a restart"))
		h.WaitForText(room, alice, "after a restart")

		h.SendText(alice, mgmt, "logout-matrix")
		h.WaitForText(mgmt, bot, "Forgot your access token")
		receive(t, h, remote, fromMe(login, "me3", "after logout-matrix"))
		h.WaitForText(room, h.Matrix.GhostUserID(networkid.UserID(login.ID)), "after logout-matrix")
	})
}

func TestUsersOfAServerWithAnAppserviceSecretAreDoublePuppetedAutomatically(t *testing.T) {
	remote := testnet.NewRemote()
	h := bridgetest.New(t, remote.Connector, bridgetest.Options{Configure: func(c *bridgeconfig.Config) {
		c.DoublePuppet.Secrets = map[string]string{"example.com": "as_token:second-registration-token"}
	}})
	login := h.Login(alice, map[string]string{"username": "alice1", "token": "secret"})
	_, room := chatWithBob(t, h, remote, login)
	receive(t, h, remote, fromMe(login, "me1", "from the console"))
	h.WaitForText(room, alice, "from the console")
	if puppeted, appservice := h.Matrix.DoublePuppet(alice); !puppeted || !appservice {
		t.Errorf("alice is puppeted %v, through the appservice %v", puppeted, appservice)
	}
}
