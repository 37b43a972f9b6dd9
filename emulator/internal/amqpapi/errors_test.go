// SPDX-License-Identifier: MIT

package amqpapi

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/amqp"
	"github.com/iothubemulator/iothub/emulator/internal/huberr"
)

// TestHubErrorConditions: the conditions the Node SDKs translate into
// their error types (azure-iot-amqp-base amqp_common_errors,
// azure-iothub amqp_service_errors).
func TestHubErrorConditions(t *testing.T) {
	for _, tc := range []struct {
		err  error
		cond amqp.Symbol
	}{
		{huberr.DeviceNotFound("d"), "amqp:not-found"},
		{huberr.DeviceMaximumQueueDepthExceeded("d", 50), "amqp:resource-limit-exceeded"},
		{huberr.MessageTooLarge("big"), "amqp:link:message-size-exceeded"},
		{huberr.ArgumentInvalid("bad"), "com.microsoft:argument-error"},
		{huberr.UnauthorizedAccess("no"), "amqp:unauthorized-access"},
		{huberr.DeviceMessageLockLost("gone"), "com.microsoft:message-lock-lost"},
		{huberr.PreconditionFailed("etag"), "com.microsoft:precondition-failed"},
		{huberr.DeviceAlreadyExists("d"), "com.microsoft:device-already-exists"},
		{huberr.Throttled(), "com.microsoft:device-container-throttled"},
		{huberr.GatewayTimeout(time.Second), "com.microsoft:timeout"},
		{huberr.ServiceUnavailable("refused"), "com.microsoft:timeout"},
		{errors.New("disk on fire"), "amqp:internal-error"},
	} {
		got := hubError(tc.err)
		if got.Condition != tc.cond {
			t.Errorf("%v: condition %s, want %s", tc.err, got.Condition, tc.cond)
		}
		if got.Description == "" || got.Description == "disk on fire" {
			t.Errorf("%v: description %q; want the hub's message, and nothing internal", tc.err, got.Description)
		}
	}
}

// TestOutcomeError: what a device link refuses a delivery with. An AMQP
// error (a parse error of the adapter's) goes as it is, a wait that ended
// as com.microsoft:timeout, a hub error as hubError maps it.
func TestOutcomeError(t *testing.T) {
	for _, tc := range []struct {
		err  error
		cond amqp.Symbol
		desc string
	}{
		{amqp.Errorf(amqp.ErrNotImplemented, "format 7"), amqp.ErrNotImplemented, "format 7"},
		{fmt.Errorf("recording: %w", context.DeadlineExceeded), condTimeout, "deadline exceeded"},
		{context.Canceled, condTimeout, "canceled"},
		{huberr.MessageTooLarge("too big"), condMessageTooLarge, "too big"},
		{errors.New("disk on fire"), amqp.ErrInternal, ""},
	} {
		got := outcomeError(tc.err)
		if got.Condition != tc.cond || !strings.Contains(got.Description, tc.desc) {
			t.Errorf("%v: got %s %q, want %s containing %q", tc.err, got.Condition, got.Description, tc.cond, tc.desc)
		}
	}
}
