// SPDX-License-Identifier: MIT

package amqp

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/amqp/codec"
)

// rawLink attaches a link from the raw peer on channel 0 (after open and
// begin) and returns the server's attach.
func (p *rawPeer) attach(a *performAttach) *performAttach {
	p.t.Helper()
	p.send(0, a, nil)
	return expect[*performAttach](p)
}

func u32p(v uint32) *uint32 { return &v }

func acceptAll(links chan *Link) *Config {
	return &Config{OnAttach: func(l *Link, r *AttachReply) error {
		if links != nil {
			links <- l
		}
		return nil
	}}
}

// Malformed input gets the spec's error close, and the server goroutines
// exit (TestMain checks with goleak).
func TestMalformedFrames(t *testing.T) {
	addr := startServer(t, acceptAll(nil))
	frameWith := func(size uint32, doff, typ byte, body []byte) []byte {
		b := binary.BigEndian.AppendUint32(nil, size)
		b = append(b, doff, typ, 0, 0)
		return append(b, body...)
	}
	tests := []struct {
		name  string
		frame []byte
		cond  Symbol
	}{
		{"size below 8", frameWith(7, 2, 0, nil), ErrFramingError},
		{"size above max-frame-size", frameWith(65537, 2, 0, nil), ErrFramingError},
		{"data offset below 2", frameWith(8, 1, 0, nil), ErrFramingError},
		{"data offset beyond frame", frameWith(12, 4, 0, []byte{0, 0, 0, 0}), ErrFramingError},
		{"SASL frame after open", frameWith(9, 2, 1, []byte{0x40}), ErrFramingError},
		{"unknown performative", frameWith(12, 2, 0, []byte{0x00, 0x53, 0x99, 0x45}), ErrDecode},
		{"not a described type", frameWith(9, 2, 0, []byte{0x45}), ErrDecode},
		{"garbage", frameWith(10, 2, 0, []byte{0xff, 0xff}), ErrDecode},
		{"wrong field type", frameWith(0, 2, 0, mustEnc(t, func(b []byte) ([]byte, error) {
			return codec.AppendDescribedList(b, descBegin, nil, "not a uint", uint32(1), uint32(1))
		})), ErrDecode},
		{"mandatory field missing", frameWith(0, 2, 0, mustEnc(t, func(b []byte) ([]byte, error) {
			return codec.AppendDescribedList(b, descBegin, nil, uint32(0))
		})), ErrDecode},
		{"second open", frameWith(0, 2, 0, mustEnc(t, (&performOpen{ContainerID: "x"}).AppendAMQP)), ErrIllegalState},
		{"frame on a channel without session", frameWith(0, 2, 0, mustEnc(t, (&performEnd{}).AppendAMQP)), ErrNotAllowed},
		{"huge list count", frameWith(0, 2, 0, []byte{0x00, 0x53, 0x11, 0xd0, 0, 0, 0, 8, 0x80, 0, 0, 0, 0x40, 0x40, 0x40, 0x40}), ErrDecode},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := rawDial(t, addr)
			p.open(nil)
			f := tc.frame
			if binary.BigEndian.Uint32(f) == 0 {
				binary.BigEndian.PutUint32(f, uint32(len(f)))
			}
			p.write(f)
			p.expectClose(tc.cond)
			p.send(0, &performClose{}, nil)
			p.expectEOF()
		})
	}
}

func mustEnc(t testing.TB, f func([]byte) ([]byte, error)) []byte {
	t.Helper()
	b, err := f(nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestTruncatedFrameEndsConnection(t *testing.T) {
	addr := startServer(t, acceptAll(nil))
	p := rawDial(t, addr)
	p.open(nil)
	p.write([]byte{0, 0, 1, 0, 2, 0, 0, 0, 1, 2, 3}) // claims 256 bytes, sends 11
	_ = p.nc.(interface{ CloseWrite() error }).CloseWrite()
	p.expectEOF()
}

func TestFirstFrameNotOpen(t *testing.T) {
	addr := startServer(t, acceptAll(nil))
	p := rawDial(t, addr)
	p.write(protoHeader(protoAMQP))
	p.header()
	p.send(0, &performBegin{IncomingWindow: 1, OutgoingWindow: 1}, nil)
	// Part 2, 2.4.1: open first, then the close that says why.
	if _, v := p.next(); perfName(v) != "open" {
		t.Fatalf("got %s, want open", perfName(v))
	}
	p.expectClose(ErrIllegalState)
}

// Session-level violations end the session with the spec's condition and
// leave the connection up.
func TestSessionErrors(t *testing.T) {
	links := make(chan *Link, 10)
	addr := startServer(t, acceptAll(links))
	tests := []struct {
		name string
		do   func(p *rawPeer)
		cond Symbol
	}{
		{"transfer on an unknown handle", func(p *rawPeer) {
			p.send(0, &performTransfer{Handle: 7, DeliveryID: u32p(0), DeliveryTag: []byte{1}}, []byte{0x00, 0x53, 0x77, 0x40})
		}, ErrUnattachedHandle},
		{"flow before attach", func(p *rawPeer) {
			p.send(0, &performFlow{IncomingWindow: 10, NextOutgoingID: 0, OutgoingWindow: 10, Handle: u32p(0), LinkCredit: u32p(5)}, nil)
		}, ErrUnattachedHandle},
		{"detach of an unknown handle", func(p *rawPeer) { p.send(0, &performDetach{Handle: 3}, nil) }, ErrUnattachedHandle},
		{"handle in use", func(p *rawPeer) {
			p.attach(&performAttach{Name: "a", Handle: 0, Role: RoleReceiver, Source: &Source{Address: "s"}, Target: &Target{}})
			p.send(0, &performAttach{Name: "b", Handle: 0, Role: RoleReceiver, Source: &Source{Address: "s"}, Target: &Target{}}, nil)
		}, ErrHandleInUse},
		{"handle above handle-max", func(p *rawPeer) {
			p.send(0, &performAttach{Name: "a", Handle: 5000, Role: RoleReceiver, Source: &Source{Address: "s"}, Target: &Target{}}, nil)
		}, ErrResourceLimitExceeded},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := rawDial(t, addr)
			p.open(nil)
			p.begin(0)
			tc.do(p)
			e := expect[*performEnd](p)
			if e.Error == nil || e.Error.Condition != tc.cond {
				t.Fatalf("end error %v, want %s", e.Error, tc.cond)
			}
			p.send(0, &performEnd{}, nil)
			// The connection still serves a new session on the same channel.
			p.begin(0)
			p.send(0, &performClose{}, nil)
			p.expectClose("")
		})
	}
}

// The server reopens its session window as frames arrive: a peer that
// keeps to the window never stalls, even with a window of 2 and one
// delivery of many frames.
func TestSessionWindowReopens(t *testing.T) {
	got := make(chan *Delivery, 1)
	addr := startServer(t, &Config{SessionWindow: 2, OnAttach: func(l *Link, r *AttachReply) error {
		go func() {
			if d, err := l.Receive(context.Background()); err == nil {
				got <- d
			}
		}()
		return nil
	}})
	p := rawDial(t, addr)
	p.open(nil)
	b := p.begin(0)
	if b.IncomingWindow != 2 {
		t.Fatalf("incoming-window %d", b.IncomingWindow)
	}
	p.attach(&performAttach{Name: "s", Handle: 0, Role: RoleSender, Target: &Target{Address: "q"}, Source: &Source{}, InitialDeliveryCount: u32p(0)})
	msg := mustMarshal(t, &Message{Data: [][]byte{make([]byte, 50)}})
	next, window := uint32(0), b.IncomingWindow
	for off := 0; off < len(msg); {
		for window == 0 {
			if _, v := p.next(); v != nil {
				if f, ok := v.(*performFlow); ok && f.Handle == nil {
					window = *f.NextIncomingID + f.IncomingWindow - next
				}
			}
		}
		n := min(10, len(msg)-off)
		tr := &performTransfer{Handle: 0, More: off+n < len(msg)}
		if off == 0 {
			tr.DeliveryID, tr.DeliveryTag, tr.Settled = u32p(0), []byte{1}, ptr(true)
		}
		p.send(0, tr, msg[off:off+n])
		off += n
		next++
		window--
	}
	select {
	case d := <-got:
		if len(d.Message.Data[0]) != 50 {
			t.Fatalf("got %d bytes", len(d.Message.Data[0]))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the delivery never completed")
	}
}

// A transfer beyond the granted link credit detaches the link with
// transfer-limit-exceeded; a message beyond max-message-size with
// message-size-exceeded.
func TestLinkLimits(t *testing.T) {
	addr := startServer(t, &Config{Credit: 1, OnAttach: func(l *Link, r *AttachReply) error {
		r.MaxMessageSize = 100
		go func() {
			for {
				if _, err := l.Receive(context.Background()); err != nil {
					return
				}
			}
		}()
		return nil
	}})
	msg := mustMarshal(t, &Message{Value: "x"})
	t.Run("credit", func(t *testing.T) {
		p := rawDial(t, addr)
		p.open(nil)
		p.begin(0)
		a := p.attach(&performAttach{Name: "s", Handle: 0, Role: RoleSender, Target: &Target{Address: "q"}, Source: &Source{}, InitialDeliveryCount: u32p(0)})
		if a.MaxMessageSize != 100 {
			t.Fatalf("max-message-size %d", a.MaxMessageSize)
		}
		f := expect[*performFlow](p)
		if f.LinkCredit == nil || *f.LinkCredit != 1 {
			t.Fatalf("initial flow %+v", f)
		}
		for i := uint32(0); i < 2; i++ {
			// Unsettled, and the application never settles: no credit comes back.
			p.send(0, &performTransfer{Handle: 0, DeliveryID: u32p(i), DeliveryTag: []byte{byte(i)}}, msg)
		}
		d := expect[*performDetach](p)
		if d.Error == nil || d.Error.Condition != ErrTransferLimit {
			t.Fatalf("detach %v, want transfer-limit-exceeded", d.Error)
		}
	})
	t.Run("size", func(t *testing.T) {
		p := rawDial(t, addr)
		p.open(nil)
		p.begin(0)
		p.attach(&performAttach{Name: "s", Handle: 0, Role: RoleSender, Target: &Target{Address: "q"}, Source: &Source{}, InitialDeliveryCount: u32p(0)})
		p.send(0, &performTransfer{Handle: 0, DeliveryID: u32p(0), DeliveryTag: []byte{0}, More: true}, make([]byte, 60))
		p.send(0, &performTransfer{Handle: 0}, make([]byte, 60))
		d := expect[*performDetach](p)
		if d.Error == nil || d.Error.Condition != ErrMessageSizeExceeded {
			t.Fatalf("detach %v, want message-size-exceeded", d.Error)
		}
	})
	t.Run("undecodable message is rejected, link stays", func(t *testing.T) {
		p := rawDial(t, addr)
		p.open(nil)
		p.begin(0)
		p.attach(&performAttach{Name: "s", Handle: 0, Role: RoleSender, Target: &Target{Address: "q"}, Source: &Source{}, InitialDeliveryCount: u32p(0)})
		p.send(0, &performTransfer{Handle: 0, DeliveryID: u32p(0), DeliveryTag: []byte{0}}, []byte{0x00, 0x53, 0x99, 0x40})
		d := expect[*performDisposition](p)
		rej, ok := d.State.(*Rejected)
		if !ok || rej.Error == nil || rej.Error.Condition != ErrDecode || !d.Settled {
			t.Fatalf("disposition %+v state %s", d, stateName(d.State))
		}
		// Credit comes back for the next delivery.
		f := expect[*performFlow](p)
		if f.LinkCredit == nil || *f.LinkCredit != 1 {
			t.Fatalf("flow %+v", f)
		}
	})
	t.Run("aborted delivery is dropped", func(t *testing.T) {
		p := rawDial(t, addr)
		p.open(nil)
		p.begin(0)
		p.attach(&performAttach{Name: "s", Handle: 0, Role: RoleSender, Target: &Target{Address: "q"}, Source: &Source{}, InitialDeliveryCount: u32p(0)})
		expect[*performFlow](p)
		p.send(0, &performTransfer{Handle: 0, DeliveryID: u32p(0), DeliveryTag: []byte{0}, More: true}, msg[:2])
		p.send(0, &performTransfer{Handle: 0, Aborted: true}, nil)
		f := expect[*performFlow](p)
		if f.LinkCredit == nil || *f.LinkCredit != 1 || *f.DeliveryCount != 1 {
			t.Fatalf("flow after abort %+v", f)
		}
	})
}

func TestResourceLimits(t *testing.T) {
	t.Run("sessions", func(t *testing.T) {
		addr := startServer(t, &Config{MaxSessions: 2})
		p := rawDial(t, addr)
		if so := p.open(nil); so.ChannelMax != 1 {
			t.Fatalf("channel-max %d", so.ChannelMax)
		}
		p.begin(0)
		p.begin(1)
		p.send(2, &performBegin{IncomingWindow: 1, OutgoingWindow: 1}, nil)
		p.expectClose(ErrResourceLimitExceeded)
	})
	t.Run("links per connection", func(t *testing.T) {
		addr := startServer(t, &Config{MaxLinks: 2, OnAttach: func(*Link, *AttachReply) error { return nil }})
		p := rawDial(t, addr)
		p.open(nil)
		p.begin(0)
		for h := uint32(0); h < 2; h++ {
			a := p.attach(&performAttach{Name: "l" + string(rune('0'+h)), Handle: h, Role: RoleReceiver, Source: &Source{Address: "s"}, Target: &Target{}})
			if a.Source == nil {
				t.Fatalf("link %d refused", h)
			}
		}
		a := p.attach(&performAttach{Name: "l2", Handle: 2, Role: RoleReceiver, Source: &Source{Address: "s"}, Target: &Target{}})
		if a.Source != nil {
			t.Fatal("third link accepted with a source")
		}
		d := expect[*performDetach](p)
		if d.Error == nil || d.Error.Condition != ErrResourceLimitExceeded {
			t.Fatalf("detach %v", d.Error)
		}
		// Freeing one makes room again.
		p.send(0, &performDetach{Handle: 2, Closed: true}, nil)
		p.send(0, &performDetach{Handle: 0, Closed: true}, nil)
		expect[*performDetach](p)
		a = p.attach(&performAttach{Name: "l3", Handle: 0, Role: RoleReceiver, Source: &Source{Address: "s"}, Target: &Target{}})
		if a.Source == nil {
			t.Fatal("link refused after another was freed")
		}
	})
	t.Run("decoder limits", func(t *testing.T) {
		addr := startServer(t, &Config{Limits: codec.Limits{MaxDepth: 4}})
		p := rawDial(t, addr)
		v := any("x")
		for i := 0; i < 6; i++ {
			v = []any{v}
		}
		p.open(&performOpen{ContainerID: "raw", Properties: map[Symbol]any{"deep": v}})
		p.expectClose(ErrDecode)
	})
}

// Drain with credit left and nothing to send: the server advances its
// delivery-count by the credit and answers at once (part 2, 2.6.7).
func TestDrainRaw(t *testing.T) {
	links := make(chan *Link, 1)
	addr := startServer(t, acceptAll(links))
	p := rawDial(t, addr)
	p.open(nil)
	p.begin(0)
	p.attach(&performAttach{Name: "r", Handle: 0, Role: RoleReceiver, Source: &Source{Address: "s"}, Target: &Target{}})
	l := <-links
	flow := func(dc, credit uint32, drain bool) {
		p.send(0, &performFlow{NextIncomingID: u32p(0), IncomingWindow: 100, NextOutgoingID: 0, OutgoingWindow: 100,
			Handle: u32p(0), DeliveryCount: u32p(dc), LinkCredit: u32p(credit), Drain: drain}, nil)
	}
	flow(0, 5, true)
	f := expect[*performFlow](p)
	if *f.DeliveryCount != 5 || *f.LinkCredit != 0 || !f.Drain {
		t.Fatalf("drain answer dc=%d credit=%d drain=%v", *f.DeliveryCount, *f.LinkCredit, f.Drain)
	}
	// With a send waiting, the drain lets it through first.
	sent := make(chan error, 1)
	go func() {
		_, err := l.Send(context.Background(), &Message{Value: "v"}, &SendOptions{Settled: true})
		sent <- err
	}()
	time.Sleep(20 * time.Millisecond)
	flow(5, 3, true)
	tr := expect[*performTransfer](p)
	if *tr.DeliveryID != 0 {
		t.Fatalf("transfer %+v", tr)
	}
	f = expect[*performFlow](p)
	if *f.DeliveryCount != 8 || *f.LinkCredit != 0 || !f.Drain {
		t.Fatalf("drain answer dc=%d credit=%d", *f.DeliveryCount, *f.LinkCredit)
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	// Echo: the server answers with its link state.
	p.send(0, &performFlow{NextIncomingID: u32p(0), IncomingWindow: 100, NextOutgoingID: 0, OutgoingWindow: 100,
		Handle: u32p(0), DeliveryCount: u32p(8), LinkCredit: u32p(2), Echo: true}, nil)
	f = expect[*performFlow](p)
	if *f.DeliveryCount != 8 || *f.LinkCredit != 2 || f.Drain {
		t.Fatalf("echo dc=%d credit=%d drain=%v", *f.DeliveryCount, *f.LinkCredit, f.Drain)
	}
}

func TestManualDrain(t *testing.T) {
	links := make(chan *Link, 1)
	addr := startServer(t, &Config{OnAttach: func(l *Link, r *AttachReply) error {
		r.ManualDrain = true
		links <- l
		return nil
	}})
	p := rawDial(t, addr)
	p.open(nil)
	p.begin(0)
	p.attach(&performAttach{Name: "r", Handle: 0, Role: RoleReceiver, Source: &Source{Address: "s"}, Target: &Target{}})
	l := <-links
	changed := l.CreditChanged()
	p.send(0, &performFlow{IncomingWindow: 100, OutgoingWindow: 100, Handle: u32p(0), DeliveryCount: u32p(0), LinkCredit: u32p(4), Drain: true}, nil)
	<-changed
	if cr, drain := l.Credit(); cr != 4 || !drain {
		t.Fatalf("credit %d drain %v", cr, drain)
	}
	l.CompleteDrain()
	f := expect[*performFlow](p)
	if *f.DeliveryCount != 4 || *f.LinkCredit != 0 || !f.Drain {
		t.Fatalf("drain answer dc=%d credit=%d", *f.DeliveryCount, *f.LinkCredit)
	}
}

// The session windows and link credit stay right over many deliveries
// (more than the window, so it must be reopened many times) and across the
// wrap of the 32-bit serial numbers (part 2, 2.5.6 and 2.6.7).
func TestSessionWindowsLongRun(t *testing.T) {
	for _, start := range []uint32{0, 0xffffff00} {
		t.Run(fmt.Sprintf("from %#x", start), func(t *testing.T) {
			addr := startServer(t, &Config{SessionWindow: 16, Credit: 8, OnAttach: func(l *Link, r *AttachReply) error {
				go func() {
					for {
						d, err := l.Receive(context.Background())
						if err != nil {
							return
						}
						_ = d.Accept()
					}
				}()
				return nil
			}})
			p := rawDial(t, addr)
			p.open(nil)
			p.send(0, &performBegin{NextOutgoingID: start, IncomingWindow: 1000, OutgoingWindow: 1000, HandleMax: 10}, nil)
			b := expect[*performBegin](p)
			p.attach(&performAttach{Name: "s", Handle: 0, Role: RoleSender, Target: &Target{Address: "q"}, Source: &Source{}, InitialDeliveryCount: u32p(start)})
			msg := mustMarshal(t, &Message{Value: "x"})
			credit, window := uint32(0), b.IncomingWindow
			next, dc := start, start
			accepted := 0
			for sent := 0; sent < 500; {
				if credit == 0 || window == 0 {
					_, v := p.next()
					switch f := v.(type) {
					case *performFlow:
						window = *f.NextIncomingID + f.IncomingWindow - next
						if f.Handle != nil {
							credit = *f.DeliveryCount + *f.LinkCredit - dc
						}
					case *performDisposition:
						accepted++
					}
					continue
				}
				p.send(0, &performTransfer{Handle: 0, DeliveryID: u32p(start + uint32(sent)), DeliveryTag: []byte{byte(sent)}}, msg)
				sent++
				next++
				dc++
				credit--
				window--
			}
			for accepted < 500 {
				if _, v := p.next(); perfName(v) == "disposition" {
					accepted++
				}
			}
		})
	}
}

// One disposition can settle a range of our deliveries; mode second makes
// us settle after the peer's outcome.
func TestDispositionRanges(t *testing.T) {
	for _, mode := range []ReceiverSettleMode{ReceiverFirst, ReceiverSecond} {
		t.Run(fmt.Sprint("rcv-settle-mode ", mode), func(t *testing.T) {
			links := make(chan *Link, 1)
			addr := startServer(t, acceptAll(links))
			p := rawDial(t, addr)
			p.open(nil)
			p.begin(0)
			p.attach(&performAttach{Name: "r", Handle: 0, Role: RoleReceiver, RcvSettleMode: mode, Source: &Source{Address: "s"}, Target: &Target{}})
			l := <-links
			p.send(0, &performFlow{IncomingWindow: 100, OutgoingWindow: 100, Handle: u32p(0), DeliveryCount: u32p(0), LinkCredit: u32p(10)}, nil)
			var outs []*Outgoing
			for i := 0; i < 3; i++ {
				o, err := l.Send(ctx(t), &Message{Value: int32(i)}, nil)
				if err != nil {
					t.Fatal(err)
				}
				outs = append(outs, o)
			}
			for i := 0; i < 3; i++ {
				tr := expect[*performTransfer](p)
				if tr.Settled == nil || *tr.Settled {
					t.Fatalf("transfer %d sent settled", i)
				}
			}
			p.send(0, &performDisposition{Role: RoleReceiver, First: 0, Last: u32p(2), Settled: mode == ReceiverFirst, State: &Accepted{}}, nil)
			if mode == ReceiverSecond {
				for i := uint32(0); i < 3; i++ {
					d := expect[*performDisposition](p)
					if d.Role != RoleSender || !d.Settled || d.First != i {
						t.Fatalf("our settlement %+v", d)
					}
				}
			}
			for i, o := range outs {
				st, err := o.Wait(ctx(t))
				if _, ok := st.(*Accepted); !ok || err != nil {
					t.Fatalf("delivery %d: %s %v", i, stateName(st), err)
				}
			}
		})
	}
}

// A large delivery waits for the peer's session window between frames; if
// the application gives up midway, the half-sent delivery cannot stand: the
// link is detached (there is no window left even for an aborted transfer).
func TestSendCanceledMidDelivery(t *testing.T) {
	links := make(chan *Link, 1)
	addr := startServer(t, acceptAll(links))
	p := rawDial(t, addr)
	p.open(&performOpen{ContainerID: "raw", MaxFrameSize: 512, ChannelMax: 1})
	p.send(0, &performBegin{IncomingWindow: 2, OutgoingWindow: 100, HandleMax: 10}, nil)
	expect[*performBegin](p)
	p.attach(&performAttach{Name: "r", Handle: 0, Role: RoleReceiver, Source: &Source{Address: "s"}, Target: &Target{}})
	l := <-links
	p.send(0, &performFlow{NextIncomingID: u32p(0), IncomingWindow: 2, OutgoingWindow: 100, Handle: u32p(0), DeliveryCount: u32p(0), LinkCredit: u32p(1)}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	res := make(chan error, 1)
	go func() {
		_, err := l.Send(ctx, &Message{Data: [][]byte{make([]byte, 5000)}}, nil)
		res <- err
	}()
	for i := 0; i < 2; i++ {
		tr := expect[*performTransfer](p)
		if !tr.More {
			t.Fatalf("frame %d ends the delivery", i)
		}
	}
	cancel()
	if err := <-res; err == nil {
		t.Fatal("Send succeeded")
	}
	d := expect[*performDetach](p)
	if d.Error == nil || d.Error.Condition != ErrInternal {
		t.Fatalf("detach %v", d.Error)
	}
}

// The SASL layer from a raw peer: MSSBCBS (the C SDK's), malformed PLAIN,
// a mechanism not offered.
func TestSASLRaw(t *testing.T) {
	var got atomic.Value
	addr := startServer(t, &Config{
		SASLMechanisms: []Symbol{SASLMSSBCBS, SASLPlain},
		Authenticate: func(ctx context.Context, r *SASLRequest) (any, error) {
			got.Store(*r)
			return "id", nil
		},
	})
	sasl := func(t *testing.T, init *saslInit) (*rawPeer, *saslOutcome) {
		p := rawDial(t, addr)
		p.write(protoHeader(protoSASL))
		if id := p.header(); id != protoSASL {
			t.Fatalf("protocol id %d", id)
		}
		fr, err := readFrame(p.br, 1<<16)
		if err != nil || fr.typ != frameSASL {
			t.Fatalf("mechanisms frame: %v type %d", err, fr.typ)
		}
		v, err := decodeFrameBody(fr.body, codec.Limits{})
		if m, ok := v.(*saslMechanisms); err != nil || !ok || len(m.Mechanisms) != 2 || m.Mechanisms[0] != SASLMSSBCBS {
			t.Fatalf("mechanisms %#v %v", v, err)
		}
		b, _ := appendFrame(nil, frameSASL, 0, init, nil)
		p.write(b)
		fr, err = readFrame(p.br, 1<<16)
		if err != nil {
			t.Fatal(err)
		}
		v, err = decodeFrameBody(fr.body, codec.Limits{})
		o, ok := v.(*saslOutcome)
		if err != nil || !ok {
			t.Fatalf("outcome %#v %v", v, err)
		}
		return p, o
	}
	t.Run("MSSBCBS", func(t *testing.T) {
		p, o := sasl(t, &saslInit{Mechanism: SASLMSSBCBS, InitialResponse: []byte{}, Hostname: "hub.example"})
		if o.Code != saslOK {
			t.Fatalf("outcome code %d", o.Code)
		}
		if r := got.Load().(SASLRequest); r.Mechanism != SASLMSSBCBS || r.Hostname != "hub.example" {
			t.Fatalf("request %+v", r)
		}
		p.open(nil) // AMQP header and open follow
	})
	t.Run("PLAIN fields", func(t *testing.T) {
		_, o := sasl(t, &saslInit{Mechanism: SASLPlain, InitialResponse: []byte("authz\x00dev1@sas.hub\x00SharedAccessSignature sr=a&sig=b")})
		r := got.Load().(SASLRequest)
		if o.Code != saslOK || r.AuthzID != "authz" || r.AuthcID != "dev1@sas.hub" || r.Password != "SharedAccessSignature sr=a&sig=b" {
			t.Fatalf("code %d request %+v", o.Code, r)
		}
	})
	for name, init := range map[string]*saslInit{
		"PLAIN without separators": {Mechanism: SASLPlain, InitialResponse: []byte("user password")},
		"PLAIN without authcid":    {Mechanism: SASLPlain, InitialResponse: []byte("\x00\x00pw")},
		"mechanism not offered":    {Mechanism: SASLAnonymous},
	} {
		t.Run(name, func(t *testing.T) {
			p, o := sasl(t, init)
			if o.Code != saslAuth {
				t.Fatalf("outcome code %d, want 1 (auth)", o.Code)
			}
			p.expectEOF()
		})
	}
}

// CloseAll detaches every link and ends every session, each without an
// error, before the close that carries the error: the order the hub's
// AMQP stack closes a connection in, which the Node SDK needs to reconnect
// at once (it otherwise waits 45 s for its own detaches to be answered).
func TestCloseAllDetachesAndEndsFirst(t *testing.T) {
	links := make(chan *Link, 10)
	addr := startServer(t, acceptAll(links))
	p := rawDial(t, addr)
	p.open(nil)
	p.begin(0)
	p.begin(1)
	p.attach(&performAttach{Name: "a", Handle: 0, Role: RoleReceiver, Source: &Source{Address: "s"}, Target: &Target{}})
	p.attach(&performAttach{Name: "b", Handle: 1, Role: RoleSender, Source: &Source{}, Target: &Target{Address: "t"}})
	p.send(1, &performAttach{Name: "c", Handle: 0, Role: RoleReceiver, Source: &Source{Address: "s"}, Target: &Target{}}, nil)
	expect[*performAttach](p)
	var l *Link
	for range 3 {
		l = <-links
	}
	l.Conn().CloseAll(&Error{Condition: ErrInternal, Description: "going"})

	detached := map[uint16]int{} // by channel
	ended := map[uint16]bool{}
	for {
		ch, v := p.next()
		switch f := v.(type) {
		case *performDetach:
			if ended[ch] {
				t.Fatalf("detach on channel %d after its end", ch)
			}
			if !f.Closed || f.Error != nil {
				t.Fatalf("detach %+v, want closed without an error", f)
			}
			detached[ch]++
		case *performEnd:
			if f.Error != nil {
				t.Fatalf("end with %v, want none", f.Error)
			}
			ended[ch] = true
		case *performClose:
			if len(ended) != 2 || detached[0]+detached[1] != 3 || detached[0] == 0 || detached[1] == 0 {
				t.Fatalf("close after detaches %v and ends %v, want 3 detaches over both sessions, then both ends", detached, ended)
			}
			if f.Error == nil || f.Error.Condition != ErrInternal || f.Error.Description != "going" {
				t.Fatalf("close error %v, want amqp:internal-error going", f.Error)
			}
			p.send(0, &performClose{}, nil)
			p.expectEOF()
			return
		case *performFlow:
		default:
			t.Fatalf("got %s before the close", perfName(v))
		}
	}
}
