// SPDX-License-Identifier: MIT

package mqttapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// OnPublish handles every device PUBLISH and routes none of them: a device
// talks to the hub, never to other devices. Returning CodeSuccessIgnore
// lets mochi send the PUBACK of a QoS 1 publish (after the handler, so
// telemetry is durable first) without delivering or retaining anything. A
// publish the hub cannot take closes the connection: MQTT 3.1.1 has no
// negative PUBACK.
func (h *hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if d := dpsOf(cl); d != nil {
		if err := d.handlePublish(pk); err != nil {
			h.srv.log.Info("closing provisioning connection", "registrationId", d.creds.RegistrationID, "reason", err)
			cl.Stop(err)
			return pk, packets.ErrRejectPacket
		}
		return pk, packets.CodeSuccessIgnore
	}
	sess := sessionOf(cl)
	if sess == nil {
		return pk, packets.ErrRejectPacket
	}
	err := sess.handlePublish(pk)
	if errors.Is(err, errAckWithheld) {
		// Recorded, and left without its PUBACK: the connection is about
		// to be broken (faults.go).
		return pk, packets.ErrRejectPacket
	}
	if err != nil {
		h.srv.log.Info("closing mqtt connection", "identity", sess.id.String(), "reason", err)
		// mochi skips the will when a hook stops the client; a connection
		// closed for an error still owes it (MQTT 3.1.1 §3.1.2.5).
		if atomic.LoadUint32(&cl.Properties.Will.Flag) == 1 {
			sess.forwardWill(cl.Properties.Will)
		}
		cl.Stop(err)
		return pk, packets.ErrRejectPacket
	}
	return pk, packets.CodeSuccessIgnore
}

// handlePublish serves one device-to-hub topic of §3.5. Twin errors are
// answers on the twin response topic; other errors close the connection.
func (s *session) handlePublish(pk packets.Packet) error {
	t, err := parsePublishTopic(pk.TopicName)
	if err != nil {
		return err
	}
	switch t.kind {
	case pubTelemetry:
		return s.telemetry(t.bag, pk.Payload, pk.FixedHeader.Retain, false)
	case pubTwinGet:
		// The body is ignored: Node sends a single space (§3.8).
		props, err := s.srv.hub.DeviceTwin(s.id)
		if err == nil {
			var doc []byte
			if doc, err = json.Marshal(props); err == nil {
				s.replyTwin(200, t.rid, 0, doc)
				return nil
			}
		}
		s.replyTwinError(t.rid, err)
	case pubTwinReported:
		v, err := s.srv.hub.PatchReported(s.id, pk.Payload, t.version)
		if err != nil {
			s.replyTwinError(t.rid, err)
			return nil
		}
		s.replyTwin(204, t.rid, v, nil)
	case pubMethodResponse:
		// Python percent-encodes the rid it echoes; the hub's rids are
		// plain, so decoding is safe either way. Unknown or late rids are
		// the hub's to drop.
		rid := t.rid
		if dec, err := url.PathUnescape(rid); err == nil {
			rid = dec
		}
		if c := s.conn.Load(); c != nil {
			c.ResolveMethod(rid, t.status, pk.Payload)
		}
	}
	return nil
}

// errAckWithheld is telemetry's answer for a message that asked for a
// connection fault this transport serves: the message is recorded, and
// the hub does not acknowledge it. The official SDKs' e2e suites rely on
// that: the Java suite says the fault message "will not be ack'd by
// service if sent over MQTT/MQTT_WS", the C# one that the fault "will
// terminate the connection prior to a PUBACK", and the C one waits for the
// message to time out.
var errAckWithheld = errors.New("fault injection: the message is recorded and not acknowledged")

// telemetry records a device-to-cloud message and returns once the hub has
// made it durable. RETAIN adds mqtt-retain: true (§3.4); a will adds
// iothub-MessageType: Will (§3.2).
func (s *session) telemetry(bag string, body []byte, retain, will bool) error {
	props, err := decodePropertyBag(bag)
	if err != nil {
		return fmt.Errorf("telemetry property bag: %w", err)
	}
	m := messageFromBag(props, body)
	if retain {
		m.Properties[propRetain] = "true"
	}
	if will {
		m.Properties[propMessageType] = "Will"
	}
	if err := s.srv.hub.RecordTelemetry(s.srv.ctx, s.id, s.auth.Method, s.cc.transport, m); err != nil {
		return fmt.Errorf("telemetry not recorded: %w", err)
	}
	if m.Fault != "" && mqttFault(m.Fault) {
		return errAckWithheld
	}
	return nil
}
