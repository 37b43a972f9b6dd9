// SPDX-License-Identifier: MIT

package amqp

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/amqp/codec"
)

// ErrConnClosed is returned by calls on a connection that has ended; Conn.Err
// tells why.
var ErrConnClosed = errors.New("amqp: connection closed")

// hardWriteQueue is the most we ever queue for one peer; past it the peer is
// dropped (it sends faster than it reads, e.g. transfers that earn
// dispositions it never reads).
const hardWriteQueue = 64 << 20

// Conn is one served AMQP connection. Its methods are safe for concurrent
// use.
type Conn struct {
	nc     net.Conn
	cfg    *Config
	log    *slog.Logger
	trace  bool
	br     *bufio.Reader
	tls    *tls.ConnectionState
	remote *performOpen // the peer's open; set before OnOpen, never changed
	ctx    context.Context
	cancel context.CancelFunc

	identity any // from Authenticate; set before open, never changed

	mu           sync.Mutex
	out          []byte // encoded frames waiting for the writer
	spare        []byte
	outSig       chan struct{}
	stopWriter   chan struct{}
	writerDone   chan struct{}
	writable     signal // notified when out drains
	peerMaxFrame uint32
	peerIdle     time.Duration
	sessions     map[uint16]*Session
	nLinks       int
	buffered     int                // bytes of incoming deliveries not yet settled by the application
	starved      map[*Link]struct{} // links denied credit by MaxBufferedBytes
	closeSent    bool
	ended        bool
	err          error // why the connection ended (nil for a clean close by the peer)
	done         chan struct{}
}

// signal is a broadcast: waiters take ch under the lock, notify closes it.
type signal struct{ ch chan struct{} }

func (s *signal) wait() <-chan struct{} {
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

func (s *signal) notify() {
	if s.ch != nil {
		close(s.ch)
		s.ch = nil
	}
}

// ServeConn serves one AMQP connection on nc until it ends or ctx is done,
// and returns why it ended (nil when the peer closed cleanly). It closes nc.
// If nc implements ConnectionState() tls.ConnectionState (as *tls.Conn does,
// and a WebSocket wrapper can), the state is available to Authenticate and
// through Conn.TLS.
func ServeConn(ctx context.Context, nc net.Conn, cfg *Config) error {
	if cfg == nil {
		cfg = &Config{}
	}
	c := &Conn{
		nc:         nc,
		cfg:        cfg.withDefaults(),
		br:         bufio.NewReaderSize(nc, 64<<10),
		outSig:     make(chan struct{}, 1),
		stopWriter: make(chan struct{}),
		writerDone: make(chan struct{}),
		sessions:   map[uint16]*Session{},
		starved:    map[*Link]struct{}{},
		done:       make(chan struct{}),
	}
	c.log = c.cfg.Logger.With("remote", nc.RemoteAddr().String())
	c.trace = c.log.Enabled(ctx, slog.LevelDebug)
	c.ctx, c.cancel = context.WithCancel(ctx)
	defer c.cancel()
	if cs, ok := nc.(interface{ ConnectionState() tls.ConnectionState }); ok {
		if tc, ok := nc.(*tls.Conn); ok {
			// The handshake must be done before the state means anything.
			_ = nc.SetDeadline(time.Now().Add(c.cfg.OpenTimeout))
			if err := tc.HandshakeContext(ctx); err != nil {
				nc.Close()
				return err
			}
		}
		st := cs.ConnectionState()
		c.tls = &st
	}
	stop := context.AfterFunc(ctx, func() { c.Close(&Error{Condition: ErrConnectionForced, Description: "the server is shutting down"}) })
	defer stop()
	return c.serve()
}

// Identity returns what Config.Authenticate returned for this connection
// (nil without SASL or with a nil Authenticate).
func (c *Conn) Identity() any { return c.identity }

// TLS returns the TLS state of the connection, nil without TLS.
func (c *Conn) TLS() *tls.ConnectionState { return c.tls }

// NetConn returns the underlying connection (for addresses; do not read or
// write it).
func (c *Conn) NetConn() net.Conn { return c.nc }

// ContainerID returns the peer's container-id.
func (c *Conn) ContainerID() string { return c.remote.ContainerID }

// Hostname returns the hostname of the peer's open.
func (c *Conn) Hostname() string { return c.remote.Hostname }

// Properties returns the properties of the peer's open (do not modify).
func (c *Conn) Properties() map[Symbol]any { return c.remote.Properties }

// Done is closed when the connection has ended.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Context is canceled when the connection ends.
func (c *Conn) Context() context.Context { return c.ctx }

// Err returns why the connection ended: the peer's close error, the error
// we closed with, or a transport error; nil while it runs or after a clean
// close.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close closes the connection with e (nil for a clean close) from any
// goroutine: it sends close, waits a little for the peer's, then drops the
// socket. It does not wait.
func (c *Conn) Close(e *Error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closeLocked(e)
}

// CloseAll closes the connection the way the hub's AMQP stack
// (Microsoft.Azure.Amqp AmqpConnection.CloseInternal) does: each session's
// links are detached and each session ended, without an error, before the
// close that carries e. Clients that wait for their links' detaches to be
// answered before they reconnect (the Node SDK's azure-iot-amqp-base waits
// 45 s, then forces them) see them answered this way.
func (c *Conn) CloseAll(e *Error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closeSent || c.ended || c.remote == nil {
		c.closeLocked(e)
		return
	}
	for _, ch := range slices.Sorted(maps.Keys(c.sessions)) {
		s := c.sessions[ch]
		if s.endSent || s.ended {
			continue
		}
		for _, h := range slices.Sorted(maps.Keys(s.outHandles)) {
			s.outHandles[h].detachLocked(nil)
		}
		s.endLocked(nil)
	}
	c.closeLocked(e)
}

func (c *Conn) closeLocked(e *Error) {
	if c.closeSent || c.ended {
		return
	}
	if c.remote == nil {
		// Before the open exchange no close can be sent: drop the socket.
		c.setErr(e)
		c.nc.Close()
		return
	}
	c.closeSent = true
	c.setErr(e)
	c.sendLocked(0, &performClose{Error: e}, nil)
	for _, s := range c.sessions {
		s.endedLocked(connClosedErr(e))
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(c.cfg.CloseTimeout))
}

func connClosedErr(e *Error) error {
	if e != nil {
		return e
	}
	return ErrConnClosed
}

func (c *Conn) setErr(e error) {
	if c.err == nil && e != nil {
		if ae, ok := e.(*Error); ok && ae == nil {
			return
		}
		c.err = e
	}
}

// serve runs the protocol on the calling goroutine: header, SASL, open,
// then the frame loop. The writer runs beside it once open is exchanged.
func (c *Conn) serve() (err error) {
	defer func() {
		c.teardown(err)
		err = c.Err()
	}()
	_ = c.nc.SetDeadline(time.Now().Add(c.cfg.OpenTimeout))
	if err := c.negotiate(); err != nil {
		return err
	}
	var fr frame
	for len(fr.body) == 0 { // heartbeats may come before open
		var err error
		if fr, err = readFrame(c.br, c.cfg.MaxFrameSize); err != nil {
			return c.readFailed(err)
		}
	}
	p, perr := c.decode(fr)
	open, ok := p.(*performOpen)
	if perr == nil && !ok {
		perr = Errorf(ErrIllegalState, "the first frame is %s, not open", perfName(p))
	}
	if perr == nil && fr.channel != 0 {
		perr = frameError("open on channel %d", fr.channel)
	}
	if perr != nil {
		// Part 2, 2.4.1: answer with open before the close that says why.
		c.mu.Lock()
		c.remote = &performOpen{}
		c.peerMaxFrame = minMaxFrameSize
		c.mu.Unlock()
		go c.writer()
		c.mu.Lock()
		c.sendOpenLocked()
		c.closeLocked(asError(perr))
		c.mu.Unlock()
		return c.drainAfterClose()
	}
	c.mu.Lock()
	c.remote = open
	c.peerMaxFrame = max(min(open.MaxFrameSize, 1<<24), minMaxFrameSize)
	c.peerIdle = open.IdleTimeout
	c.mu.Unlock()
	_ = c.nc.SetDeadline(time.Time{})
	go c.writer()
	var refuse error
	if c.cfg.OnOpen != nil {
		refuse = c.cfg.OnOpen(c)
	}
	c.mu.Lock()
	c.sendOpenLocked()
	if refuse != nil {
		c.closeLocked(asError(refuse))
	}
	c.mu.Unlock()
	return c.loop()
}

func (c *Conn) sendOpenLocked() {
	c.sendLocked(0, &performOpen{
		ContainerID:  c.cfg.ContainerID,
		MaxFrameSize: c.cfg.MaxFrameSize,
		ChannelMax:   uint16(c.cfg.MaxSessions - 1),
		IdleTimeout:  max(c.cfg.IdleTimeout, 0),
		Properties:   c.cfg.Properties,
	}, nil)
}

// negotiate exchanges protocol headers and runs SASL (part 2, 2.2; part 5).
func (c *Conn) negotiate() error {
	id, ok, err := readProtoHeader(c.br)
	if err != nil {
		return c.readFailed(err)
	}
	refuse := func(desc string) error {
		want := byte(protoAMQP)
		if c.cfg.RequireSASL || id == protoSASL {
			want = protoSASL
		}
		_, _ = c.nc.Write(protoHeader(want))
		c.log.Debug("amqp: protocol header refused", "reason", desc)
		return fmt.Errorf("amqp: %s", desc)
	}
	switch {
	case !ok:
		return refuse("not an AMQP 1.0 protocol header")
	case id == protoTLS:
		return refuse("TLS inside AMQP (protocol id 2) is not supported; use TLS on the socket")
	case id == protoAMQP && c.cfg.RequireSASL:
		return refuse("SASL is required")
	case id == protoAMQP:
		if _, err := c.nc.Write(protoHeader(protoAMQP)); err != nil {
			return err
		}
		c.tracef("rx", 0, "header AMQP 0 1 0 0 (no SASL)")
		return nil
	case id == protoSASL:
		if _, err := c.nc.Write(protoHeader(protoSASL)); err != nil {
			return err
		}
		c.tracef("rx", 0, "header AMQP 3 1 0 0 (SASL)")
		if err := c.sasl(); err != nil {
			return err
		}
		id, ok, err := readProtoHeader(c.br)
		if err != nil {
			return c.readFailed(err)
		}
		if !ok || id != protoAMQP {
			_, _ = c.nc.Write(protoHeader(protoAMQP))
			return errors.New("amqp: expected the AMQP protocol header after SASL")
		}
		_, err = c.nc.Write(protoHeader(protoAMQP))
		return err
	}
	return refuse(fmt.Sprintf("unsupported protocol id %d", id))
}

func asError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Condition: ErrInternal, Description: err.Error()}
}

func (c *Conn) decode(fr frame) (any, error) {
	if fr.typ != frameAMQP {
		return nil, frameError("frame type %d where an AMQP frame belongs", fr.typ)
	}
	p, err := decodeFrameBody(fr.body, c.cfg.Limits)
	if err != nil {
		return nil, err
	}
	switch p.(type) {
	case *saslInit, *saslResponse, *saslMechanisms, *saslOutcome, *saslChallenge:
		return nil, Errorf(ErrIllegalState, "%s outside the SASL layer", perfName(p))
	}
	if c.trace {
		c.traceFrame("rx", fr.channel, p)
	}
	return p, nil
}

// readFailed maps a read error to what ends the connection: framing errors
// and the idle timeout are answered with close; EOF and resets just end it.
func (c *Conn) readFailed(err error) error {
	var ae *Error
	if errors.As(err, &ae) {
		c.Close(ae)
		return ae
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("amqp: peer sent nothing before the deadline: %w", err)
	}
	if errors.Is(err, io.EOF) {
		return io.EOF
	}
	return err
}

// loop reads frames until the connection ends.
func (c *Conn) loop() error {
	idle := c.cfg.IdleTimeout
	for {
		c.mu.Lock()
		if !c.closeSent && idle > 0 {
			// Part 2, 2.4.5: the peer must send something within our
			// idle-time-out. Under the lock, so that Close's shorter deadline
			// is never overwritten.
			_ = c.nc.SetReadDeadline(time.Now().Add(idle))
		}
		c.mu.Unlock()
		fr, err := readFrame(c.br, c.cfg.MaxFrameSize)
		if err != nil {
			c.mu.Lock()
			closing := c.closeSent
			c.mu.Unlock()
			if closing {
				return nil // the peer did not answer our close in time, or went away
			}
			if errors.Is(err, os.ErrDeadlineExceeded) && idle > 0 {
				e := Errorf(ErrResourceLimitExceeded, "no frame received within the idle timeout of %v", idle)
				c.log.Warn("amqp: closing an idle connection", "idle_timeout", idle)
				c.Close(e)
				return c.drainAfterClose()
			}
			var ae *Error
			if errors.As(err, &ae) {
				c.log.Warn("amqp: framing error", "err", ae)
				c.Close(ae)
				return c.drainAfterClose()
			}
			return err
		}
		if len(fr.body) == 0 {
			if c.trace {
				c.log.Debug("amqp frame", "dir", "rx", "ch", fr.channel, "perf", "empty")
			}
			continue
		}
		p, err := c.decode(fr)
		if err != nil {
			c.log.Warn("amqp: undecodable frame", "err", err)
			c.Close(asError(err))
			return c.drainAfterClose()
		}
		if done, err := c.handle(fr.channel, p); done || err != nil {
			return err
		}
	}
}

// drainAfterClose reads and discards frames until the peer's close, EOF or
// the close timeout (part 2, 2.4.3: the peer answers close with close).
func (c *Conn) drainAfterClose() error {
	for {
		fr, err := readFrame(c.br, c.cfg.MaxFrameSize)
		if err != nil {
			return nil
		}
		if fr.typ != frameAMQP || len(fr.body) == 0 {
			continue
		}
		if p, err := decodeFrameBody(fr.body, c.cfg.Limits); err == nil {
			if _, ok := p.(*performClose); ok {
				if c.trace {
					c.traceFrame("rx", fr.channel, p)
				}
				return nil
			}
		}
	}
}

// handle dispatches one performative. done reports the end of the
// connection.
func (c *Conn) handle(ch uint16, p any) (done bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closeSent {
		if cl, ok := p.(*performClose); ok {
			if cl.Error != nil {
				c.setErr(cl.Error)
			}
			return true, nil
		}
		return false, nil // part 2, 2.4.3: ignore everything but close
	}
	switch p := p.(type) {
	case *performOpen:
		c.closeLocked(Errorf(ErrIllegalState, "a second open"))
		return false, nil
	case *performClose:
		if p.Error != nil {
			c.setErr(p.Error)
			c.log.Debug("amqp: peer closed with an error", "err", p.Error)
		}
		c.sendLocked(0, &performClose{}, nil)
		c.closeSent = true
		return true, nil
	case *performBegin:
		c.beginLocked(ch, p)
		return false, nil
	}
	s := c.sessions[ch]
	if s == nil {
		c.closeLocked(Errorf(ErrNotAllowed, "%s on channel %d, which has no session", perfName(p), ch))
		return false, nil
	}
	// handleLocked may unlock around application callbacks.
	s.handleLocked(p)
	return false, nil
}

func (c *Conn) beginLocked(ch uint16, p *performBegin) {
	if p.RemoteChannel != nil {
		// We never begin sessions, so the peer cannot answer one.
		c.closeLocked(Errorf(ErrNotAllowed, "begin with remote-channel %d answers nothing we sent", *p.RemoteChannel))
		return
	}
	if int(ch) >= c.cfg.MaxSessions {
		c.closeLocked(Errorf(ErrResourceLimitExceeded, "channel %d exceeds channel-max %d", ch, c.cfg.MaxSessions-1))
		return
	}
	if _, dup := c.sessions[ch]; dup {
		c.closeLocked(Errorf(ErrIllegalState, "begin on channel %d, which has a session", ch))
		return
	}
	s := newSession(c, ch, p)
	c.sessions[ch] = s
	rc := ch
	c.sendLocked(ch, &performBegin{
		RemoteChannel:  &rc,
		NextOutgoingID: s.nextOutgoingID,
		IncomingWindow: s.incomingWindow,
		OutgoingWindow: outgoingWindow,
		HandleMax:      uint32(c.cfg.MaxLinksPerSession - 1),
	}, nil)
}

// releaseLocked returns n bytes of l's deliveries to the connection's
// budget and gives credit back to links that went without.
func (c *Conn) releaseLocked(l *Link, n int) {
	l.bufBytes -= n
	c.buffered -= n
	if l.ended {
		delete(c.starved, l)
	}
	if c.buffered >= c.cfg.MaxBufferedBytes || len(c.starved) == 0 {
		return
	}
	starved := c.starved
	c.starved = map[*Link]struct{}{}
	for s := range starved {
		s.replenishLocked()
	}
}

// sendLocked encodes one frame onto the write queue.
func (c *Conn) sendLocked(ch uint16, p codec.Marshaler, payload []byte) {
	if c.ended {
		return
	}
	var err error
	n := len(c.out)
	c.out, err = appendFrame(c.out, frameAMQP, ch, p, payload)
	if err != nil {
		// Only our own values are encoded here; failing is a bug, not input.
		c.log.Error("amqp: cannot encode a frame", "perf", perfName(p), "err", err)
		c.out = c.out[:n]
		return
	}
	if c.trace {
		c.traceFrame("tx", ch, p)
	}
	if len(c.out) > hardWriteQueue {
		c.setErr(errors.New("amqp: the peer does not read its frames"))
		c.nc.Close()
	}
	select {
	case c.outSig <- struct{}{}:
	default:
	}
}

// writer writes queued frames and heartbeats. A write that does not finish
// within WriteTimeout drops the connection: a peer that stops reading is
// never allowed to block the reader or the application.
func (c *Conn) writer() {
	defer close(c.writerDone)
	c.mu.Lock()
	idle := c.peerIdle
	c.mu.Unlock()
	var tick <-chan time.Time
	var interval time.Duration
	if idle > 0 {
		// Part 2, 2.4.5: send at least every idle-time-out; a third of it keeps
		// well inside the peer's window.
		interval = max(idle/3, 10*time.Millisecond)
		t := time.NewTicker(interval / 2)
		defer t.Stop()
		tick = t.C
	}
	last := time.Now()
	write := func(b []byte) bool {
		_ = c.nc.SetWriteDeadline(time.Now().Add(c.cfg.WriteTimeout))
		if _, err := c.nc.Write(b); err != nil {
			c.mu.Lock()
			c.setErr(fmt.Errorf("amqp: write: %w", err))
			c.mu.Unlock()
			if errors.Is(err, os.ErrDeadlineExceeded) {
				c.log.Warn("amqp: dropping a peer that does not read", "write_timeout", c.cfg.WriteTimeout)
			}
			c.nc.Close()
			return false
		}
		last = time.Now()
		return true
	}
	flush := func() bool {
		c.mu.Lock()
		buf := c.out
		c.out = c.spare[:0]
		c.mu.Unlock()
		if len(buf) > 0 && !write(buf) {
			return false
		}
		c.mu.Lock()
		c.spare = buf[:0]
		if len(c.out) < c.cfg.MaxWriteQueue {
			c.writable.notify()
		}
		c.mu.Unlock()
		return true
	}
	for {
		select {
		case <-c.outSig:
			if !flush() {
				return
			}
		case <-c.stopWriter:
			flush()
			return
		case now := <-tick:
			if now.Sub(last) >= interval {
				if c.trace {
					c.log.Debug("amqp frame", "dir", "tx", "ch", 0, "perf", "empty")
				}
				if !write(heartbeat) {
					return
				}
			}
		}
	}
}

// teardown ends everything: sessions and links see the error, the writer
// flushes what is queued (bounded by WriteTimeout), the socket closes.
func (c *Conn) teardown(err error) {
	c.mu.Lock()
	if err != nil && !errors.Is(err, io.EOF) {
		c.setErr(err)
	}
	if c.err == nil && !c.closeSent {
		c.setErr(io.ErrUnexpectedEOF) // the peer went away without close
	}
	endErr := c.err
	if endErr == nil {
		endErr = ErrConnClosed
	}
	for ch, s := range c.sessions {
		s.endedLocked(endErr)
		delete(c.sessions, ch)
	}
	c.writable.notify()
	c.mu.Unlock()
	started := c.remote != nil
	if started {
		select {
		case <-c.writerDone:
		default:
			close(c.stopWriter)
			select {
			case <-c.writerDone:
			case <-time.After(c.cfg.WriteTimeout):
			}
		}
	}
	c.mu.Lock()
	c.ended = true
	c.mu.Unlock()
	c.nc.Close()
	if started {
		<-c.writerDone
	}
	c.cancel()
	close(c.done)
	c.log.Debug("amqp: connection ended", "err", c.Err())
}
