// SPDX-License-Identifier: MIT

package emulator

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/hub"
	"github.com/iothubemulator/iothub/emulator/internal/huberr"
)

// Test control: emulator-only operations that a test needs and the real
// hub cannot offer. The same operations are served over HTTPS under
// /emulator (see the README).

// C2DMessage is a cloud-to-device message.
type C2DMessage = hub.C2DMessage

// Feedback is a cloud-to-device delivery outcome.
type Feedback = hub.Feedback

// MethodCall is a recorded direct-method invocation.
type MethodCall = hub.MethodCall

// TwinChange is a recorded twin write.
type TwinChange = hub.TwinChange

// SendC2D queues a cloud-to-device message for a device (ttl 0: the hub's
// default of one hour).
func (s *Server) SendC2D(deviceID string, m *C2DMessage, ttl time.Duration) (*C2DMessage, error) {
	return s.hub.SendC2D(context.Background(), deviceID, m, ttl)
}

// PendingC2D returns the messages queued for a device.
func (s *Server) PendingC2D(deviceID string) ([]*C2DMessage, error) {
	return s.hub.PendingC2D(deviceID)
}

// Feedback returns cloud-to-device delivery feedback, oldest first.
func (s *Server) Feedback() ([]Feedback, error) { return s.hub.Feedback() }

// MethodCalls returns recorded direct-method invocations of a device (all
// devices when deviceID is ""), oldest first.
func (s *Server) MethodCalls(deviceID string) []MethodCall { return s.hub.MethodCalls(deviceID) }

// TwinHistory returns the recorded changes of a device or module twin.
func (s *Server) TwinHistory(deviceID, moduleID string) []TwinChange {
	return s.hub.TwinHistory(deviceID, moduleID)
}

// Reset empties the hub (devices, twins, messages, recordings) without a restart.
func (s *Server) Reset() error { return s.hub.Reset(context.Background()) }

// WaitMessages waits until the device has sent at least n messages (counted
// from the start of the log) or timeout passes, and returns them.
func (s *Server) WaitMessages(deviceID string, n int, timeout time.Duration) ([]*Message, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var all []*Message
	var since uint64
	for len(all) < n {
		left := time.Until(deadlineOf(ctx))
		if left <= 0 {
			return all, fmt.Errorf("emulator: got %d messages from %q within %s, want %d", len(all), deviceID, timeout, n)
		}
		ms, err := s.hub.WaitTelemetry(ctx, deviceID, "", since, 0, left)
		if err != nil && ctx.Err() == nil {
			return all, err
		}
		for _, m := range ms {
			since = m.SequenceNumber
		}
		all = append(all, ms...)
	}
	return all, nil
}

func deadlineOf(ctx context.Context) time.Time {
	d, _ := ctx.Deadline()
	return d
}

// Operation names for fault injection.
const (
	OpInvokeMethod  = hub.OpInvokeMethod
	OpGetTwin       = hub.OpGetTwin
	OpUpdateTwin    = hub.OpUpdateTwin
	OpDeviceTwin    = hub.OpDeviceTwin
	OpPatchReported = hub.OpPatchReported
	OpTelemetry     = hub.OpTelemetry
	OpSendC2D       = hub.OpSendC2D
	OpRegistry      = hub.OpRegistry
)

// Fault is what to do to one operation: wait Delay, then fail with Err (nil: proceed).
type Fault = hub.Fault

// Identity names a device (ModuleID "") or module.
type Identity = hub.Identity

// SetReactor installs a fault-injection function called for every
// operation (nil removes it); it returns the fault to inject or nil.
func (s *Server) SetReactor(f func(op string, id Identity) *Fault) {
	if f == nil {
		s.hub.SetReactor(nil)
		return
	}
	s.hub.SetReactor(hub.ReactorFunc(f))
}

// FailNext makes the next n calls of op (for any device) fail with err.
// Use the errors below for the hub's own answers, e.g.
// FailNext(OpPatchReported, 1, ErrThrottled()).
func (s *Server) FailNext(op string, n int, err error) {
	var mu sync.Mutex
	left := n
	s.SetReactor(func(o string, id Identity) *Fault {
		if o != op {
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		if left <= 0 {
			return nil
		}
		left--
		return &Fault{Err: err}
	})
}

// ErrThrottled is the hub's 429 ThrottlingException.
func ErrThrottled() error { return huberr.Throttled() }

// ErrMethodTimeout is the hub's 504 GatewayTimeout for a direct method.
func ErrMethodTimeout() error { return huberr.GatewayTimeout(30 * time.Second) }

// ErrServer is the hub's 500 ServerError.
func ErrServer() error { return huberr.ServerError("Injected server error.") }
