// SPDX-License-Identifier: MIT

package mqttapi

import (
	"context"
	"crypto/tls"
	"errors"
	"time"

	"github.com/gorilla/websocket"

	"github.com/iothubemulator/iothub/emulator/internal/hub"
	"github.com/iothubemulator/iothub/emulator/internal/huberr"
)

// Fault injection (hub/faults.go): the hub decides which fault and when;
// the session breaks its own connection in the named way.

var _ hub.Faulter = (*session)(nil)

// errFault is the stop cause of a connection broken by fault injection.
var errFault = errors.New("connection broken by fault injection")

// mqttFault reports whether an MQTT connection has what kind breaks. The
// AMQP kinds do not apply: the hub ignores them for an MQTT device.
func mqttFault(kind hub.FaultKind) bool {
	return kind == hub.FaultKillTcp || kind == hub.FaultShutDownMqtt
}

// Fault breaks the connection the way kind says (hub.Faulter):
//
//   - KillTcp cuts the TCP connection: it is reset (RST), with no TLS
//     close_notify and no WebSocket close frame, as a network failure or a
//     gateway crash would leave it.
//   - ShutDownMqtt ends it cleanly: MQTT 3.1.1 has no DISCONNECT from the
//     server, so the clean end is the transport's own: over WebSockets a
//     close frame (1000, carrying the close reason), then the TLS
//     close_notify and the TCP FIN.
//
// Either way the hub closed it, so the device's will is not forwarded,
// as for the hub's other closes (token expiry, takeover).
func (s *session) Fault(kind hub.FaultKind, reason string) bool {
	if !mqttFault(kind) {
		return false
	}
	s.serverClosed.Store(true)
	if kind == hub.FaultKillTcp {
		s.cc.kill()
		s.cl.Stop(errFault)
		return true
	}
	// The clean close writes to the peer: it must not hold up the hub,
	// and mochi's Stop, which drops the socket, must wait for it.
	go func() {
		s.cc.shutdown(reason)
		s.cl.Stop(errFault)
	}()
	return true
}

// kill resets the TCP connection under TLS (and WebSockets): SO_LINGER 0
// makes the close send an RST instead of a FIN. The socket is a
// *net.TCPConn, or the emulator's listener guard's wrapper of one, which
// passes SetLinger on.
func (c *clientConn) kill() {
	raw := c.raw()
	if tc, ok := raw.(interface{ SetLinger(int) error }); ok {
		_ = tc.SetLinger(0)
	}
	_ = raw.Close()
}

// shutdownWait bounds the writes of a clean close.
const shutdownWait = 2 * time.Second

// shutdown closes the connection cleanly: a WebSocket close frame if the
// connection is one, then TLS close_notify and FIN.
func (c *clientConn) shutdown(reason string) {
	var tc *tls.Conn
	switch conn := c.conn().(type) {
	case *wsConn:
		// A close frame's reason holds at most 123 bytes.
		if len(reason) > 123 {
			reason = reason[:123]
		}
		// gorilla allows WriteControl beside mochi's writer.
		_ = conn.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, reason), time.Now().Add(shutdownWait))
		tc, _ = conn.ws.NetConn().(*tls.Conn)
	case *tls.Conn:
		tc = conn
	}
	if tc != nil {
		// close_notify waits for a writer in progress (tls.Conn serialises
		// them), so it follows any packet mochi is writing.
		_ = tc.SetWriteDeadline(time.Now().Add(shutdownWait))
		_ = tc.Close()
	}
	_ = c.raw().Close()
}

// admit asks the hub whether the identity may connect now: a fault's
// duration, or throttling, refuses it.
func (s *Server) admit(sess *session) error {
	ctx, cancel := context.WithTimeout(s.ctx, setupWait)
	defer cancel()
	return s.hub.AdmitConnection(ctx, sess.id)
}

// refusalCode is the CONNACK return code for a hub refusal: 5 (not
// authorized) for a credentials error, 3 (server unavailable) otherwise:
// throttled, quota exceeded, or refused during a fault's duration. 3 is
// what MQTT 3.1.1 has for "the service is not taking this connection now",
// and every official SDK retries it (Node: ServiceUnavailableError).
func refusalCode(err error) byte {
	if huberr.As(err).Status == 401 {
		return 5
	}
	return 3
}
