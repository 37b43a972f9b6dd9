// SPDX-License-Identifier: MIT

package hub

import (
	"context"
	"encoding/json"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/huberr"
	"github.com/iothubemulator/iothub/emulator/internal/store"
	"github.com/iothubemulator/iothub/internal/uuid"
)

// The service-bound file-notification queue
// (/messages/serviceBound/filenotifications). Its receive semantics are
// those of cloud-to-device messages and of the feedback queue: a receive
// locks one message, which the back end completes (removes), abandons
// (returns to the queue) or rejects (drops). Adapters map their protocol
// onto ReceiveFileNotification, CompleteFileNotification,
// AbandonFileNotification and RejectFileNotification; the AMQP node is one
// such mapping, the emulator-only HTTPS route another. Defaults are the
// hub's fileNotifications settings (iot-hub-devguide-file-upload): a time
// to live of one hour, a 60-second lock, at most 100 deliveries.
const (
	FileNotificationTTL              = time.Hour
	FileNotificationLockTimeout      = time.Minute
	FileNotificationMaxDeliveryCount = 100
	// FileNotificationContentType is the content type of a notification.
	FileNotificationContentType = "application/vnd.microsoft.iothub.filenotification.json"
	// maxFileNotifications bounds the queue: the oldest message goes first.
	maxFileNotifications = 10000
)

// FileNotification is the body of a file-upload notification.
type FileNotification struct {
	DeviceID        string `json:"deviceId"`
	BlobURI         string `json:"blobUri"`
	BlobName        string `json:"blobName"`
	LastUpdatedTime string `json:"lastUpdatedTime"`
	BlobSizeInBytes int64  `json:"blobSizeInBytes"`
	EnqueuedTimeUTC Time   `json:"enqueuedTimeUtc"`
}

// FileNotificationMessage is one message of the queue.
type FileNotificationMessage struct {
	Seq           uint64           `json:"seq"`
	MessageID     string           `json:"messageId"`
	EnqueuedTime  time.Time        `json:"enqueuedTime"`
	ExpiryTime    time.Time        `json:"expiryTime"`
	DeliveryCount int              `json:"deliveryCount"`
	LockToken     string           `json:"lockToken,omitempty"`
	LockedUntil   time.Time        `json:"lockedUntil,omitzero"`
	Notification  FileNotification `json:"notification"`
}

// Body is the message body as the hub sends it: the notification's JSON.
func (m *FileNotificationMessage) Body() []byte {
	b, _ := json.Marshal(m.Notification)
	return b
}

func (h *Hub) queueFileNotification(tx *store.Tx, n *FileNotification, now time.Time) error {
	if tx.Count(store.FileNotifications, "") >= maxFileNotifications {
		var oldest string
		if err := tx.ForEach(store.FileNotifications, "", "", func(k string, _ []byte) error {
			oldest = k
			return store.ErrStop
		}); err != nil {
			return err
		}
		if err := tx.Delete(store.FileNotifications, oldest); err != nil {
			return err
		}
	}
	seq, err := tx.NextSequence(store.FileNotifications)
	if err != nil {
		return err
	}
	return putFileNotification(tx, &FileNotificationMessage{Seq: seq, MessageID: uuid.New(),
		EnqueuedTime: now, ExpiryTime: now.Add(FileNotificationTTL), Notification: *n})
}

func putFileNotification(tx *store.Tx, m *FileNotificationMessage) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return tx.Put(store.FileNotifications, seqKey(m.Seq), b)
}

// FileNotificationNotify returns a channel that is closed when a
// notification is queued or returned to the queue: a receiver takes it
// before ReceiveFileNotification and waits on it when that found nothing.
func (h *Hub) FileNotificationNotify() <-chan struct{} {
	h.fileNoteMu.Lock()
	defer h.fileNoteMu.Unlock()
	return h.fileNoteNotify
}

// fileNoteWake wakes receivers waiting for a notification.
func (h *Hub) fileNoteWake() {
	h.fileNoteMu.Lock()
	close(h.fileNoteNotify)
	h.fileNoteNotify = make(chan struct{})
	h.fileNoteMu.Unlock()
}

// ReceiveFileNotification locks the oldest deliverable notification for
// lock (0: the hub's default, at most MaxLockTimeout), waiting up to wait
// for one to arrive. It returns nil when there is none. Expired messages
// and those delivered FileNotificationMaxDeliveryCount times are dropped.
func (h *Hub) ReceiveFileNotification(ctx context.Context, lock, wait time.Duration) (*FileNotificationMessage, error) {
	if lock <= 0 {
		lock = FileNotificationLockTimeout
	}
	if lock > MaxLockTimeout {
		return nil, huberr.ArgumentInvalid("The lock timeout may be at most %s.", MaxLockTimeout)
	}
	deadline := h.clk.NewTimer(wait)
	defer deadline.Stop()
	for {
		h.fileNoteMu.Lock()
		ch := h.fileNoteNotify
		h.fileNoteMu.Unlock()
		m, err := h.receiveFileNotification(lock)
		if err != nil || m != nil || wait <= 0 {
			return m, err
		}
		select {
		case <-ch:
		case <-deadline.C:
			return nil, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (h *Hub) receiveFileNotification(lock time.Duration) (*FileNotificationMessage, error) {
	now := h.Now().UTC()
	var got *FileNotificationMessage
	err := h.db.Update(func(tx *store.Tx) error {
		got = nil
		var gone []string
		err := tx.ForEach(store.FileNotifications, "", "", func(k string, v []byte) error {
			var m FileNotificationMessage
			if err := json.Unmarshal(v, &m); err != nil {
				return err
			}
			locked := !m.LockedUntil.IsZero() && now.Before(m.LockedUntil)
			switch {
			case !now.Before(m.ExpiryTime), !locked && m.DeliveryCount >= FileNotificationMaxDeliveryCount:
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
			if err := tx.Delete(store.FileNotifications, k); err != nil {
				return err
			}
		}
		if got == nil {
			return nil
		}
		got.DeliveryCount++
		got.LockToken = uuid.New()
		got.LockedUntil = now.Add(lock)
		return putFileNotification(tx, got)
	})
	return got, err
}

func lockedFileNotification(tx *store.Tx, lockToken string, now time.Time) (string, *FileNotificationMessage, error) {
	var key string
	var found *FileNotificationMessage
	err := tx.ForEach(store.FileNotifications, "", "", func(k string, v []byte) error {
		var m FileNotificationMessage
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
		return "", nil, huberr.DeviceMessageLockLost("The file notification lock token %s is not valid or the lock has expired.", lockToken)
	}
	return key, found, nil
}

// CompleteFileNotification removes a received notification from the queue.
func (h *Hub) CompleteFileNotification(ctx context.Context, lockToken string) error {
	now := h.Now()
	return h.db.Update(func(tx *store.Tx) error {
		k, _, err := lockedFileNotification(tx, lockToken, now)
		if err != nil {
			return err
		}
		return tx.Delete(store.FileNotifications, k)
	})
}

// RejectFileNotification drops a received notification (the hub
// dead-letters it).
func (h *Hub) RejectFileNotification(ctx context.Context, lockToken string) error {
	return h.CompleteFileNotification(ctx, lockToken)
}

// AbandonFileNotification returns a received notification to the queue.
func (h *Hub) AbandonFileNotification(ctx context.Context, lockToken string) error {
	now := h.Now()
	err := h.db.Update(func(tx *store.Tx) error {
		_, m, err := lockedFileNotification(tx, lockToken, now)
		if err != nil {
			return err
		}
		m.LockToken, m.LockedUntil = "", time.Time{}
		return putFileNotification(tx, m)
	})
	if err == nil {
		h.fileNoteWake()
	}
	return err
}

// FileNotifications returns the queued notifications, oldest first,
// without locking them (emulator-only).
func (h *Hub) FileNotifications() ([]FileNotificationMessage, error) {
	out := []FileNotificationMessage{}
	now := h.Now()
	err := h.db.View(func(tx *store.Tx) error {
		return tx.ForEach(store.FileNotifications, "", "", func(_ string, v []byte) error {
			var m FileNotificationMessage
			if err := json.Unmarshal(v, &m); err != nil {
				return err
			}
			if now.Before(m.ExpiryTime) && m.DeliveryCount < FileNotificationMaxDeliveryCount {
				out = append(out, m)
			}
			return nil
		})
	})
	return out, err
}
