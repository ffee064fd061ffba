package bridgev2_test

import (
	"testing"

	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/bridgev2/bridgeconfig"
	"github.com/trestle-bridge/trestle/bridgev2/bridgetest"
	"github.com/trestle-bridge/trestle/bridgev2/bridgetest/testnet"
	"github.com/trestle-bridge/trestle/bridgev2/networkid"
)

func TestRelayedTextsAreSignedWithTheSendersDisplayName(t *testing.T) {
	remote := testnet.NewRemote()
	h := bridgetest.New(t, remote.Connector, bridgetest.Options{Configure: func(c *bridgeconfig.Config) {
		c.Bridge.Relay.Enabled = true
	}})
	login := h.Login(alice, map[string]string{"username": "alice1", "token": "secret"})
	key := networkid.PortalKey{ID: "bob", Receiver: login.ID}
	if _, err := remote.Receive(h.Ctx(), remoteText(login, "bob", "m0", "hi")); err != nil {
		t.Fatal(err)
	}
	room := h.WaitForPortal(key, alice)
	h.SendText(alice, room, "!test set-relay")
	h.WaitForText(room, h.Matrix.BotUserID(), "now sent through")

	carol, dave := id.UserID("@carol:example.com"), id.UserID("@dave:example.com")
	h.Matrix.SetDisplayName(carol, "Carol Danvers")
	for _, u := range []id.UserID{carol, dave} {
		h.Matrix.JoinAsUser(room, u)
	}
	h.SendText(carol, room, "hello from carol")
	h.SendText(dave, room, "hello from dave")
	for _, want := range []string{"Carol Danvers: hello from carol", "dave: hello from dave"} {
		if _, err := remote.WaitForCall(h.Ctx(), func(c testnet.Call) bool { return c.Text == want }); err != nil {
			t.Fatalf("no relayed text %q: %v", want, err)
		}
	}
}
