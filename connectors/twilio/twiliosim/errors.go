package twiliosim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
)

// Twilio error codes the simulator answers with. The numbers are Twilio's;
// see https://www.twilio.com/docs/api/errors.
const (
	CodeInvalidParameter      = 20001 // a malformed query or form value
	CodeAuthenticate          = 20003 // missing or wrong credentials
	CodeMethodNotAllowed      = 20004
	CodeNotFound              = 20404
	CodeTooManyRequests       = 20429
	CodeInternalError         = 20500
	CodeServiceUnavailable    = 20503
	CodeInvalidToNumber       = 21211
	CodeInvalidFromNumber     = 21212
	CodeSameToFrom            = 21266
	CodeBodyRequired          = 21602
	CodeFromRequired          = 21603
	CodeToRequired            = 21604
	CodeFromNotOwned          = 21606
	CodeInvalidStatusCallback = 21609
	CodeUnsubscribed          = 21610
	CodeNotMobile             = 21614
	CodeBodyTooLong           = 21617
	CodeInvalidMediaURL       = 21620
	CodeTooManyMedia          = 21623
	CodeInvalidService        = 21701
	CodeServiceHasNoNumbers   = 21704
	CodeToShortCode           = 21265 // Twilio numbers cannot text short codes
	CodeFallbackNeedsService  = 21666 // FallbackFrom without MessagingServiceSid
	CodeInvalidContentSID     = 21655
	CodeInvalidContentVars    = 21656
	CodeChannelMismatch       = 21910 // From and To on different channels
	CodeChannelNotFound       = 63007 // no WhatsApp/RCS sender for the From address
	CodeOutsideWindow         = 63016 // WhatsApp free-form message outside 24 h
	CodeHTTPRetrievalFailure  = 11200 // media fetch failed (Twilio's debugger code)
	CodeUnsupportedMedia      = 12300 // media had no usable Content-Type
	CodeUnreachable           = 30003
	CodeUnknownDestination    = 30005
	CodeLandline              = 30006
	CodeFiltered              = 30007
	CodeUnknownError          = 30008
)

// deliveryErrorMessages are the human sentences Twilio pairs with delivery
// error codes in status callbacks and in error_message.
var deliveryErrorMessages = map[int]string{
	CodeHTTPRetrievalFailure: "HTTP retrieval failure",
	CodeUnsupportedMedia:     "Invalid Content-Type",
	CodeUnreachable:          "Unreachable destination handset",
	CodeUnknownDestination:   "Unknown destination handset",
	CodeLandline:             "Landline or unreachable carrier",
	CodeFiltered:             "Message filtered",
	CodeUnknownError:         "Unknown error",
	CodeOutsideWindow:        "Failed to send freeform message because you are outside the allowed window. If you are using WhatsApp, please use a Message Template.",
}

// deliveryErrorMessage returns Twilio's sentence for a delivery error code.
func deliveryErrorMessage(code int) string {
	if m, ok := deliveryErrorMessages[code]; ok {
		return m
	}
	return "Message delivery failed"
}

// apiError is Twilio's REST error body. Status is the HTTP status it is sent
// with, and it is repeated in the body as Twilio does.
type apiError struct {
	Code     int    `json:"code"`
	Message  string `json:"message"`
	MoreInfo string `json:"more_info"`
	Status   int    `json:"status"`
}

// newAPIError builds a Twilio error body for an HTTP status and error code.
func newAPIError(status, code int, format string, args ...any) *apiError {
	return &apiError{
		Code:     code,
		Message:  fmt.Sprintf(format, args...),
		MoreInfo: "https://www.twilio.com/docs/errors/" + strconv.Itoa(code),
		Status:   status,
	}
}

// Error makes an apiError usable as an error value.
func (e *apiError) Error() string {
	return fmt.Sprintf("twilio error %d (HTTP %d): %s", e.Code, e.Status, e.Message)
}

// writeAPIError sends e as Twilio does: JSON body, status in the header too.
func writeAPIError(w http.ResponseWriter, e *apiError) {
	if e.Status == http.StatusUnauthorized {
		// Twilio asks for basic auth like any HTTP server would.
		w.Header().Set("WWW-Authenticate", `Basic realm="Twilio API"`)
	}
	writeJSON(w, e.Status, e)
}

// writeJSON sends v as the JSON body of a response with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		// Only our own resource structs reach here; failing to encode them is
		// a programming error, and a 500 keeps the failure visible.
		http.Error(w, "twiliosim: encoding response: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func errUnauthorized() *apiError {
	return newAPIError(http.StatusUnauthorized, CodeAuthenticate, "Authenticate")
}

func errNotFound(path string) *apiError {
	return newAPIError(http.StatusNotFound, CodeNotFound, "The requested resource %s was not found", path)
}

func errBadParam(format string, args ...any) *apiError {
	return newAPIError(http.StatusBadRequest, CodeInvalidParameter, format, args...)
}
