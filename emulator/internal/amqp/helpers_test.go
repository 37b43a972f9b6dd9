// SPDX-License-Identifier: MIT

package amqp

import (
	"bufio"
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	goamqp "github.com/Azure/go-amqp"
	"go.uber.org/goleak"

	"github.com/iothubemulator/iothub/emulator/internal/amqp/codec"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testLogger logs frames when AMQP_TRACE is set (like PN_TRACE_FRM).
func testLogger() *slog.Logger {
	if os.Getenv("AMQP_TRACE") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// startServer serves cfg on a loopback port until the test ends, and waits
// for every connection goroutine to exit.
func startServer(t testing.TB, cfg *Config) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = Serve(ctx, l, cfg)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return l.Addr().String()
}

func dial(t testing.TB, addr string, opts *goamqp.ConnOptions) *goamqp.Conn {
	t.Helper()
	if opts == nil {
		opts = &goamqp.ConnOptions{SASLType: goamqp.SASLTypeAnonymous()}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := goamqp.Dial(ctx, "amqp://"+addr, opts)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func session(t testing.TB, c *goamqp.Conn) *goamqp.Session {
	t.Helper()
	s, err := c.NewSession(ctx(t), nil)
	if err != nil {
		t.Fatalf("session: %v", err)
	}
	return s
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

// broker is a tiny in-memory node table for tests: what a peer sends to an
// address, a peer receiving from that address gets. Settlement is the
// application's: the broker accepts a delivery once it is queued.
type broker struct {
	mu     sync.Mutex
	queues map[string]chan *Delivery
	links  chan *Link // every accepted link, for tests to inspect
	hold   bool       // do not settle incoming deliveries (back-pressure tests)
	held   chan *Delivery
}

func newBroker() *broker {
	return &broker{queues: map[string]chan *Delivery{}, links: make(chan *Link, 10000), held: make(chan *Delivery, 10000)}
}

func (b *broker) queue(addr string) chan *Delivery {
	b.mu.Lock()
	defer b.mu.Unlock()
	q := b.queues[addr]
	if q == nil {
		q = make(chan *Delivery, 10000)
		b.queues[addr] = q
	}
	return q
}

func (b *broker) attach(l *Link, reply *AttachReply) error {
	select {
	case b.links <- l:
	default:
	}
	if l.Role() == RoleReceiver {
		addr := l.Address()
		go func() {
			for {
				d, err := l.Receive(context.Background())
				if err != nil {
					return
				}
				b.queue(addr) <- d
				if b.hold {
					b.held <- d
					continue
				}
				_ = d.Accept()
			}
		}()
		return nil
	}
	addr := l.Address()
	go func() {
		q := b.queue(addr)
		for {
			select {
			case d := <-q:
				ctx, cancel := context.WithCancel(context.Background())
				go func() {
					select {
					case <-l.Done():
					case <-ctx.Done():
					}
					cancel()
				}()
				_, err := l.SendRaw(ctx, d.Raw, &SendOptions{Format: d.Format})
				cancel()
				if err != nil {
					q <- d // put it back for the next receiver
					return
				}
			case <-l.Done():
				return
			}
		}
	}()
	return nil
}

// rawPeer is a hand-driven AMQP client for malformed and edge-case input.
type rawPeer struct {
	t  testing.TB
	nc net.Conn
	br *bufio.Reader
}

func rawDial(t testing.TB, addr string) *rawPeer {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	return &rawPeer{t: t, nc: nc, br: bufio.NewReader(nc)}
}

func (p *rawPeer) write(b []byte) {
	p.t.Helper()
	if _, err := p.nc.Write(b); err != nil {
		p.t.Fatalf("write: %v", err)
	}
}

func (p *rawPeer) send(ch uint16, perf interface{ AppendAMQP([]byte) ([]byte, error) }, payload []byte) {
	p.t.Helper()
	b, err := appendFrame(nil, frameAMQP, ch, perf, payload)
	if err != nil {
		p.t.Fatal(err)
	}
	p.write(b)
}

func (p *rawPeer) header() byte {
	p.t.Helper()
	id, ok, err := readProtoHeader(p.br)
	if err != nil || !ok {
		p.t.Fatalf("read header: %v ok=%v", err, ok)
	}
	return id
}

// next reads the next non-empty frame and decodes it.
func (p *rawPeer) next() (uint16, any) {
	p.t.Helper()
	for {
		fr, err := readFrame(p.br, 1<<24)
		if err != nil {
			p.t.Fatalf("read frame: %v", err)
		}
		if len(fr.body) == 0 {
			continue
		}
		v, err := decodeFrameBody(fr.body, codec.Limits{})
		if err != nil {
			p.t.Fatalf("decode frame: %v", err)
		}
		return fr.channel, v
	}
}

// open does the bare-AMQP handshake and returns the server's open.
func (p *rawPeer) open(o *performOpen) *performOpen {
	p.t.Helper()
	p.write(protoHeader(protoAMQP))
	if id := p.header(); id != protoAMQP {
		p.t.Fatalf("got protocol id %d", id)
	}
	if o == nil {
		o = &performOpen{ContainerID: "raw", MaxFrameSize: 65536, ChannelMax: 100}
	}
	p.send(0, o, nil)
	_, v := p.next()
	so, ok := v.(*performOpen)
	if !ok {
		p.t.Fatalf("got %s, want open", perfName(v))
	}
	return so
}

func (p *rawPeer) begin(ch uint16) *performBegin {
	p.t.Helper()
	p.send(ch, &performBegin{NextOutgoingID: 0, IncomingWindow: 1000, OutgoingWindow: 1000, HandleMax: 100}, nil)
	_, v := p.next()
	b, ok := v.(*performBegin)
	if !ok {
		p.t.Fatalf("got %s, want begin", perfName(v))
	}
	return b
}

// expect reads frames until one of type T arrives (skipping flows and
// others), failing on EOF.
func expect[T any](p *rawPeer) T {
	p.t.Helper()
	for {
		_, v := p.next()
		if t, ok := v.(T); ok {
			return t
		}
	}
}

// expectClosed reads until the server's close, checks its condition, then
// expects EOF.
func (p *rawPeer) expectClose(cond Symbol) *performClose {
	p.t.Helper()
	c := expect[*performClose](p)
	if cond == "" && c.Error != nil || cond != "" && (c.Error == nil || c.Error.Condition != cond) {
		p.t.Fatalf("close error %v, want %q", c.Error, cond)
	}
	return c
}

func (p *rawPeer) expectEOF() {
	p.t.Helper()
	for {
		_, err := readFrame(p.br, 1<<24)
		if err != nil {
			var ae *Error
			if errors.As(err, &ae) {
				p.t.Fatalf("got %v, want EOF", err)
			}
			return
		}
	}
}
