// SPDX-License-Identifier: MIT

package amqpapi

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// AMQP over WebSockets (OASIS amqp-bindmap-ws): the IoT Hub SDKs connect to
// wss://{host}/$iothub/websocket, the Event Hubs SDKs to
// wss://{host}/$servicebus/websocket, both asking for the subprotocol
// AMQPWSB10. Each binary message carries a piece of the AMQP byte stream.

// WebSocketSubprotocol is the AMQP over WebSockets subprotocol.
const WebSocketSubprotocol = "AMQPWSB10"

// WantsWebSocket reports whether an upgrade request asks for AMQP, so that
// /$iothub/websocket, which also serves MQTT, can dispatch on it.
func WantsWebSocket(r *http.Request) bool { return amqpSubprotocol(r) != "" }

func amqpSubprotocol(r *http.Request) string {
	for _, p := range websocket.Subprotocols(r) {
		if strings.EqualFold(p, WebSocketSubprotocol) {
			return p
		}
	}
	return ""
}

// WebSocketHandler upgrades requests that ask for AMQPWSB10 and serves AMQP
// on them for as long as the connection lasts.
func (s *Server) WebSocketHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proto := amqpSubprotocol(r)
		if proto == "" {
			http.Error(w, `AMQP over WebSockets needs the "AMQPWSB10" subprotocol`, http.StatusBadRequest)
			return
		}
		up := websocket.Upgrader{
			HandshakeTimeout: 10 * time.Second,
			// Clients are services and devices that authenticate per
			// connection (SASL, CBS), never with cookies.
			CheckOrigin: func(*http.Request) bool { return true },
		}
		ws, err := up.Upgrade(w, r, http.Header{"Sec-Websocket-Protocol": {proto}})
		if err != nil {
			return // the upgrader has answered
		}
		nc := &wsConn{ws: ws}
		if r.TLS != nil {
			nc.tls = r.TLS
		}
		s.serve(nc, TransportWebSocket)
	})
}

// wsConn presents a WebSocket as the byte stream the engine reads: binary
// messages concatenated; each write one binary message.
type wsConn struct {
	ws  *websocket.Conn
	tls *tls.ConnectionState
	r   io.Reader // the message being read

	wmu sync.Mutex // gorilla allows one writer at a time
}

// ConnectionState lets the engine see the TLS state (X.509 clients).
func (c *wsConn) ConnectionState() tls.ConnectionState {
	if c.tls == nil {
		return tls.ConnectionState{}
	}
	return *c.tls
}

func (c *wsConn) Read(p []byte) (int, error) {
	for {
		if c.r == nil {
			typ, r, err := c.ws.NextReader()
			if err != nil {
				return 0, err
			}
			if typ != websocket.BinaryMessage {
				return 0, errors.New("amqp over websockets carries binary messages only")
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

func (c *wsConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Close drops the connection at once (gorilla's Close closes the socket
// without a close handshake, which a dead peer could stall).
func (c *wsConn) Close() error                      { return c.ws.NetConn().Close() }
func (c *wsConn) LocalAddr() net.Addr               { return c.ws.LocalAddr() }
func (c *wsConn) RemoteAddr() net.Addr              { return c.ws.RemoteAddr() }
func (c *wsConn) SetReadDeadline(t time.Time) error { return c.ws.SetReadDeadline(t) }

// SetWriteDeadline takes the write lock: gorilla keeps the deadline in a
// field that a write in progress reads.
func (c *wsConn) SetWriteDeadline(t time.Time) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.ws.SetWriteDeadline(t)
}

func (c *wsConn) SetDeadline(t time.Time) error {
	if err := c.ws.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}
