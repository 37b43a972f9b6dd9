// SPDX-License-Identifier: MIT

package mqttapi

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/iothubemulator/iothub/emulator/internal/dps"
	"github.com/iothubemulator/iothub/emulator/internal/hub"
)

// DefaultAddr is the MQTT over TLS port of IoT Hub (§3.1).
const DefaultAddr = ":8883"

// maxPacketSize bounds what mochi reads: the largest useful PUBLISH is a
// 256 KB message plus a topic of at most 64 KB (§10); anything larger
// closes the connection before it is buffered.
const maxPacketSize = hub.MaxD2CSize + 65535 + 16

// clientReadBuffer is the size of mochi's read buffer per connection
// (see New).
const clientReadBuffer = 64

// Options configures a Server.
type Options struct {
	Hub       *hub.Hub     // the hub core; required
	Addr      string       // TLS listener address; DefaultAddr when empty, port 0 picks a free one
	TLSConfig *tls.Config  // server certificate; required. Client certificates are requested, never verified here: the hub checks them
	Logger    *slog.Logger // nil: discard
	DPS       *dps.Service // the Device Provisioning Service's device API on the same listeners; nil: not served

	// WrapListener, when set, wraps the bound TLS listener (the emulator's
	// guard of the open-file limit, package netlimit).
	WrapListener func(net.Listener) net.Listener
}

// Server is the MQTT adapter: mochi-mqtt with one hook of ours, a TLS
// listener, and a WebSocket handler for the HTTPS server to mount.
type Server struct {
	opts      Options
	hub       *hub.Hub
	dps       *dps.Service
	log       *slog.Logger
	tlsConfig *tls.Config
	mochi     *mqtt.Server
	ws        *wsListener
	ctx       context.Context // cancelled by Close: ends handshakes and hub calls
	cancel    context.CancelFunc
	// writeTimeout is writeTimeout; tests shorten it before Start.
	writeTimeout time.Duration
	// connectTimeout is connectTimeout; tests shorten it before Start.
	connectTimeout time.Duration
	// sessionExpiry and maxSessions bound the disconnected CleanSession=0
	// sessions kept (sessions.go).
	sessionExpiry time.Duration
	maxSessions   int

	mu      sync.Mutex // guards tls, started, closed
	tls     *tlsListener
	started bool
	closed  bool

	connMu  sync.Mutex
	conns   map[*clientConn]struct{}
	closing bool
	wg      sync.WaitGroup // connection goroutines

	setup setupLocks // one connection of a client id is set up at a time

	closeOnce sync.Once
}

// New builds a Server; Start binds and serves.
func New(opts Options) (*Server, error) {
	if opts.Hub == nil {
		return nil, errors.New("mqttapi: Options.Hub is required")
	}
	if opts.TLSConfig == nil {
		return nil, errors.New("mqttapi: Options.TLSConfig is required: IoT Hub serves MQTT over TLS only")
	}
	if opts.Addr == "" {
		opts.Addr = DefaultAddr
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg := opts.TLSConfig.Clone()
	if cfg.ClientAuth == tls.NoClientCert {
		cfg.ClientAuth = tls.RequestClientCert // X.509 devices present one; the hub verifies it
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		opts:           opts,
		hub:            opts.Hub,
		dps:            opts.DPS,
		log:            log,
		tlsConfig:      cfg,
		ctx:            ctx,
		cancel:         cancel,
		writeTimeout:   writeTimeout,
		connectTimeout: connectTimeout,
		sessionExpiry:  defaultSessionExpiry,
		maxSessions:    defaultMaxSessions,
		conns:          map[*clientConn]struct{}{},
	}
	s.ws = &wsListener{srv: s}
	s.mochi = mqtt.New(&mqtt.Options{
		Capabilities: capabilities(),
		// $SYS topics are never delivered (no device may subscribe to
		// them); publish them rarely, as each tick stops the world.
		SysTopicResendInterval: 24 * 60 * 60,
		// mochi reads every packet through a bufio.Reader of this size,
		// kept for the life of the connection. Under it, TLS already holds
		// each decrypted record and gorilla each WebSocket frame, so a big
		// buffer only costs an idle device memory; reads of a packet's
		// body larger than it go straight through.
		ClientNetReadBufferSize: clientReadBuffer,
		Logger:                  slog.New(quietHandler{log.Handler()}).With("component", "mochi"),
	})
	if err := s.mochi.AddHook(&hook{srv: s}, nil); err != nil {
		cancel()
		return nil, fmt.Errorf("mqttapi: %w", err)
	}
	opts.Hub.OnForget(s.forget)
	return s, nil
}

// capabilities are mochi's limits for IoT Hub devices.
func capabilities() *mqtt.Capabilities {
	c := mqtt.NewDefaultServerCapabilities()
	c.MinimumProtocolVersion = 4 // MQTT 3.1.1 (§3.1); the hook refuses 5
	c.MaximumPacketSize = maxPacketSize
	// Hub-to-device packets are written by the session, never queued
	// through mochi: its queue would only deliver through the topic
	// tree, which carries nothing to devices (hook.OnACLCheck, OnPublish).
	// Unbuffered, it costs an idle device no slots, and mochi's
	// WritePacket, seeing it empty, always writes at once.
	c.MaximumClientWritesPending = 0
	return c
}

// Start binds Addr and serves MQTT over TLS, and makes WebSocketHandler
// live. It fails at once if the address is taken (the error wraps the
// net package's, so errors.Is(err, syscall.EADDRINUSE) holds).
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return errors.New("mqttapi: server is closed")
	case s.started:
		return errors.New("mqttapi: server already started")
	}
	ln, err := net.Listen("tcp", s.opts.Addr)
	if err != nil {
		return fmt.Errorf("mqttapi: listen on %s: %w", s.opts.Addr, err)
	}
	if s.opts.WrapListener != nil {
		ln = s.opts.WrapListener(ln)
	}
	s.tls = &tlsListener{srv: s, ln: ln}
	if err := s.mochi.AddListener(s.tls); err != nil {
		_ = ln.Close()
		return fmt.Errorf("mqttapi: %w", err)
	}
	if err := s.mochi.AddListener(s.ws); err != nil {
		_ = ln.Close()
		return fmt.Errorf("mqttapi: %w", err)
	}
	if err := s.mochi.Serve(); err != nil {
		_ = ln.Close()
		return fmt.Errorf("mqttapi: %w", err)
	}
	s.started = true
	s.goTracked(s.sweepSessions)
	return nil
}

// Addr is the bound MQTT over TLS address; nil before Start.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tls == nil {
		return nil
	}
	return s.tls.ln.Addr()
}

// WebSocketHandler serves MQTT over WebSockets (§3.1). The HTTPS server
// mounts it at /$iothub/websocket; the request's TLS peer certificates
// authenticate X.509 devices. It answers 503 until Start and after Close.
func (s *Server) WebSocketHandler() http.Handler {
	return http.HandlerFunc(s.serveWebSocket)
}

// Close stops the listeners and drops every connection; devices see the
// connection close, as on a hub restart. It waits for connection handling
// to finish.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.connMu.Lock()
		s.closing = true
		s.connMu.Unlock()
		s.cancel()
		// mochi closes our listeners (which drop their connections) and
		// waits for its client goroutines.
		_ = s.mochi.Close()
		s.dropConns("") // connections still in their TLS handshake
		s.wg.Wait()
	})
	return nil
}
