// SPDX-License-Identifier: MIT

package mqttapi

import (
	"maps"
	"slices"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/iothubemulator/iothub/emulator/internal/hub"
)

// Cloud-to-device delivery over MQTT (§3.7).
//
// Each message goes out as a QoS 1 PUBLISH with a packet id taken from
// mochi (Client.NextPacketID) and recorded in mochi's inflight store, so
// ids never collide and mochi matches the PUBACK; its OnQosComplete hook
// then completes the message with the hub through the packet id -> lock
// token map below.
//
// Redelivery belongs to the hub alone (see hub.C2DSession): when the
// connection ends, this session's C2D packets are taken out of mochi's
// inflight store before a CleanSession=0 successor can inherit them, so
// mochi never resends them with DUP after the CONNACK. The hub then
// delivers them afresh, with a new lock token and DeliveryCount+1, as soon
// as the next connection is subscribed: right after CONNACK for a
// CleanSession=0 session (the subscription carries over), after SUBSCRIBE
// for a clean one. Two owners would deliver every unacknowledged message
// twice after a reconnect.

// c2dISOTime is how $.exp is written: ISO 8601 in UTC with milliseconds,
// as JavaScript's toISOString (which the Node SDK sends for D2C) does.
const c2dISOTime = "2006-01-02T15:04:05.000Z"

// maxTopicLen is MQTT's limit on a topic name (a 16-bit length prefix).
const maxTopicLen = 65535

// SendC2D writes a cloud-to-device message to this device on
// devices/{id}/messages/devicebound/{bag} (§3.7). The id is spelled as the
// device spelled it in its SUBSCRIBE: Python matches the topic against its
// percent-encoded id, Node and the C SDK (azure-iot-sdk-c) against the raw
// one. A device that subscribed devices/+/... (azure-sdk-for-c) gets its
// raw id: a topic name never carries a wildcard. It waits for a SUBACK in
// progress, so a message never overtakes the SUBACK.
//
// The SDKs subscribe at QoS 1 and get QoS 1. A device that subscribed at
// QoS 0 gets QoS 0, as MQTT requires ([MQTT-3.8.4-6]): there is no PUBACK
// then, so the message is complete once written (at most once).
func (s *session) SendC2D(m *hub.C2DMessage) error {
	<-s.ready
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	route := s.currentC2DRoute()
	topic := route.prefix + encodeC2DBag(m)
	if len(topic) > maxTopicLen {
		// Not deliverable over MQTT at all: leave it in flight, so that the
		// hub dead-letters it after MaxDeliveryCount connections instead of
		// retrying it forever.
		s.srv.log.Warn("cloud-to-device message dropped: its topic is too long for MQTT", "identity", s.id.String(), "messageId", m.MessageID, "length", len(topic))
		return nil
	}
	if sub, ok := s.cl.State.Subscriptions.Get(route.filter); ok && sub.Qos == 0 {
		if err := s.publish(topic, m.Body); err != nil {
			return err
		}
		if c := s.conn.Load(); c != nil {
			c.CompleteC2D(m.LockToken)
		}
		return nil
	}
	id, err := s.cl.NextPacketID()
	if err != nil {
		return err
	}
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1},
		TopicName:   topic,
		Payload:     m.Body,
		PacketID:    uint16(id),
		Created:     time.Now().Unix(),
	}
	s.c2dMu.Lock()
	if s.c2dLocks == nil {
		s.c2dLocks = map[uint16]string{} // on the first C2D message: most devices never get one
	}
	s.c2dLocks[pk.PacketID] = m.LockToken
	s.c2dMu.Unlock()
	if s.cl.State.Inflight.Set(pk) {
		atomic.AddInt64(&s.srv.mochi.Info.Inflight, 1)
	}
	if err := s.cl.WritePacket(pk); err != nil {
		s.forgetC2D(pk.PacketID)
		return err
	}
	return nil
}

// c2dRoute is where a device's cloud-to-device messages go.
type c2dRoute struct {
	filter string // the devicebound filter as subscribed: mochi's key for its QoS
	prefix string // devices/{id}/messages/devicebound/, the id spelled to match filter
}

// currentC2DRoute returns the route of the devicebound subscription (the
// raw id while there is none).
func (s *session) currentC2DRoute() c2dRoute {
	if r := s.c2dSub.Load(); r != nil {
		return *r
	}
	return newC2DRoute(s.id, s.id.DeviceID)
}

// newC2DRoute builds the route for a devicebound filter whose device
// segment is seg: the id as the device spelled it, or the raw id for '+'.
func newC2DRoute(id hub.Identity, seg string) c2dRoute {
	filter := "devices/" + seg + "/messages/devicebound/#"
	if seg == anyDevice {
		seg = id.DeviceID
	}
	return c2dRoute{filter: filter, prefix: "devices/" + seg + "/messages/devicebound/"}
}

// forgetC2D takes one C2D packet out of this session's map and mochi's
// inflight store.
func (s *session) forgetC2D(id uint16) {
	s.c2dMu.Lock()
	delete(s.c2dLocks, id)
	s.c2dMu.Unlock()
	if s.cl.State.Inflight.Delete(id) {
		atomic.AddInt64(&s.srv.mochi.Info.Inflight, -1)
	}
}

// dropC2DInflight forgets every unacknowledged C2D packet of this session,
// so mochi cannot resend them to a successor (see the top of this file).
// The hub learns nothing here: it redelivers once the connection is gone.
func (s *session) dropC2DInflight() {
	s.c2dMu.Lock()
	ids := slices.Collect(maps.Keys(s.c2dLocks))
	s.c2dMu.Unlock()
	for _, id := range ids {
		s.forgetC2D(id)
	}
}

// ackC2D completes the message a PUBACK acknowledges.
func (s *session) ackC2D(id uint16) {
	s.c2dMu.Lock()
	token, ok := s.c2dLocks[id]
	delete(s.c2dLocks, id)
	s.c2dMu.Unlock()
	if !ok {
		return
	}
	if c := s.conn.Load(); c != nil {
		c.CompleteC2D(token)
	}
}

// subscribeC2D records a devicebound subscription; the hub hears of it in
// releaseC2D, once the CONNACK or SUBACK that makes it live is written.
// Telling the hub at once would have it call SendC2D from inside mochi's
// SUBSCRIBE handling (or before the CONNACK), where sendMu is held or the
// session is not ready.
func (s *session) subscribeC2D(deviceSegment string) {
	r := newC2DRoute(s.id, deviceSegment)
	s.c2dSub.Store(&r)
	s.c2dPending.Store(true)
}

// rerouteC2D points deliveries at a devicebound spelling the client still
// holds after unsubscribing another one.
func (s *session) rerouteC2D() {
	for filter := range s.cl.State.Subscriptions.GetAll() {
		if f, err := parseFilter(filter); err == nil && f.kind == subC2D && f.allowedFor(s.id) {
			r := newC2DRoute(s.id, f.device)
			s.c2dSub.Store(&r)
			return
		}
	}
}

// releaseC2D tells the hub about a subscription recorded by subscribeC2D;
// the hub then delivers what is queued, from this goroutine.
func (s *session) releaseC2D() {
	if !s.c2dPending.Swap(false) {
		return
	}
	if c := s.conn.Load(); c != nil {
		c.SubscribeC2D()
	}
}

// OnQosComplete completes a cloud-to-device message when mochi has matched
// its PUBACK: the PUBACK is the device's "complete" (§3.7).
func (h *hook) OnQosComplete(cl *mqtt.Client, pk packets.Packet) {
	if pk.FixedHeader.Type != packets.Puback {
		return
	}
	if sess := sessionOf(cl); sess != nil {
		sess.ackC2D(pk.PacketID)
	}
}

// encodeC2DBag builds a devicebound property bag (§3.7): the system
// properties in the order seen from the hub ($.mid, $.exp, $.to, $.cid,
// $.uid, $.ct, $.ce), then iothub-ack, then the application properties
// sorted by name. Absent system properties are left out; an empty
// application value is written "key=". Keys and values are percent-encoded
// as encodeURIComponent does ('$' as %24, space as %20, '+' as %2B, '/'
// as %2F), which both SDK parsers need: Node takes topic segment 4 and
// splits it on '&' and '=' before decoding, Python does the same and
// decodes with unquote, never unquote_plus.
func encodeC2DBag(m *hub.C2DMessage) string {
	props := make([]property, 0, 8+len(m.Properties))
	add := func(k, v string) {
		if v != "" {
			props = append(props, property{k, v})
		}
	}
	add("$.mid", m.MessageID)
	if !m.ExpiryTime.IsZero() {
		add("$.exp", m.ExpiryTime.UTC().Format(c2dISOTime))
	}
	add("$.to", m.To)
	add("$.cid", m.CorrelationID)
	add("$.uid", m.UserID)
	add("$.ct", m.ContentType)
	add("$.ce", m.ContentEncoding)
	add("iothub-ack", m.Ack)
	for _, k := range slices.Sorted(maps.Keys(m.Properties)) {
		props = append(props, property{k, m.Properties[k]})
	}
	return encodePropertyBag(props)
}
