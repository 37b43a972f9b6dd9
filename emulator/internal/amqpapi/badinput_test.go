// SPDX-License-Identifier: MIT

package amqpapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goamqp "github.com/Azure/go-amqp"

	"github.com/iothubemulator/iothub/emulator/internal/clock"
	"github.com/iothubemulator/iothub/emulator/internal/hub"
)

// TestRefusedNodes: what the hub does not serve is refused at once, never
// left hanging.
func TestRefusedNodes(t *testing.T) {
	e := newEnv(t)
	s := newSession(t, e.serviceConn(t, viaPlain))
	for _, tc := range []struct {
		name   string
		source string
		opts   *goamqp.ReceiverOptions
		cond   goamqp.ErrCond
	}{
		{"unknown address", "/no/such/node", nil, goamqp.ErrCondNotFound},
		{"another event hub's partition", "otherhub/ConsumerGroups/$Default/Partitions/0", nil, goamqp.ErrCondNotFound},
		{"a dynamic node", "", &goamqp.ReceiverOptions{DynamicAddress: true}, goamqp.ErrCondNotImplemented},
		{"a Service Bus session", "/messages/serviceBound/feedback", &goamqp.ReceiverOptions{Filters: []goamqp.LinkFilter{
			goamqp.NewLinkFilter("com.microsoft:session-filter", 0x00000137000000C, "s1")}}, goamqp.ErrCondNotImplemented},
		{"a device link on a service connection", "/devices/d1/modules/m1/inputs", nil, goamqp.ErrCondUnauthorizedAccess},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantCondition(t, tc.name, attachErr(t, s, tc.source, tc.opts), tc.cond, "")
		})
	}
}

// TestMalformedInputLeavesOthersServed: garbage on one connection closes
// that one; another connection's link carries on, and what it stored is
// intact.
func TestMalformedInputLeavesOthersServed(t *testing.T) {
	e := newEnv(t, func(_ *hub.Config, o *Options) { o.openTimeout = time.Second })
	e.addDevice(t, "d1")
	snd := c2dSender(t, e.serviceConn(t, viaTLS))
	send := func(id string) {
		t.Helper()
		if err := sendOutcome(t, snd, &goamqp.Message{Data: [][]byte{[]byte(id)}, Properties: &goamqp.MessageProperties{To: c2dTo("d1"), MessageID: id}}); err != nil {
			t.Fatalf("send %s: %v", id, err)
		}
	}
	send("before")
	for _, junk := range [][]byte{
		[]byte("GET / HTTP/1.1\r\n\r\n"),
		[]byte("AMQP\x00\x01\x00\x00\x00\x00\x00\x04\x02\x00\x00\x00garbage"),                      // a frame size below 8
		append([]byte("AMQP\x00\x01\x00\x00"), bytes.Repeat([]byte{0xff}, 64)...),                  // a frame size beyond any limit
		[]byte("AMQP\x03\x01\x00\x00\x00\x00\x00\x0f\x02\x01\x00\x00\x00\x53\x41\xc0\x00\x00\x00"), // a sasl-init that does not decode
		[]byte("AMQP\x00\x01\x00\x00\x00\x00\x01\x00\x02\x00\x00\x00\x00\x53\x10"),                 // a truncated open: closed at the open timeout
	} {
		nc, err := net.DialTimeout("tcp", e.srv.PlainAddr().String(), waitTime)
		if err != nil {
			t.Fatal(err)
		}
		_ = nc.SetDeadline(time.Now().Add(waitTime))
		if _, err := nc.Write(junk); err != nil {
			t.Fatal(err)
		}
		// The server answers what it can and closes the socket.
		if _, err := io.Copy(io.Discard, nc); err != nil && !isReset(err) {
			t.Errorf("junk %q: the server did not close the connection: %v", junk, err)
		}
		nc.Close()
	}
	send("after")
	ms, err := e.hub.PendingC2D("d1")
	if err != nil || len(ms) != 2 || ms[0].MessageID != "before" || ms[1].MessageID != "after" {
		t.Fatalf("queue %v, %v; want before and after", ms, err)
	}
}

func isReset(err error) bool { return strings.Contains(err.Error(), "reset") }

// stallingConn is a client socket whose reads stop when told: a peer that
// stops reading.
type stallingConn struct {
	net.Conn
	stalled atomic.Bool
	resume  chan struct{}
}

func (c *stallingConn) Read(p []byte) (int, error) {
	if c.stalled.Load() {
		<-c.resume
	}
	return c.Conn.Read(p)
}

// TestPeerThatStopsReading: a consumer whose socket stops reading is
// dropped after the write timeout; a consumer on another connection reads
// every message meanwhile.
func TestPeerThatStopsReading(t *testing.T) {
	e := newEnv(t, withPartitions(1), func(_ *hub.Config, o *Options) { o.writeTimeout = 500 * time.Millisecond })
	e.addDevice(t, "d1")
	const n, size = 48, 200 << 10 // ~10 MB: more than the sockets buffer
	body := bytes.Repeat([]byte("x"), size)
	for i := range n {
		e.record(t, hub.Identity{DeviceID: "d1"}, &hub.Message{MessageID: fmt.Sprint(i), Body: body})
	}
	raw, err := net.Dial("tcp", e.srv.PlainAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	sc := &stallingConn{Conn: raw, resume: make(chan struct{})}
	var once sync.Once
	unstall := func() { once.Do(func() { close(sc.resume) }) }
	t.Cleanup(unstall)
	stalled, err := goamqp.NewConn(ctxT(t), sc, &goamqp.ConnOptions{SASLType: goamqp.SASLTypeAnonymous(), IdleTimeout: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	aud := "amqps://" + hostName + "/" + hostName
	newCBS(t, stalled).mustPut(t, aud, e.policyToken(t, "service", aud, later()))
	o := selector("amqp.annotation.x-opt-offset > '-1'")
	o.Credit = n
	slow, err := newSession(t, stalled).NewReceiver(ctxT(t), partitionAddr("slow", 0), o)
	if err != nil {
		t.Fatal(err)
	}
	sc.stalled.Store(true)

	fast, err := newSession(t, e.readerConn(t, viaTLS)).NewReceiver(ctxT(t), partitionAddr("fast", 0), selector("amqp.annotation.x-opt-offset > '-1'"))
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range receiveAll(t, fast, n) {
		if m.Properties.MessageID != fmt.Sprint(i) || len(m.Data[0]) != size {
			t.Fatalf("message %d: id %v, %d bytes", i, m.Properties.MessageID, len(m.Data[0]))
		}
	}
	time.Sleep(time.Second) // past the write timeout
	unstall()
	// The stalled peer gets what was buffered, then finds its connection
	// gone: it never gets all n.
	got := 0
	for {
		ctx, cancel := context.WithTimeout(context.Background(), waitTime)
		_, err := slow.Receive(ctx, nil)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("the stalled peer's connection is still up after %d messages", got)
		}
		if err != nil {
			break
		}
		got++
	}
	if got >= n {
		t.Errorf("the stalled peer received all %d messages; want its connection dropped", n)
	}
}

// TestTokenExpiryMidLink: a C2D sender and a partition reader lose their
// links when the only token expires; what was accepted before stays.
func TestTokenExpiryMidLink(t *testing.T) {
	start := time.Now().UTC().Truncate(time.Second)
	clk := clock.At(start)
	e := newEnv(t, withClock(clk), withPartitions(1))
	e.addDevice(t, "d1")
	c := e.dial(t, viaPlain, nil)
	// The token lapses well before the message's time to live (1 h).
	newCBS(t, c).mustPut(t, hostName, e.policyToken(t, "iothubowner", hostName, start.Add(10*time.Minute)))
	snd := c2dSender(t, c)
	if err := sendOutcome(t, snd, &goamqp.Message{Data: [][]byte{[]byte("x")}, Properties: &goamqp.MessageProperties{To: c2dTo("d1"), MessageID: "kept"}}); err != nil {
		t.Fatal(err)
	}
	rcv := attachOK(t, newSession(t, c), partitionAddr("$Default", 0))
	clk.Set(start.Add(10*time.Minute + hub.ClockSkew + time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), waitTime)
	defer cancel()
	_, err := rcv.Receive(ctx, nil)
	wantCondition(t, "partition reader", linkError(t, err), goamqp.ErrCondUnauthorizedAccess, "expired")
	err = snd.Send(ctx, &goamqp.Message{Data: [][]byte{[]byte("y")}, Properties: &goamqp.MessageProperties{To: c2dTo("d1"), MessageID: "late"}}, nil)
	wantCondition(t, "C2D sender", linkError(t, err), goamqp.ErrCondUnauthorizedAccess, "expired")
	ms, _ := e.hub.PendingC2D("d1")
	if len(ms) != 1 || ms[0].MessageID != "kept" {
		t.Errorf("queue %v; want only the message accepted before expiry", ms)
	}
}

// TestHeartbeats: both sides keep an idle connection alive inside the
// other's idle-time-out: the server's heartbeats satisfy a client that
// advertises 400 ms, and the client's satisfy a server that advertises
// 400 ms.
func TestHeartbeats(t *testing.T) {
	e := newEnv(t, func(_ *hub.Config, o *Options) { o.IdleTimeout = 400 * time.Millisecond })
	c := e.dial(t, viaTLS, &goamqp.ConnOptions{SASLType: goamqp.SASLTypeAnonymous(), IdleTimeout: 400 * time.Millisecond})
	cbs := newCBS(t, c)
	time.Sleep(2 * time.Second) // five idle-time-outs of silence from the application
	cbs.mustPut(t, hostName, e.policyToken(t, "service", hostName, later()))
}

// TestFrameTrace: at debug level every frame is logged, as PN_TRACE_FRM
// does.
func TestFrameTrace(t *testing.T) {
	var buf syncBuffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e := newEnv(t, func(_ *hub.Config, o *Options) { o.Logger = logger })
	c := e.dial(t, viaPlain, nil)
	newCBS(t, c).mustPut(t, hostName, e.policyToken(t, "service", hostName, later()))
	for _, want := range []string{"sasl-init mechanism=ANONYMOUS", "perf=open", "perf=begin", "perf=attach", `target=\"$cbs\"`, "perf=transfer", "perf=flow"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("the debug log lacks %q", want)
		}
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
