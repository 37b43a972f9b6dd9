// SPDX-License-Identifier: MIT

package hub

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"strings"
	"sync"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/huberr"
	"github.com/iothubemulator/iothub/emulator/internal/store"
)

// Cloud-to-device limits and defaults (iothub-protocol.md §3.7, §7, §10).
const (
	MaxC2DSize         = 64 * 1024
	MaxC2DQueue        = 50
	DefaultC2DTTL      = time.Hour
	MaxC2DTTL          = 48 * time.Hour
	MaxDeliveryCount   = 10
	DefaultLockTimeout = time.Minute
	MaxLockTimeout     = 300 * time.Second
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
)

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

// Feedback is a delivery outcome the back end asked for with Ack.
type Feedback struct {
	OriginalMessageID  string    `json:"originalMessageId"`
	DeviceGenerationID string    `json:"deviceGenerationId"`
	DeviceID           string    `json:"deviceId"`
	EnqueuedTimeUTC    time.Time `json:"enqueuedTimeUtc"`
	StatusCode         string    `json:"statusCode"`
	Description        string    `json:"description"`
}

// C2DSession is implemented by sessions that deliver cloud-to-device
// messages (MQTT). The transport calls Conn.CompleteC2D with the message's
// lock token when the device acknowledges it.
type C2DSession interface {
	SendC2D(m *C2DMessage) error
}

// c2dState is the in-memory side of delivery: which messages are in flight
// on which connection.
type c2dState struct {
	mu       sync.Mutex
	inFlight map[string]*Conn // lock token -> connection it was sent on
	feedback []Feedback
}

func c2dKey(deviceID string, seq uint64) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], seq)
	return deviceID + "\x00" + string(b[:])
}

func newLockToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	s := hex.EncodeToString(b[:])
	return s[:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:]
}

// SendC2D queues a message for a device and, if the device is connected
// and subscribed over MQTT, delivers it at once. It returns once the
// message is durable in the queue.
func (h *Hub) SendC2D(ctx context.Context, deviceID string, m *C2DMessage, ttl time.Duration) (*C2DMessage, error) {
	if err := h.react(ctx, OpSendC2D, Identity{DeviceID: deviceID}); err != nil {
		return nil, err
	}
	if len(m.Body) > MaxC2DSize {
		return nil, huberr.MessageTooLarge("The message is %d bytes; the maximum is %d.", len(m.Body), MaxC2DSize)
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
		if tx.Count(store.C2D, deviceID+"\x00") >= MaxC2DQueue {
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
		b, err := json.Marshal(&out)
		if err != nil {
			return err
		}
		return tx.Put(store.C2D, c2dKey(deviceID, seq), b)
	})
	if err != nil {
		return nil, err
	}
	if c := h.conn(Identity{DeviceID: deviceID}); c != nil && c.c2d.Load() {
		h.deliverC2D(c)
	}
	return &out, nil
}

// SubscribeC2D marks the connection as subscribed to its devicebound topic
// and delivers everything queued and not yet delivered on it.
func (c *Conn) SubscribeC2D() {
	c.c2d.Store(true)
	c.hub.deliverC2D(c)
}

// UnsubscribeC2D stops delivery to this connection.
func (c *Conn) UnsubscribeC2D() { c.c2d.Store(false) }

// deliverC2D sends every deliverable message of c's device over c. A
// message already in flight on a live connection is not sent twice; one
// sent on a connection that has gone is sent again (redelivery after
// reconnect). Expired messages are dropped with feedback.
func (h *Hub) deliverC2D(c *Conn) {
	cs, ok := c.session.(C2DSession)
	if !ok || c.id.ModuleID != "" {
		return
	}
	c.c2dMu.Lock() // one delivery pass per connection at a time keeps order
	defer c.c2dMu.Unlock()
	var send []*C2DMessage
	now := h.Now()
	err := h.db.Update(func(tx *store.Tx) error {
		send = send[:0]
		var expired []*C2DMessage
		var dead []*C2DMessage
		err := tx.ForEach(store.C2D, c.id.DeviceID+"\x00", "", func(k string, v []byte) error {
			var m C2DMessage
			if err := json.Unmarshal(v, &m); err != nil {
				return err
			}
			switch h.c2dDisposition(&m, now) {
			case c2dExpired:
				expired = append(expired, &m)
			case c2dDead:
				dead = append(dead, &m)
			case c2dReady:
				send = append(send, &m)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, m := range expired {
			if err := h.removeC2D(tx, m, FeedbackExpired, "Message expired"); err != nil {
				return err
			}
		}
		for _, m := range dead {
			if err := h.removeC2D(tx, m, FeedbackDeliveryCountExceeded, "Message delivery count exceeded"); err != nil {
				return err
			}
		}
		for _, m := range send {
			m.DeliveryCount++
			m.LockToken = newLockToken()
			m.LockedUntil = time.Time{}
			b, err := json.Marshal(m)
			if err != nil {
				return err
			}
			if err := tx.Put(store.C2D, c2dKey(m.DeviceID, m.Seq), b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		h.log.Error("cloud-to-device delivery failed", "device", c.id.DeviceID, "err", err)
		return
	}
	for _, m := range send {
		h.c2d.track(m.LockToken, c)
		if err := cs.SendC2D(m); err != nil {
			h.c2d.untrack(m.LockToken)
			return
		}
	}
}

type c2dDisp int

const (
	c2dReady   c2dDisp = iota
	c2dBusy            // locked by an HTTP receive, or in flight on a live MQTT connection
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

// CompleteC2D removes a delivered message when the device acknowledges it
// (MQTT PUBACK). Unknown tokens are ignored.
func (c *Conn) CompleteC2D(lockToken string) {
	h := c.hub
	if h.c2d.liveOn(lockToken) != c {
		return
	}
	h.c2d.untrack(lockToken)
	if err := h.settleC2D(c.id.DeviceID, lockToken, FeedbackSuccess); err != nil {
		h.log.Debug("cloud-to-device completion failed", "device", c.id.DeviceID, "err", err)
	}
}

// settleC2D completes or rejects the message with lockToken.
func (h *Hub) settleC2D(deviceID, lockToken, outcome string) error {
	return h.db.Update(func(tx *store.Tx) error {
		m, err := findLocked(tx, deviceID, lockToken)
		if err != nil {
			return err
		}
		desc := "Success"
		if outcome == FeedbackRejected {
			desc = "Message rejected"
		}
		return h.removeC2D(tx, m, outcome, desc)
	})
}

func findLocked(tx *store.Tx, deviceID, lockToken string) (*C2DMessage, error) {
	var found *C2DMessage
	err := tx.ForEach(store.C2D, deviceID+"\x00", "", func(k string, v []byte) error {
		if !strings.Contains(string(v), lockToken) {
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

// removeC2D deletes a message and records feedback if its ack asks for it.
func (h *Hub) removeC2D(tx *store.Tx, m *C2DMessage, status, desc string) error {
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
		EnqueuedTimeUTC: h.Now().UTC(), StatusCode: status, Description: desc}
	b, err := json.Marshal(fb)
	if err != nil {
		return err
	}
	seq, err := tx.NextSequence(store.History)
	if err != nil {
		return err
	}
	return tx.Put(store.History, "feedback\x00"+seqKey(seq), b)
}

// Feedback returns the recorded delivery feedback, oldest first.
func (h *Hub) Feedback() ([]Feedback, error) {
	var out []Feedback
	err := h.db.View(func(tx *store.Tx) error {
		return tx.ForEach(store.History, "feedback\x00", "", func(k string, v []byte) error {
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

// PendingC2D returns the messages queued for a device, oldest first.
func (h *Hub) PendingC2D(deviceID string) ([]*C2DMessage, error) {
	var out []*C2DMessage
	err := h.db.View(func(tx *store.Tx) error {
		return tx.ForEach(store.C2D, deviceID+"\x00", "", func(k string, v []byte) error {
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

func (s *c2dState) track(token string, c *Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inFlight == nil {
		s.inFlight = map[string]*Conn{}
	}
	s.inFlight[token] = c
}

func (s *c2dState) untrack(token string) {
	s.mu.Lock()
	delete(s.inFlight, token)
	s.mu.Unlock()
}

// forget drops the in-flight entries of a closed connection; their messages
// become deliverable again.
func (s *c2dState) forget(c *Conn) {
	s.mu.Lock()
	for t, x := range s.inFlight {
		if x == c {
			delete(s.inFlight, t)
		}
	}
	s.mu.Unlock()
}

// liveOn returns the live connection a message is in flight on, or nil.
func (s *c2dState) liveOn(token string) *Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.inFlight[token]
	if c == nil || c.closed.Load() {
		return nil
	}
	return c
}

// ReceiveC2D locks the next deliverable message of a device for an HTTP
// receive (GET /devices/{id}/messages/deviceBound). It returns nil when
// nothing is deliverable.
func (h *Hub) ReceiveC2D(ctx context.Context, deviceID string, lock time.Duration) (*C2DMessage, error) {
	if lock <= 0 {
		lock = DefaultLockTimeout
	}
	if lock > MaxLockTimeout {
		return nil, huberr.ArgumentInvalid("The lock timeout may be at most %s.", MaxLockTimeout)
	}
	now := h.Now()
	var got *C2DMessage
	err := h.db.Update(func(tx *store.Tx) error {
		got = nil
		var drop []*C2DMessage
		var drops []string
		err := tx.ForEach(store.C2D, deviceID+"\x00", "", func(k string, v []byte) error {
			var m C2DMessage
			if err := json.Unmarshal(v, &m); err != nil {
				return err
			}
			switch h.c2dDisposition(&m, now) {
			case c2dExpired:
				drop, drops = append(drop, &m), append(drops, FeedbackExpired)
			case c2dDead:
				drop, drops = append(drop, &m), append(drops, FeedbackDeliveryCountExceeded)
			case c2dReady:
				got = &m
				return store.ErrStop
			}
			return nil
		})
		if err != nil {
			return err
		}
		for i, m := range drop {
			desc := "Message expired"
			if drops[i] == FeedbackDeliveryCountExceeded {
				desc = "Message delivery count exceeded"
			}
			if err := h.removeC2D(tx, m, drops[i], desc); err != nil {
				return err
			}
		}
		if got == nil {
			return nil
		}
		got.DeliveryCount++
		got.LockToken = newLockToken()
		got.LockedUntil = now.Add(lock)
		b, err := json.Marshal(got)
		if err != nil {
			return err
		}
		return tx.Put(store.C2D, c2dKey(deviceID, got.Seq), b)
	})
	return got, err
}

// CompleteC2DLock completes (or, with reject, dead-letters) a message
// locked by an HTTP receive.
func (h *Hub) CompleteC2DLock(ctx context.Context, deviceID, lockToken string, reject bool) error {
	outcome := FeedbackSuccess
	if reject {
		outcome = FeedbackRejected
	}
	now := h.Now()
	return h.db.Update(func(tx *store.Tx) error {
		m, err := findLocked(tx, deviceID, lockToken)
		if err != nil {
			return err
		}
		if m.LockedUntil.IsZero() || now.After(m.LockedUntil) {
			return huberr.DeviceMessageLockLost("The lock on the message with lock token %s has expired.", lockToken)
		}
		desc := "Success"
		if reject {
			desc = "Message rejected"
		}
		return h.removeC2D(tx, m, outcome, desc)
	})
}

// AbandonC2DLock returns a message locked by an HTTP receive to the queue.
func (h *Hub) AbandonC2DLock(ctx context.Context, deviceID, lockToken string) error {
	now := h.Now()
	return h.db.Update(func(tx *store.Tx) error {
		m, err := findLocked(tx, deviceID, lockToken)
		if err != nil {
			return err
		}
		if m.LockedUntil.IsZero() || now.After(m.LockedUntil) {
			return huberr.DeviceMessageLockLost("The lock on the message with lock token %s has expired.", lockToken)
		}
		m.LockToken, m.LockedUntil = "", time.Time{}
		b, err := json.Marshal(m)
		if err != nil {
			return err
		}
		return tx.Put(store.C2D, c2dKey(deviceID, m.Seq), b)
	})
}
