// SPDX-License-Identifier: MIT

package wire

import "testing"

// TestAMQPStatus checks the conditions the hub sends against the class a
// client reports for them, as the Node SDKs translate them.
func TestAMQPStatus(t *testing.T) {
	tests := []struct {
		condition string
		want      Class
		code      int
	}{
		{"amqp:not-found", NotFound, 0},
		{"amqp:unauthorized-access", Unauthorized, CodeIotHubUnauthorizedAccess},
		{"amqp:resource-limit-exceeded", Forbidden, CodeIotHubQuotaExceeded},
		{"amqp:link:message-size-exceeded", MessageTooLarge, CodeMessageTooLarge},
		{"com.microsoft:argument-error", BadRequest, CodeArgumentInvalid},
		{"com.microsoft:argument-out-of-range", BadRequest, CodeArgumentInvalid},
		{"com.microsoft:device-already-exists", AlreadyExists, CodeDeviceAlreadyExists},
		{"com.microsoft:device-container-throttled", Throttled, CodeThrottlingException},
		{"com.microsoft:message-lock-lost", PreconditionFailed, CodeDeviceMessageLockLost},
		{"com.microsoft:precondition-failed", PreconditionFailed, CodePreconditionFailed},
		{"com.microsoft:quota-exceeded", Forbidden, CodeIotHubQuotaExceeded},
		{"com.microsoft:timeout", ServiceUnavailable, 0},
		{"amqp:link:detach-forced", ServiceUnavailable, 0},
		{"amqp:internal-error", ServerError, CodeServerError},
		{"amqp:not-allowed", BadRequest, CodeInvalidOperation},
		{"amqp:not-implemented", Unclassified, 0},
	}
	for _, tt := range tests {
		status, code, ok := AMQPStatus(tt.condition)
		if !ok || Classify(status, code) != tt.want || code != tt.code {
			t.Errorf("AMQPStatus(%q) = %d, %d, %v; want class %d, code %d", tt.condition, status, code, ok, tt.want, tt.code)
		}
		if code != 0 && code/1000 != status {
			t.Errorf("AMQPStatus(%q): code %d does not start with status %d", tt.condition, code, status)
		}
	}
	for _, c := range []string{"amqp:link:redirect", "amqp:link:stolen", "", "x:unknown"} {
		if s, code, ok := AMQPStatus(c); ok {
			t.Errorf("AMQPStatus(%q) = %d, %d, true; want no REST counterpart", c, s, code)
		}
	}
}
