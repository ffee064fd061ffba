package matrix_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/trestle-bridge/trestle/bridgev2"
	"github.com/trestle-bridge/trestle/bridgev2/bridgetest"
	"github.com/trestle-bridge/trestle/bridgev2/matrix"
)

type recordingHandler struct {
	txns []string
	err  error
}

func (h *recordingHandler) HandleTransaction(_ context.Context, txnID string, events, _ []json.RawMessage) error {
	if h.err != nil {
		return h.err
	}
	h.txns = append(h.txns, txnID)
	return nil
}

func serve(t *testing.T, handler matrix.TransactionHandler, method, path, token, body string) *httptest.ResponseRecorder {
	t.Helper()
	cfg := bridgetest.Config()
	hs, err := matrix.NewHomeserver(cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	matrix.NewAppService(cfg.AppService.HSToken, hs, handler, zerolog.Nop()).Register(mux)
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	return rec
}

func TestHomeserverTokenIsRequiredOnEveryRequest(t *testing.T) {
	good := bridgetest.Config().AppService.HSToken
	for _, tc := range []struct {
		name, method, path, token string
		want                      int
	}{
		{"transaction without token", "PUT", "/_matrix/app/v1/transactions/1", "", http.StatusUnauthorized},
		{"transaction with wrong token", "PUT", "/_matrix/app/v1/transactions/1", "nope", http.StatusForbidden},
		{"legacy path with wrong token", "PUT", "/transactions/1", good + "x", http.StatusForbidden},
		{"user query without token", "GET", "/_matrix/app/v1/users/@test_x:example.com", "", http.StatusUnauthorized},
		{"ping with wrong token", "POST", "/_matrix/app/v1/ping", "nope", http.StatusForbidden},
		{"transaction with the token", "PUT", "/_matrix/app/v1/transactions/1", good, http.StatusOK},
		{"ping with the token", "POST", "/_matrix/app/v1/ping", good, http.StatusOK},
		// Homeservers older than spec v1.4 (and Conduit for a while) send
		// the token as a query parameter instead of the header.
		{"transaction with the token in the query", "PUT", "/_matrix/app/v1/transactions/2?access_token=" + good, "", http.StatusOK},
		{"legacy path with the token in the query", "PUT", "/transactions/3?access_token=" + good, "", http.StatusOK},
		{"wrong token in the query", "PUT", "/_matrix/app/v1/transactions/4?access_token=nope", "", http.StatusForbidden},
		{"alias query", "GET", "/_matrix/app/v1/rooms/%23x:example.com", good, http.StatusNotFound},
		{"user outside the namespace", "GET", "/_matrix/app/v1/users/@alice:example.com", good, http.StatusNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &recordingHandler{}
			rec := serve(t, h, tc.method, tc.path, tc.token, `{"events":[]}`)
			if rec.Code != tc.want {
				t.Fatalf("status %d, want %d (%s)", rec.Code, tc.want, rec.Body)
			}
			if tc.want != http.StatusOK && len(h.txns) > 0 {
				t.Fatal("a rejected request reached the bridge")
			}
			var body map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatalf("response is not JSON: %q", rec.Body)
			}
		})
	}
}

func TestTransactionIsAcknowledgedOnlyWhenRecorded(t *testing.T) {
	token := bridgetest.Config().AppService.HSToken
	h := &recordingHandler{err: errors.New("database is down")}
	if rec := serve(t, h, "PUT", "/_matrix/app/v1/transactions/7", token, `{"events":[]}`); rec.Code != http.StatusInternalServerError {
		t.Fatalf("unrecorded transaction got %d, want 500 so the homeserver retries", rec.Code)
	}
	h.err = bridgev2.ErrShuttingDown
	if rec := serve(t, h, "PUT", "/_matrix/app/v1/transactions/7", token, `{"events":[]}`); rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("transaction during shutdown got %d, want 503", rec.Code)
	}
	h.err = nil
	if rec := serve(t, h, "PUT", "/_matrix/app/v1/transactions/7", token, `{"events":`); rec.Code != http.StatusBadRequest || len(h.txns) != 0 {
		t.Fatalf("malformed transaction got %d (recorded %v), want 400 and nothing recorded", rec.Code, h.txns)
	}
	if rec := serve(t, h, "PUT", "/_matrix/app/v1/transactions/7", token, `{"events":[]}`); rec.Code != http.StatusOK || len(h.txns) != 1 || h.txns[0] != "7" {
		t.Fatalf("good transaction got %d, recorded %v", rec.Code, h.txns)
	}
}
