// SPDX-License-Identifier: MIT

package device

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
)

// Sentinel errors. Errors returned by the client wrap one of these where it
// applies, so test them with errors.Is.
var (
	// ErrNotConnected reports an operation that needs a connection while the
	// client has none and is not reconnecting (Connect was never called, or
	// the retry policy gave up).
	ErrNotConnected = errors.New("device: not connected")
	// ErrClosed reports an operation on a closed client.
	ErrClosed = errors.New("device: client closed")
	// ErrTimeout reports an operation that exceeded the client's operation
	// timeout (see WithOperationTimeout). A deadline on the caller's context
	// yields context.DeadlineExceeded instead.
	ErrTimeout = errors.New("device: operation timed out")
	// ErrMessageTooLarge reports a message over the hub's size limit,
	// refused locally as the official SDKs do.
	ErrMessageTooLarge = errors.New("device: message too large")
	// ErrUnauthorized matches an *Error with status 401, for example a
	// refused CONNECT (CONNACK 4 or 5).
	ErrUnauthorized = errors.New("device: unauthorized")
	// ErrNotFound matches an *Error with status 404.
	ErrNotFound = errors.New("device: not found")
	// ErrPreconditionFailed matches an *Error with status 412 (twin version
	// mismatch).
	ErrPreconditionFailed = errors.New("device: precondition failed")
	// ErrThrottled matches an *Error with status 429.
	ErrThrottled = errors.New("device: throttled")
)

// Error is a failure reported by the hub: a twin response with a non-2xx
// status, or a refused CONNECT mapped to an HTTP-like status.
type Error struct {
	Status     int    // HTTP-like status, e.g. 400, 401, 429
	Code       int    // IoT Hub error code from the response body, e.g. 400004; 0 when absent
	Message    string // message from the response body, or the status text
	TrackingID string // trackingId from the response body, if any
}

// Error formats e as "device: hub error 400 (400004): message".
func (e *Error) Error() string {
	s := "device: hub error " + strconv.Itoa(e.Status)
	if e.Code != 0 {
		s += " (" + strconv.Itoa(e.Code) + ")"
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// Is reports whether target is the sentinel that e's status stands for.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrUnauthorized:
		return e.Status == http.StatusUnauthorized
	case ErrNotFound:
		return e.Status == http.StatusNotFound
	case ErrPreconditionFailed:
		return e.Status == http.StatusPreconditionFailed
	case ErrThrottled:
		return e.Status == http.StatusTooManyRequests
	}
	return false
}

// errorBody is the hub's error payload on twin/res, parsed by the C# v2 SDK
// (Exceptions/IotHubClientErrorResponseMessage.cs). Node reads errorCode and
// message only. errorCode is numeric on the hub but a string in some
// gateways, so both are accepted.
type errorBody struct {
	ErrorCode  json.RawMessage `json:"errorCode"`
	Message    string          `json:"message"`
	TrackingID string          `json:"trackingId"`
}

// newStatusError builds the *Error for a non-2xx response, reading the body
// when it is the hub's JSON error object and falling back to the status text.
func newStatusError(status int, body []byte) *Error {
	e := &Error{Status: status}
	var b errorBody
	if json.Unmarshal(body, &b) == nil {
		e.Message, e.TrackingID = b.Message, b.TrackingID
		e.Code = parseErrorCode(b.ErrorCode)
	}
	if e.Message == "" {
		e.Message = http.StatusText(status)
	}
	return e
}

func parseErrorCode(raw json.RawMessage) int {
	var n int
	if json.Unmarshal(raw, &n) == nil {
		return n
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		n, _ = strconv.Atoi(s)
	}
	return n
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
	return &Error{Status: status, Message: fmt.Sprintf("CONNACK %d: %v", code, cause)}
}
