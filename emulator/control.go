// SPDX-License-Identifier: MIT

package emulator

import (
	"context"
	"fmt"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/hub"
)

// Test control: emulator-only operations that a test needs and the real
// hub cannot offer. The same operations are served over HTTPS under
// /emulator (see the README).

// SendC2D queues a cloud-to-device message for a device (ttl 0: the hub's
// default of one hour).
// It returns the message as queued.
func (s *Server) SendC2D(deviceID string, m *C2DMessage, ttl time.Duration) (*C2DMessage, error) {
	out, err := s.hub.SendC2D(context.Background(), deviceID, m.hub(), ttl)
	if err != nil {
		return nil, err
	}
	return c2dOf(out), nil
}

// PendingC2D returns the messages queued for a device, oldest first.
func (s *Server) PendingC2D(deviceID string) ([]*C2DMessage, error) {
	ms, err := s.hub.PendingC2D(deviceID)
	if err != nil {
		return nil, err
	}
	out := make([]*C2DMessage, len(ms))
	for i, m := range ms {
		out[i] = c2dOf(m)
	}
	return out, nil
}

// Feedback returns cloud-to-device delivery feedback, oldest first.
func (s *Server) Feedback() ([]Feedback, error) {
	fb, err := s.hub.Feedback()
	if err != nil {
		return nil, err
	}
	out := make([]Feedback, len(fb))
	for i, f := range fb {
		out[i] = feedbackOf(f)
	}
	return out, nil
}

// MethodCalls returns recorded direct-method invocations of a device (all
// devices when deviceID is ""), oldest first.
func (s *Server) MethodCalls(deviceID string) []MethodCall {
	cs := s.hub.MethodCalls(deviceID)
	out := make([]MethodCall, len(cs))
	for i, c := range cs {
		out[i] = methodCallOf(c)
	}
	return out
}

// TwinHistory returns the recorded changes of a device or module twin,
// oldest first.
func (s *Server) TwinHistory(deviceID, moduleID string) []TwinChange {
	cs := s.hub.TwinHistory(deviceID, moduleID)
	out := make([]TwinChange, len(cs))
	for i, c := range cs {
		out[i] = twinChangeOf(c)
	}
	return out
}

// Reset empties the hub (devices, twins, messages, recordings) and the
// provisioning service (enrollments, registration states) without a
// restart.
func (s *Server) Reset() error {
	if err := s.hub.Reset(context.Background()); err != nil {
		return err
	}
	return s.dps.Reset()
}

// WaitMessages waits until the device has sent at least n messages (counted
// from the start of the log) or timeout passes, and returns them.
func (s *Server) WaitMessages(deviceID string, n int, timeout time.Duration) ([]*Message, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var all []*hub.Message
	var since uint64
	for len(all) < n {
		left := time.Until(deadlineOf(ctx))
		if left <= 0 {
			return messagesOf(all), fmt.Errorf("emulator: got %d messages from %q within %s, want %d", len(all), deviceID, timeout, n)
		}
		ms, err := s.hub.WaitTelemetry(ctx, deviceID, "", since, 0, left)
		if err != nil && ctx.Err() == nil {
			return messagesOf(all), err
		}
		for _, m := range ms {
			since = m.SequenceNumber
		}
		all = append(all, ms...)
	}
	return messagesOf(all), nil
}

func deadlineOf(ctx context.Context) time.Time {
	d, _ := ctx.Deadline()
	return d
}
