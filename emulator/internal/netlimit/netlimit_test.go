// SPDX-License-Identifier: MIT

package netlimit

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"
)

// TestListenerCapacity: a device listener serves up to its capacity,
// closes the connections beyond it as soon as it accepts them, and counts
// a closed connection's descriptor as free again; a service listener may
// use half of the reserve.
func TestListenerCapacity(t *testing.T) {
	var logs bytes.Buffer
	probe := New(Options{Limit: 1 << 20, Reserve: 10})
	base := probe.base
	probe.Close()
	// Room for 2 device connections, and 5 more for the service class.
	g := New(Options{Limit: int(base) + 1 + 10 + 2, Reserve: 10, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	defer g.Close()
	g.base = base // the probe's descriptors are closed; keep the sums exact
	if got := g.Capacity(Devices); got != 2 {
		t.Fatalf("device capacity %d, want 2", got)
	}
	if got := g.Capacity(Service); got != 7 {
		t.Fatalf("service capacity %d, want 7", got)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := g.Listener(ln, Devices)
	defer l.Close()
	accepted := make(chan net.Conn, 8)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	dial := func() net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// served waits for long: a connection expected open costs the wait, one
	// expected closed ends it early.
	served := func(c net.Conn, wait time.Duration) bool {
		t.Helper()
		_ = c.SetReadDeadline(time.Now().Add(wait))
		_, err := c.Read(make([]byte, 1))
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return true // open: the server holds it
		}
		if errors.Is(err, io.EOF) || strings.Contains(err.Error(), "reset") {
			return false
		}
		t.Fatalf("read: %v", err)
		return false
	}
	c1, c2 := dial(), dial()
	s1, s2 := <-accepted, <-accepted
	if !served(c1, 100*time.Millisecond) || !served(c2, 100*time.Millisecond) {
		t.Fatal("a connection within capacity was closed")
	}
	c3 := dial()
	if served(c3, 10*time.Second) {
		t.Fatal("a connection beyond capacity was kept open")
	}
	s1.Close()
	s1.Close() // a second Close frees nothing more
	if g.Open() != 1 {
		t.Fatalf("open %d after closing one of two, want 1", g.Open())
	}
	c4 := dial()
	s4 := <-accepted
	if !served(c4, 100*time.Millisecond) {
		t.Fatal("a connection was refused after one was closed")
	}
	s2.Close()
	s4.Close()
	if g.Refused() != 1 || strings.Count(logs.String(), "refusing new connections") != 1 {
		t.Fatalf("refused %d, logs %q; want one refusal, logged", g.Refused(), logs.String())
	}
}

// TestSetLingerPassesThrough: a guarded connection can still be reset
// (SO_LINGER 0), as fault injection does: the peer sees a reset, not an
// orderly close.
func TestSetLingerPassesThrough(t *testing.T) {
	g := New(Options{})
	defer g.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := g.Listener(ln, Devices)
	defer l.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	sl, ok := s.(interface{ SetLinger(int) error })
	if !ok {
		t.Fatal("a guarded connection has no SetLinger")
	}
	if err := sl.SetLinger(0); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || !strings.Contains(err.Error(), "reset") {
		t.Fatalf("read after the reset: %v, want connection reset", err)
	}
}
