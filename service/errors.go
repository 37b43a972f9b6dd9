// SPDX-License-Identifier: MIT

package service

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/iothubemulator/iothub/internal/wire"
)

// Sentinel errors. A failed call returns an *Error that matches, with
// errors.Is, the sentinel for the kind of failure the hub reported; the
// device package has the same sentinels under the same names.
var (
	// ErrBadRequest matches a hub 400: the request was invalid.
	ErrBadRequest = errors.New("service: bad request")
	// ErrUnauthorized matches a hub 401: a missing, invalid or expired
	// token, or a policy without the permission the call needs.
	ErrUnauthorized = errors.New("service: unauthorized")
	// ErrForbidden matches a hub 403, such as a quota being exceeded or a
	// device's cloud-to-device queue being full.
	ErrForbidden = errors.New("service: forbidden")
	// ErrNotFound matches a hub 404, such as DeviceNotFound or
	// ModuleNotFound. DeviceNotOnline, which the hub also sends as 404,
	// does not match: the device exists (see ErrDeviceNotOnline).
	ErrNotFound = errors.New("service: not found")
	// ErrDeviceNotOnline matches the hub's 404103: the target of a direct
	// method did not connect (or subscribe to methods) within the connect
	// timeout.
	ErrDeviceNotOnline = errors.New("service: device not online")
	// ErrAlreadyExists matches a hub 409, such as DeviceAlreadyExists or
	// ModuleAlreadyExistsOnDevice.
	ErrAlreadyExists = errors.New("service: already exists")
	// ErrPreconditionFailed matches a hub 412: the If-Match etag did not
	// match the current one.
	ErrPreconditionFailed = errors.New("service: precondition failed")
	// ErrMessageTooLarge matches a hub 413: a payload over the hub's limit,
	// or a bulk request with too many devices.
	ErrMessageTooLarge = errors.New("service: message too large")
	// ErrThrottled matches a hub 429.
	ErrThrottled = errors.New("service: throttled")
	// ErrTimeout matches a hub 504 or 408 (504101: the device did not
	// answer a direct method within its response timeout), and is wrapped
	// by the error of a call that got no answer within its own time limit
	// (InvokeMethod's timeouts plus a margin). A deadline on the caller's
	// context yields context.DeadlineExceeded instead.
	ErrTimeout = errors.New("service: timed out")
	// ErrServerError matches a hub 500.
	ErrServerError = errors.New("service: server error")
	// ErrServiceUnavailable matches a hub 503.
	ErrServiceUnavailable = errors.New("service: service unavailable")
	// ErrClosed reports a call on a closed receiver.
	ErrClosed = errors.New("service: closed")
)

// classes maps each sentinel to the kind of hub answer it stands for.
var classes = map[error]wire.Class{
	ErrBadRequest:         wire.BadRequest,
	ErrUnauthorized:       wire.Unauthorized,
	ErrForbidden:          wire.Forbidden,
	ErrNotFound:           wire.NotFound,
	ErrDeviceNotOnline:    wire.DeviceNotOnline,
	ErrAlreadyExists:      wire.AlreadyExists,
	ErrPreconditionFailed: wire.PreconditionFailed,
	ErrMessageTooLarge:    wire.MessageTooLarge,
	ErrThrottled:          wire.Throttled,
	ErrTimeout:            wire.Timeout,
	ErrServerError:        wire.ServerError,
	ErrServiceUnavailable: wire.ServiceUnavailable,
}

// Error is an error answer from the hub. Test it with errors.Is against the
// sentinels above, and use errors.As to read the hub's code and message.
// device.Error has the same fields, except Condition.
//
// An answer over AMQP (a rejected cloud-to-device message, a refused link,
// a failed put-token) carries the AMQP error condition, and the HTTP status
// and code the hub answers the same refusal with on REST (amqp:not-found
// for a cloud-to-device message is 404 DeviceNotFound, and so on), so that
// the sentinels match it too.
type Error struct {
	Op         string          // client operation, e.g. "GetDevice"
	StatusCode int             // HTTP status; over AMQP, the status of the same refusal on REST
	Code       int             // six-digit hub error code, e.g. 404001; 0 when the hub sent none we could read
	CodeName   string          // hub error code name, e.g. "DeviceNotFound"; "" when unknown
	Message    string          // human-readable message from the hub
	TrackingID string          // hub tracking id, when the answer carried one
	RequestID  string          // Request-Id header this client sent on the failing attempt; "" over AMQP
	Info       json.RawMessage // "info" object of error form B, nil otherwise
	Body       []byte          // raw response body (at most 64 KiB); nil over AMQP
	Condition  string          // AMQP error condition, e.g. "amqp:not-found"; "" over HTTPS
}

// Error formats e as "service: Op: status CodeName (Code): Message".
func (e *Error) Error() string {
	return wire.FormatError("service", e.Op, e.StatusCode, e.Code, e.CodeName, e.Message)
}

// Is reports whether target is the sentinel for the kind of failure e is,
// so that errors.Is(err, ErrNotFound) works through any wrapping.
func (e *Error) Is(target error) bool {
	c, ok := classes[target]
	return ok && c == wire.Classify(e.StatusCode, e.Code)
}

// Hub error codes (learn.microsoft.com/rest/api/iothub/common-error-codes and
// the C# SDK's IotHubServiceErrorCode.cs). Error.Code holds one of these, or
// another six-digit code the hub sent.
const (
	CodeInvalidProtocolVersion      = wire.CodeInvalidProtocolVersion
	CodeInvalidOperation            = wire.CodeInvalidOperation
	CodeArgumentInvalid             = wire.CodeArgumentInvalid
	CodeArgumentNull                = wire.CodeArgumentNull
	CodeIotHubFormatError           = wire.CodeIotHubFormatError
	CodeDeviceDefinedMultipleTimes  = wire.CodeDeviceDefinedMultipleTimes
	CodeBulkRegistryOperationFailed = wire.CodeBulkRegistryOperationFailed
	CodeIotHubUnauthorizedAccess    = wire.CodeIotHubUnauthorizedAccess
	CodeIotHubUnauthorized          = wire.CodeIotHubUnauthorized
	CodeJobQuotaExceeded            = wire.CodeJobQuotaExceeded
	CodeIotHubQuotaExceeded         = wire.CodeIotHubQuotaExceeded
	CodeDeviceMaximumQueueDepth     = wire.CodeDeviceMaximumQueueDepth
	CodeDeviceNotFound              = wire.CodeDeviceNotFound
	CodeJobNotFound                 = wire.CodeJobNotFound
	CodeModuleNotFound              = wire.CodeModuleNotFound
	CodeDeviceNotOnline             = wire.CodeDeviceNotOnline
	CodeDeviceAlreadyExists         = wire.CodeDeviceAlreadyExists
	CodeModuleAlreadyExists         = wire.CodeModuleAlreadyExists
	CodePreconditionFailed          = wire.CodePreconditionFailed
	CodeDeviceMessageLockLost       = wire.CodeDeviceMessageLockLost
	CodeMessageTooLarge             = wire.CodeMessageTooLarge
	CodeTooManyDevices              = wire.CodeTooManyDevices
	CodeThrottlingException         = wire.CodeThrottlingException
	CodeThrottleBacklogLimit        = wire.CodeThrottleBacklogLimit
	CodeThrottlingBacklogTimeout    = wire.CodeThrottlingBacklogTimeout
	CodeServerError                 = wire.CodeServerError
	CodeServiceUnavailable          = wire.CodeServiceUnavailable
	CodeGatewayTimeout              = wire.CodeGatewayTimeout
)

// parseError builds the *Error for a failed response.
func parseError(status int, header http.Header, body []byte) *Error {
	h := wire.ParseError(status, header, body)
	return &Error{
		StatusCode: h.StatusCode, Code: h.Code, CodeName: h.CodeName, Message: h.Message,
		TrackingID: h.TrackingID, Info: h.Info, Body: h.Body,
	}
}

// asError returns the *Error in err's chain, or nil.
func asError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return nil
}

// IsNotFound reports whether err matches ErrNotFound.
//
// Deprecated: use errors.Is(err, ErrNotFound).
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// IsAlreadyExists reports whether err matches ErrAlreadyExists.
//
// Deprecated: use errors.Is(err, ErrAlreadyExists).
func IsAlreadyExists(err error) bool { return errors.Is(err, ErrAlreadyExists) }

// IsPreconditionFailed reports whether err matches ErrPreconditionFailed.
//
// Deprecated: use errors.Is(err, ErrPreconditionFailed).
func IsPreconditionFailed(err error) bool { return errors.Is(err, ErrPreconditionFailed) }

// IsThrottled reports whether err matches ErrThrottled.
//
// Deprecated: use errors.Is(err, ErrThrottled).
func IsThrottled(err error) bool { return errors.Is(err, ErrThrottled) }

// IsUnauthorized reports whether err matches ErrUnauthorized.
//
// Deprecated: use errors.Is(err, ErrUnauthorized).
func IsUnauthorized(err error) bool { return errors.Is(err, ErrUnauthorized) }

// IsForbidden reports whether err matches ErrForbidden.
//
// Deprecated: use errors.Is(err, ErrForbidden).
func IsForbidden(err error) bool { return errors.Is(err, ErrForbidden) }

// IsBadRequest reports whether err matches ErrBadRequest.
//
// Deprecated: use errors.Is(err, ErrBadRequest).
func IsBadRequest(err error) bool { return errors.Is(err, ErrBadRequest) }

// IsDeviceNotOnline reports whether err matches ErrDeviceNotOnline.
//
// Deprecated: use errors.Is(err, ErrDeviceNotOnline).
func IsDeviceNotOnline(err error) bool { return errors.Is(err, ErrDeviceNotOnline) }

// IsGatewayTimeout reports whether err is a hub 504, typically 504101: the
// device did not answer a direct method within the response timeout.
//
// Deprecated: use errors.Is(err, ErrTimeout), which also matches a call
// that got no answer within its own time limit.
func IsGatewayTimeout(err error) bool {
	e := asError(err)
	return e != nil && (e.Code == CodeGatewayTimeout || e.StatusCode == http.StatusGatewayTimeout)
}

// errorf prefixes client-side errors consistently.
func errorf(op, format string, args ...any) error {
	return fmt.Errorf("service: "+op+": "+format, args...)
}
