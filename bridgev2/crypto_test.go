package bridgev2_test

import (
	"context"
	"encoding/json"
	"io"
	"strings"
	"sync"
	"testing"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/bridgev2"
	"github.com/trestle-bridge/trestle/bridgev2/bridgeconfig"
	"github.com/trestle-bridge/trestle/bridgev2/bridgetest"
	"github.com/trestle-bridge/trestle/bridgev2/bridgetest/testnet"
	"github.com/trestle-bridge/trestle/bridgev2/database"
	"github.com/trestle-bridge/trestle/bridgev2/networkid"
)

// fakeCrypto "decrypts" events whose ciphertext is the JSON of the
// plaintext content, and fails on anything else, as a missing key would.
type fakeCrypto struct {
	mu        sync.Mutex
	encrypted map[id.RoomID]bool
	db        *database.Database
}

// Its seal stores a crypto row named after the event, as the real one
// stores the message index.
func (f *fakeCrypto) Decrypt(_ context.Context, evt *event.Event) (*event.Event, bridgev2.Seal, error) {
	var content event.MessageEventContent
	ciphertext, _ := evt.Content.Raw["ciphertext"].(string)
	if err := json.Unmarshal([]byte(ciphertext), &content); err != nil {
		return nil, nil, &bridgev2.Error{Message: "The bridge could not decrypt this message.", Err: err, Reason: event.MessageStatusUndecryptable}
	}
	seal := func(ctx context.Context, tx database.Execer) error {
		return f.db.Crypto.PutIn(ctx, tx, database.CryptoRow{Kind: "test_seal", Key: string(evt.ID), Value: "sealed"})
	}
	return &event.Event{ID: evt.ID, RoomID: evt.RoomID, Sender: evt.Sender, Type: event.EventMessage,
		Timestamp: evt.Timestamp, Content: event.Content{Parsed: &content}}, seal, nil
}

func (f *fakeCrypto) IsEncrypted(_ context.Context, roomID id.RoomID) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.encrypted[roomID], nil
}

func (f *fakeCrypto) HandleRoomEvent(_ context.Context, evt *event.Event) {
	if evt.Type == event.StateEncryption {
		f.mu.Lock()
		f.encrypted[evt.RoomID] = true
		f.mu.Unlock()
	}
}

func (f *fakeCrypto) DecryptMedia(context.Context, id.ContentURIString, io.ReadCloser) (io.ReadCloser, bool, error) {
	return nil, false, nil
}

func setupCrypto(t *testing.T, require bool) (*bridgetest.Harness, *testnet.Remote, *fakeCrypto, id.RoomID) {
	t.Helper()
	remote := testnet.NewRemote()
	crypto := &fakeCrypto{encrypted: map[id.RoomID]bool{}}
	h := bridgetest.New(t, remote.Connector, bridgetest.Options{Crypto: crypto, Configure: func(c *bridgeconfig.Config) {
		c.Encryption.Allow, c.Encryption.Require, c.Encryption.PickleKey = true, require, "pickle-key-for-tests-0123456789"
	}})
	crypto.db = h.Bridge().DB
	login := h.Login(alice, map[string]string{"username": "alice1", "token": "secret"})
	receive(t, h, remote, remoteText(login, "bob", "m0", "hi"))
	room := h.WaitForPortal(networkid.PortalKey{ID: "bob", Receiver: login.ID}, alice)
	h.WaitForText(room, "", "hi")
	return h, remote, crypto, room
}

func TestADecryptedMessagesSealIsStoredBeforeItReachesTheNetwork(t *testing.T) {
	h, remote, crypto, room := setupCrypto(t, false)
	sealed := make(chan []string, 1)
	remote.DuringSend(func(testnet.Call) {
		rows, err := crypto.db.Crypto.All(h.Ctx(), "test_seal")
		keys := []string{}
		for _, r := range rows {
			keys = append(keys, r.Key)
		}
		if err != nil {
			keys = append(keys, err.Error())
		}
		sealed <- keys
	})
	plain, _ := json.Marshal(&event.MessageEventContent{MsgType: event.MsgText, Body: "sealed hello"})
	evtID := h.SendMatrix(alice, room, event.EventEncrypted, map[string]any{
		"algorithm": id.AlgorithmMegolmV1, "ciphertext": string(plain), "session_id": "s",
	})
	select {
	case keys := <-sealed:
		if len(keys) != 1 || keys[0] != string(evtID) {
			t.Errorf("while the network was sending, the stored seals were %q; want the message's (%s) committed first", keys, evtID)
		}
	case <-h.Ctx().Done():
		t.Fatal("the message never reached the network")
	}
	h.WaitForStatus(room, evtID, event.MessageStatusSuccess)
}

func TestAnEncryptedMessageIsDecryptedAndReachesTheNetwork(t *testing.T) {
	h, remote, _, room := setupCrypto(t, false)
	plain, _ := json.Marshal(&event.MessageEventContent{MsgType: event.MsgText, Body: "secret hello"})
	evtID := h.SendMatrix(alice, room, event.EventEncrypted, map[string]any{
		"algorithm": id.AlgorithmMegolmV1, "ciphertext": string(plain), "session_id": "s",
	})
	call, err := remote.WaitForCall(h.Ctx(), func(c testnet.Call) bool { return c.Kind == "message" })
	if err != nil {
		t.Fatal(err)
	}
	if call.Text != "secret hello" {
		t.Errorf("the network got %q, want the decrypted text", call.Text)
	}
	h.WaitForStatus(room, evtID, event.MessageStatusSuccess)
}

func TestAnUndecryptableMessageFailsWithTheReasonAndANotice(t *testing.T) {
	h, remote, _, room := setupCrypto(t, false)
	evtID := h.SendMatrix(alice, room, event.EventEncrypted, map[string]any{
		"algorithm": id.AlgorithmMegolmV1, "ciphertext": "not for us", "session_id": "lost",
	})
	status := h.WaitForStatus(room, evtID, event.MessageStatusFail)
	if status.Reason != event.MessageStatusUndecryptable {
		t.Errorf("failure reason %q, want %q", status.Reason, event.MessageStatusUndecryptable)
	}
	h.WaitForText(room, h.Matrix.BotUserID(), "could not decrypt")
	if calls := remote.Calls(); len(calls) > 0 {
		for _, c := range calls {
			if c.Kind == "message" {
				t.Errorf("something reached the network: %+v", c)
			}
		}
	}
}

func TestWithRequireAPlaintextMessageInAnUnencryptedPortalIsRefused(t *testing.T) {
	h, remote, crypto, room := setupCrypto(t, true)
	evtID := h.SendText(alice, room, "in the clear")
	status := h.WaitForStatus(room, evtID, event.MessageStatusFail)
	if !strings.Contains(status.Error+status.Message, "encrypt") {
		t.Errorf("the refusal says %q / %q, want it to mention encryption", status.Error, status.Message)
	}
	// Turned on, the same kind of message goes through.
	crypto.HandleRoomEvent(h.Ctx(), &event.Event{Type: event.StateEncryption, RoomID: room})
	h.SendText(alice, room, "now encrypted")
	if _, err := remote.WaitForCall(h.Ctx(), func(c testnet.Call) bool { return c.Kind == "message" && c.Text == "now encrypted" }); err != nil {
		t.Fatal(err)
	}
}
