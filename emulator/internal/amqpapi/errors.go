// SPDX-License-Identifier: MIT

package amqpapi

import (
	"context"
	"errors"

	"github.com/iothubemulator/iothub/emulator/internal/amqp"
	"github.com/iothubemulator/iothub/emulator/internal/huberr"
)

// Error conditions the hub uses beyond the AMQP spec's; the SDKs map them
// to their error types (Node: azure-iot-amqp-base amqp_common_errors,
// azure-iothub amqp_service_errors).
const (
	condArgumentError   amqp.Symbol = "com.microsoft:argument-error"
	condArgumentRange   amqp.Symbol = "com.microsoft:argument-out-of-range"
	condDeviceExists    amqp.Symbol = "com.microsoft:device-already-exists"
	condThrottled       amqp.Symbol = "com.microsoft:device-container-throttled"
	condLockLost        amqp.Symbol = "com.microsoft:message-lock-lost"
	condPrecondition    amqp.Symbol = "com.microsoft:precondition-failed"
	condTimeout         amqp.Symbol = "com.microsoft:timeout"
	condQuotaExceeded   amqp.Symbol = "com.microsoft:quota-exceeded"
	condResourceLimit   amqp.Symbol = amqp.ErrResourceLimitExceeded
	condMessageTooLarge amqp.Symbol = amqp.ErrMessageSizeExceeded
)

// hubError maps a hub error onto the AMQP error the hub answers with. The
// description is the hub's message; errors from outside the catalogue
// become amqp:internal-error with a generic message (details are logged,
// not sent).
func hubError(err error) *amqp.Error {
	he := huberr.As(err)
	cond := amqp.ErrInternal
	switch {
	case he.Code == 403004: // DeviceMaximumQueueDepthExceeded
		cond = condResourceLimit
	case he.Code == 412002: // DeviceMessageLockLost
		cond = condLockLost
	case he.Status == 400:
		cond = condArgumentError
	case he.Status == 401:
		cond = amqp.ErrUnauthorizedAccess
	case he.Status == 403:
		cond = condQuotaExceeded
	case he.Status == 404:
		cond = amqp.ErrNotFound
	case he.Status == 409:
		cond = condDeviceExists
	case he.Status == 412:
		cond = condPrecondition
	case he.Status == 413:
		cond = condMessageTooLarge
	case he.Status == 429:
		cond = condThrottled
	case he.Status == 503, he.Status == 504:
		// 503: a connection refused during a fault's duration; Node reads
		// com.microsoft:timeout as ServiceUnavailableError, which it
		// retries, as it reads MQTT's CONNACK 3.
		cond = condTimeout
	}
	return &amqp.Error{Condition: cond, Description: he.Message}
}

// outcomeError is the AMQP error a device link refuses a delivery with:
// an AMQP error as it is, a context that ended as com.microsoft:timeout,
// anything else as the hub's error (hubError).
func outcomeError(err error) *amqp.Error {
	var ae *amqp.Error
	if errors.As(err, &ae) {
		return ae
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return amqp.Errorf(condTimeout, "the operation did not complete: %v", err)
	}
	return hubError(err)
}
