// SPDX-License-Identifier: MIT

package fakehub

import (
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"

	"github.com/gorilla/websocket"
	"github.com/mochi-mqtt/server/v2/listeners"

	"github.com/iothubemulator/iothub/internal/wsconn"
)

// wsPath is where IoT Hub serves MQTT over WebSockets.
const wsPath = "/$iothub/websocket"

// wsListener serves MQTT over WSS on wsPath only. mochi's own WebSocket
// listener serves every path and hides the TLS state, hence this one.
type wsListener struct {
	id  string
	hub *Hub
	cfg *tls.Config
	ln  net.Listener
	srv *http.Server
}

// tlsConn is a WebSocket connection that remembers its TLS state, so the
// auth hook can read the client certificate as it does on plain TLS.
type tlsConn struct {
	*wsconn.Conn
	state tls.ConnectionState
}

// ConnectionState returns the TLS state of the underlying connection.
func (c *tlsConn) ConnectionState() tls.ConnectionState { return c.state }

func (l *wsListener) ID() string       { return l.id }
func (l *wsListener) Protocol() string { return "wss" }

func (l *wsListener) Address() string {
	if l.ln == nil {
		return ""
	}
	return l.ln.Addr().String()
}

func (l *wsListener) Init(*slog.Logger) error {
	ln, err := tls.Listen("tcp", "127.0.0.1:0", l.cfg)
	if err != nil {
		return err
	}
	l.ln = ln
	l.srv = &http.Server{}
	return nil
}

func (l *wsListener) Serve(establish listeners.EstablishFn) {
	up := websocket.Upgrader{
		Subprotocols: []string{"mqtt"},
		CheckOrigin:  func(*http.Request) bool { return true },
	}
	l.srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hs := WSHandshake{Path: r.URL.Path, Subprotocols: websocket.Subprotocols(r)}
		l.hub.record(func() { l.hub.wsHandshakes = append(l.hub.wsHandshakes, hs) })
		if r.URL.Path != wsPath {
			http.NotFound(w, r)
			return
		}
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		var state tls.ConnectionState
		if r.TLS != nil {
			state = *r.TLS
		}
		_ = establish(l.id, &tlsConn{Conn: wsconn.New(ws), state: state})
	})
	_ = l.srv.Serve(l.ln)
}

func (l *wsListener) Close(closeClients listeners.CloseFn) {
	if l.srv != nil {
		_ = l.srv.Close()
	}
	closeClients(l.id)
}
