// SPDX-License-Identifier: MIT

package wire

import "net/http"

// Class is the kind of failure a hub error stands for. Each client has one
// sentinel error per class (ErrNotFound, ErrThrottled, ...), matched by its
// Error type's Is method through Classify, so both clients classify alike.
type Class int

// The classes, after the status-to-error mapping of the Node SDKs
// (azure-iot-common errors.js, azure-iot-http-base translateError).
const (
	Unclassified       Class = iota
	BadRequest               // 400
	Unauthorized             // 401
	Forbidden                // 403: quotas, queue depth
	NotFound                 // 404, except DeviceNotOnline
	DeviceNotOnline          // 404103: a method's target did not connect in time
	AlreadyExists            // 409
	PreconditionFailed       // 412: etag or twin version mismatch
	MessageTooLarge          // 413
	Throttled                // 429
	Timeout                  // 408, 504 (504101: the device did not answer a method)
	ServerError              // 500
	ServiceUnavailable       // 503
)

// Classify returns the class of an error answer with the given status and
// six-digit code. The status decides, except for DeviceNotOnline, which
// shares 404 with the not-found errors but means the identity exists. An
// answer without a usable status (a twin reply whose status is not a
// number) is classified by the HTTP status inside its code.
func Classify(status, code int) Class {
	if code == CodeDeviceNotOnline {
		return DeviceNotOnline
	}
	if status < 100 && code >= 100000 && code <= 999999 {
		status = code / 1000
	}
	switch status {
	case http.StatusBadRequest:
		return BadRequest
	case http.StatusUnauthorized:
		return Unauthorized
	case http.StatusForbidden:
		return Forbidden
	case http.StatusNotFound:
		return NotFound
	case http.StatusConflict:
		return AlreadyExists
	case http.StatusPreconditionFailed:
		return PreconditionFailed
	case http.StatusRequestEntityTooLarge:
		return MessageTooLarge
	case http.StatusTooManyRequests:
		return Throttled
	case http.StatusRequestTimeout, http.StatusGatewayTimeout:
		return Timeout
	case http.StatusInternalServerError:
		return ServerError
	case http.StatusServiceUnavailable:
		return ServiceUnavailable
	}
	return Unclassified
}
