package provisioning

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"

	"github.com/trestle-bridge/trestle/bridgev2"
)

// Matrix-style error codes used by the API, as provisioning.yaml lists
// them, plus M_FORBIDDEN, M_TOO_LARGE, M_BAD_JSON and the parameter codes
// for the failures it does not describe.
const (
	errcodeMissingToken = "M_MISSING_TOKEN"
	errcodeUnknownToken = "M_UNKNOWN_TOKEN"
	errcodeForbidden    = "M_FORBIDDEN"
	errcodeNotFound     = "M_NOT_FOUND"
	errcodeNotJSON      = "M_NOT_JSON"
	errcodeBadJSON      = "M_BAD_JSON"
	errcodeBadState     = "M_BAD_STATE"
	errcodeTooLarge     = "M_TOO_LARGE"
	errcodeMissingParam = "M_MISSING_PARAM"
	errcodeInvalidParam = "M_INVALID_PARAM"
	errcodeUnrecognized = "M_UNRECOGNIZED"
	errcodeUnknown      = "M_UNKNOWN"
)

// apiError is a failure answered as {"errcode": ..., "error": ...}.
type apiError struct {
	Status  int    `json:"-"`
	ErrCode string `json:"errcode"`
	Message string `json:"error"`
	// cause is logged, never sent.
	cause error
}

func (e *apiError) Error() string { return e.ErrCode + ": " + e.Message }

func newError(status int, errcode, message string) *apiError {
	return &apiError{Status: status, ErrCode: errcode, Message: message}
}

func notFound(message string) *apiError {
	return newError(http.StatusNotFound, errcodeNotFound, message)
}

func badState(message string) *apiError {
	return newError(http.StatusBadRequest, errcodeBadState, message)
}

func notSupported(message string) *apiError {
	return newError(http.StatusNotImplemented, errcodeUnrecognized, message)
}

// internalError is a 500 with a fixed sentence, for failures of the bridge
// itself (the database, say) whose text means nothing to the user.
func internalError(message string, cause error) *apiError {
	e := newError(http.StatusInternalServerError, errcodeUnknown, message)
	e.cause = cause
	return e
}

// connectorFailure answers an error from the connector or the core with
// its human sentence (bridgev2.HumanMessage). provisioning.yaml has no code
// for "the network refused", so that is a 500 M_UNKNOWN unless the route
// names a better status for refusals: a *bridgev2.Error returned as is,
// not retriable, is the connector refusing the request itself (an invalid
// phone number), while wrapped ones come from deeper in the core.
func connectorFailure(err error, refusal *apiError) *apiError {
	msg := bridgev2.HumanMessage(err)
	var e *apiError
	switch be, direct := err.(*bridgev2.Error); {
	case errors.Is(err, bridgev2.ErrUnsupported):
		e = notSupported(msg)
	case refusal != nil && direct && !be.Retriable:
		e = newError(refusal.Status, refusal.ErrCode, msg)
	default:
		e = newError(http.StatusInternalServerError, errcodeUnknown, msg)
	}
	e.cause = err
	return e
}

// writeJSON sends body with the given status.
func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

// emptyObject is the {} that actions without a result answer.
var emptyObject = struct{}{}

// decodeBody reads a JSON request body into v, telling apart a body that
// is not JSON (M_NOT_JSON), JSON of the wrong shape (M_BAD_JSON) and one
// over the size limit (M_TOO_LARGE).
func decodeBody(r *http.Request, v any) *apiError {
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return newError(http.StatusRequestEntityTooLarge, errcodeTooLarge, "The request body is too large.")
		}
		return newError(http.StatusBadRequest, errcodeNotJSON, "Could not read the request body.")
	}
	if !json.Valid(raw) {
		return newError(http.StatusBadRequest, errcodeNotJSON, "The request body is not valid JSON.")
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return newError(http.StatusBadRequest, errcodeBadJSON, "The request body does not have the expected shape: "+shapeError(err))
	}
	return nil
}

// shapeError names the offending field of a JSON type error without
// echoing the submitted value, which may be a password.
func shapeError(err error) string {
	if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		if te.Field != "" {
			return "field " + te.Field + " must be " + jsonTypeName(te.Type) + "."
		}
		return "expected " + jsonTypeName(te.Type) + "."
	}
	return "it could not be decoded."
}

// jsonTypeName names a Go type the way the API's documentation does.
func jsonTypeName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Slice, reflect.Array:
		return "an array"
	default:
		return "a number"
	}
}
