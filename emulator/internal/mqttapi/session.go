// SPDX-License-Identifier: MIT

package mqttapi

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/iothubemulator/iothub/emulator/internal/hub"
	"github.com/iothubemulator/iothub/emulator/internal/huberr"
)

// Reasons a connection is stopped, kept by mochi as the client's stop cause.
var (
	errClosedByHub = errors.New("connection closed by the hub")
	errTakenOver   = errors.New("connection taken over by a newer connection of the same identity")
)

// session is one authenticated device connection. It implements
// hub.Session: everything the hub sends goes to this client's connection
// alone, never through mochi's topic tree, where every device subscribes
// the same $iothub filters.
type session struct {
	srv     *Server
	cl      *mqtt.Client
	cc      *clientConn
	id      hub.Identity
	auth    hub.DeviceAuth
	modelID string

	conn         atomic.Pointer[hub.Conn] // registered with the hub once CONNACK is due
	serverClosed atomic.Bool              // closed by the hub or the server: the will is not forwarded
	willSent     atomic.Bool              // the will has been forwarded (or refused): never twice
	// sendMu is held from SUBSCRIBE to SUBACK so hub deliveries wait (see
	// hook.OnSubscribe). Whatever the hub calls synchronously from a
	// Subscribe* method must not take it: Conn.SubscribeC2D, which sends,
	// is therefore called only after the SUBACK (see releaseC2D).
	sendMu    sync.Mutex
	ready     chan struct{} // closed once CONNACK is written or the connection ended
	readyOnce sync.Once
	endOnce   sync.Once

	// Cloud-to-device delivery (c2d.go).
	c2dMu      sync.Mutex
	c2dLocks   map[uint16]string        // packet id -> hub lock token of each unacknowledged C2D PUBLISH; nil until the first
	c2dSub     atomic.Pointer[c2dRoute] // the devicebound filter subscribed and its topic prefix
	c2dPending atomic.Bool              // subscribed; the hub is told once the CONNACK or SUBACK is out
}

var (
	_ hub.Session    = (*session)(nil)
	_ hub.C2DSession = (*session)(nil)
)

// SendMethod writes a direct-method request to this device at QoS 0 (§3.9).
// The method name goes into the topic as it is: the hub has refused names
// with '/', '+' or '#', and Node reads the segment without decoding.
func (s *session) SendMethod(rid, name string, payload []byte) error {
	<-s.ready
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	return s.publish(prefixMethodRequest+name+"/?$rid="+rid, payload)
}

// SendDesired writes a desired-properties notification (§3.8).
func (s *session) SendDesired(version int64, body []byte) error {
	<-s.ready
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	return s.publish(prefixDesiredPush+"?$version="+strconv.FormatInt(version, 10), body)
}

// Close drops the connection: takeover, token expiry, device disabled or
// deleted. It does not wait for the peer.
func (s *session) Close() {
	s.serverClosed.Store(true)
	s.cl.Stop(errClosedByHub)
}

// publish writes one QoS 0 PUBLISH to this client.
func (s *session) publish(topic string, payload []byte) error {
	return s.cl.WritePacket(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish},
		TopicName:   topic,
		Payload:     payload,
	})
}

// markReady lets hub deliveries through: CONNACK is out, or the connection
// is over and writes fail at once.
func (s *session) markReady() { s.readyOnce.Do(func() { close(s.ready) }) }

// end tells the hub the connection is gone; safe to call more than once.
// Unacknowledged cloud-to-device messages are left to the hub to redeliver.
func (s *session) end() {
	s.markReady()
	s.endOnce.Do(func() {
		s.dropC2DInflight()
		if c := s.conn.Load(); c != nil {
			c.Disconnect()
		}
	})
}

// touch records device activity with the hub.
func (s *session) touch() {
	if c := s.conn.Load(); c != nil {
		c.Touch()
	}
}

// subscribed reports whether the client holds filter (mochi keeps the
// subscriptions, including those of a resumed CleanSession=0 session).
func (s *session) subscribed(filter string) bool {
	_, ok := s.cl.State.Subscriptions.Get(filter)
	return ok
}

// applyFilter tells the hub about a subscription change that it acts on.
// Twin responses need no hub state: replyTwin checks the subscription. A
// C2D subscription reaches the hub later, in releaseC2D.
func (s *session) applyFilter(filter string, on bool) {
	c := s.conn.Load()
	if c == nil {
		return
	}
	f, err := parseFilter(filter)
	if err != nil || !f.allowedFor(s.id) {
		return
	}
	if !on && s.holds(f.kind) {
		// Another spelling of the same filter is still subscribed.
		if f.kind == subC2D {
			s.rerouteC2D()
		}
		return
	}
	switch f.kind {
	case subMethods:
		if on {
			c.SubscribeMethods()
		} else {
			c.UnsubscribeMethods()
		}
	case subDesired:
		if on {
			c.SubscribeDesired()
		} else {
			c.UnsubscribeDesired()
		}
	case subC2D:
		if on {
			s.subscribeC2D(f.device)
		} else {
			s.c2dPending.Store(false)
			c.UnsubscribeC2D()
		}
	}
}

// holds reports whether the client still has a subscription of kind.
func (s *session) holds(kind subKind) bool {
	for filter := range s.cl.State.Subscriptions.GetAll() {
		if f, err := parseFilter(filter); err == nil && f.kind == kind {
			return true
		}
	}
	return false
}

// replyTwin answers a twin request on $iothub/twin/res/{status}/?$rid=...
// (version > 0 adds &$version=). A device that has not subscribed to
// $iothub/twin/res/# cannot receive the answer, so it is dropped (§3.10).
func (s *session) replyTwin(status int, rid string, version int64, body []byte) {
	if !s.subscribed(filterTwinResponses) {
		s.srv.log.Debug("twin response dropped: not subscribed to "+filterTwinResponses, "identity", s.id.String(), "rid", rid)
		return
	}
	topic := prefixTwinResponse + strconv.Itoa(status) + "/?$rid=" + rid
	if version > 0 {
		topic += "&$version=" + strconv.FormatInt(version, 10)
	}
	if err := s.publish(topic, body); err != nil {
		s.srv.log.Debug("twin response not delivered", "identity", s.id.String(), "err", err)
	}
}

// replyTwinError answers a twin request with the hub error's status and
// its JSON body, which body-reading SDKs (Node, C# v2) parse (§3.8).
func (s *session) replyTwinError(rid string, err error) {
	he := huberr.As(err)
	if he.Status >= 500 {
		s.srv.log.Error("twin request failed", "identity", s.id.String(), "err", err)
	}
	body, _ := json.Marshal(he.Detail(newTrackingID(), s.srv.hub.Now()))
	s.replyTwin(he.Status, rid, 0, body)
}

// newTrackingID returns a random id for an error body.
func newTrackingID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
