// SPDX-License-Identifier: MIT

package mqttapi

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/iothubemulator/iothub/emulator/internal/hub"
)

// Connection rules of §3.3 and §3.4.
const (
	// maxKeepAlive is the keep-alive mochi is given when the client asks for
	// 0 or for more: mochi drops a silent client after 1.5 × keep-alive,
	// and 1.5 × 1178 s is the hub's cap of 1767 s.
	maxKeepAlive = 1178
	// maxSubscriptions is the hub's limit per connection.
	maxSubscriptions = 5
	// takeoverWait bounds how long a new connection waits for the one it
	// replaces to finish.
	takeoverWait = 5 * time.Second
	// setupWait bounds how long a CONNECT waits while other connections of
	// its client id are set up; each of those takes at most takeoverWait
	// and a CONNACK write. Past it, the CONNECT is answered with CONNACK 3.
	setupWait = 30 * time.Second
)

// hook is the one mochi hook of the adapter. mochi accepts a connection or
// a topic if ANY hook says yes, so no other auth or ACL hook may be added.
type hook struct {
	mqtt.HookBase
	srv *Server
}

func (h *hook) ID() string { return "iothub" }

// Provides lists the events the hook handles.
func (h *hook) Provides(b byte) bool {
	switch b {
	case mqtt.OnConnect, mqtt.OnConnectAuthenticate, mqtt.OnSessionEstablish, mqtt.OnSessionEstablished,
		mqtt.OnDisconnect, mqtt.OnPacketRead, mqtt.OnACLCheck, mqtt.OnSubscribe, mqtt.OnSubscribed, mqtt.OnPacketProcessed,
		mqtt.OnUnsubscribed, mqtt.OnPublish, mqtt.OnWill, mqtt.OnQosComplete:
		return true
	}
	return false
}

// sessionOf returns the authenticated session of a mochi client, or nil.
func sessionOf(cl *mqtt.Client) *session {
	cc, ok := cl.Net.Conn.(*clientConn)
	if !ok {
		return nil
	}
	return cc.sess.Load()
}

// OnConnect authenticates the CONNECT (mochi calls it before
// OnConnectAuthenticate, which cannot choose a return code). An
// authentication failure leaves the connection without a session, and
// mochi answers CONNACK 5: its "bad username or password" maps to 3.1.1
// code 5. Anything else that goes wrong is answered here with CONNACK 3
// (server unavailable), as the protocol gateway does (§3.3).
//
// An authenticated connection takes its client id's setup lock and keeps
// it until its CONNACK is out (OnSessionEstablished) or it ends
// (serveConn). Both the
// hub and mochi let the newest connection of an identity win, but each
// decides in its own step: hub.Connect in OnSessionEstablish, mochi's
// takeover after it. Two CONNECTs set up side by side could each be the
// other's older connection, the hub keeping one and mochi the other: the
// hub would then call a connection that mochi has closed. One at a time,
// each takes over the last, which is gone from both before it registers.
func (h *hook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	cc, ok := cl.Net.Conn.(*clientConn)
	if !ok {
		return errors.New("mqttapi: connection did not come through an IoT Hub listener")
	}
	if pk.ProtocolVersion != 4 {
		// Other 3.x levels are refused in OnPacketRead; this refuses MQTT 5 (§3.1).
		_ = h.srv.mochi.SendConnack(cl, packets.ErrUnsupportedProtocolVersion, false, nil)
		return packets.ErrUnsupportedProtocolVersion
	}
	if cl.State.Keepalive == 0 || cl.State.Keepalive > maxKeepAlive {
		cl.State.Keepalive = maxKeepAlive
	}
	if cc.dpsRegistrationID != "" {
		// A provisioning connection: its requests are attested by the
		// provisioning service, and it is never registered with the hub,
		// so it needs no setup lock.
		d, err := h.srv.authenticateDPS(cl, cc, pk)
		if err != nil {
			h.srv.log.Info("provisioning connection refused", "registrationId", cc.dpsRegistrationID, "transport", cc.transport, "reason", err)
			return nil
		}
		cc.dps.Store(d)
		d.startDeadline(h.srv.connectTimeout)
		return nil
	}
	sess, err := h.srv.authenticate(cl, cc, pk)
	switch {
	case errors.Is(err, errCredentials), errors.Is(err, hub.ErrAuth):
		h.srv.log.Info("mqtt connection refused", "clientId", string(pk.Connect.ClientIdentifier), "transport", cc.transport, "reason", err)
		return nil
	case err != nil:
		h.srv.log.Error("mqtt connect failed", "clientId", string(pk.Connect.ClientIdentifier), "err", err)
		_ = h.srv.mochi.SendConnack(cl, packets.ErrServerUnavailable, false, nil)
		return err
	}
	if err := h.srv.admit(sess); err != nil {
		h.srv.log.Info("mqtt connection refused", "identity", sess.id.String(), "transport", cc.transport, "reason", err)
		writeConnack(cl, refusalCode(err))
		return err
	}
	// Authenticated first, so that a peer without credentials never waits
	// in a client id's queue: it cannot hold its connection past the
	// pre-CONNECT deadline, nor delay the identity's own connections.
	ctx, cancel := context.WithTimeout(h.srv.ctx, setupWait)
	unlock, err := h.srv.setup.lock(ctx, cl.ID)
	cancel()
	if err != nil {
		h.srv.log.Warn("mqtt connect failed: other connections of the client id are still being set up", "clientId", cl.ID, "err", err)
		_ = h.srv.mochi.SendConnack(cl, packets.ErrServerUnavailable, false, nil)
		return err
	}
	cc.unlockSetup = unlock
	cc.sess.Store(sess)
	return nil
}

// authenticate checks the CONNECT: client id, username, will topic and,
// through the hub, the SAS token or client certificate (§3.2).
func (s *Server) authenticate(cl *mqtt.Client, cc *clientConn, pk packets.Packet) (*session, error) {
	// A copy: mochi's string shares the CONNECT packet's bytes (token and
	// all), which the identity would otherwise keep alive wherever the
	// hub keeps it, e.g. as the key of its per-device runtime state, long
	// after the connection is gone.
	clientID := strings.Clone(pk.Connect.ClientIdentifier)
	id, err := parseClientID(clientID)
	if err != nil {
		return nil, err
	}
	modelID, err := parseUsername(string(pk.Connect.Username), clientID)
	if err != nil {
		return nil, err
	}
	if pk.Connect.WillFlag {
		// The hub forwards a will as telemetry (§3.2): its topic must be the
		// identity's own events topic. Anything else could reach other
		// devices through mochi's topic tree.
		t, err := parsePublishTopic(pk.Connect.WillTopic)
		if err != nil || t.kind != pubTelemetry || !t.names(id) {
			return nil, fmt.Errorf("%w: will topic %q is not %s's telemetry topic", errCredentials, pk.Connect.WillTopic, id)
		}
	}
	auth, err := s.hub.AuthenticateDevice(id, string(pk.Connect.Password), cc.peerCerts)
	if err != nil {
		return nil, err
	}
	return &session{srv: s, cl: cl, cc: cc, id: id, auth: auth, modelID: modelID, ready: make(chan struct{})}, nil
}

// OnConnectAuthenticate accepts exactly the connections OnConnect authenticated.
func (h *hook) OnConnectAuthenticate(cl *mqtt.Client, _ packets.Packet) bool {
	return sessionOf(cl) != nil || dpsOf(cl) != nil
}

// OnSessionEstablish runs before mochi takes over any stored session and
// sends CONNACK, under the client id's setup lock (see OnConnect). One
// connection per identity (§3.3): an older connection is dropped here, and
// waited for, so that mochi does not send it a DISCONNECT and its teardown,
// which unregisters it from the hub, cannot race the new session. Then the
// connection is registered with the hub, with the subscriptions mochi is
// about to carry over from a CleanSession=0 session (§3.3), so a device
// that has its CONNACK can be called at once. Hub deliveries wait for the
// CONNACK (see OnSessionEstablished).
func (h *hook) OnSessionEstablish(cl *mqtt.Client, pk packets.Packet) {
	sess := sessionOf(cl)
	if sess == nil {
		return
	}
	var inherited map[string]packets.Subscription
	if old, ok := h.srv.mochi.Clients.Get(cl.ID); ok && old != cl {
		if occ, ok := old.Net.Conn.(*clientConn); ok {
			prev := occ.sess.Load()
			if prev != nil {
				prev.serverClosed.Store(true)
			}
			old.Stop(errTakenOver)
			select {
			case <-occ.done:
			case <-time.After(takeoverWait):
				h.srv.log.Warn("older connection did not finish in time", "identity", sess.id.String())
			}
			if prev != nil {
				// Normally done as the old connection ended; not if it
				// outlived the wait. mochi must not resend them (c2d.go).
				prev.dropC2DInflight()
			}
		}
		// mochi's rule for carrying a 3.1.1 session over (inheritClientSession).
		if !pk.Connect.Clean && !old.Properties.Clean {
			inherited = old.State.Subscriptions.GetAll()
		}
	}
	c := h.srv.hub.Connect(sess.id, sess, hub.ConnectInfo{AuthMethod: sess.auth.Method, TokenExpiry: sess.auth.Expiry, ModelID: sess.modelID,
		Transport: sess.cc.transport, RemoteAddr: cl.Net.Remote})
	sess.conn.Store(c)
	for filter := range inherited {
		sess.applyFilter(filter, true)
	}
}

// OnSessionEstablished runs once CONNACK is written, and mochi holds the
// client as the client id's: the next connection of the identity may be
// set up. Hub deliveries may go, starting with the C2D messages queued for
// a carried-over devicebound subscription (§3.3).
func (h *hook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	if sess := sessionOf(cl); sess != nil {
		sess.cc.releaseSetup()
		sess.markReady()
		sess.releaseC2D()
	}
}

// OnDisconnect tells the hub the device is gone.
func (h *hook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	if d := dpsOf(cl); d != nil {
		d.end()
	}
	if sess := sessionOf(cl); sess != nil {
		sess.end()
	}
}

// OnPacketRead screens every packet before mochi acts on it. Returning
// ErrRejectPacket makes mochi close the connection, which is how the hub
// answers what it does not serve (§3.4, §3.10).
func (h *hook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Type == packets.Connect {
		// Before mochi validates the CONNECT: its refusals are MQTT 5
		// reason codes, which a 3.1.1 client cannot read.
		if r := screenConnect(&pk); r != nil {
			h.srv.log.Info("mqtt connect refused", "remote", cl.Net.Remote, "code", r.code, "reason", r.reason)
			if r.code != 0 {
				writeConnack(cl, r.code)
			}
			return pk, packets.ErrRejectPacket
		}
		if len(pk.Connect.ClientIdentifier) == 0 && !pk.Connect.Clean && pk.ProtocolVersion == 4 {
			// [MQTT-3.1.3-8]: code 2. mochi would answer 0x80, which is not a
			// 3.1.1 return code.
			writeConnack(cl, 2)
			return pk, packets.ErrRejectPacket
		}
		if cc, ok := cl.Net.Conn.(*clientConn); ok {
			h.srv.screenDPSConnect(cc, &pk)
		}
		return pk, nil
	}
	if d := dpsOf(cl); d != nil {
		if err := checkDPSPacket(pk); err != nil {
			h.srv.log.Info("closing provisioning connection", "registrationId", d.creds.RegistrationID, "reason", err)
			return pk, packets.ErrRejectPacket
		}
		return pk, nil
	}
	sess := sessionOf(cl)
	if sess == nil {
		return pk, packets.ErrRejectPacket
	}
	sess.touch()
	var err error
	switch pk.FixedHeader.Type {
	case packets.Publish:
		err = sess.checkPublish(pk)
	case packets.Subscribe:
		err = sess.checkSubscribe(pk)
	}
	if err != nil {
		h.srv.log.Info("closing mqtt connection", "identity", sess.id.String(), "reason", err)
		return pk, packets.ErrRejectPacket
	}
	return pk, nil
}

// writeConnack refuses a CONNECT with a MQTT 3.1.1 return code (1 to 5),
// written as is: mochi's SendConnack takes MQTT 5 reason codes.
func writeConnack(cl *mqtt.Client, code byte) {
	_ = cl.WritePacket(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connack}, ReasonCode: code})
}

// checkPublish enforces §3.4: QoS 0 or 1, and only the identity's own topics.
func (s *session) checkPublish(pk packets.Packet) error {
	if pk.FixedHeader.Qos > 1 {
		return errors.New("PUBLISH with QoS 2 is not supported")
	}
	t, err := parsePublishTopic(pk.TopicName)
	if err != nil {
		return err
	}
	if t.kind == pubTelemetry && !t.names(s.id) {
		return fmt.Errorf("%w: %q names another identity than %s", errTopic, pk.TopicName, s.id)
	}
	return nil
}

// checkSubscribe enforces §3.4: the documented filters only, naming this
// identity, and at most five subscriptions per connection.
func (s *session) checkSubscribe(pk packets.Packet) error {
	all := s.cl.State.Subscriptions.GetAll()
	for _, sub := range pk.Filters {
		f, err := parseFilter(sub.Filter)
		if err != nil {
			return err
		}
		if !f.allowedFor(s.id) {
			return fmt.Errorf("%w: filter %q is not %s's", errTopic, sub.Filter, s.id)
		}
		all[sub.Filter] = sub
	}
	if len(all) > maxSubscriptions {
		return fmt.Errorf("%d subscriptions; the hub allows %d per connection", len(all), maxSubscriptions)
	}
	return nil
}

// OnACLCheck repeats the topic rules for mochi's own checks. mochi also asks
// before delivering through its topic tree; nothing of ours is delivered
// that way, and a topic name never parses as a filter, so that is refused.
func (h *hook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	if d := dpsOf(cl); d != nil {
		if write {
			_, err := parseDPSTopic(topic)
			return err == nil
		}
		return topic == dpsFilterResponses
	}
	sess := sessionOf(cl)
	if sess == nil {
		return false
	}
	if write {
		t, err := parsePublishTopic(topic)
		return err == nil && (t.kind != pubTelemetry || t.names(sess.id))
	}
	f, err := parseFilter(topic)
	return err == nil && f.allowedFor(sess.id)
}

// OnSubscribe grants QoS 1 where QoS 2 is asked for (§3.4). It also
// holds back the session's hub deliveries until the SUBACK is written (see
// OnPacketProcessed): the subscription becomes live for the hub before the
// device learns of it, yet no request overtakes the SUBACK. This relies on
// mochi calling OnPacketProcessed after every OnSubscribe, whatever the
// SUBSCRIBE's outcome; TestMochiSubscribeHookOrder pins that.
func (h *hook) OnSubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	for i := range pk.Filters {
		if pk.Filters[i].Qos > 1 {
			pk.Filters[i].Qos = 1
		}
	}
	if sess := sessionOf(cl); sess != nil {
		sess.sendMu.Lock()
	}
	return pk
}

// OnSubscribed tells the hub about the new subscriptions before mochi
// writes the SUBACK, so a device that has its SUBACK can be called at once.
func (h *hook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, reasonCodes []byte) {
	sess := sessionOf(cl)
	if sess == nil {
		return
	}
	for i, sub := range pk.Filters {
		if i < len(reasonCodes) && reasonCodes[i] <= 2 {
			sess.applyFilter(sub.Filter, true)
		}
	}
}

// OnPacketProcessed releases hub deliveries once the SUBACK is out, then
// lets the hub deliver queued C2D messages if the SUBSCRIBE asked for them.
// mochi calls it after every SUBSCRIBE that reached OnSubscribe.
func (h *hook) OnPacketProcessed(cl *mqtt.Client, pk packets.Packet, _ error) {
	if pk.FixedHeader.Type != packets.Subscribe {
		return
	}
	if sess := sessionOf(cl); sess != nil {
		sess.sendMu.Unlock()
		sess.releaseC2D()
	}
}

// OnUnsubscribed stops hub deliveries before mochi writes the UNSUBACK.
func (h *hook) OnUnsubscribed(cl *mqtt.Client, pk packets.Packet) {
	if sess := sessionOf(cl); sess != nil {
		for _, sub := range pk.Filters {
			sess.applyFilter(sub.Filter, false)
		}
	}
}

// OnWill forwards the last will when the connection dropped without
// DISCONNECT. The will's topic was checked at CONNECT, so mochi's own
// publish of it reaches nobody; RETAIN is cleared so mochi keeps nothing.
func (h *hook) OnWill(cl *mqtt.Client, will mqtt.Will) (mqtt.Will, error) {
	if sess := sessionOf(cl); sess != nil {
		sess.forwardWill(will)
	}
	will.Retain = false
	return will, nil
}

// forwardWill records a will as telemetry marked iothub-MessageType: Will
// (§3.2), unless the hub itself closed the connection.
func (s *session) forwardWill(will mqtt.Will) {
	if s.serverClosed.Load() || !s.willSent.CompareAndSwap(false, true) {
		return
	}
	t, err := parsePublishTopic(will.TopicName)
	if err != nil || t.kind != pubTelemetry || !t.names(s.id) {
		return
	}
	if err := s.telemetry(t.bag, will.Payload, will.Retain, true); err != nil && !errors.Is(err, errAckWithheld) {
		s.srv.log.Warn("will not forwarded", "identity", s.id.String(), "err", err)
	}
}
