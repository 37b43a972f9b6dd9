// SPDX-License-Identifier: MIT

package hub

// The device HTTPS receive: a message is locked for a while, then
// completed, rejected or abandoned by its lock token.

import (
	"context"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/huberr"
	"github.com/iothubemulator/iothub/emulator/internal/store"
	"github.com/iothubemulator/iothub/internal/uuid"
)

// ReceiveC2D locks the next deliverable message of a device for an HTTPS
// receive (GET /devices/{id}/messages/deviceBound) for lock (0: the
// default). It returns nil when nothing is deliverable.
func (h *Hub) ReceiveC2D(ctx context.Context, deviceID string, lock time.Duration) (*C2DMessage, error) {
	if lock <= 0 {
		lock = DefaultLockTimeout
	}
	if lock > MaxLockTimeout {
		return nil, huberr.ArgumentInvalid("The lock timeout may be at most %s.", MaxLockTimeout)
	}
	now := h.Now()
	var got *C2DMessage
	unlock := h.lockQueue(deviceID)
	defer unlock()
	err := h.db.Update(func(tx *store.Tx) error {
		got = nil
		queued, err := h.sweepC2D(tx, c2dPrefix(deviceID), now)
		if err != nil {
			return err
		}
		for _, m := range queued {
			if h.c2dDisposition(m, now) == c2dReady {
				got = m
				break
			}
		}
		if got == nil {
			return nil
		}
		got.DeliveryCount++
		got.LockToken = uuid.New()
		got.LockedUntil = now.Add(lock)
		return putC2D(tx, got)
	})
	if err == nil && got != nil {
		// A lock that runs out makes the message deliverable again: a
		// device subscribed over MQTT gets it then, not at the next send.
		h.clk.AfterFunc(lock, func() { h.deliverIfSubscribed(deviceID) })
	}
	return got, err
}

// lockedNow returns the message an HTTPS receive locked with lockToken,
// or 412 DeviceMessageLockLost when the token is unknown or its lock has
// expired by the hub's clock.
func lockedNow(tx *store.Tx, deviceID, lockToken string, now time.Time) (*C2DMessage, error) {
	m, err := findLocked(tx, deviceID, lockToken)
	if err != nil {
		return nil, err
	}
	if m.LockedUntil.IsZero() || !now.Before(m.LockedUntil) {
		return nil, huberr.DeviceMessageLockLost("The lock on the message with lock token %s has expired.", lockToken)
	}
	return m, nil
}

// CompleteC2DLock completes (or, with reject, dead-letters) a message
// locked by an HTTPS receive.
func (h *Hub) CompleteC2DLock(ctx context.Context, deviceID, lockToken string, reject bool) error {
	outcome := FeedbackSuccess
	if reject {
		outcome = FeedbackRejected
	}
	now := h.Now()
	return h.db.Update(func(tx *store.Tx) error {
		m, err := lockedNow(tx, deviceID, lockToken, now)
		if err != nil {
			return err
		}
		return h.removeC2D(tx, m, outcome)
	})
}

// AbandonC2DLock returns a message locked by an HTTPS receive to the
// queue; a device subscribed over MQTT gets it at once.
func (h *Hub) AbandonC2DLock(ctx context.Context, deviceID, lockToken string) error {
	now := h.Now()
	err := h.db.Update(func(tx *store.Tx) error {
		m, err := lockedNow(tx, deviceID, lockToken, now)
		if err != nil {
			return err
		}
		m.LockToken, m.LockedUntil = "", time.Time{}
		return putC2D(tx, m)
	})
	if err != nil {
		return err
	}
	h.deliverIfSubscribed(deviceID)
	return nil
}
