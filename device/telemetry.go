// SPDX-License-Identifier: MIT

package device

import (
	"context"
	"errors"
	"fmt"
)

// SendMessage sends m as telemetry and waits for the hub's PUBACK (QoS 1, as
// all SDKs send it). If the connection drops first, the message is sent again
// after the reconnect (at-least-once). For a module, m.OutputName names the
// output ($.on). Messages over MaxMessageSize are refused locally with
// ErrMessageTooLarge.
func (c *Client) SendMessage(ctx context.Context, m *Message) error {
	if m == nil {
		return errors.New("device: nil message")
	}
	bag := encodeProperties(m)
	if n := len(m.Body) + len(bag); n > MaxMessageSize {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrMessageTooLarge, n, MaxMessageSize)
	}
	topic := telemetryTopic(c.id.deviceID, c.id.moduleID, bag)
	ctx, cancel := c.withOpTimeout(ctx)
	defer cancel()
	for {
		s, err := c.current(ctx)
		if err != nil {
			return fmt.Errorf("device: send message: %w", err)
		}
		err = s.wait(ctx, s.pc.Publish(topic, 1, false, m.Body))
		if err == nil {
			return nil
		}
		c.log.Debug("send message failed; retrying after reconnect", "error", err)
		if err := awaitRetry(ctx, s); err != nil {
			return fmt.Errorf("device: send message: %w", err)
		}
	}
}

// awaitRetry handles a failed exchange on s. Paho reports failures that
// come from a dying connection (not connected, connection lost, write
// timeout) before or instead of the connection-lost callback, so the
// exchange is retried once s has ended; if ctx ends first, its cause is
// returned.
func awaitRetry(ctx context.Context, s *session) error {
	select {
	case <-s.lost:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
