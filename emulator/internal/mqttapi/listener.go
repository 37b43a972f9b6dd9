// SPDX-License-Identifier: MIT

package mqttapi

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// Listener ids as mochi knows them.
const (
	listenerTLS = "iothub-tls"
	listenerWS  = "iothub-ws"
)

// Transport names recorded with telemetry.
const (
	transportMQTT   = "mqtt"
	transportMQTTWS = "mqtt-ws"
)

// connectTimeout bounds the time from accepting a connection (or from a
// WebSocket upgrade) to a complete CONNECT: the TLS handshake and the
// CONNECT itself. It is all an unauthenticated peer may hold a connection
// for; a device sends its CONNECT right after the handshake. mochi sets
// the keep-alive deadline once it has the CONNECT.
const connectTimeout = 10 * time.Second

// writeTimeout bounds every write to a device. A device that stops reading
// lets its TCP window close, and a write then waits for buffer space. mochi
// bounds it only by the keep-alive deadline, up to 1767 s and pushed back by
// every packet the device sends, while the write holds mochi's lock on the
// client and the hub's send path to that device (methods, desired
// updates, C2D, twin answers). The largest packet the hub sends is a few
// hundred KB, which a working link takes in well under this; a device that
// cannot take it is a slow consumer, and its connection is closed.
const writeTimeout = 10 * time.Second

// clientConn is a device connection as mochi sees it: the transport's
// net.Conn plus what our hook needs and mochi would hide (the peer
// certificates, the transport name, our session).
type clientConn struct {
	// tr is the transport. Once mochi is done with the connection,
	// serveConn swaps it for an ended stub: mochi keeps a CleanSession=0
	// client, and with it this value, for up to sessionExpiry after the
	// device has gone, and the TLS state, socket and buffers (about 7 KiB;
	// for a WebSocket, gorilla's buffers too) have no use there.
	tr        atomic.Pointer[transport]
	srv       *Server
	listener  string              // listenerTLS or listenerWS
	transport string              // transportMQTT or transportMQTTWS
	peerCerts []*x509.Certificate // client certificates from the TLS handshake (X.509 devices)
	sess      atomic.Pointer[session]
	dps       atomic.Pointer[dpsSession] // set instead of sess for a provisioning connection
	// dpsRegistrationID is the client id a provisioning CONNECT gave,
	// before screenDPSConnect prefixed it; "" for a hub connection.
	dpsRegistrationID string
	done              chan struct{} // closed once mochi is finished with the connection and the hub knows
	// unlockSetup lets go of the client id's setup lock (see
	// hook.OnConnect); nil when not held. Only the connection's own
	// goroutine, which runs mochi's handling of it, uses it.
	unlockSetup func()
	// connect is the CONNECT read by readConnect, handed to mochi by Read
	// before anything else. Only mochi's read loop reads.
	connect []byte
}

// transport is a device connection's transport: the TLS connection or
// the WebSocket, and the socket under it.
type transport struct {
	net.Conn
	raw io.Closer // closes at once: no TLS close_notify, no WebSocket close frame
}

func newClientConn(s *Server, conn net.Conn, raw io.Closer, listener, trName string) *clientConn {
	cc := &clientConn{srv: s, listener: listener, transport: trName, done: make(chan struct{})}
	cc.tr.Store(&transport{Conn: conn, raw: raw})
	return cc
}

// conn is the transport connection; once the connection has ended, a stub
// whose reads and writes fail.
func (c *clientConn) conn() net.Conn { return c.tr.Load().Conn }

// raw is the socket; once the connection has ended, the stub.
func (c *clientConn) raw() io.Closer { return c.tr.Load().raw }

// release lets go of an ended connection's transport (see tr).
func (c *clientConn) release() {
	old := c.tr.Load()
	e := endedConn{local: old.LocalAddr(), remote: old.RemoteAddr()}
	c.tr.Store(&transport{Conn: e, raw: e})
}

// endedConn stands in for the transport of a connection that has ended.
type endedConn struct{ local, remote net.Addr }

func (endedConn) Read([]byte) (int, error)         { return 0, net.ErrClosed }
func (endedConn) Write([]byte) (int, error)        { return 0, net.ErrClosed }
func (endedConn) Close() error                     { return nil }
func (e endedConn) LocalAddr() net.Addr            { return e.local }
func (e endedConn) RemoteAddr() net.Addr           { return e.remote }
func (endedConn) SetDeadline(time.Time) error      { return net.ErrClosed }
func (endedConn) SetReadDeadline(time.Time) error  { return net.ErrClosed }
func (endedConn) SetWriteDeadline(time.Time) error { return net.ErrClosed }

// Read gives mochi the CONNECT read before it saw the connection, then
// the connection's bytes.
func (c *clientConn) Read(p []byte) (int, error) {
	if len(c.connect) > 0 {
		n := copy(p, c.connect)
		c.connect = c.connect[n:]
		if len(c.connect) == 0 {
			c.connect = nil
		}
		return n, nil
	}
	return c.conn().Read(p)
}

func (c *clientConn) LocalAddr() net.Addr  { return c.conn().LocalAddr() }
func (c *clientConn) RemoteAddr() net.Addr { return c.conn().RemoteAddr() }

// releaseSetup lets the next connection of the client id be set up.
func (c *clientConn) releaseSetup() {
	if c.unlockSetup != nil {
		c.unlockSetup()
		c.unlockSetup = nil
	}
}

// Close closes the connection without a goodbye: MQTT 3.1.1 has no server
// DISCONNECT, the hub signals every error by dropping the connection
// (§3.3), and a close must never wait on a stuck peer.
func (c *clientConn) Close() error { return c.raw().Close() }

// Write writes one encoded packet (mochi writes each packet whole, one
// writer at a time) within the server's write timeout. A write that fails
// or times out may have put part of a packet on the wire, so the
// connection is closed at once, which also ends mochi's read loop and the
// session: a device that does not read is dropped, never waited for.
func (c *clientConn) Write(p []byte) (int, error) {
	conn := c.conn()
	if err := conn.SetWriteDeadline(time.Now().Add(c.srv.writeTimeout)); err != nil {
		c.writeFailed(err)
		return 0, err
	}
	n, err := conn.Write(p)
	if err != nil {
		c.writeFailed(err)
		return n, err
	}
	// TLS may write on its own while reading (a key update): no stale
	// deadline for that.
	_ = conn.SetWriteDeadline(time.Time{})
	return n, nil
}

// writeFailed drops the connection after a failed write.
func (c *clientConn) writeFailed(err error) {
	identity := ""
	if sess := c.sess.Load(); sess != nil {
		identity = sess.id.String()
	}
	var ne net.Error
	if errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		c.srv.log.Info("device is not reading: closing its connection", "identity", identity, "transport", c.transport, "timeout", c.srv.writeTimeout)
	} else {
		c.srv.log.Debug("write to device failed: closing its connection", "identity", identity, "transport", c.transport, "err", err)
	}
	_ = c.raw().Close()
}

// SetDeadline applies mochi's deadlines, keep-alive and the wait for
// CONNECT, to reads only: they are about hearing from the device. Writes
// carry their own (see Write), which the device's traffic must not push
// back.
func (c *clientConn) SetDeadline(t time.Time) error { return c.conn().SetReadDeadline(t) }

// SetReadDeadline sets the read deadline.
func (c *clientConn) SetReadDeadline(t time.Time) error { return c.conn().SetReadDeadline(t) }

// SetWriteDeadline does nothing: Write sets the deadline of each write.
func (c *clientConn) SetWriteDeadline(time.Time) error { return nil }

// serveConn reads the connection's CONNECT by deadline, hands the
// connection to mochi and cleans up after it, whichever way mochi's
// connection handling ends.
func (s *Server) serveConn(establish listeners.EstablishFn, cc *clientConn, deadline time.Time) {
	defer func() {
		if sess := cc.sess.Load(); sess != nil {
			sess.end()
		}
		// After end: the next connection of the identity must not
		// register with the hub before this one is unregistered.
		cc.releaseSetup()
		_ = cc.raw().Close()
		cc.release()
		cc.peerCerts = nil // read only while connecting, on this goroutine
		close(cc.done)
		s.untrack(cc)
	}()
	_ = cc.SetDeadline(deadline)
	connect, err := readConnect(cc.conn())
	if err != nil {
		s.log.Debug("mqtt connection closed before a valid CONNECT", "remote", cc.RemoteAddr().String(), "transport", cc.transport, "err", err)
		return
	}
	cc.connect = connect
	if err := establish(cc.listener, cc); err != nil {
		s.log.Debug("mqtt connection ended", "remote", cc.RemoteAddr().String(), "transport", cc.transport, "err", err)
	}
}

// track registers a connection so Close can drop it; false when closing.
func (s *Server) track(cc *clientConn) bool {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	if s.closing {
		return false
	}
	s.conns[cc] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *Server) untrack(cc *clientConn) {
	s.connMu.Lock()
	delete(s.conns, cc)
	s.connMu.Unlock()
	s.wg.Done()
}

// dropConns closes every connection of a listener (all when id is "").
func (s *Server) dropConns(id string) {
	s.connMu.Lock()
	var cs []*clientConn
	for cc := range s.conns {
		if id == "" || cc.listener == id {
			cs = append(cs, cc)
		}
	}
	s.connMu.Unlock()
	for _, cc := range cs {
		if sess := cc.sess.Load(); sess != nil {
			sess.serverClosed.Store(true)
		}
		_ = cc.raw().Close()
	}
}

// tlsListener is mochi's view of our MQTT-over-TLS port. It is ours rather
// than mochi's TCP listener so that each connection reaches the hook with
// its TLS state, and so that Close drops connections instead of sending
// them an MQTT 5 style DISCONNECT.
type tlsListener struct {
	srv *Server
	ln  net.Listener // bound by Start, so a taken port fails Start itself
}

func (l *tlsListener) ID() string              { return listenerTLS }
func (l *tlsListener) Address() string         { return l.ln.Addr().String() }
func (l *tlsListener) Protocol() string        { return "mqtt+tls" }
func (l *tlsListener) Init(*slog.Logger) error { return nil }

// Serve accepts connections until the listener is closed.
func (l *tlsListener) Serve(establish listeners.EstablishFn) {
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			l.srv.log.Warn("mqtt accept failed", "err", err)
			time.Sleep(50 * time.Millisecond) // e.g. out of file descriptors: do not spin
			continue
		}
		tc := tls.Server(c, l.srv.tlsConfig)
		cc := newClientConn(l.srv, tc, c, listenerTLS, transportMQTT)
		if !l.srv.track(cc) {
			_ = c.Close()
			continue
		}
		go func() {
			deadline := time.Now().Add(l.srv.connectTimeout)
			_ = c.SetDeadline(deadline)
			if err := tc.HandshakeContext(l.srv.ctx); err != nil {
				l.srv.log.Debug("mqtt tls handshake failed", "remote", c.RemoteAddr().String(), "err", err)
				_ = c.Close()
				close(cc.done)
				l.srv.untrack(cc)
				return
			}
			cc.peerCerts = tc.ConnectionState().PeerCertificates
			l.srv.serveConn(establish, cc, deadline)
		}()
	}
}

// Close stops accepting and drops the listener's connections. mochi's
// closeClients callback is not used: it would write a DISCONNECT packet,
// which MQTT 3.1.1 clients do not expect from a server.
func (l *tlsListener) Close(listeners.CloseFn) {
	_ = l.ln.Close()
	l.srv.dropConns(listenerTLS)
}

// wsListener is mochi's view of MQTT over WebSockets. The HTTPS server owns
// the socket; mochi's establish function is parked here for
// WebSocketHandler to use.
type wsListener struct {
	srv       *Server
	establish atomic.Pointer[listeners.EstablishFn]
}

func (l *wsListener) ID() string              { return listenerWS }
func (l *wsListener) Address() string         { return "/$iothub/websocket" }
func (l *wsListener) Protocol() string        { return "mqtt+wss" }
func (l *wsListener) Init(*slog.Logger) error { return nil }

// Serve makes the WebSocket handler live.
func (l *wsListener) Serve(establish listeners.EstablishFn) { l.establish.Store(&establish) }

// Close takes the handler down and drops its connections.
func (l *wsListener) Close(listeners.CloseFn) {
	l.establish.Store(nil)
	l.srv.dropConns(listenerWS)
}

// serveWebSocket upgrades an HTTPS request to MQTT over WebSockets (§3.1)
// and runs the MQTT connection for as long as it lasts. The route decides
// the path; here the subprotocol is checked and the TLS peer certificates
// are kept for X.509 authentication.
func (s *Server) serveWebSocket(w http.ResponseWriter, r *http.Request) {
	fn := s.ws.establish.Load()
	if fn == nil {
		http.Error(w, "the MQTT server is not running", http.StatusServiceUnavailable)
		return
	}
	proto := mqttSubprotocol(r)
	if proto == "" {
		http.Error(w, `MQTT over WebSockets needs the "mqtt" subprotocol`, http.StatusBadRequest)
		return
	}
	up := websocket.Upgrader{
		HandshakeTimeout: s.connectTimeout,
		// Devices are not browsers and authenticate per connection with a
		// SAS token or certificate, never with cookies.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	// Echo the client's own spelling: the C SDK offers "MQTT", mqtt.js and
	// paho "mqtt".
	ws, err := up.Upgrade(w, r, http.Header{"Sec-Websocket-Protocol": {proto}})
	if err != nil {
		return // the upgrader has answered
	}
	cc := newClientConn(s, &wsConn{ws: ws}, transportConn(ws.NetConn()), listenerWS, transportMQTTWS)
	if r.TLS != nil {
		cc.peerCerts = r.TLS.PeerCertificates
	}
	if !s.track(cc) {
		_ = cc.raw().Close()
		return
	}
	s.serveConn(*fn, cc, time.Now().Add(s.connectTimeout))
}

// transportConn returns the connection under a TLS layer, if any. Closing
// it is immediate, where closing the TLS connection (which gorilla's Close
// does) first writes a close_notify alert, and waits up to 5 s for a peer
// that does not read.
func transportConn(c net.Conn) net.Conn {
	if tc, ok := c.(*tls.Conn); ok {
		return tc.NetConn()
	}
	return c
}

// mqttSubprotocol returns the client's offer of the "mqtt" subprotocol as
// spelled by the client, or "".
func mqttSubprotocol(r *http.Request) string {
	for _, p := range websocket.Subprotocols(r) {
		if strings.EqualFold(p, "mqtt") {
			return p
		}
	}
	return ""
}

// wsConn presents a WebSocket as the byte stream mochi reads MQTT from:
// binary messages concatenated, each write one binary message.
type wsConn struct {
	ws *websocket.Conn
	r  io.Reader // the current message

	// gorilla's SetWriteDeadline races with a write in progress, so a
	// deadline set from another goroutine than the writer's is kept here
	// and applied by Write, which mochi serialises per client.
	writeDeadline atomic.Pointer[time.Time]
}

// Read reads from the current message, moving on to the next as needed.
// Only mochi's read loop calls it.
func (c *wsConn) Read(p []byte) (int, error) {
	for {
		if c.r == nil {
			typ, r, err := c.ws.NextReader()
			if err != nil {
				return 0, err
			}
			if typ != websocket.BinaryMessage {
				return 0, errors.New("mqtt over websockets carries binary messages only")
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if errors.Is(err, io.EOF) {
			c.r = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

// Write sends p as one binary message.
func (c *wsConn) Write(p []byte) (int, error) {
	var dl time.Time
	if t := c.writeDeadline.Load(); t != nil {
		dl = *t
	}
	if err := c.ws.SetWriteDeadline(dl); err != nil {
		return 0, err
	}
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *wsConn) Close() error         { return c.ws.Close() }
func (c *wsConn) LocalAddr() net.Addr  { return c.ws.LocalAddr() }
func (c *wsConn) RemoteAddr() net.Addr { return c.ws.RemoteAddr() }

func (c *wsConn) SetDeadline(t time.Time) error {
	c.writeDeadline.Store(&t)
	return c.ws.SetReadDeadline(t)
}

func (c *wsConn) SetReadDeadline(t time.Time) error { return c.ws.SetReadDeadline(t) }

func (c *wsConn) SetWriteDeadline(t time.Time) error {
	c.writeDeadline.Store(&t)
	return nil
}
