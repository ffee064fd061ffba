package bridgev2

import (
	"errors"
	"fmt"
	"time"

	"maunium.net/go/mautrix/event"
)

// Error is a failure with a sentence meant for the Matrix user. Connectors
// return it (or wrap one) so that message statuses, notices and command
// replies say something useful instead of an internal error string, and
// so that the core, which owns retries, knows what to do:
//
//   - NewError: permanent; the sender is told at once.
//   - RetriableError: temporary (an outage); retried with backoff.
//   - RateLimitedError: temporary, not before RetryAfter.
//   - UnconfirmedError: temporary, and the network may have acted anyway
//     (a timeout after the request went out); before retrying, the core
//     asks the client's SendReconciler.
//   - UnsupportedError: the network cannot do this at all.
//
// A connector classifies and returns; it never loops itself.
type Error struct {
	// Message is the human sentence, e.g. "Twilio rejected the number:
	// the recipient replied STOP".
	Message string
	// Err is the cause, kept for logs and errors.Is/As.
	Err error
	// Retriable marks a failure that may go away by itself (an outage, a
	// rate limit). The core retries outgoing messages that fail this way.
	Retriable bool
	// RetryAfter is the least time to wait before trying again, when the
	// network said so (a rate limit's Retry-After).
	RetryAfter time.Duration
	// MayHaveSent marks a failure after which the remote network may have
	// carried out the request anyway.
	MayHaveSent bool
	// Reason is the machine-readable reason for message status events.
	Reason event.MessageStatusReason
}

func (e *Error) Error() string {
	if e.Err == nil {
		return e.Message
	}
	return fmt.Sprintf("%s: %v", e.Message, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// NewError returns a permanent failure with a human sentence.
func NewError(message string, cause error) *Error {
	return &Error{Message: message, Err: cause, Reason: event.MessageStatusGenericError}
}

// RetriableError returns a failure that the core will retry.
func RetriableError(message string, cause error) *Error {
	return &Error{Message: message, Err: cause, Retriable: true, Reason: event.MessageStatusNetworkError}
}

// RateLimitedError returns a failure the core retries, waiting at least
// retryAfter (zero: its own backoff).
func RateLimitedError(message string, retryAfter time.Duration, cause error) *Error {
	return &Error{Message: message, Err: cause, Retriable: true, RetryAfter: retryAfter, Reason: event.MessageStatusNetworkError}
}

// UnconfirmedError returns a retriable failure after which the remote
// network may have carried out the send: the core reconciles before it
// tries again.
func UnconfirmedError(message string, cause error) *Error {
	return &Error{Message: message, Err: cause, Retriable: true, MayHaveSent: true, Reason: event.MessageStatusNetworkError}
}

// ErrUnsupported is wrapped by errors for actions the remote network cannot
// do (editing an SMS, say).
var ErrUnsupported = errors.New("not supported on this network")

// UnsupportedError returns a permanent failure for an action the network
// cannot perform.
func UnsupportedError(message string) *Error {
	return &Error{Message: message, Err: ErrUnsupported, Reason: event.MessageStatusUnsupported}
}

// ErrForbidden is wrapped by Matrix errors that mean the acting user may
// not do that in the room (typically: it is not a member yet).
var ErrForbidden = errors.New("forbidden by the homeserver")

// ErrNotLoggedIn is returned when a Matrix user acts in a portal without a
// login that can send there.
var ErrNotLoggedIn = errors.New("not logged in")

// HumanMessage returns the user-facing sentence of err: the Message of the
// outermost *Error, or a generic sentence that includes the error text.
func HumanMessage(err error) string {
	var be *Error
	if errors.As(err, &be) && be.Message != "" {
		return be.Message
	}
	if err == nil {
		return ""
	}
	return "Something went wrong: " + err.Error()
}

// isRetriable reports whether the core should try again.
func isRetriable(err error) bool {
	var be *Error
	return errors.As(err, &be) && be.Retriable
}

// retryAfter is the wait an error asks for before the next attempt.
func retryAfter(err error) time.Duration {
	var be *Error
	if errors.As(err, &be) {
		return be.RetryAfter
	}
	return 0
}

// mayHaveSent reports whether a failed attempt may have reached the
// remote network. Errors the connector did not classify count as maybe.
func mayHaveSent(err error) bool {
	var be *Error
	if errors.As(err, &be) {
		return be.MayHaveSent
	}
	return true
}

func statusReason(err error) event.MessageStatusReason {
	var be *Error
	if errors.As(err, &be) && be.Reason != "" {
		return be.Reason
	}
	return event.MessageStatusGenericError
}
