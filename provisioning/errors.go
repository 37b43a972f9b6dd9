// SPDX-License-Identifier: MIT

package provisioning

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/iothubemulator/iothub/internal/wire"
)

// Sentinel errors. Errors returned by the client wrap one of these where
// it applies, or are an *Error matching one; test them with errors.Is.
var (
	// ErrRegistrationFailed reports a registration the service ended with
	// status "failed" (or "disabled"): the device was attested, but could not
	// be assigned. The *Error carries the registration's errorCode and
	// errorMessage, and Register returns the result as well.
	ErrRegistrationFailed = errors.New("provisioning: registration failed")
	// ErrBadRequest matches a service 400: a malformed request, or one for
	// something the service does not do.
	ErrBadRequest = errors.New("provisioning: bad request")
	// ErrUnauthorized matches a 401 or a refused CONNECT: unknown ID scope
	// or registration id, wrong key or certificate, disabled enrollment.
	ErrUnauthorized = errors.New("provisioning: unauthorized")
	// ErrNotFound matches a 404.
	ErrNotFound = errors.New("provisioning: not found")
	// ErrThrottled matches a 429 the client stopped retrying.
	ErrThrottled = errors.New("provisioning: throttled")
	// ErrServerError matches a 500.
	ErrServerError = errors.New("provisioning: server error")
	// ErrServiceUnavailable matches a 503, or a CONNACK 3.
	ErrServiceUnavailable = errors.New("provisioning: service unavailable")
)

var classes = map[error]wire.Class{
	ErrBadRequest:         wire.BadRequest,
	ErrUnauthorized:       wire.Unauthorized,
	ErrNotFound:           wire.NotFound,
	ErrThrottled:          wire.Throttled,
	ErrServerError:        wire.ServerError,
	ErrServiceUnavailable: wire.ServiceUnavailable,
}

// Error is a failure the service reported: an error answer, a refused
// CONNECT, or a registration that ended "failed".
type Error struct {
	Op         string // "Register", "OperationStatus" or "Connect"
	StatusCode int    // HTTP-like status; for a failed registration, the status its errorCode stands for
	Code       int    // six-digit errorCode, e.g. 401002; 0 when absent
	Message    string // the service's message, or the status text
	TrackingID string // the service's trackingId, when given
	Failed     bool   // the registration's status was "failed" or "disabled": see ErrRegistrationFailed
	Body       []byte // the raw answer (at most 64 KiB)
}

// Error formats e as "provisioning: Op: status (Code): Message".
func (e *Error) Error() string {
	return wire.FormatError("provisioning", e.Op, e.StatusCode, e.Code, "", e.Message)
}

// Is matches the sentinels: ErrRegistrationFailed for a failed
// registration, the others by status.
func (e *Error) Is(target error) bool {
	if target == ErrRegistrationFailed {
		return e.Failed
	}
	c, ok := classes[target]
	return ok && c == wire.Classify(e.StatusCode, e.Code)
}

// answerError reads an error answer (the service's {"errorCode",...} body).
func answerError(op string, status int, header http.Header, body []byte) *Error {
	h := wire.ParseError(status, header, body)
	return &Error{Op: op, StatusCode: h.StatusCode, Code: h.Code, Message: h.Message, TrackingID: h.TrackingID, Body: h.Body}
}

// connackError maps a refused CONNECT as the Node SDK does.
func connackError(code byte, cause error) error {
	var status int
	switch code {
	case 1:
		status = http.StatusBadRequest
	case 2, 4, 5:
		status = http.StatusUnauthorized
	case 3:
		status = http.StatusServiceUnavailable
	default:
		return cause
	}
	return &Error{Op: "Connect", StatusCode: status, Message: fmt.Sprintf("CONNACK %d: %v", code, cause)}
}
