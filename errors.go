// Package eventmart holds what every part of Eventmart shares: the
// application error type, whose codes the HTTP layer maps to status codes
// in one place (internal/httpx).
package eventmart

import (
	"errors"
	"fmt"
)

// Error codes.
const (
	EINVALID       = "invalid"                // bad input: 400
	ETOOLARGE      = "too_large"              // the request body is over the limit: 413
	EMEDIATYPE     = "unsupported_media_type" // the body is not of a type the endpoint takes (JSON): 415
	EUNPROCESSABLE = "unprocessable"          // well-formed but refused, e.g. an Idempotency-Key reused with another body: 422
	EUNAUTHORIZED  = "unauthorized"           // no or bad credentials: 401
	EFORBIDDEN     = "forbidden"              // authenticated but not allowed: 403
	ENOTFOUND      = "not_found"              // 404
	EMETHOD        = "method_not_allowed"     // the resource does not take this method: 405
	ECONFLICT      = "conflict"               // state does not allow it: 409
	EUNAVAILABLE   = "unavailable"            // a dependency is down, nothing was done: 503
	EBADGATEWAY    = "bad_gateway"            // the upstream failed after the request was sent, outcome unknown: 502
	ETIMEOUT       = "gateway_timeout"        // the upstream did not answer in time, outcome unknown: 504
	EINTERNAL      = "internal"               // a bug or an unexpected failure: 500
)

// Error is an application error with a code and a message meant for the
// caller. Any other error is internal, and its text is not shown to callers.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("eventmart: %s: %s", e.Code, e.Message) }

// Errorf returns an *Error with a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns err's code: that of the first *Error in its chain, or
// EINTERNAL.
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns err's caller-facing message, or "internal error".
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}
