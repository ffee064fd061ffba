package matrix_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/bridgev2/bridgetest"
	"github.com/trestle-bridge/trestle/bridgev2/matrix"
)

type recordingCrypto struct {
	toDevice []*event.Event
	lists    *mautrix.DeviceLists
	counts   map[id.UserID]map[id.DeviceID]mautrix.OTKCount
	err      error
}

func (c *recordingCrypto) HandleAppserviceCrypto(_ context.Context, toDevice []*event.Event, lists *mautrix.DeviceLists, counts map[id.UserID]map[id.DeviceID]mautrix.OTKCount) error {
	if c.err != nil {
		return c.err
	}
	c.toDevice, c.lists, c.counts = append(c.toDevice, toDevice...), lists, counts
	return nil
}

// An MSC2409/MSC3202 transaction, as Synapse sends it to appservices that
// asked for encryption data.
const cryptoTxn = `{"events":[],
 "de.sorunome.msc2409.to_device":[{"type":"m.room.encrypted","sender":"@alice:example.com","to_user_id":"@bot:example.com","to_device_id":"BOTDEVICE","content":{"algorithm":"m.olm.v1.curve25519-aes-sha2","sender_key":"k","ciphertext":{}}}],
 "org.matrix.msc3202.device_lists":{"changed":["@alice:example.com"],"left":[]},
 "org.matrix.msc3202.device_one_time_keys_count":{"@bot:example.com":{"BOTDEVICE":{"signed_curve25519":3}}}}`

func serveCrypto(t *testing.T, crypto matrix.CryptoHandler, body string) (*httptest.ResponseRecorder, *recordingHandler) {
	t.Helper()
	cfg := bridgetest.Config()
	hs, err := matrix.NewHomeserver(cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	handler := &recordingHandler{}
	as := matrix.NewAppService(cfg.AppService.HSToken, hs, handler, zerolog.Nop())
	as.SetCryptoHandler(crypto)
	mux := http.NewServeMux()
	as.Register(mux)
	req := httptest.NewRequest(http.MethodPut, "/_matrix/app/v1/transactions/7", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+cfg.AppService.HSToken)
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	return rec, handler
}

func TestTransactionsBringToDeviceEventsAndDeviceListsToTheEncryptionDevice(t *testing.T) {
	crypto := &recordingCrypto{}
	rec, handler := serveCrypto(t, crypto, cryptoTxn)
	if rec.Code != http.StatusOK {
		t.Fatalf("transaction answered %d: %s", rec.Code, rec.Body)
	}
	if len(crypto.toDevice) != 1 || crypto.toDevice[0].Type.Type != "m.room.encrypted" || crypto.toDevice[0].Sender != "@alice:example.com" {
		t.Errorf("to-device events reached the device as %+v", crypto.toDevice)
	}
	if crypto.lists == nil || len(crypto.lists.Changed) != 1 || crypto.lists.Changed[0] != "@alice:example.com" {
		t.Errorf("device lists reached the device as %+v", crypto.lists)
	}
	if crypto.counts["@bot:example.com"]["BOTDEVICE"].SignedCurve25519 != 3 {
		t.Errorf("key counts reached the device as %+v", crypto.counts)
	}
	if len(handler.txns) != 1 {
		t.Errorf("the transaction's room events were handled %d times, want once", len(handler.txns))
	}
}

func TestATransactionWhoseEncryptionDataCannotBeHandledIsRetriedWhole(t *testing.T) {
	rec, handler := serveCrypto(t, &recordingCrypto{err: errors.New("device not ready")}, cryptoTxn)
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("transaction answered %d, want 503 so the homeserver sends it again", rec.Code)
	}
	if len(handler.txns) != 0 {
		t.Error("the room events were recorded although the homeserver will send them again")
	}
}
