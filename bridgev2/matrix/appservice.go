package matrix

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/bridgev2"
	"github.com/trestle-bridge/trestle/bridgev2/networkid"
)

// maxTransactionSize bounds a transaction body; homeservers send at most a
// few hundred events of at most 64 KiB each.
const maxTransactionSize = 64 << 20

// TransactionHandler consumes transactions; the core's Bridge implements it.
type TransactionHandler interface {
	HandleTransaction(ctx context.Context, txnID string, events, ephemeral []json.RawMessage) error
}

// CryptoHandler takes the encryption data homeservers offering MSC2409 and
// MSC3202 put in transactions; bridgev2/e2ee implements it.
type CryptoHandler interface {
	HandleAppserviceCrypto(ctx context.Context, toDevice []*event.Event, lists *mautrix.DeviceLists, counts map[id.UserID]map[id.DeviceID]mautrix.OTKCount) error
}

// Users is what the appservice API needs of the homeserver side to answer
// the homeserver's "does this user exist" queries; bridgev2.Matrix has it.
type Users interface {
	ParseGhostUserID(userID id.UserID) (networkid.UserID, bool)
	EnsureRegistered(ctx context.Context, userID id.UserID) error
}

// AppService serves the appservice API (spec v1.1+ paths under
// /_matrix/app/v1 and the legacy unprefixed ones older homeservers use).
type AppService struct {
	hsToken string
	handler TransactionHandler
	users   Users
	crypto  CryptoHandler
	log     zerolog.Logger
}

// SetCryptoHandler makes transactions' to-device events, device lists and
// key counts reach the bridge's encryption device.
func (as *AppService) SetCryptoHandler(h CryptoHandler) { as.crypto = h }

// NewAppService returns the appservice API handler.
func NewAppService(hsToken string, users Users, handler TransactionHandler, log zerolog.Logger) *AppService {
	return &AppService{hsToken: hsToken, handler: handler, users: users, log: log}
}

// Register adds the appservice routes to mux.
func (as *AppService) Register(mux *http.ServeMux) {
	for _, prefix := range []string{"/_matrix/app/v1", ""} {
		mux.HandleFunc("PUT "+prefix+"/transactions/{txnID}", as.auth(as.putTransaction))
		mux.HandleFunc("GET "+prefix+"/users/{userID}", as.auth(as.getUser))
		mux.HandleFunc("GET "+prefix+"/rooms/{alias}", as.auth(as.getRoom))
	}
	mux.HandleFunc("POST /_matrix/app/v1/ping", as.auth(as.ping))
	mux.HandleFunc("GET /_matrix/app/v1/thirdparty/", as.auth(as.thirdParty))
}

type errorBody struct {
	ErrCode string `json:"errcode"`
	Error   string `json:"error"`
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

func writeError(w http.ResponseWriter, status int, code, message string) {
	writeJSON(w, status, errorBody{ErrCode: code, Error: message})
}

// auth checks the homeserver token in constant time on every request.
func (as *AppService) auth(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		token := ""
		if h := r.Header.Get("Authorization"); strings.HasPrefix(h, "Bearer ") {
			token = strings.TrimPrefix(h, "Bearer ")
		} else {
			token = r.URL.Query().Get("access_token")
		}
		if token == "" {
			writeError(w, http.StatusUnauthorized, "M_UNAUTHORIZED", "Missing homeserver token")
			return
		}
		if subtle.ConstantTimeCompare([]byte(token), []byte(as.hsToken)) != 1 {
			as.log.Warn().Str("remote_addr", r.RemoteAddr).Str("path", r.URL.Path).Msg("Rejected appservice request with a wrong homeserver token")
			writeError(w, http.StatusForbidden, "M_FORBIDDEN", "Incorrect homeserver token")
			return
		}
		next(w, r)
	}
}

type transaction struct {
	Events         []json.RawMessage `json:"events"`
	Ephemeral      []json.RawMessage `json:"ephemeral"`
	MSC2409Ephemrl []json.RawMessage `json:"de.sorunome.msc2409.ephemeral"`

	ToDevice        []*event.Event                                 `json:"to_device"`
	MSC2409ToDevice []*event.Event                                 `json:"de.sorunome.msc2409.to_device"`
	DeviceLists     *mautrix.DeviceLists                           `json:"org.matrix.msc3202.device_lists"`
	OTKCounts       map[id.UserID]map[id.DeviceID]mautrix.OTKCount `json:"org.matrix.msc3202.device_one_time_keys_count"`
}

func (as *AppService) putTransaction(w http.ResponseWriter, r *http.Request) {
	txnID := r.PathValue("txnID")
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxTransactionSize))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, "M_TOO_LARGE", "Transaction body is too large")
		return
	}
	var txn transaction
	if err := json.Unmarshal(body, &txn); err != nil {
		writeError(w, http.StatusBadRequest, "M_NOT_JSON", "Transaction body is not a JSON object with an events array")
		return
	}
	ephemeral := txn.Ephemeral
	if len(ephemeral) == 0 {
		ephemeral = txn.MSC2409Ephemrl
	}
	log := as.log.With().Str("txn_id", txnID).Logger()
	if as.crypto != nil {
		toDevice := txn.ToDevice
		if len(toDevice) == 0 {
			toDevice = txn.MSC2409ToDevice
		}
		if len(toDevice) > 0 || txn.DeviceLists != nil || len(txn.OTKCounts) > 0 {
			// Handled before the room events: if this fails, the homeserver
			// sends the whole transaction again, and its room events are
			// recognised as already journalled.
			if err := as.crypto.HandleAppserviceCrypto(r.Context(), toDevice, txn.DeviceLists, txn.OTKCounts); err != nil {
				log.Warn().Err(err).Msg("Could not handle the transaction's encryption data; the homeserver will retry")
				writeError(w, http.StatusServiceUnavailable, "M_UNKNOWN", "Encryption not ready, please retry")
				return
			}
		}
	}
	if err := as.handler.HandleTransaction(log.WithContext(r.Context()), txnID, txn.Events, ephemeral); err != nil {
		status := http.StatusInternalServerError
		if errors.Is(err, bridgev2.ErrShuttingDown) {
			status = http.StatusServiceUnavailable
		}
		log.Err(err).Int("events", len(txn.Events)).Msg("Could not record transaction; the homeserver will retry")
		writeError(w, status, "M_UNKNOWN", "Transaction not recorded, please retry")
		return
	}
	writeJSON(w, http.StatusOK, struct{}{})
}

// getUser answers the homeserver's "does this user exist" query for ghost
// IDs by registering them.
func (as *AppService) getUser(w http.ResponseWriter, r *http.Request) {
	userID := id.UserID(r.PathValue("userID"))
	if _, ok := as.users.ParseGhostUserID(userID); !ok {
		writeError(w, http.StatusNotFound, "M_NOT_FOUND", "Not a user of this bridge")
		return
	}
	if err := as.users.EnsureRegistered(r.Context(), userID); err != nil {
		writeError(w, http.StatusInternalServerError, "M_UNKNOWN", "Could not register the user")
		return
	}
	writeJSON(w, http.StatusOK, struct{}{})
}

// getRoom answers alias queries: this bridge reserves no aliases.
func (as *AppService) getRoom(w http.ResponseWriter, _ *http.Request) {
	writeError(w, http.StatusNotFound, "M_NOT_FOUND", "This bridge has no room aliases")
}

func (as *AppService) ping(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, struct{}{})
}

func (as *AppService) thirdParty(w http.ResponseWriter, _ *http.Request) {
	writeError(w, http.StatusNotFound, "M_NOT_FOUND", "This bridge offers no third-party lookups")
}
