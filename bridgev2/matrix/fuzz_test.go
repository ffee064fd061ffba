package matrix

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/rs/zerolog"
)

type nopHandler struct{}

func (nopHandler) HandleTransaction(context.Context, string, []json.RawMessage, []json.RawMessage) error {
	return nil
}

// FuzzAppserviceTransaction sends arbitrary bodies to the transaction
// endpoint: the answer is always a JSON status the homeserver understands,
// never a panic.
func FuzzAppserviceTransaction(f *testing.F) {
	for _, seed := range []string{
		`{"events":[]}`,
		`{"events":[{"type":"m.room.message"}],"ephemeral":[{}]}`,
		`{"events":null}`, `[]`, `null`, `{"events":"x"}`, "\x00\xff", ``,
	} {
		f.Add([]byte(seed))
	}
	as := NewAppService("secret", nil, nopHandler{}, zerolog.Nop())
	mux := http.NewServeMux()
	as.Register(mux)
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest(http.MethodPut, "/_matrix/app/v1/transactions/1", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer secret")
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK && rec.Code != http.StatusBadRequest {
			t.Fatalf("status %d for body %q", rec.Code, body)
		}
		if !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("response is not JSON: %q", rec.Body.String())
		}
	})
}
