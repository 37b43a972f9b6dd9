// SPDX-License-Identifier: MIT

package amqpapi

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"sync"

	"github.com/iothubemulator/iothub/emulator/internal/amqp"
	"github.com/iothubemulator/iothub/emulator/internal/hub"
)

// conn is the adapter's state of one AMQP connection: the claims it holds
// (claims.go), the links they authorize, and the links on which its client
// receives replies from request nodes (rpc.go). Each connection gets its
// own engine Config whose callbacks are bound to it, so no lookup by
// connection is ever needed.
type conn struct {
	srv       *Server
	via       Transport
	nc        net.Conn            // as served: TLS, WebSocket or plain TCP (faults.go reaches the TCP socket under it)
	remote    string              // the peer's address
	peerCerts []*x509.Certificate // the TLS client certificate chain, for X.509 devices
	log       *slog.Logger

	mu       sync.Mutex
	amqp     *amqp.Conn // set at SASL or open, before any link
	claims   []*Claim
	bound    map[*amqp.Link]*binding
	replies  map[Node][]*amqp.Link // reply links by request node, oldest first
	replySig chan struct{}         // closed and replaced when a reply link attaches
	devices  map[hub.Identity]*deviceSession
	cbsIn    map[*amqp.Link]struct{} // the client's $cbs senders, for fault injection
	gone     bool
}

func newConn(s *Server, nc net.Conn, via Transport) *conn {
	c := &conn{srv: s, via: via, nc: nc, remote: nc.RemoteAddr().String(), cbsIn: map[*amqp.Link]struct{}{}, bound: map[*amqp.Link]*binding{}, replies: map[Node][]*amqp.Link{},
		replySig: make(chan struct{}), devices: map[hub.Identity]*deviceSession{},
		log: s.log.With("remote", nc.RemoteAddr().String(), "transport", via.String())}
	if cs, ok := nc.(interface{ ConnectionState() tls.ConnectionState }); ok && via != TransportTLS {
		// A WebSocket carries the HTTPS request's TLS state; a TLS socket
		// has it only after the handshake (see authenticate and open).
		c.peerCerts = cs.ConnectionState().PeerCertificates
	}
	return c
}

// config is the server's engine configuration bound to this connection.
func (c *conn) config() *amqp.Config {
	cfg := *c.srv.base
	cfg.Authenticate = c.authenticate
	cfg.OnOpen = c.onOpen
	cfg.OnAttach = c.onAttach
	if c.via == TransportPlain {
		// EXTERNAL names a TLS client certificate: none without TLS.
		cfg.SASLMechanisms = []amqp.Symbol{amqp.SASLMSSBCBS, amqp.SASLPlain, amqp.SASLAnonymous}
	}
	return &cfg
}

func (c *conn) setAMQP(ac *amqp.Conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.amqp != nil {
		return
	}
	c.amqp = ac
	if st := ac.TLS(); st != nil && len(c.peerCerts) == 0 {
		c.peerCerts = st.PeerCertificates
	}
}

func (c *conn) onOpen(ac *amqp.Conn) error {
	c.setAMQP(ac)
	c.log.Debug("amqp: connection open", "container-id", ac.ContainerID(), "hostname", ac.Hostname())
	return nil
}

// ended releases what the connection held: its devices' sessions with the
// hub and its claims' timers.
func (c *conn) ended() {
	c.mu.Lock()
	c.gone = true
	c.mu.Unlock()
	c.endDevices()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cl := range c.claims {
		cl.stopTimer()
	}
	c.claims = nil
	c.bound = map[*amqp.Link]*binding{}
	c.replies = map[Node][]*amqp.Link{}
}

// linkContext returns a context that ends with the link (and with the
// server).
func (c *conn) linkContext(l *amqp.Link) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(c.srv.ctx)
	go func() {
		select {
		case <-l.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}
