// SPDX-License-Identifier: MIT

package hub

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/huberr"
	"github.com/iothubemulator/iothub/emulator/internal/store"
	"github.com/iothubemulator/iothub/internal/uuid"
)

// The service-bound feedback queue (/messages/serviceBound/feedback). The
// hub batches feedback records into messages that the back end receives,
// completes or abandons like a device receives cloud-to-device messages
// (iot-hub-devguide-messages-c2d, "Message feedback"). Its defaults are the
// hub's feedback settings (iothub-protocol.md §7): a 1-minute lock, a time
// to live of 1 hour, at most 10 deliveries.
const (
	FeedbackLockTimeout      = time.Minute
	FeedbackTTL              = time.Hour
	FeedbackMaxDeliveryCount = 10
	// FeedbackContentType is the content type of a feedback message.
	FeedbackContentType = "application/vnd.microsoft.iothub.feedback.json"
	// maxFeedbackBatch bounds the records one message gathers; later
	// records start a new message.
	maxFeedbackBatch = 100
	// maxFeedbackMessages bounds the queue: the oldest message goes first.
	maxFeedbackMessages = 1000
)

// FeedbackMessage is one message of the feedback queue: a batch of records.
type FeedbackMessage struct {
	Seq           uint64     `json:"seq"`
	MessageID     string     `json:"messageId"`
	EnqueuedTime  time.Time  `json:"enqueuedTime"`
	ExpiryTime    time.Time  `json:"expiryTime"`
	DeliveryCount int        `json:"deliveryCount"`
	LockToken     string     `json:"lockToken,omitempty"`
	LockedUntil   time.Time  `json:"lockedUntil,omitzero"`
	Records       []Feedback `json:"records"`
}

// queueFeedback adds a record to the newest feedback message that no
// receive has taken yet, or to a new message.
func (h *Hub) queueFeedback(tx *store.Tx, fb Feedback, now time.Time) error {
	var open *FeedbackMessage
	var count int
	err := tx.ForEach(store.FeedbackQueue, "", "", func(k string, v []byte) error {
		count++
		var m FeedbackMessage
		if err := json.Unmarshal(v, &m); err != nil {
			return err
		}
		if m.DeliveryCount == 0 && m.LockToken == "" && len(m.Records) < maxFeedbackBatch && now.Before(m.ExpiryTime) {
			open = &m
		} else {
			open = nil
		}
		return nil
	})
	if err != nil {
		return err
	}
	if open == nil {
		if count >= maxFeedbackMessages {
			if err := dropOldestFeedback(tx); err != nil {
				return err
			}
		}
		seq, err := tx.NextSequence(store.FeedbackQueue)
		if err != nil {
			return err
		}
		open = &FeedbackMessage{Seq: seq, MessageID: uuid.New(), EnqueuedTime: now, ExpiryTime: now.Add(FeedbackTTL)}
	}
	open.Records = append(open.Records, fb)
	tx.OnCommit(h.fbWake.wake)
	return putFeedbackMessage(tx, open)
}

// wakeup is a broadcast for readers that wait for a queue to fill: wait
// before looking, look, then block on what wait returned; wake after the
// commit that a look would see.
type wakeup struct {
	mu sync.Mutex
	ch chan struct{}
}

func (w *wakeup) wait() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ch == nil {
		w.ch = make(chan struct{})
	}
	return w.ch
}

func (w *wakeup) wake() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ch != nil {
		close(w.ch)
		w.ch = nil
	}
}

// FeedbackNotify returns a channel that is closed when feedback is queued
// or a feedback message returns to the queue (abandoned). A receiver takes
// it before ReceiveFeedback and waits on it when that found nothing. Locks
// that expire and C2D messages that expire wake nobody: a waiting receiver
// also retries now and then.
func (h *Hub) FeedbackNotify() <-chan struct{} { return h.fbWake.wait() }

func dropOldestFeedback(tx *store.Tx) error {
	var oldest string
	if err := tx.ForEach(store.FeedbackQueue, "", "", func(k string, _ []byte) error {
		oldest = k
		return store.ErrStop
	}); err != nil {
		return err
	}
	return tx.Delete(store.FeedbackQueue, oldest)
}

func putFeedbackMessage(tx *store.Tx, m *FeedbackMessage) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return tx.Put(store.FeedbackQueue, seqKey(m.Seq), b)
}

// ReceiveFeedback locks the oldest deliverable feedback message for lock
// (0: the hub's default), as GET /messages/serviceBound/feedback does. It
// returns nil when there is none. Expired messages and those delivered
// FeedbackMaxDeliveryCount times are dropped.
func (h *Hub) ReceiveFeedback(ctx context.Context, lock time.Duration) (*FeedbackMessage, error) {
	if lock <= 0 {
		lock = FeedbackLockTimeout
	}
	if lock > MaxLockTimeout {
		return nil, huberr.ArgumentInvalid("The lock timeout may be at most %s.", MaxLockTimeout)
	}
	if err := h.sweep(""); err != nil { // expired C2D messages owe their feedback first
		return nil, err
	}
	now := h.Now().UTC()
	if idle, err := h.feedbackIdle(now); err != nil || idle {
		return nil, err
	}
	var got *FeedbackMessage
	err := h.db.Update(func(tx *store.Tx) error {
		got = nil
		var gone []string
		err := tx.ForEach(store.FeedbackQueue, "", "", func(k string, v []byte) error {
			var m FeedbackMessage
			if err := json.Unmarshal(v, &m); err != nil {
				return err
			}
			locked := !m.LockedUntil.IsZero() && now.Before(m.LockedUntil)
			switch {
			case !now.Before(m.ExpiryTime), !locked && m.DeliveryCount >= FeedbackMaxDeliveryCount:
				gone = append(gone, k)
			case !locked && got == nil:
				got = &m
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range gone {
			if err := tx.Delete(store.FeedbackQueue, k); err != nil {
				return err
			}
		}
		if got == nil {
			return nil
		}
		got.DeliveryCount++
		got.LockToken = uuid.New()
		got.LockedUntil = now.Add(lock)
		return putFeedbackMessage(tx, got)
	})
	return got, err
}

// feedbackIdle reports whether a receive at now would neither deliver nor
// drop anything, so that a receiver polling an empty queue costs no write.
func (h *Hub) feedbackIdle(now time.Time) (bool, error) {
	idle := true
	err := h.db.View(func(tx *store.Tx) error {
		return tx.ForEach(store.FeedbackQueue, "", "", func(k string, v []byte) error {
			var m FeedbackMessage
			if err := json.Unmarshal(v, &m); err != nil {
				return err
			}
			if m.LockedUntil.IsZero() || !now.Before(m.LockedUntil) || !now.Before(m.ExpiryTime) {
				idle = false
				return store.ErrStop
			}
			return nil
		})
	})
	return idle, err
}

// lockedFeedback returns the key and message a receive locked with
// lockToken, or 412 DeviceMessageLockLost when the token is unknown or its
// lock has expired.
func lockedFeedback(tx *store.Tx, lockToken string, now time.Time) (string, *FeedbackMessage, error) {
	var key string
	var found *FeedbackMessage
	err := tx.ForEach(store.FeedbackQueue, "", "", func(k string, v []byte) error {
		var m FeedbackMessage
		if err := json.Unmarshal(v, &m); err != nil {
			return err
		}
		if lockToken != "" && m.LockToken == lockToken {
			key, found = k, &m
			return store.ErrStop
		}
		return nil
	})
	if err != nil {
		return "", nil, err
	}
	if found == nil || !now.Before(found.LockedUntil) {
		return "", nil, huberr.DeviceMessageLockLost("The feedback lock token %s is not valid or the lock has expired.", lockToken)
	}
	return key, found, nil
}

// CompleteFeedback removes a received feedback message from the queue.
func (h *Hub) CompleteFeedback(ctx context.Context, lockToken string) error {
	now := h.Now()
	return h.db.Update(func(tx *store.Tx) error {
		k, _, err := lockedFeedback(tx, lockToken, now)
		if err != nil {
			return err
		}
		return tx.Delete(store.FeedbackQueue, k)
	})
}

// AbandonFeedback returns a received feedback message to the queue.
func (h *Hub) AbandonFeedback(ctx context.Context, lockToken string) error {
	now := h.Now()
	return h.db.Update(func(tx *store.Tx) error {
		_, m, err := lockedFeedback(tx, lockToken, now)
		if err != nil {
			return err
		}
		m.LockToken, m.LockedUntil = "", time.Time{}
		tx.OnCommit(h.fbWake.wake)
		return putFeedbackMessage(tx, m)
	})
}

// RejectFeedback dead-letters a received feedback message: it leaves the
// queue and is never delivered again (the hub keeps no dead-letter queue a
// client could read).
func (h *Hub) RejectFeedback(ctx context.Context, lockToken string) error {
	return h.CompleteFeedback(ctx, lockToken)
}

// dropDeviceFeedback removes a deleted device's records from the feedback
// queue, as the hub does ("when the device is deleted, all pending feedback
// is also deleted": iot-hub-devguide-messages-c2d). Messages left empty go.
func dropDeviceFeedback(tx *store.Tx, deviceID string) error {
	type change struct {
		key string
		m   *FeedbackMessage
	}
	var changes []change
	err := tx.ForEach(store.FeedbackQueue, "", "", func(k string, v []byte) error {
		var m FeedbackMessage
		if err := json.Unmarshal(v, &m); err != nil {
			return err
		}
		kept := m.Records[:0]
		for _, r := range m.Records {
			if r.DeviceID != deviceID {
				kept = append(kept, r)
			}
		}
		if len(kept) != len(m.Records) {
			m.Records = kept
			changes = append(changes, change{k, &m})
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, c := range changes {
		if len(c.m.Records) == 0 {
			err = tx.Delete(store.FeedbackQueue, c.key)
		} else {
			err = putFeedbackMessage(tx, c.m)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// PurgeResult is what purging a device's cloud-to-device queue answers.
type PurgeResult struct {
	TotalMessagesPurged int    `json:"totalMessagesPurged"`
	DeviceID            string `json:"deviceId"`
	ModuleID            string `json:"moduleId,omitempty"`
}

// PurgeC2D deletes every cloud-to-device message queued for a device, in
// flight or not (DELETE /devices/{id}/commands). Messages that asked for
// negative or full acknowledgement produce Purged feedback.
func (h *Hub) PurgeC2D(ctx context.Context, deviceID string) (*PurgeResult, error) {
	if err := h.react(ctx, OpSendC2D, Identity{DeviceID: deviceID}); err != nil {
		return nil, err
	}
	var purged []*C2DMessage
	err := h.db.Update(func(tx *store.Tx) error {
		purged = nil
		if r, err := loadRecord(tx, Identity{DeviceID: deviceID}); err != nil {
			return err
		} else if r == nil {
			return huberr.DeviceNotFound(deviceID)
		}
		queued, err := h.sweepC2D(tx, c2dPrefix(deviceID), h.Now())
		if err != nil {
			return err
		}
		for _, m := range queued {
			if err := h.removeC2D(tx, m, FeedbackPurged); err != nil {
				return err
			}
		}
		purged = queued
		return nil
	})
	if err != nil {
		return nil, err
	}
	h.c2d.untrackAll(purged)
	return &PurgeResult{TotalMessagesPurged: len(purged), DeviceID: deviceID}, nil
}
