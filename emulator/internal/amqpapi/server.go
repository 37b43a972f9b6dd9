// SPDX-License-Identifier: MIT

package amqpapi

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/amqp"
	"github.com/iothubemulator/iothub/emulator/internal/hub"
)

// Ports the hub and the Event Hubs emulator use.
const (
	DefaultAddr      = ":5671"          // AMQP over TLS
	DefaultPlainAddr = "127.0.0.1:5672" // plain AMQP, for UseDevelopmentEmulator=true clients
)

// Transport says how a connection reached us.
type Transport int

// Transports, as the hub records them ("amqp", "amqp-ws").
const (
	TransportTLS       Transport = iota // AMQP over TLS (--amqp-addr)
	TransportPlain                      // AMQP without TLS (--amqp-plain-addr)
	TransportWebSocket                  // AMQP over WebSockets on the HTTPS port
)

func (t Transport) String() string {
	switch t {
	case TransportPlain:
		return "amqp-plain"
	case TransportWebSocket:
		return "amqp-ws"
	}
	return "amqp"
}

// Options configure a Server.
type Options struct {
	Hub       *hub.Hub
	TLSConfig *tls.Config  // the server certificate for Addr; required when Addr is set
	Addr      string       // AMQP over TLS listen address; "" for none
	PlainAddr string       // plain AMQP listen address; "" for none
	Logger    *slog.Logger // frame trace at debug; nil discards

	// WrapListener, when set, wraps each bound listener (the emulator's
	// guard of the open-file limit, package netlimit).
	WrapListener func(net.Listener) net.Listener

	// Engine settings tests may lower; zero keeps the engine's defaults.
	IdleTimeout time.Duration
	// replyWait bounds how long a request waits for its reply link to attach
	// and for credit on it; zero: 30 s.
	replyWait time.Duration
	// writeTimeout drops a peer whose socket accepts nothing for this
	// long; zero: the engine's 30 s.
	writeTimeout time.Duration
	// openTimeout bounds the time from accept to the peer's open; zero:
	// the engine's 30 s.
	openTimeout time.Duration
}

// Server serves the hub's AMQP surface on its listeners and on WebSocket
// connections handed to it by the HTTPS server.
type Server struct {
	opts     Options
	hub      *hub.Hub
	log      *slog.Logger
	eventHub string // the Event Hub-compatible name: the hub name
	base     *amqp.Config

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	tlsL    net.Listener
	plainL  net.Listener
	closed  bool
	readers readers   // partition receivers by consumer group and partition (epochs)
	created time.Time // the event hub's created_at
}

// New prepares a Server; Start binds its listeners.
func New(opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.replyWait <= 0 {
		opts.replyWait = 30 * time.Second
	}
	s := &Server{opts: opts, hub: opts.Hub, log: opts.Logger, eventHub: HubName(opts.Hub.HostName())}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.readers.init()
	s.created = opts.Hub.Now().UTC().Truncate(time.Millisecond)
	s.base = &amqp.Config{
		ContainerID: opts.Hub.HostName(),
		// MSSBCBS first: the C SDK asks for it by name; the others pick
		// what they were configured with.
		SASLMechanisms: []amqp.Symbol{amqp.SASLMSSBCBS, amqp.SASLPlain, amqp.SASLAnonymous, amqp.SASLExternal},
		IdleTimeout:    opts.IdleTimeout,
		WriteTimeout:   opts.writeTimeout,
		OpenTimeout:    opts.openTimeout,
		Logger:         opts.Logger,
	}
	return s
}

// HubName is the hub's name: the first label of its host name. It is also
// the name of its Event Hub-compatible endpoint.
func HubName(hostName string) string {
	name, _, _ := strings.Cut(hostName, ".")
	return name
}

// EventHubName is the name of the Event Hub-compatible endpoint.
func (s *Server) EventHubName() string { return s.eventHub }

// Start binds the listeners the options name and serves them.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.opts.Addr != "" {
		if s.opts.TLSConfig == nil {
			return errors.New("amqp: a TLS listener needs a certificate")
		}
		l, err := net.Listen("tcp", s.opts.Addr)
		if err != nil {
			return &ListenError{Addr: s.opts.Addr, TLS: true, Err: err}
		}
		s.tlsL = l
	}
	if s.opts.PlainAddr != "" {
		l, err := net.Listen("tcp", s.opts.PlainAddr)
		if err != nil {
			if s.tlsL != nil {
				s.tlsL.Close()
				s.tlsL = nil
			}
			return &ListenError{Addr: s.opts.PlainAddr, Err: err}
		}
		s.plainL = l
	}
	if w := s.opts.WrapListener; w != nil {
		if s.tlsL != nil {
			s.tlsL = w(s.tlsL)
		}
		if s.plainL != nil {
			s.plainL = w(s.plainL)
		}
	}
	if s.tlsL != nil {
		s.wg.Add(1)
		go s.accept(s.tlsL, TransportTLS)
	}
	if s.plainL != nil {
		s.wg.Add(1)
		go s.accept(s.plainL, TransportPlain)
	}
	return nil
}

// ListenError is a listener that could not be bound.
type ListenError struct {
	Addr string
	TLS  bool // the AMQP over TLS listener (else the plain one)
	Err  error
}

func (e *ListenError) Error() string { return "amqp listener on " + e.Addr + ": " + e.Err.Error() }
func (e *ListenError) Unwrap() error { return e.Err }

// Addr is the bound AMQP over TLS address, nil when there is none.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tlsL == nil {
		return nil
	}
	return s.tlsL.Addr()
}

// PlainAddr is the bound plain AMQP address, nil when there is none.
func (s *Server) PlainAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.plainL == nil {
		return nil
	}
	return s.plainL.Addr()
}

func (s *Server) accept(l net.Listener, via Transport) {
	defer s.wg.Done()
	var delay time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			if s.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off, keep serving.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.log.Warn("amqp: accept failed", "err", err, "retry", delay)
			select {
			case <-time.After(delay):
			case <-s.ctx.Done():
				return
			}
			continue
		}
		delay = 0
		if via == TransportTLS {
			nc = tls.Server(nc, s.opts.TLSConfig)
		}
		s.serve(nc, via)
	}
}

// serve runs one connection on its own goroutine; Close waits for it.
func (s *Server) serve(nc net.Conn, via Transport) bool {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		nc.Close()
		return false
	}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		c := newConn(s, nc, via)
		err := amqp.ServeConn(s.ctx, nc, c.config())
		c.ended()
		if err != nil {
			s.log.Debug("amqp: connection ended", "remote", nc.RemoteAddr().String(), "transport", via.String(), "err", err)
		}
	}()
	return true
}

// Close stops the listeners, closes every connection (amqp:connection:forced)
// and waits for them to end.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	if s.tlsL != nil {
		s.tlsL.Close()
	}
	if s.plainL != nil {
		s.plainL.Close()
	}
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	return nil
}
