// SPDX-License-Identifier: MIT

package device

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/iothubemulator/iothub/internal/wire"
)

// Sentinel errors. Errors returned by the client wrap one of these where it
// applies, or are an *Error matching one, so test them with errors.Is. The
// hub's failures have the same sentinels under the same names in the
// service package.
var (
	// ErrNotConnected reports an operation that needs a connection while the
	// client has none and is not reconnecting (Connect was never called, or
	// the retry policy gave up).
	ErrNotConnected = errors.New("device: not connected")
	// ErrClosed reports an operation on a closed client.
	ErrClosed = errors.New("device: client closed")
	// ErrTimeout reports an operation that exceeded the client's operation
	// timeout (see WithOperationTimeout), and matches a hub answer of 408
	// or 504. A deadline on the caller's context yields
	// context.DeadlineExceeded instead.
	ErrTimeout = errors.New("device: operation timed out")
	// ErrMessageTooLarge reports a message over the hub's size limit,
	// refused locally as the official SDKs do, and matches a hub 413.
	ErrMessageTooLarge = errors.New("device: message too large")
	// ErrBadRequest matches a hub 400, such as a reported-properties patch
	// the hub refuses (400004 ArgumentInvalid), or a refused CONNECT for
	// an unacceptable protocol version (CONNACK 1).
	ErrBadRequest = errors.New("device: bad request")
	// ErrUnauthorized matches a hub 401, for example a refused CONNECT
	// (CONNACK 2, 4 or 5).
	ErrUnauthorized = errors.New("device: unauthorized")
	// ErrForbidden matches a hub 403, such as a quota being exceeded.
	ErrForbidden = errors.New("device: forbidden")
	// ErrNotFound matches a hub 404.
	ErrNotFound = errors.New("device: not found")
	// ErrPreconditionFailed matches a hub 412 (twin version mismatch).
	ErrPreconditionFailed = errors.New("device: precondition failed")
	// ErrThrottled matches a hub 429.
	ErrThrottled = errors.New("device: throttled")
	// ErrServerError matches a hub 500.
	ErrServerError = errors.New("device: server error")
	// ErrServiceUnavailable matches a hub 503, or a refused CONNECT for an
	// unavailable server (CONNACK 3).
	ErrServiceUnavailable = errors.New("device: service unavailable")
)

// classes maps each sentinel a hub answer can match to the kind of answer
// it stands for.
var classes = map[error]wire.Class{
	ErrBadRequest:         wire.BadRequest,
	ErrUnauthorized:       wire.Unauthorized,
	ErrForbidden:          wire.Forbidden,
	ErrNotFound:           wire.NotFound,
	ErrPreconditionFailed: wire.PreconditionFailed,
	ErrMessageTooLarge:    wire.MessageTooLarge,
	ErrThrottled:          wire.Throttled,
	ErrTimeout:            wire.Timeout,
	ErrServerError:        wire.ServerError,
	ErrServiceUnavailable: wire.ServiceUnavailable,
}

// Error is a failure reported by the hub: a twin reply with a non-2xx
// status, or a refused CONNECT mapped to an HTTP-like status. Test it with
// errors.Is against the sentinels above, and use errors.As to read the
// hub's code and message. service.Error has the same fields.
type Error struct {
	Op         string          // client operation: "Connect", "GetTwin" or "UpdateReportedProperties"
	StatusCode int             // HTTP-like status, e.g. 400, 401, 429
	Code       int             // six-digit hub error code, e.g. 400004; 0 when absent
	CodeName   string          // hub error code name, e.g. "ArgumentInvalid"; "" when unknown
	Message    string          // message from the reply, or the status text
	TrackingID string          // trackingId from the reply, if any
	RequestID  string          // the $rid of the failed twin request
	Info       json.RawMessage // "info" object of the reply, nil when absent
	Body       []byte          // raw reply payload (at most 64 KiB)
}

// Error formats e as "device: Op: status CodeName (Code): Message".
func (e *Error) Error() string {
	return wire.FormatError("device", e.Op, e.StatusCode, e.Code, e.CodeName, e.Message)
}

// Is reports whether target is the sentinel for the kind of failure e is,
// so that errors.Is(err, ErrThrottled) works through any wrapping.
func (e *Error) Is(target error) bool {
	c, ok := classes[target]
	return ok && c == wire.Classify(e.StatusCode, e.Code)
}

// twinError builds the *Error for a twin reply with a non-2xx status. The
// payload is the hub's error object (iothub-protocol.md §3.8), parsed as the
// C# v2 SDK does, or empty (edgeHub), when the status alone speaks.
func twinError(op, rid string, status int, payload []byte) *Error {
	h := wire.ParseError(status, nil, payload)
	return &Error{
		Op: op, StatusCode: h.StatusCode, Code: h.Code, CodeName: h.CodeName, Message: h.Message,
		TrackingID: h.TrackingID, RequestID: rid, Info: h.Info, Body: h.Body,
	}
}

// wrapOp prefixes err with what the client was doing, except for the hub's
// *Error, whose message names the operation already.
func wrapOp(what string, err error) error {
	if _, ok := err.(*Error); ok {
		return err
	}
	return fmt.Errorf("device: %s: %w", what, err)
}

// connackError maps a refused CONNECT to an *Error the way the Node SDK's
// translateError does: identifier rejected, bad credentials and not
// authorized become 401; server unavailable becomes 503.
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
