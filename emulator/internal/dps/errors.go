// SPDX-License-Identifier: MIT

package dps

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Error is a Device Provisioning Service error: an HTTP status, the
// six-digit errorCode whose first three digits repeat the status, and a
// message. Both adapters render it as the service's body,
//
//	{"errorCode":401002,"trackingId":"...","message":"...","timestampUtc":"..."}
//
// over HTTPS and as the payload of $dps/registrations/res/{status}/ over
// MQTT. The Node, Python and C SDKs read errorCode and message from it.
type Error struct {
	Status  int
	Code    int
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("%d: %s", e.Code, e.Message) }

// Is matches errors with the same code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// AsError returns err as an *Error; anything else is a 500 whose details
// stay in the log.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Status: http.StatusInternalServerError, Code: 500000, Message: "An internal error occurred."}
}

// Body renders e as the service's JSON error object.
func (e *Error) Body(trackingID string, now time.Time) []byte {
	b, _ := json.Marshal(struct {
		ErrorCode    int    `json:"errorCode"`
		TrackingID   string `json:"trackingId"`
		Message      string `json:"message"`
		TimestampUTC string `json:"timestampUtc"`
	}{e.Code, trackingID, e.Message, now.UTC().Format(timeLayout)})
	return b
}

func newError(status, code int, format string, args ...any) *Error {
	msg := format
	if len(args) > 0 {
		msg = fmt.Sprintf(format, args...)
	}
	return &Error{Status: status, Code: code, Message: msg}
}

// The catalogue. 401002 ("Unauthorized", also "Invalid certificate") and
// 400209 (a failed custom allocation) are the codes the service is seen to
// send in SDK issues and samples; 404201 is what the C# SDK's end-to-end
// tests expect for a registration id without an enrollment. The codes of
// the other cases are not published: the emulator keeps the status the
// service documents (how-to-troubleshoot-dps) and numbers them in its
// range, and the README lists them as a difference.

// BadRequest is 400004: the body or a parameter is not valid.
func BadRequest(format string, args ...any) *Error {
	return newError(http.StatusBadRequest, 400004, format, args...)
}

// Unsupported is 400005: a valid request for something the emulator does
// not do (TPM attestation, CA references).
func Unsupported(format string, args ...any) *Error {
	return newError(http.StatusBadRequest, 400005, format, args...)
}

// CustomAllocationFailed is 400209: the allocation webhook failed or
// answered something unusable.
func CustomAllocationFailed(format string, args ...any) *Error {
	return newError(http.StatusBadRequest, 400209, format, args...)
}

// Unauthorized is 401002. A device that cannot be attested gets it whatever
// the reason (unknown ID scope or registration id, wrong key, certificate,
// disabled enrollment): the service never tells an unauthenticated caller
// what exists. The message says what the emulator found, which the real
// service keeps to itself; it helps more than it leaks in a local tool.
func Unauthorized(format string, args ...any) *Error {
	return newError(http.StatusUnauthorized, 401002, format, args...)
}

// EnrollmentNotFound is 404201.
func EnrollmentNotFound(id string) *Error {
	return newError(http.StatusNotFound, 404201, "Enrollment %s not found.", id)
}

// RegistrationNotFound is 404202.
func RegistrationNotFound(id string) *Error {
	return newError(http.StatusNotFound, 404202, "Registration %s not found.", id)
}

// EnrollmentGroupNotFound is 404203.
func EnrollmentGroupNotFound(id string) *Error {
	return newError(http.StatusNotFound, 404203, "Enrollment group %s not found.", id)
}

// OperationNotFound is 404204.
func OperationNotFound(id string) *Error {
	return newError(http.StatusNotFound, 404204, "Operation %s not found.", id)
}

// PreconditionFailed is 412002: If-Match does not match the etag.
func PreconditionFailed(format string, args ...any) *Error {
	return newError(http.StatusPreconditionFailed, 412002, format, args...)
}

// Conflict is 409005: the request conflicts with what is stored (a bulk
// create of an enrollment that exists).
func Conflict(format string, args ...any) *Error {
	return newError(http.StatusConflict, 409005, format, args...)
}

// TooLarge is 413001: a body over the service's limit.
func TooLarge(format string, args ...any) *Error {
	return newError(http.StatusRequestEntityTooLarge, 413001, format, args...)
}
