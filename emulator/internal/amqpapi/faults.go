// SPDX-License-Identifier: MIT

package amqpapi

import (
	"crypto/tls"
	"net"

	"github.com/iothubemulator/iothub/emulator/internal/amqp"
	"github.com/iothubemulator/iothub/emulator/internal/hub"
)

// Fault injection (hub/faults.go): the hub decides which fault and when;
// the device's session breaks its connection, its AMQP session or one of
// its links in the named way.
//
// What the device sees was settled from the SDKs, since the hub's own
// choice of conditions is not documented:
//
//   - Every break that carries the hook's close reason does so as an
//     amqp:internal-error whose description is the reason. Node turns a
//     link's or a session's error into the loss of the whole connection
//     and retries only the errors its default filter knows
//     (azure-iot-common DefaultErrorFilter: amqp:internal-error becomes
//     InternalServerError, retried; amqp:link:detach-forced and
//     amqp:connection:forced become a plain Error, not retried), and its
//     own *_disconnect.js suites expect a client with the default policy
//     to recover unseen from each AMQP fault. The C# and Java SDKs retry
//     amqp:internal-error too.
//   - ShutDownAmqp closes the connection with no error: Node then reports
//     NotConnectedError, which it retries.
//   - During the duration the device's reconnects are refused where its
//     session would start (device.go ensureDevice): an attach of one of
//     its links is refused with the hub's refusal as an AMQP error
//     (503 ServiceUnavailable: com.microsoft:timeout; throttling:
//     com.microsoft:device-container-throttled), both retried by every
//     SDK. A put-token is still answered 200, as is SASL PLAIN, because
//     Node takes any other put-token status for bad credentials
//     (UnauthorizedError) and stops retrying; only a 401 refusal (the
//     InvokeAuthError fault) refuses the put-token or SASL itself.

var _ hub.Faulter = (*deviceSession)(nil)

// faultLinks are the device links each link fault detaches.
var faultLinks = map[hub.FaultKind][]linkKind{
	hub.FaultKillAmqpD2CLink:        {kindEvents},
	hub.FaultKillAmqpC2DLink:        {kindC2D, kindInputs},
	hub.FaultKillAmqpMethodReqLink:  {kindMethodsOut}, // the link that carries the hub's method requests
	hub.FaultKillAmqpMethodRespLink: {kindMethodsIn},  // the link that carries the device's responses
	hub.FaultKillAmqpTwinLinkReq:    {kindTwinIn},     // the device's twin requests
	hub.FaultKillAmqpTwinLinkResp:   {kindTwinOut},    // the hub's twin responses and desired pushes
}

// Fault breaks what kind names (hub.Faulter):
//
//   - KillTcp resets the TCP connection under TLS and WebSockets (RST, no
//     AMQP close, no TLS close_notify, no WebSocket close frame);
//   - ShutDownAmqp closes the AMQP connection cleanly (close, no error);
//   - KillAmqpConnection closes it with the reason;
//   - both detach every link and end every session first, as the hub's
//     AMQP stack does on any close (amqp.Conn.CloseAll): the Node SDK
//     answers a bare close by detaching its links cleanly and waits 45 s
//     for answers that never come after a close before it reconnects;
//   - KillAmqpSession ends the AMQP sessions that hold the identity's
//     links (when it has none, those of the connection's $cbs links);
//   - KillAmqpCBSLinkReq and ...Resp detach the connection's $cbs links
//     that carry put-tokens, or their answers;
//   - the other KillAmqp* kinds detach the identity's link of that purpose.
//
// The connection-wide kinds hit every identity on a connection the C# SDK
// pools, as they would on the hub. A kind the connection has nothing for
// (ShutDownMqtt, a link never attached, $cbs links of an X.509 device)
// breaks nothing and reports false.
func (s *deviceSession) Fault(kind hub.FaultKind, reason string) bool {
	c := s.c
	c.mu.Lock()
	ac := c.amqp
	c.mu.Unlock()
	if ac == nil {
		return false
	}
	if reason == "" {
		reason = "fault injection: " + string(kind)
	}
	e := &amqp.Error{Condition: amqp.ErrInternal, Description: reason}
	switch kind {
	case hub.FaultKillTcp:
		killTCP(c.nc)
		return true
	case hub.FaultShutDownAmqp:
		ac.CloseAll(nil)
		return true
	case hub.FaultKillAmqpConnection:
		ac.CloseAll(e)
		return true
	case hub.FaultKillAmqpSession:
		sessions := s.amqpSessions()
		for _, as := range sessions {
			as.End(e)
		}
		return len(sessions) > 0
	case hub.FaultKillAmqpCBSLinkReq, hub.FaultKillAmqpCBSLinkResp:
		links := c.cbsLinks(kind == hub.FaultKillAmqpCBSLinkReq)
		for _, l := range links {
			l.Detach(e)
		}
		return len(links) > 0
	}
	kinds, ok := faultLinks[kind]
	if !ok {
		return false // ShutDownMqtt, and kinds that break nothing
	}
	s.mu.Lock()
	var links []*amqp.Link
	for l, k := range s.links {
		for _, want := range kinds {
			if k == want {
				links = append(links, l)
			}
		}
	}
	s.mu.Unlock()
	for _, l := range links {
		l.Detach(e)
	}
	return len(links) > 0
}

// amqpSessions returns the AMQP sessions that hold the identity's links
// or, when it has none, the connection's $cbs links.
func (s *deviceSession) amqpSessions() []*amqp.Session {
	seen := map[*amqp.Session]bool{}
	var out []*amqp.Session
	add := func(l *amqp.Link) {
		if as := l.Session(); !seen[as] {
			seen[as] = true
			out = append(out, as)
		}
	}
	s.mu.Lock()
	for l := range s.links {
		add(l)
	}
	s.mu.Unlock()
	if len(out) == 0 {
		for _, l := range s.c.cbsLinks(true) {
			add(l)
		}
		for _, l := range s.c.cbsLinks(false) {
			add(l)
		}
	}
	return out
}

// cbsLinks returns the connection's live $cbs links: the client's senders
// (requests) or its receivers (answers).
func (c *conn) cbsLinks(requests bool) []*amqp.Link {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*amqp.Link
	if requests {
		for l := range c.cbsIn {
			out = append(out, l)
		}
		return out
	}
	for _, l := range c.replies[NodeCBS] {
		select {
		case <-l.Done():
		default:
			out = append(out, l)
		}
	}
	return out
}

// killTCP resets the TCP connection under nc: SO_LINGER 0 makes the close
// send an RST instead of a FIN, and nothing is written first.
func killTCP(nc net.Conn) {
	raw := nc
	if ws, ok := raw.(*wsConn); ok {
		raw = ws.ws.NetConn()
	}
	if tc, ok := raw.(*tls.Conn); ok {
		raw = tc.NetConn()
	}
	// A *net.TCPConn, or the emulator's listener guard's wrapper of one,
	// which passes SetLinger on.
	if tc, ok := raw.(interface{ SetLinger(int) error }); ok {
		_ = tc.SetLinger(0)
	}
	_ = raw.Close()
}
