package chat

import (
	"errors"
	"fmt"
	"time"

	"github.com/mqim/mqim/store"
)

// Error codes clients see, in the error event and in HTTP error bodies (the
// code table of docs/protocol.md). The mapping to HTTP statuses lives in
// package api, the mapping to MQTT reason codes in package hooks.
const (
	CodeInvalid      = "invalid"
	CodeUnauthorized = "unauthorized"
	CodeTooLarge     = "too_large"
	CodeForbidden    = "forbidden"
	CodeNotMember    = "not_member"
	CodeMuted        = "muted"
	CodeBlocked      = "blocked" // the recipient blocked the sender
	CodeNotFound     = "not_found"
	CodeConflict     = "conflict"
	CodeRateLimited  = "rate_limited"
	CodeUnavailable  = "unavailable"
)

// Error is a refusal with a client-facing code. Temporary errors
// (unavailable) may succeed when retried; the others will not.
type Error struct {
	Code    string
	Message string
	// RetryAfter, for rate_limited, is how long until the same request
	// would pass.
	RetryAfter time.Duration
}

// RetryAfterSeconds is RetryAfter rounded up to whole seconds (at least 1),
// as HTTP's Retry-After and the error event's retry_after carry it.
func (e *Error) RetryAfterSeconds() int {
	return max(1, int((e.RetryAfter+time.Second-1)/time.Second))
}

func rateLimited(what string, retry time.Duration) *Error {
	return &Error{Code: CodeRateLimited, Message: what + ": rate limit reached, try again later", RetryAfter: retry}
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Temporary reports whether retrying the same request may succeed.
func (e *Error) Temporary() bool { return e.Code == CodeUnavailable }

// Errorf returns an *Error with code and a formatted message. The doors use
// it for refusals that are theirs to make (malformed requests).
func Errorf(code, format string, a ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, a...)}
}

var errorf = Errorf

// AsError turns any error from the service into an *Error: store sentinels
// map to not_found and conflict, anything unknown to unavailable (a database
// outage), so that no caller leaks internals.
func AsError(err error) *Error {
	var e *Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &e):
		return e
	case errors.Is(err, store.ErrNotFound):
		return errorf(CodeNotFound, "not found")
	case errors.Is(err, store.ErrConflict):
		return errorf(CodeConflict, "already exists")
	default:
		return errorf(CodeUnavailable, "storage unavailable, try again")
	}
}
