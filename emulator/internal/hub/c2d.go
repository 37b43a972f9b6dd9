// SPDX-License-Identifier: MIT

package hub

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"strings"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/huberr"
	"github.com/iothubemulator/iothub/emulator/internal/store"
)

// Cloud-to-device limits and defaults (iothub-protocol.md §3.7, §7, §10).
const (
	MaxC2DSize         = 64 * 1024         // body plus property names and values
	MaxC2DQueue        = 50                // pending messages per device
	DefaultC2DTTL      = time.Hour         // time to live when the sender gives none
	MaxC2DTTL          = 48 * time.Hour    // longest time to live
	MaxDeliveryCount   = 10                // deliveries before a message is dead-lettered
	DefaultLockTimeout = time.Minute       // HTTPS receive lock when the device asks for none
	MaxLockTimeout     = 300 * time.Second // longest HTTPS receive lock
)

// Acknowledgement requests a cloud-to-device message may carry.
const (
	AckNone     = "none"
	AckPositive = "positive"
	AckNegative = "negative"
	AckFull     = "full"
)

// Feedback status codes.
const (
	FeedbackSuccess               = "Success"
	FeedbackExpired               = "Expired"
	FeedbackDeliveryCountExceeded = "DeliveryCountExceeded"
	FeedbackRejected              = "Rejected"
	// FeedbackPurged: the back end purged the queue (the C# service SDK's
	// FeedbackStatusCode.Purged).
	FeedbackPurged = "Purged"
)

// feedbackDescription is the description the hub gives each status.
var feedbackDescription = map[string]string{
	FeedbackSuccess:               "Success",
	FeedbackExpired:               "Message expired",
	FeedbackDeliveryCountExceeded: "Message delivery count exceeded",
	FeedbackRejected:              "Message rejected",
	FeedbackPurged:                "Message purged",
}

// C2DMessage is a cloud-to-device message in a device's queue.
type C2DMessage struct {
	Seq             uint64            `json:"seq"`
	DeviceID        string            `json:"deviceId"`
	MessageID       string            `json:"messageId,omitempty"`
	CorrelationID   string            `json:"correlationId,omitempty"`
	UserID          string            `json:"userId,omitempty"`
	To              string            `json:"to"`
	Ack             string            `json:"ack,omitempty"`
	ContentType     string            `json:"contentType,omitempty"`
	ContentEncoding string            `json:"contentEncoding,omitempty"`
	EnqueuedTime    time.Time         `json:"enqueuedTime"`
	ExpiryTime      time.Time         `json:"expiryTime"`
	DeliveryCount   int               `json:"deliveryCount"`
	LockToken       string            `json:"lockToken,omitempty"`
	LockedUntil     time.Time         `json:"lockedUntil,omitempty"`
	Properties      map[string]string `json:"properties,omitempty"`
	Body            []byte            `json:"body"`
}

// size is what the 64 KB limit counts: body plus property names and values.
func (m *C2DMessage) size() int {
	n := len(m.Body)
	for k, v := range m.Properties {
		n += len(k) + len(v)
	}
	for _, s := range []string{m.MessageID, m.CorrelationID, m.UserID, m.ContentType, m.ContentEncoding} {
		n += len(s)
	}
	return n
}

// Feedback is a delivery outcome the back end asked for with Ack.
type Feedback struct {
	OriginalMessageID  string    `json:"originalMessageId"`
	DeviceGenerationID string    `json:"deviceGenerationId"`
	DeviceID           string    `json:"deviceId"`
	EnqueuedTimeUTC    time.Time `json:"enqueuedTimeUtc"`
	StatusCode         string    `json:"statusCode"`
	Description        string    `json:"description"`
}

// c2dKey is the store key of a queued message: its device's prefix, then
// its sequence number, so a device's queue is one ordered range.
func c2dKey(deviceID string, seq uint64) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], seq)
	return c2dPrefix(deviceID) + string(b[:])
}

// c2dPrefix is the store prefix of one device's queue.
func c2dPrefix(deviceID string) string { return deviceID + "\x00" }

// SendC2D queues a message for a device and, if the device is connected
// and subscribed over MQTT, delivers it at once. It returns once the
// message is durable in the queue. Expired messages do not count against
// the queue limit.
func (h *Hub) SendC2D(ctx context.Context, deviceID string, m *C2DMessage, ttl time.Duration) (*C2DMessage, error) {
	if err := h.react(ctx, OpSendC2D, Identity{DeviceID: deviceID}); err != nil {
		return nil, err
	}
	if n := m.size(); n > MaxC2DSize {
		return nil, huberr.MessageTooLarge("The message is %d bytes; the maximum is %d.", n, MaxC2DSize)
	}
	switch m.Ack {
	case "":
		m.Ack = AckNone
	case AckNone, AckPositive, AckNegative, AckFull:
	default:
		return nil, huberr.ArgumentInvalid("ack '%s' is not valid; use none, positive, negative or full.", m.Ack)
	}
	if ttl <= 0 {
		ttl = DefaultC2DTTL
	}
	if ttl > MaxC2DTTL {
		return nil, huberr.ArgumentInvalid("The time to live may be at most %s.", MaxC2DTTL)
	}
	now := h.Now().UTC()
	var out C2DMessage
	err := h.db.Update(func(tx *store.Tx) error {
		r, err := loadRecord(tx, Identity{DeviceID: deviceID})
		if err != nil {
			return err
		}
		if r == nil {
			return huberr.DeviceNotFound(deviceID)
		}
		queued, err := h.sweepC2D(tx, c2dPrefix(deviceID), now)
		if err != nil {
			return err
		}
		if len(queued) >= MaxC2DQueue {
			return huberr.DeviceMaximumQueueDepthExceeded(deviceID, MaxC2DQueue)
		}
		seq, err := tx.NextSequence(store.C2D)
		if err != nil {
			return err
		}
		out = *m
		out.Seq, out.DeviceID, out.EnqueuedTime, out.ExpiryTime = seq, deviceID, now, now.Add(ttl)
		out.To = "/devices/" + deviceID + "/messages/deviceBound"
		out.DeliveryCount, out.LockToken, out.LockedUntil = 0, "", time.Time{}
		return putC2D(tx, &out)
	})
	if err != nil {
		return nil, err
	}
	h.deliverIfSubscribed(deviceID)
	return &out, nil
}

func putC2D(tx *store.Tx, m *C2DMessage) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return tx.Put(store.C2D, c2dKey(m.DeviceID, m.Seq), b)
}

type c2dDisp int

const (
	c2dReady   c2dDisp = iota
	c2dBusy            // locked by an HTTPS receive, or in flight on a live MQTT connection
	c2dExpired         // past its expiry time
	c2dDead            // delivered MaxDeliveryCount times without being completed
)

// c2dDisposition decides what a delivery pass does with a queued message.
func (h *Hub) c2dDisposition(m *C2DMessage, now time.Time) c2dDisp {
	switch {
	case now.After(m.ExpiryTime):
		return c2dExpired
	case !m.LockedUntil.IsZero() && now.Before(m.LockedUntil):
		return c2dBusy
	case m.LockedUntil.IsZero() && m.LockToken != "" && h.c2d.liveOn(m.LockToken) != nil:
		return c2dBusy
	case m.DeliveryCount >= MaxDeliveryCount:
		return c2dDead
	}
	return c2dReady
}

// sweepC2D removes the expired and dead-lettered messages under prefix (one
// device's queue, or every queue with ""), recording their feedback, and
// returns the rest, oldest first. The hub expires messages in the
// background; the emulator does it whenever a queue is read or written,
// which no client can tell apart.
func (h *Hub) sweepC2D(tx *store.Tx, prefix string, now time.Time) ([]*C2DMessage, error) {
	var keep, gone []*C2DMessage
	var why []string
	err := tx.ForEach(store.C2D, prefix, "", func(k string, v []byte) error {
		m := new(C2DMessage)
		if err := json.Unmarshal(v, m); err != nil {
			return err
		}
		switch h.c2dDisposition(m, now) {
		case c2dExpired:
			gone, why = append(gone, m), append(why, FeedbackExpired)
		case c2dDead:
			gone, why = append(gone, m), append(why, FeedbackDeliveryCountExceeded)
		default:
			keep = append(keep, m)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for i, m := range gone {
		if err := h.removeC2D(tx, m, why[i]); err != nil {
			return nil, err
		}
	}
	return keep, nil
}

// sweep runs sweepC2D in its own update, but only when a read-only look
// finds something to remove, so that reading a queue costs no write.
func (h *Hub) sweep(prefix string) error {
	now := h.Now()
	stale := false
	err := h.db.View(func(tx *store.Tx) error {
		return tx.ForEach(store.C2D, prefix, "", func(k string, v []byte) error {
			var m C2DMessage
			if err := json.Unmarshal(v, &m); err != nil {
				return err
			}
			if d := h.c2dDisposition(&m, now); d == c2dExpired || d == c2dDead {
				stale = true
				return store.ErrStop
			}
			return nil
		})
	})
	if err != nil || !stale {
		return err
	}
	return h.db.Update(func(tx *store.Tx) error {
		_, err := h.sweepC2D(tx, prefix, now)
		return err
	})
}

func findLocked(tx *store.Tx, deviceID, lockToken string) (*C2DMessage, error) {
	var found *C2DMessage
	err := tx.ForEach(store.C2D, c2dPrefix(deviceID), "", func(k string, v []byte) error {
		if lockToken == "" || !strings.Contains(string(v), lockToken) {
			return nil
		}
		var m C2DMessage
		if err := json.Unmarshal(v, &m); err != nil {
			return err
		}
		if m.LockToken == lockToken {
			found = &m
			return store.ErrStop
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if found == nil {
		return nil, huberr.DeviceMessageLockLost("The lock token %s is not valid or the lock has expired.", lockToken)
	}
	return found, nil
}

// removeC2D deletes a message and records feedback if its ack asks for it:
// positive for Success, negative for every other outcome, full for all.
func (h *Hub) removeC2D(tx *store.Tx, m *C2DMessage, status string) error {
	if err := tx.Delete(store.C2D, c2dKey(m.DeviceID, m.Seq)); err != nil {
		return err
	}
	want := m.Ack == AckFull ||
		(m.Ack == AckPositive && status == FeedbackSuccess) ||
		(m.Ack == AckNegative && status != FeedbackSuccess)
	if !want {
		return nil
	}
	gen := ""
	if r, _ := loadRecord(tx, Identity{DeviceID: m.DeviceID}); r != nil {
		gen = r.Device.GenerationID
	}
	fb := Feedback{OriginalMessageID: m.MessageID, DeviceGenerationID: gen, DeviceID: m.DeviceID,
		EnqueuedTimeUTC: h.Now().UTC(), StatusCode: status, Description: feedbackDescription[status]}
	b, err := json.Marshal(fb)
	if err != nil {
		return err
	}
	seq, err := tx.NextSequence(store.Feedback)
	if err != nil {
		return err
	}
	if seq > maxFeedback {
		// Nothing consumes feedback here (the hub's AMQP receiver would):
		// keep the newest records only.
		if err := tx.Delete(store.Feedback, seqKey(seq-maxFeedback)); err != nil {
			return err
		}
	}
	if err := tx.Put(store.Feedback, seqKey(seq), b); err != nil {
		return err
	}
	return h.queueFeedback(tx, fb, fb.EnqueuedTimeUTC)
}

// maxFeedback bounds the stored feedback records.
const maxFeedback = 10000

// Feedback returns the recorded delivery feedback, oldest first. Messages
// that have expired by the hub's clock are dropped first, so their
// Expired feedback is included.
func (h *Hub) Feedback() ([]Feedback, error) {
	if err := h.sweep(""); err != nil {
		return nil, err
	}
	var out []Feedback
	err := h.db.View(func(tx *store.Tx) error {
		return tx.ForEach(store.Feedback, "", "", func(k string, v []byte) error {
			var f Feedback
			if err := json.Unmarshal(v, &f); err != nil {
				return err
			}
			out = append(out, f)
			return nil
		})
	})
	return out, err
}

// PendingC2D returns the messages queued for a device, oldest first,
// in flight or not; expired ones are dropped first.
func (h *Hub) PendingC2D(deviceID string) ([]*C2DMessage, error) {
	if err := h.sweep(c2dPrefix(deviceID)); err != nil {
		return nil, err
	}
	var out []*C2DMessage
	err := h.db.View(func(tx *store.Tx) error {
		return tx.ForEach(store.C2D, c2dPrefix(deviceID), "", func(k string, v []byte) error {
			var m C2DMessage
			if err := json.Unmarshal(v, &m); err != nil {
				return err
			}
			out = append(out, &m)
			return nil
		})
	})
	return out, err
}
