// SPDX-License-Identifier: MIT

package hub

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/clock"
	"github.com/iothubemulator/iothub/emulator/internal/store"
)

// Session is a device's live connection as a transport sees it. The hub
// calls it to reach that one device; implementations must write only to
// their own connection. The hub calls SendMethod, SendDesired and SendC2D
// from one goroutine per connection, in order, never while holding a lock,
// so a slow device delays only itself; implementations should still bound
// each write.
type Session interface {
	// SendMethod delivers a direct-method request.
	SendMethod(rid, name string, payload []byte) error
	// SendDesired delivers a desired-properties notification (body includes "$version").
	SendDesired(version int64, body []byte) error
	// Close ends the connection (takeover, token expiry, device disabled or deleted).
	Close()
}

// ConnectInfo describes an authenticated connection.
type ConnectInfo struct {
	AuthMethod  string    // "sas", "x509" ...
	TokenExpiry time.Time // zero: no expiry (X.509)
	ModelID     string    // IoT Plug and Play model id announced at CONNECT
	Transport   string    // mqtt, mqtt-ws, amqp, amqp-ws: for the records of test control
	RemoteAddr  string    // the peer's address, for the same records
}

// Conn is one live connection registered with the hub.
type Conn struct {
	hub     *Hub
	id      Identity
	session Session
	info    ConnectInfo
	seq     uint64    // numbers the hub's connections, for fault records
	gen     string    // the device's generation id when it connected (telemetry.go)
	since   time.Time // when the connection was registered

	methods atomic.Bool // subscribed to $iothub/methods/POST/#
	desired atomic.Bool // subscribed to desired-property notifications
	c2d     atomic.Bool // subscribed to devices/{id}/messages/devicebound/#
	closed  atomic.Bool

	timerMu sync.Mutex
	timer   *clock.Timer

	// Hub-initiated sends wait in out and run in order on a goroutine
	// that exists only while out is not empty: an idle device costs no
	// goroutine and no queue.
	outMu      sync.Mutex
	out        []func()
	outRunning bool

	stop chan struct{} // closed by Disconnect
	once sync.Once
}

// outboxSize bounds the sends waiting for one connection; a device that
// lets more pile up is too slow to keep, and is disconnected.
const outboxSize = 256

// post queues f to run on the connection's send goroutine. Callers may hold
// the identity's lock: post never blocks, which keeps a stuck device from
// stalling the hub, and queueing under that lock keeps sends in commit
// order. It reports false when the queue is full and the connection is
// being closed.
func (c *Conn) post(f func()) bool {
	c.outMu.Lock()
	if len(c.out) >= outboxSize {
		c.outMu.Unlock()
		c.hub.log.Warn("device is not reading; closing its connection", "identity", c.id.String())
		go c.session.Close()
		return false
	}
	c.out = append(c.out, f)
	start := !c.outRunning
	c.outRunning = true
	c.outMu.Unlock()
	if start {
		go c.runOutbox()
	}
	return true
}

// runOutbox runs the queued sends in order and ends when none is left or
// the connection is gone.
func (c *Conn) runOutbox() {
	for {
		c.outMu.Lock()
		gone := false
		select {
		case <-c.stop:
			gone = true // what is queued is dropped with the connection
		default:
		}
		if len(c.out) == 0 || gone {
			c.out, c.outRunning = nil, false
			c.outMu.Unlock()
			return
		}
		f := c.out[0]
		c.out[0] = nil
		c.out = c.out[1:]
		c.outMu.Unlock()
		f()
	}
}

// Identity is the connection's device or module.
func (c *Conn) Identity() Identity { return c.id }

// Connect registers an authenticated session for id. An older connection
// of the same identity is closed: the new one wins, as on the hub.
func (h *Hub) Connect(id Identity, s Session, info ConnectInfo) *Conn {
	now := h.stamp()
	c := &Conn{hub: h, id: id, session: s, info: info, seq: h.connSeq.Add(1), since: now, stop: make(chan struct{})}
	if gen, err := h.generationOf(id.DeviceID); err == nil {
		c.gen = gen
	}
	h.metrics.Connected(info.Transport, 1)
	h.mu.Lock()
	old := h.conns[id]
	h.conns[id] = c
	h.noteConnectedLocked()
	rt := h.runtime[id]
	if rt == nil {
		rt = &runtimeInfo{}
		h.runtime[id] = rt
	}
	rt.state, rt.stateUpdated, rt.lastActivity = Connected, now, now
	h.mu.Unlock()
	if old != nil {
		old.closed.Store(true)
		old.stopTimer()
		old.once.Do(func() {
			close(old.stop)
			h.metrics.Connected(old.info.Transport, -1)
		})
		old.session.Close()
	}
	if info.ModelID != "" {
		h.setModelID(id, info.ModelID)
	}
	c.armExpiry()
	return c
}

// Disconnect unregisters the connection; a connection that has been taken
// over leaves the newer one's state alone.
func (c *Conn) Disconnect() {
	c.stopTimer()
	h := c.hub
	c.once.Do(func() {
		close(c.stop)
		h.metrics.Connected(c.info.Transport, -1)
	})
	var upd, act time.Time
	current := false
	h.mu.Lock()
	if h.conns[c.id] == c {
		current = true
		delete(h.conns, c.id)
		h.noteDisconnectedLocked()
		if rt := h.runtime[c.id]; rt != nil {
			rt.state, rt.stateUpdated = Disconnected, h.stamp()
			upd, act = rt.stateUpdated, rt.lastActivity
		}
	}
	h.mu.Unlock()
	c.closed.Store(true)
	h.c2d.forget(c)
	if current {
		h.saveConnTimes(c.id, upd, act)
	}
}

// saveConnTimes persists when a connection ended and the last activity
// seen on it, so the registry shows them after a restart. Activity itself
// is kept in memory: one write per disconnect, not one per packet.
//
// It takes no identity lock: the hub may end a connection while holding
// one (disabling or deleting a device), and the update commits only if the
// record is still the one it read (modifyRecord), so it cannot lose a
// concurrent write.
func (h *Hub) saveConnTimes(id Identity, stateUpdated, lastActivity time.Time) {
	// A record deleted meanwhile has nothing to record.
	_, err := h.modifyRecord(id, true, func(_ *store.Tx, r *record) error {
		if r.Device != nil {
			r.Device.ConnectionStateUpdatedTime, r.Device.LastActivityTime = Time{stateUpdated}, Time{lastActivity}
		} else {
			r.Module.ConnectionStateUpdatedTime, r.Module.LastActivityTime = Time{stateUpdated}, Time{lastActivity}
		}
		return nil
	})
	if err != nil {
		h.log.Warn("could not record connection times", "identity", id.String(), "err", err)
	}
}

// Touch records device activity (any packet).
func (c *Conn) Touch() {
	h := c.hub
	now := h.stamp()
	h.mu.Lock()
	if rt := h.runtime[c.id]; rt != nil && h.conns[c.id] == c {
		rt.lastActivity = now
	}
	h.mu.Unlock()
}

// SubscribeMethods marks the connection as ready for direct methods and
// wakes invocations waiting for it (connectTimeoutInSeconds).
func (c *Conn) SubscribeMethods() {
	c.methods.Store(true)
	h := c.hub
	h.mu.Lock()
	close(h.subWake)
	h.subWake = make(chan struct{})
	h.mu.Unlock()
}

// UnsubscribeMethods stops direct-method delivery to this connection.
func (c *Conn) UnsubscribeMethods() { c.methods.Store(false) }

// SubscribeDesired enables desired-property notifications.
func (c *Conn) SubscribeDesired() { c.desired.Store(true) }

// UnsubscribeDesired disables desired-property notifications.
func (c *Conn) UnsubscribeDesired() { c.desired.Store(false) }

// AnnounceModelID records an IoT Plug and Play model id the device
// announced after connecting (AMQP carries it on each link, not in the
// connection's opening). It writes the registry, so callers run it off
// their connection's reader.
func (c *Conn) AnnounceModelID(modelID string) {
	if modelID != "" && !c.closed.Load() {
		c.hub.setModelID(c.id, modelID)
	}
}

// conn returns the live connection of id, or nil.
func (h *Hub) conn(id Identity) *Conn {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.conns[id]
}

// IsConnected reports whether id has a live connection.
func (h *Hub) IsConnected(id Identity) bool { return h.conn(id) != nil }

// kick ends a connection the hub itself refuses to keep (token expired,
// device disabled or deleted): it is unregistered at once, so nothing is
// sent to it and the registry stops showing it connected before the
// transport has finished closing, and then closed.
func (c *Conn) kick() {
	c.Disconnect()
	c.session.Close()
}

// dropIdentity closes id's connection, if any.
func (h *Hub) dropIdentity(id Identity) {
	if c := h.conn(id); c != nil {
		c.kick()
	}
}

// dropDevice closes the connections of a device and all its modules.
func (h *Hub) dropDevice(deviceID string) {
	h.mu.Lock()
	var cs []*Conn
	for id, c := range h.conns {
		if id.DeviceID == deviceID {
			cs = append(cs, c)
		}
	}
	h.mu.Unlock()
	for _, c := range cs {
		c.kick()
	}
}

// armExpiry closes the connection when its SAS token expires (plus the
// hub's clock-skew allowance), as the hub does for MQTT.
func (c *Conn) armExpiry() {
	if c.info.TokenExpiry.IsZero() {
		return
	}
	d := c.info.TokenExpiry.Add(ClockSkew).Sub(c.hub.Now())
	c.timerMu.Lock()
	defer c.timerMu.Unlock()
	if c.timer != nil {
		c.timer.Stop()
	}
	if d <= 0 {
		go c.kick()
		return
	}
	c.timer = c.hub.clk.AfterFunc(d, func() {
		// The hub's clock may have been set back meanwhile: re-check.
		if c.hub.Now().After(c.info.TokenExpiry.Add(ClockSkew)) {
			c.hub.log.Info("token expired; closing connection", "identity", c.id.String())
			c.kick()
		} else {
			c.armExpiry()
		}
	})
}

func (c *Conn) stopTimer() {
	c.timerMu.Lock()
	if c.timer != nil {
		c.timer.Stop()
	}
	c.timerMu.Unlock()
}
