// SPDX-License-Identifier: MIT

// Package wsconn adapts a gorilla WebSocket connection to net.Conn so an
// MQTT or AMQP byte stream can run over it (both carry the stream in
// binary messages whose boundaries mean nothing). The device client, its
// test hub, the provisioning client and the service client's AMQP use it.
package wsconn

import (
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// ErrTextFrame is returned by Read when the peer sends a text message, which
// MQTT over WebSockets forbids [MQTT-6.0.0-1].
var ErrTextFrame = errors.New("wsconn: text message on an MQTT WebSocket")

// Conn is a net.Conn over a WebSocket. Reads and writes may run concurrently
// with each other; gorilla allows one reader and one writer at a time, which
// the two mutexes enforce.
type Conn struct {
	ws  *websocket.Conn
	rmu sync.Mutex
	r   io.Reader // current message; nil between messages
	wmu sync.Mutex
}

// New wraps ws.
func New(ws *websocket.Conn) *Conn { return &Conn{ws: ws} }

// WebSocket returns the wrapped connection.
func (c *Conn) WebSocket() *websocket.Conn { return c.ws }

// Read reads from the current binary message, moving to the next one when it
// is exhausted, so callers see one continuous stream.
func (c *Conn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	for {
		if c.r == nil {
			kind, r, err := c.ws.NextReader()
			if err != nil {
				return 0, err
			}
			if kind != websocket.BinaryMessage {
				return 0, ErrTextFrame
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if errors.Is(err, io.EOF) {
			c.r = nil
			if n == 0 {
				continue // empty or finished message: read the next one
			}
			err = nil
		}
		return n, err
	}
}

// Write sends p as one binary message.
func (c *Conn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Close closes the underlying network connection without a closing
// handshake: MQTT ends sessions with DISCONNECT, not WebSocket close frames.
func (c *Conn) Close() error { return c.ws.Close() }

// LocalAddr returns the local network address.
func (c *Conn) LocalAddr() net.Addr { return c.ws.LocalAddr() }

// RemoteAddr returns the remote network address.
func (c *Conn) RemoteAddr() net.Addr { return c.ws.RemoteAddr() }

// SetDeadline sets the read and write deadlines.
func (c *Conn) SetDeadline(t time.Time) error {
	return errors.Join(c.SetReadDeadline(t), c.SetWriteDeadline(t))
}

// SetReadDeadline sets the read deadline.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.ws.SetReadDeadline(t) }

// SetWriteDeadline sets the write deadline. gorilla keeps it in a field that
// every frame write reads, so it is set under the write lock (brokers such
// as mochi refresh deadlines from their reader goroutine).
func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.ws.SetWriteDeadline(t)
}
