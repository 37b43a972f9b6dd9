// SPDX-License-Identifier: MIT

package wire

import "net/http"

// AMQPStatus maps an AMQP error condition the hub sends (on a rejected
// transfer, a refused attach or a detach) onto the HTTP status and
// six-digit code the same refusal has on REST, so that both clients
// classify AMQP answers with Classify like any other. The table follows
// the Node SDKs' translation of AMQP errors (azure-iot-amqp-base
// amqp_common_errors: not-found is DeviceNotFoundError, resource-limit
// IotHubQuotaExceededError, com.microsoft:timeout ServiceUnavailableError,
// ...). Code is 0 where REST has no single code for the condition; ok is
// false for conditions with no REST counterpart (amqp:link:stolen,
// amqp:link:redirect, ...).
func AMQPStatus(condition string) (status, code int, ok bool) {
	switch condition {
	case "amqp:internal-error":
		return http.StatusInternalServerError, CodeServerError, true
	case "amqp:link:message-size-exceeded":
		return http.StatusRequestEntityTooLarge, CodeMessageTooLarge, true
	case "amqp:not-found", "amqp:resource-deleted":
		return http.StatusNotFound, 0, true
	case "amqp:not-implemented":
		return http.StatusNotImplemented, 0, true
	case "amqp:not-allowed", "amqp:illegal-state", "amqp:invalid-field", "amqp:decode-error":
		return http.StatusBadRequest, CodeInvalidOperation, true
	case "amqp:resource-limit-exceeded", "com.microsoft:quota-exceeded":
		return http.StatusForbidden, CodeIotHubQuotaExceeded, true
	case "amqp:unauthorized-access":
		return http.StatusUnauthorized, CodeIotHubUnauthorizedAccess, true
	case "com.microsoft:argument-error", "com.microsoft:argument-out-of-range":
		return http.StatusBadRequest, CodeArgumentInvalid, true
	case "com.microsoft:device-already-exists":
		return http.StatusConflict, CodeDeviceAlreadyExists, true
	case "com.microsoft:device-container-throttled":
		return http.StatusTooManyRequests, CodeThrottlingException, true
	case "com.microsoft:iot-hub-suspended":
		return http.StatusForbidden, 0, true
	case "com.microsoft:message-lock-lost":
		return http.StatusPreconditionFailed, CodeDeviceMessageLockLost, true
	case "com.microsoft:precondition-failed", "amqp:precondition-failed":
		return http.StatusPreconditionFailed, CodePreconditionFailed, true
	case "com.microsoft:timeout", "com.microsoft:server-busy", "amqp:link:detach-forced":
		return http.StatusServiceUnavailable, 0, true
	}
	return 0, 0, false
}
