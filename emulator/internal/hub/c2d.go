// SPDX-License-Identifier: MIT

package hub

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"github.com/iothubemulator/iothub/internal/uuid"
	"strings"
	"sync"
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

// C2DSession is implemented by sessions that deliver cloud-to-device
// messages (MQTT). SendC2D writes one message to the device; the transport
// calls Conn.CompleteC2D with the message's lock token when the device
// acknowledges it. An error means the message did not go out, and the hub
// puts it back as it was. SendC2D is called only while the connection is
// subscribed, from the goroutine of Conn.SubscribeC2D or of a hub call
// that queues or returns a message.
type C2DSession interface {
	SendC2D(m *C2DMessage) error
}

// The hub, not the transport, owns redelivery. A message sent over MQTT is
// "in flight" on that connection until the PUBACK; when the connection goes,
// the message becomes deliverable again and the next subscribed connection
// gets it with a new lock token and DeliveryCount+1. The transport must not
// resend it by itself (mochi would, from a CleanSession=0 session's
// inflight store): one owner keeps delivery counts, dead-lettering and
// CleanSession=1 reconnects right, and survives an emulator restart.

// c2dState is the in-memory side of delivery: which messages are in flight
// on which connection.
type c2dState struct {
	mu       sync.Mutex
	inFlight map[string]*Conn // lock token -> connection it was sent on
}

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

// lockQueue takes the lock of a device's C2D queue (striped, as identity
// locks are). It orders delivery passes against HTTPS receives; see
// deliverC2D.
func (h *Hub) lockQueue(deviceID string) func() {
	m := &h.queueLock[fnv32(deviceID)%uint32(len(h.queueLock))]
	m.Lock()
	return m.Unlock
}

// deliverIfSubscribed runs a delivery pass on the device's connection if
// it is subscribed to cloud-to-device messages.
func (h *Hub) deliverIfSubscribed(deviceID string) {
	if c := h.conn(Identity{DeviceID: deviceID}); c != nil && c.c2d.Load() {
		c.post(func() { h.deliverC2D(c) })
	}
}

func putC2D(tx *store.Tx, m *C2DMessage) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return tx.Put(store.C2D, c2dKey(m.DeviceID, m.Seq), b)
}

// SubscribeC2D marks the connection as subscribed to its devicebound topic
// and delivers everything queued and not in flight on it, from the
// connection's send goroutine.
func (c *Conn) SubscribeC2D() {
	c.c2d.Store(true)
	c.post(func() { c.hub.deliverC2D(c) })
}

// UnsubscribeC2D stops delivery to this connection. Messages already in
// flight on it are still completed by their PUBACK.
func (c *Conn) UnsubscribeC2D() { c.c2d.Store(false) }

// deliverC2D sends every deliverable message of c's device over c, oldest
// first. A message in flight on a live connection is not sent twice; one
// sent on a connection that has gone is sent again (redelivery after
// reconnect). Expired and dead-lettered messages are dropped with feedback.
// It runs only on c's send goroutine (Conn.post), so passes on one
// connection never overlap and keep queue order.
func (h *Hub) deliverC2D(c *Conn) {
	cs, ok := c.session.(C2DSession)
	if !ok || c.id.ModuleID != "" {
		return
	}
	if c.closed.Load() || !c.c2d.Load() {
		return
	}
	var send []*C2DMessage
	now := h.Now()
	// The queue lock keeps an HTTPS receive of this device out from the
	// commit below until the new lock tokens are tracked: before that, the
	// receive would take a message in flight here for one stranded on a
	// gone connection, and deliver it twice.
	unlock := h.lockQueue(c.id.DeviceID)
	err := h.db.Update(func(tx *store.Tx) error {
		send = nil // the store may run this function again
		queued, err := h.sweepC2D(tx, c2dPrefix(c.id.DeviceID), now)
		if err != nil {
			return err
		}
		for _, m := range queued {
			if h.c2dDisposition(m, now) != c2dReady {
				continue
			}
			m.DeliveryCount++
			m.LockToken = uuid.New()
			m.LockedUntil = time.Time{}
			if err := putC2D(tx, m); err != nil {
				return err
			}
			send = append(send, m)
		}
		return nil
	})
	if err == nil {
		for _, m := range send {
			h.c2d.track(m.LockToken, c)
		}
	}
	unlock()
	if err != nil {
		h.log.Error("cloud-to-device delivery failed", "device", c.id.DeviceID, "err", err)
		return
	}
	for i, m := range send {
		if err := cs.SendC2D(m); err != nil {
			h.log.Debug("cloud-to-device message not written", "device", c.id.DeviceID, "err", err)
			h.undeliver(send[i:])
			return
		}
	}
}

// undeliver puts back messages a delivery pass could not write: a write
// that failed is no delivery, so it must not count towards
// MaxDeliveryCount. A message something else has locked since is left alone.
func (h *Hub) undeliver(ms []*C2DMessage) {
	h.c2d.untrackAll(ms)
	err := h.db.Update(func(tx *store.Tx) error {
		for _, m := range ms {
			b := tx.Get(store.C2D, c2dKey(m.DeviceID, m.Seq))
			if b == nil {
				continue
			}
			var cur C2DMessage
			if err := json.Unmarshal(b, &cur); err != nil {
				return err
			}
			if cur.LockToken != m.LockToken {
				continue
			}
			cur.DeliveryCount--
			cur.LockToken, cur.LockedUntil = "", time.Time{}
			if err := putC2D(tx, &cur); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		h.log.Error("cloud-to-device messages not put back", "err", err)
	}
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

// CompleteC2D removes a delivered message when the device acknowledges it
// (MQTT PUBACK). Tokens not in flight on this connection are ignored: a
// PUBACK on a connection the hub has already given up is too late.
func (c *Conn) CompleteC2D(lockToken string) {
	h := c.hub
	if h.c2d.liveOn(lockToken) != c {
		return
	}
	err := h.db.Update(func(tx *store.Tx) error {
		m, err := findLocked(tx, c.id.DeviceID, lockToken)
		if err != nil {
			return err
		}
		return h.removeC2D(tx, m, FeedbackSuccess)
	})
	// Untracked only now: in between, a delivery pass or an HTTPS receive
	// would find the message still queued and no longer in flight, and
	// deliver it a second time.
	h.c2d.untrack(lockToken)
	if err != nil {
		h.log.Debug("cloud-to-device completion failed", "device", c.id.DeviceID, "err", err)
	}
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

func (s *c2dState) untrackAll(ms []*C2DMessage) {
	s.mu.Lock()
	for _, m := range ms {
		delete(s.inFlight, m.LockToken)
	}
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
