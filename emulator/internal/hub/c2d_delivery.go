// SPDX-License-Identifier: MIT

package hub

import (
	"encoding/json"
	"sync"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/store"
	"github.com/iothubemulator/iothub/internal/uuid"
)

// Delivery of cloud-to-device messages to a device's live connection.
//
// The hub, not the transport, owns redelivery. A message sent over MQTT is
// "in flight" on that connection until the PUBACK; when the connection goes,
// the message becomes deliverable again and the next subscribed connection
// gets it with a new lock token and DeliveryCount+1. The transport must not
// resend it by itself (mochi would, from a CleanSession=0 session's
// inflight store): one owner keeps delivery counts, dead-lettering and
// CleanSession=1 reconnects right, and survives an emulator restart.

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

// c2dState is the in-memory side of delivery: which messages are in flight
// on which connection.
type c2dState struct {
	mu       sync.Mutex
	inFlight map[string]*Conn // lock token -> connection it was sent on
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
		h.metrics.MessageOut("c2d")
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

// CompleteC2D removes a delivered message when the device acknowledges it
// (MQTT PUBACK, an AMQP accepted outcome). Tokens not in flight on this
// connection are ignored: a PUBACK on a connection the hub has already
// given up is too late.
func (c *Conn) CompleteC2D(lockToken string) { c.settleLive(lockToken, FeedbackSuccess) }

// RejectC2D dead-letters a message in flight on this connection (an AMQP
// device's rejected outcome): it leaves the queue with Rejected feedback,
// as an HTTPS reject does. Tokens not in flight here are ignored.
func (c *Conn) RejectC2D(lockToken string) { c.settleLive(lockToken, FeedbackRejected) }

// AbandonC2D puts a message in flight on this connection back in the queue
// (an AMQP device's released or modified outcome, or its link ending before
// it settled): it is delivered again, with a new lock token, to whatever
// subscribed connection the device has, this one included. The delivery
// that was abandoned still counts towards MaxDeliveryCount, as an HTTPS
// abandon's does. Tokens not in flight here are ignored.
func (c *Conn) AbandonC2D(lockToken string) { c.settleLive(lockToken, "") }

// settleLive applies a device's outcome to a message in flight on this
// connection: removed with feedback status, or put back in the queue when
// status is "".
func (c *Conn) settleLive(lockToken, status string) {
	h := c.hub
	if h.c2d.liveOn(lockToken) != c {
		return
	}
	err := h.db.Update(func(tx *store.Tx) error {
		m, err := findLocked(tx, c.id.DeviceID, lockToken)
		if err != nil {
			return err
		}
		if status != "" {
			return h.removeC2D(tx, m, status)
		}
		m.LockToken, m.LockedUntil = "", time.Time{}
		return putC2D(tx, m)
	})
	// Untracked only now: in between, a delivery pass or an HTTPS receive
	// would find the message still queued and no longer in flight, and
	// deliver it a second time.
	h.c2d.untrack(lockToken)
	if err != nil {
		h.log.Debug("cloud-to-device settlement failed", "device", c.id.DeviceID, "status", status, "err", err)
		return
	}
	if status == "" {
		h.deliverIfSubscribed(c.id.DeviceID)
	}
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
