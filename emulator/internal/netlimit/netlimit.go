// SPDX-License-Identifier: MIT

// Package netlimit keeps the emulator serving at the process's open-file
// limit (RLIMIT_NOFILE). Every accepted connection costs a descriptor;
// without a guard, a process at its limit leaves new clients hanging in the
// listen backlog, spins on accept errors, and cannot open the HTTPS
// connection an operator needs for /health or a method call.
//
// A Guard counts the connections its listeners hold and keeps descriptors
// in reserve: device listeners (MQTT, AMQP) refuse new connections once the
// reserve is reached, the HTTPS listener (REST, /health, WebSockets) may
// use half of it, and when accept fails for want of descriptors anyway the
// guard sheds the waiting connection with a spare descriptor kept for that,
// so that clients are refused at once instead of hanging. The condition is
// logged once per interval, with the number refused since the last line.
package netlimit

import (
	"errors"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Class says how much of the reserve a listener's connections may use.
type Class int

const (
	// Devices may not use the reserve: MQTT and AMQP ports.
	Devices Class = iota
	// Service may use half of it: the HTTPS port, which answers /health,
	// the service API and MQTT or AMQP over WebSockets.
	Service
)

// Options tune a Guard. The zero value reads the process's limit.
type Options struct {
	Limit       int           // descriptors the process may hold; default RLIMIT_NOFILE's soft limit
	Reserve     int           // descriptors kept from device connections; default 64 + 1% of Limit
	LogInterval time.Duration // at most one log line per interval; default 30s
	Logger      *slog.Logger  // default: discard
}

// Guard accounts for the connections of the listeners it wraps.
type Guard struct {
	limit, reserve int64
	base           int64 // descriptors open when the guard was made: files, listeners, the poller
	open           atomic.Int64
	refused        atomic.Int64 // refused since the last log line
	refusedTotal   atomic.Int64
	interval       time.Duration
	log            *slog.Logger

	mu      sync.Mutex
	spare   *os.File
	lastLog time.Time
}

// New makes a Guard.
func New(opts Options) *Guard {
	if opts.Limit <= 0 {
		opts.Limit = Limit()
	}
	if opts.Reserve <= 0 {
		opts.Reserve = 64 + opts.Limit/100
	}
	if opts.LogInterval <= 0 {
		opts.LogInterval = 30 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	g := &Guard{limit: int64(opts.Limit), reserve: int64(opts.Reserve), interval: opts.LogInterval, log: opts.Logger}
	g.base = int64(openDescriptors())
	g.spare, _ = os.Open(os.DevNull)
	return g
}

// Limit is the process's open-file limit (the soft RLIMIT_NOFILE, which Go
// raises to the hard limit at start), or a large number when unknown.
func Limit() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur > 1<<30 {
		return 1 << 30
	}
	return int(rl.Cur)
}

// openDescriptors counts the process's open descriptors, or 16 when it
// cannot tell.
func openDescriptors() int {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 16
	}
	return len(entries)
}

// Open is the number of connections held through the guard's listeners.
func (g *Guard) Open() int64 { return g.open.Load() }

// Refused is the number of connections refused since the guard was made.
func (g *Guard) Refused() int64 { return g.refusedTotal.Load() }

// Capacity is the number of connections a listener of class c accepts.
func (g *Guard) Capacity(c Class) int64 {
	reserve := g.reserve
	if c == Service {
		reserve /= 2
	}
	// One descriptor is the spare.
	return max(g.limit-g.base-reserve-1, 0)
}

// Close releases the spare descriptor.
func (g *Guard) Close() {
	if g == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.spare != nil {
		g.spare.Close()
		g.spare = nil
	}
}

// Listener wraps l: its connections count against the guard, and it
// refuses those beyond its class's capacity.
func (g *Guard) Listener(l net.Listener, c Class) net.Listener {
	return &listener{Listener: l, g: g, class: c}
}

type listener struct {
	net.Listener
	g     *Guard
	class Class
}

// Accept returns the next connection within capacity. Connections beyond
// it are closed as soon as they are accepted; failures for want of
// descriptors are handled here and never returned, so that the server
// above neither logs nor sleeps on each.
func (l *listener) Accept() (net.Conn, error) {
	g := l.g
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if isOutOfFiles(err) {
				g.shed(l.Listener)
				continue
			}
			return nil, err
		}
		if g.open.Add(1) > g.Capacity(l.class) {
			g.open.Add(-1)
			c.Close()
			g.refuse("at the connection limit")
			continue
		}
		return &conn{Conn: c, g: g}, nil
	}
}

// shed refuses the connection that accept could not take: it frees the
// spare descriptor, accepts into it and closes the connection at once.
// Without it the connection would wait in the backlog, and every accept
// would fail again at once.
func (g *Guard) shed(l net.Listener) {
	g.mu.Lock()
	if g.spare != nil {
		g.spare.Close()
		g.spare = nil
	}
	g.mu.Unlock()
	if c, err := l.Accept(); err == nil {
		c.Close()
	} else if isOutOfFiles(err) {
		// Another descriptor user took the spare: wait a little rather
		// than spin.
		time.Sleep(10 * time.Millisecond)
	}
	g.mu.Lock()
	if g.spare == nil {
		g.spare, _ = os.Open(os.DevNull)
	}
	g.mu.Unlock()
	g.refuse("out of file descriptors")
}

// refuse counts a refused connection and logs once per interval.
func (g *Guard) refuse(why string) {
	g.refused.Add(1)
	g.refusedTotal.Add(1)
	now := time.Now()
	g.mu.Lock()
	if now.Sub(g.lastLog) < g.interval {
		g.mu.Unlock()
		return
	}
	g.lastLog = now
	g.mu.Unlock()
	g.log.Warn("refusing new connections: "+why+"; raise the limit with ulimit -n (one descriptor per device)",
		"refused", g.refused.Swap(0), "open", g.open.Load(), "limit", g.limit, "reserve", g.reserve, "interval", g.interval)
}

// conn gives its descriptor back to the guard when closed.
type conn struct {
	net.Conn
	g      *Guard
	closed atomic.Bool
}

// SetLinger sets SO_LINGER on the TCP connection underneath (a reset
// instead of a FIN, for fault injection).
func (c *conn) SetLinger(sec int) error {
	if l, ok := c.Conn.(interface{ SetLinger(int) error }); ok {
		return l.SetLinger(sec)
	}
	return errors.ErrUnsupported
}

func (c *conn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.g.open.Add(-1)
	}
	return c.Conn.Close()
}

func isOutOfFiles(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}
