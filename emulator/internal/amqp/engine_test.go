// SPDX-License-Identifier: MIT

package amqp

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	goamqp "github.com/Azure/go-amqp"
	"github.com/google/go-cmp/cmp"

	"github.com/iothubemulator/iothub/emulator/internal/amqp/codec"
	"github.com/iothubemulator/iothub/emulator/internal/certs"
)

func ptr[T any](v T) *T { return &v }

// A message goes from a go-amqp sender through the engine to a go-amqp
// receiver with every section and exact types intact.
func TestRoundTripThroughBroker(t *testing.T) {
	b := newBroker()
	addr := startServer(t, &Config{OnAttach: b.attach})
	c := dial(t, addr, nil)
	s := session(t, c)
	snd, err := s.NewSender(ctx(t), "q", nil)
	if err != nil {
		t.Fatal(err)
	}
	rcv, err := s.NewReceiver(ctx(t), "q", &goamqp.ReceiverOptions{Credit: 10})
	if err != nil {
		t.Fatal(err)
	}
	ts := time.UnixMilli(1700000000123).UTC()
	uid := goamqp.UUID{1, 2, 3}
	in := &goamqp.Message{
		Header:      &goamqp.MessageHeader{Durable: true, Priority: 4, TTL: time.Minute},
		Annotations: goamqp.Annotations{"x-opt-sequence-number": int64(7), "iothub-connection-device-id": "d1"},
		Properties: &goamqp.MessageProperties{
			MessageID: uid, CorrelationID: uint64(9), To: ptr("/devices/d1/messages/devicebound"),
			ContentType: ptr("application/json"), CreationTime: &ts, UserID: []byte("hub"),
		},
		ApplicationProperties: map[string]any{"iothub-ack": "full", "status-code": int32(200), "n": int64(-1)},
		Data:                  [][]byte{[]byte(`{"a":1}`)},
	}
	if err := snd.Send(ctx(t), in, nil); err != nil {
		t.Fatal(err)
	}
	out, err := rcv.Receive(ctx(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := rcv.AcceptMessage(ctx(t), out); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(in.ApplicationProperties, out.ApplicationProperties); diff != "" {
		t.Errorf("application properties (-sent +got):\n%s", diff)
	}
	if out.Properties.MessageID != uid || out.Properties.CorrelationID != uint64(9) || *out.Properties.To != *in.Properties.To {
		t.Errorf("properties: got %+v", out.Properties)
	}
	if !out.Properties.CreationTime.Equal(ts) || !bytes.Equal(out.Properties.UserID, []byte("hub")) {
		t.Errorf("times/user-id: got %+v", out.Properties)
	}
	if out.Annotations["x-opt-sequence-number"] != int64(7) || !bytes.Equal(out.GetData(), []byte(`{"a":1}`)) {
		t.Errorf("annotations/data: got %v %q", out.Annotations, out.GetData())
	}
	if out.Header == nil || !out.Header.Durable || out.Header.TTL != time.Minute {
		t.Errorf("header: got %+v", out.Header)
	}
}

// The server decodes what go-amqp sends into the exact Go types.
func TestServerSeesDecodedMessage(t *testing.T) {
	got := make(chan *Delivery, 1)
	addr := startServer(t, &Config{OnAttach: func(l *Link, r *AttachReply) error {
		go func() {
			d, err := l.Receive(context.Background())
			if err == nil {
				got <- d
				_ = d.Accept()
			}
		}()
		return nil
	}})
	c := dial(t, addr, nil)
	snd, err := session(t, c).NewSender(ctx(t), "/messages/devicebound", nil)
	if err != nil {
		t.Fatal(err)
	}
	err = snd.Send(ctx(t), &goamqp.Message{
		Properties:            &goamqp.MessageProperties{MessageID: "m1", To: ptr("/devices/x/messages/devicebound")},
		ApplicationProperties: map[string]any{"iothub-ack": "full"},
		Value:                 []string{"a", "b"},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	d := <-got
	if d.Message.Properties.MessageID != "m1" || d.Message.Properties.To != "/devices/x/messages/devicebound" {
		t.Errorf("properties: %+v", d.Message.Properties)
	}
	if v, ok := d.Message.Value.([]string); !ok || len(v) != 2 {
		t.Errorf("amqp-value: %#v", d.Message.Value)
	}
	if d.Settled || d.Format != 0 || len(d.Tag) == 0 {
		t.Errorf("delivery: settled=%v format=%d tag=%x", d.Settled, d.Format, d.Tag)
	}
	if d.Message.ApplicationProperties["iothub-ack"] != "full" {
		t.Errorf("app properties: %v", d.Message.ApplicationProperties)
	}
}

func TestSASLPlain(t *testing.T) {
	var seen atomic.Value
	cfg := &Config{
		SASLMechanisms: []Symbol{SASLPlain, SASLAnonymous},
		RequireSASL:    true,
		Authenticate: func(ctx context.Context, r *SASLRequest) (any, error) {
			if r.Mechanism == SASLPlain && r.AuthcID == "iothubowner@sas.root.hub" && r.Password == "SharedAccessSignature sr=x" {
				return "owner", nil
			}
			return nil, errors.New("bad credentials")
		},
		OnAttach: func(l *Link, r *AttachReply) error {
			seen.Store(l.Conn().Identity())
			return nil
		},
	}
	addr := startServer(t, cfg)
	t.Run("accepted", func(t *testing.T) {
		c := dial(t, addr, &goamqp.ConnOptions{SASLType: goamqp.SASLTypePlain("iothubowner@sas.root.hub", "SharedAccessSignature sr=x")})
		if _, err := session(t, c).NewSender(ctx(t), "x", nil); err != nil {
			t.Fatal(err)
		}
		if seen.Load() != "owner" {
			t.Fatalf("identity %v, want owner", seen.Load())
		}
	})
	t.Run("refused", func(t *testing.T) {
		_, err := goamqp.Dial(ctx(t), "amqp://"+addr, &goamqp.ConnOptions{SASLType: goamqp.SASLTypePlain("iothubowner@sas.root.hub", "wrong")})
		if err == nil || !strings.Contains(err.Error(), "auth") {
			t.Fatalf("got %v, want an authentication failure", err)
		}
	})
	t.Run("anonymous refused by callback", func(t *testing.T) {
		_, err := goamqp.Dial(ctx(t), "amqp://"+addr, &goamqp.ConnOptions{SASLType: goamqp.SASLTypeAnonymous()})
		if err == nil {
			t.Fatal("anonymous connected, want a refusal")
		}
	})
	t.Run("bare header refused when SASL is required", func(t *testing.T) {
		p := rawDial(t, addr)
		p.write(protoHeader(protoAMQP))
		if id := p.header(); id != protoSASL {
			t.Fatalf("got protocol id %d, want 3 (SASL)", id)
		}
		p.expectEOF()
	})
}

func TestSASLExternalSeesMechanism(t *testing.T) {
	var mech atomic.Value
	addr := startServer(t, &Config{
		SASLMechanisms: []Symbol{SASLExternal, SASLMSSBCBS, SASLAnonymous},
		Authenticate: func(ctx context.Context, r *SASLRequest) (any, error) {
			mech.Store(r.Mechanism)
			if r.TLS != nil {
				return nil, errors.New("no TLS expected here")
			}
			return nil, nil
		},
		OnAttach: func(*Link, *AttachReply) error { return nil },
	})
	dial(t, addr, &goamqp.ConnOptions{SASLType: goamqp.SASLTypeExternal("")})
	if mech.Load() != SASLExternal {
		t.Fatalf("mechanism %v", mech.Load())
	}
}

// The Node IoT SDKs (rhea without a username) send the bare AMQP header
// and go straight to open.
func TestBareAMQPHeaderWithoutSASL(t *testing.T) {
	var host atomic.Value
	addr := startServer(t, &Config{
		Properties: map[Symbol]any{"product": "test"},
		OnOpen:     func(c *Conn) error { host.Store(c.Hostname()); return nil },
	})
	p := rawDial(t, addr)
	so := p.open(&performOpen{ContainerID: "rhea", Hostname: "hub.example", MaxFrameSize: 4096, ChannelMax: 9, IdleTimeout: time.Minute,
		Properties: map[Symbol]any{"com.microsoft:client-version": "azure-iothub/1.16.6"}})
	if so.ContainerID == "" || so.MaxFrameSize != 65536 || so.IdleTimeout != 2*time.Minute || so.ChannelMax != 4999 || so.Properties["product"] != "test" {
		t.Fatalf("server open: %+v", so)
	}
	if host.Load() != "hub.example" {
		t.Fatalf("hostname %v", host.Load())
	}
	p.send(0, &performClose{}, nil)
	p.expectClose("")
	p.expectEOF()
}

func TestProtocolHeaders(t *testing.T) {
	addr := startServer(t, &Config{})
	tests := []struct {
		name string
		hdr  []byte
		want byte
	}{
		{"TLS inside AMQP", protoHeader(protoTLS), protoAMQP},
		{"unknown id", protoHeader(9), protoAMQP},
		{"AMQP 0-9-1", []byte{'A', 'M', 'Q', 'P', 0, 0, 9, 1}, protoAMQP},
		{"HTTP", []byte("GET / HT"), protoAMQP},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := rawDial(t, addr)
			p.write(tc.hdr)
			if id := p.header(); id != tc.want {
				t.Fatalf("got protocol id %d, want %d", id, tc.want)
			}
			p.expectEOF()
		})
	}
}

// A refused attach: null terminus, then detach with the error, and go-amqp
// sees the condition, description and info exactly.
func TestAttachRefusedWithInfo(t *testing.T) {
	info := map[Symbol]any{"hostname": "eh.example", "network-host": "eh.example", "port": int32(5671),
		"address": "amqps://eh.example:5671/hub/$management"}
	addr := startServer(t, &Config{OnAttach: func(l *Link, r *AttachReply) error {
		if l.Source() != nil && l.Source().Address == "/messages/events/$management" {
			// The hub's redirect answers with the terminus, then detaches.
			r.Source = l.Source()
		}
		return &Error{Condition: ErrLinkRedirect, Description: "go elsewhere", Info: info}
	}})
	c := dial(t, addr, nil)
	s := session(t, c)
	want := map[string]any{"hostname": "eh.example", "network-host": "eh.example", "port": int32(5671),
		"address": "amqps://eh.example:5671/hub/$management"}

	_, err := s.NewReceiver(ctx(t), "/other", nil)
	var ae *goamqp.Error
	if !errors.As(err, &ae) || ae.Condition != goamqp.ErrCond(ErrLinkRedirect) || ae.Description != "go elsewhere" {
		t.Fatalf("got %v, want the redirect error", err)
	}
	if diff := cmp.Diff(want, ae.Info); diff != "" {
		t.Fatalf("info (-want +got):\n%s", diff)
	}

	rcv, err := s.NewReceiver(ctx(t), "/messages/events/$management", nil)
	if err != nil {
		t.Fatalf("attach with terminus: %v", err)
	}
	_, err = rcv.Receive(ctx(t), nil)
	var le *goamqp.LinkError
	if !errors.As(err, &le) || le.RemoteErr == nil || le.RemoteErr.Condition != goamqp.ErrCond(ErrLinkRedirect) {
		t.Fatalf("got %v, want a link error with the redirect", err)
	}
	if diff := cmp.Diff(want, le.RemoteErr.Info); diff != "" {
		t.Fatalf("info (-want +got):\n%s", diff)
	}
	// The session still works after the refusals.
	if _, err := s.NewSender(ctx(t), "x", nil); err == nil {
		t.Fatal("a third attach should be refused too")
	}
}

// What the application sees of an attach and sets on the reply.
func TestAttachDetailsAndReply(t *testing.T) {
	links := make(chan *Link, 1)
	addr := startServer(t, &Config{OnAttach: func(l *Link, r *AttachReply) error {
		links <- l
		r.Properties = map[Symbol]any{"com.microsoft:tracking-id": "t1"}
		r.OfferedCapabilities = []Symbol{"com.microsoft:georeplication"}
		r.MaxMessageSize = 4096
		return nil
	}})
	c := dial(t, addr, nil)
	rcv, err := session(t, c).NewReceiver(ctx(t), "hub/ConsumerGroups/$Default/Partitions/0", &goamqp.ReceiverOptions{
		Name:                "r1",
		Properties:          map[string]any{"com.microsoft:epoch": int64(3)},
		DesiredCapabilities: []string{"com.microsoft:georeplication"},
		Filters:             []goamqp.LinkFilter{goamqp.NewSelectorFilter("amqp.annotation.x-opt-offset > '@latest'")},
		SettlementMode:      goamqp.ReceiverSettleModeFirst.Ptr(),
		TargetAddress:       "reply-1",
	})
	if err != nil {
		t.Fatal(err)
	}
	l := <-links
	if l.Name() != "r1" || l.Role() != RoleSender || l.Source().Address != "hub/ConsumerGroups/$Default/Partitions/0" || l.Target().Address != "reply-1" {
		t.Fatalf("link: name=%q role=%v source=%+v target=%+v", l.Name(), l.Role(), l.Source(), l.Target())
	}
	if f, ok := l.Source().SelectorFilter(); !ok || f != "amqp.annotation.x-opt-offset > '@latest'" {
		t.Fatalf("selector filter %q %v; filter map %v", f, ok, l.Source().Filter)
	}
	if l.Properties()["com.microsoft:epoch"] != int64(3) || len(l.DesiredCapabilities()) != 1 || l.ReceiverSettleMode() != ReceiverFirst {
		t.Fatalf("properties %v caps %v rcv mode %v", l.Properties(), l.DesiredCapabilities(), l.ReceiverSettleMode())
	}
	if rcv.Properties()["com.microsoft:tracking-id"] != "t1" {
		t.Fatalf("reply properties %v", rcv.Properties())
	}
}

func TestTransactionsAndRecoveryRefused(t *testing.T) {
	addr := startServer(t, &Config{OnAttach: func(*Link, *AttachReply) error { return nil }})
	p := rawDial(t, addr)
	p.open(nil)
	p.begin(0)
	// A coordinator target (part 4) is refused with not-implemented.
	coord := &performAttachRaw{name: "txn", handle: 0, role: RoleSender, targetCoordinator: true}
	p.send(0, coord, nil)
	a := expect[*performAttach](p)
	if a.Target != nil {
		t.Fatalf("reply target %+v, want null", a.Target)
	}
	d := expect[*performDetach](p)
	if d.Error == nil || d.Error.Condition != ErrNotImplemented {
		t.Fatalf("detach error %v, want not-implemented", d.Error)
	}
	p.send(0, &performDetach{Handle: 0, Closed: true}, nil)
	// A resume with an unsettled map is refused too.
	p.send(0, &performAttach{Name: "resume", Handle: 1, Role: RoleReceiver, Source: &Source{Address: "q"}, Target: &Target{},
		Unsettled: map[any]any{codec.BinaryKey("tag"): &Described{Descriptor: uint64(descReceived), Value: []any{uint32(0), uint64(0)}}}}, nil)
	expect[*performAttach](p)
	d = expect[*performDetach](p)
	if d.Error == nil || d.Error.Condition != ErrNotImplemented {
		t.Fatalf("detach error %v, want not-implemented", d.Error)
	}
}

// performAttachRaw encodes an attach whose target is a transaction
// coordinator (descriptor 0x30), which performAttach cannot express.
type performAttachRaw struct {
	name              string
	handle            uint32
	role              Role
	targetCoordinator bool
}

func (p *performAttachRaw) AppendAMQP(b []byte) ([]byte, error) {
	return codec.AppendDescribedList(b, descAttach, p.name, p.handle, bool(p.role), nil, nil, &Source{Address: "s"},
		&Described{Descriptor: uint64(descCoordinator), Value: []any{}}, nil, nil, uint32(0))
}

func TestSettleModes(t *testing.T) {
	b := newBroker()
	addr := startServer(t, &Config{OnAttach: b.attach})
	c := dial(t, addr, nil)
	s := session(t, c)
	t.Run("sender settled", func(t *testing.T) {
		snd, err := s.NewSender(ctx(t), "settled", &goamqp.SenderOptions{SettlementMode: goamqp.SenderSettleModeSettled.Ptr()})
		if err != nil {
			t.Fatal(err)
		}
		if err := snd.Send(ctx(t), goamqp.NewMessage([]byte("x")), nil); err != nil {
			t.Fatal(err)
		}
		d := <-b.queue("settled")
		if !d.Settled {
			t.Fatal("delivery not seen as pre-settled")
		}
	})
	t.Run("mixed with settled send", func(t *testing.T) {
		snd, err := s.NewSender(ctx(t), "mixed", nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := snd.Send(ctx(t), goamqp.NewMessage([]byte("x")), &goamqp.SendOptions{Settled: true}); err != nil {
			t.Fatal(err)
		}
		if d := <-b.queue("mixed"); !d.Settled {
			t.Fatal("delivery not seen as pre-settled")
		}
	})
	t.Run("receiver second", func(t *testing.T) {
		snd, err := s.NewSender(ctx(t), "second", &goamqp.SenderOptions{RequestedReceiverSettleMode: goamqp.ReceiverSettleModeSecond.Ptr()})
		if err != nil {
			t.Fatal(err)
		}
		if err := snd.Send(ctx(t), goamqp.NewMessage([]byte("x")), nil); err != nil {
			t.Fatal(err)
		}
		<-b.queue("second")
	})
	t.Run("client receiver mode second", func(t *testing.T) {
		b.queue("r2") <- &Delivery{Raw: mustMarshal(t, &Message{Data: [][]byte{[]byte("hello")}})}
		rcv, err := s.NewReceiver(ctx(t), "r2", &goamqp.ReceiverOptions{SettlementMode: goamqp.ReceiverSettleModeSecond.Ptr(), Credit: 1})
		if err != nil {
			t.Fatal(err)
		}
		m, err := rcv.Receive(ctx(t), nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := rcv.AcceptMessage(ctx(t), m); err != nil {
			t.Fatalf("accept in mode second: %v", err)
		}
	})
	t.Run("client receiver settled", func(t *testing.T) {
		b.queue("r3") <- &Delivery{Raw: mustMarshal(t, &Message{Data: [][]byte{[]byte("hello")}})}
		rcv, err := s.NewReceiver(ctx(t), "r3", &goamqp.ReceiverOptions{RequestedSenderSettleMode: goamqp.SenderSettleModeSettled.Ptr(), Credit: 1})
		if err != nil {
			t.Fatal(err)
		}
		m, err := rcv.Receive(ctx(t), nil)
		if err != nil || string(m.GetData()) != "hello" {
			t.Fatalf("got %v %v", m, err)
		}
	})
}

func mustMarshal(t testing.TB, m *Message) []byte {
	t.Helper()
	b, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The application settles later, asynchronously, with any outcome, and
// the client sees it.
func TestAsyncSettlementOutcomes(t *testing.T) {
	deliveries := make(chan *Delivery, 10)
	addr := startServer(t, &Config{OnAttach: func(l *Link, r *AttachReply) error {
		go func() {
			for {
				d, err := l.Receive(context.Background())
				if err != nil {
					return
				}
				deliveries <- d
			}
		}()
		return nil
	}})
	c := dial(t, addr, nil)
	snd, err := session(t, c).NewSender(ctx(t), "/messages/devicebound", nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		settle func(*Delivery) error
		check  func(goamqp.DeliveryState) bool
	}{
		{"accepted", (*Delivery).Accept, func(st goamqp.DeliveryState) bool { _, ok := st.(*goamqp.StateAccepted); return ok }},
		{"rejected not-found", func(d *Delivery) error { return d.Reject(Errorf(ErrNotFound, "no device d9")) }, func(st goamqp.DeliveryState) bool {
			r, ok := st.(*goamqp.StateRejected)
			return ok && r.Error != nil && r.Error.Condition == goamqp.ErrCond(ErrNotFound) && r.Error.Description == "no device d9"
		}},
		{"rejected queue full", func(d *Delivery) error { return d.Reject(Errorf(ErrResourceLimitExceeded, "queue full")) }, func(st goamqp.DeliveryState) bool {
			r, ok := st.(*goamqp.StateRejected)
			return ok && r.Error != nil && r.Error.Condition == goamqp.ErrCondResourceLimitExceeded
		}},
		{"released", (*Delivery).Release, func(st goamqp.DeliveryState) bool { _, ok := st.(*goamqp.StateReleased); return ok }},
		{"modified", func(d *Delivery) error { return d.Modify(true, true, map[Symbol]any{"x-reason": "busy"}) }, func(st goamqp.DeliveryState) bool {
			m, ok := st.(*goamqp.StateModified)
			return ok && m.DeliveryFailed && m.UndeliverableHere && m.MessageAnnotations["x-reason"] == "busy"
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			receipt, err := snd.SendWithReceipt(ctx(t), goamqp.NewMessage([]byte(tc.name)), nil)
			if err != nil {
				t.Fatal(err)
			}
			d := <-deliveries
			short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			if st, err := receipt.Wait(short); err == nil {
				t.Fatalf("settled as %T before the application settled", st)
			}
			if err := tc.settle(d); err != nil {
				t.Fatal(err)
			}
			if err := d.Accept(); err == nil {
				t.Fatal("a second settlement succeeded")
			}
			st, err := receipt.Wait(ctx(t))
			if err != nil || !tc.check(st) {
				t.Fatalf("outcome %#v, %v", st, err)
			}
		})
	}
}

// Large messages are split at the peer's max-frame-size and reassembled,
// both directions, with a small frame size on both sides.
func TestLargeMessagesSmallFrames(t *testing.T) {
	b := newBroker()
	addr := startServer(t, &Config{OnAttach: b.attach, MaxFrameSize: 512, MaxMessageSize: 1 << 20})
	c := dial(t, addr, &goamqp.ConnOptions{SASLType: goamqp.SASLTypeAnonymous(), MaxFrameSize: 512})
	s := session(t, c)
	snd, err := s.NewSender(ctx(t), "big", nil)
	if err != nil {
		t.Fatal(err)
	}
	rcv, err := s.NewReceiver(ctx(t), "big", &goamqp.ReceiverOptions{Credit: 2})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{0, 1, 400, 424, 425, 5000, 200 << 10} {
		payload := bytes.Repeat([]byte{byte(n)}, n)
		if err := snd.Send(ctx(t), goamqp.NewMessage(payload), nil); err != nil {
			t.Fatalf("send %d bytes: %v", n, err)
		}
		m, err := rcv.Receive(ctx(t), nil)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(m.GetData(), payload) {
			t.Fatalf("%d bytes: got %d bytes back", n, len(m.GetData()))
		}
		_ = rcv.AcceptMessage(ctx(t), m)
	}
}

func TestMessageSizeLimit(t *testing.T) {
	b := newBroker()
	addr := startServer(t, &Config{OnAttach: func(l *Link, r *AttachReply) error {
		r.MaxMessageSize = 1000
		return b.attach(l, r)
	}})
	c := dial(t, addr, nil)
	snd, err := session(t, c).NewSender(ctx(t), "small", nil)
	if err != nil {
		t.Fatal(err)
	}
	if snd.MaxMessageSize() != 1000 {
		t.Fatalf("advertised max-message-size %d", snd.MaxMessageSize())
	}
	// go-amqp refuses to send what exceeds the advertised size; a raw peer
	// that ignores it is covered in the raw tests.
	if err := snd.Send(ctx(t), goamqp.NewMessage(make([]byte, 900)), nil); err != nil {
		t.Fatal(err)
	}
}

// A link where the peer receives: Send blocks without credit and goes on
// once the peer grants some.
func TestCreditStarvationThenGrant(t *testing.T) {
	links := make(chan *Link, 1)
	addr := startServer(t, &Config{OnAttach: func(l *Link, r *AttachReply) error { links <- l; return nil }})
	c := dial(t, addr, nil)
	rcv, err := session(t, c).NewReceiver(ctx(t), "src", &goamqp.ReceiverOptions{Credit: -1})
	if err != nil {
		t.Fatal(err)
	}
	l := <-links
	short, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := l.Send(short, &Message{Value: "starved"}, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Send without credit returned %v, want a deadline error", err)
	}
	sent := make(chan *Outgoing, 1)
	go func() {
		o, err := l.Send(context.Background(), &Message{Value: "one"}, &SendOptions{Tag: []byte("lock-token-1")})
		if err != nil {
			t.Error(err)
		}
		sent <- o
	}()
	if err := rcv.IssueCredit(1); err != nil {
		t.Fatal(err)
	}
	o := <-sent
	m, err := rcv.Receive(ctx(t), nil)
	if err != nil || m.Value != "one" || string(m.DeliveryTag) != "lock-token-1" {
		t.Fatalf("got %v %v", m, err)
	}
	if err := rcv.RejectMessage(ctx(t), m, &goamqp.Error{Condition: "com.example:bad", Description: "no"}); err != nil {
		t.Fatal(err)
	}
	st, err := o.Wait(ctx(t))
	rej, ok := st.(*Rejected)
	if err != nil || !ok || rej.Error.Condition != "com.example:bad" {
		t.Fatalf("outcome %v %v", stateName(st), err)
	}
	if !bytes.Equal(o.Tag, []byte("lock-token-1")) {
		t.Fatalf("tag %q", o.Tag)
	}
}

// go-amqp drains by sending drain=true with link-credit 0 (it revokes its
// credit and waits for our answering flow); sends then resume on new credit.
// Drains with credit left are in the raw tests.
func TestDrainGoAMQP(t *testing.T) {
	links := make(chan *Link, 1)
	addr := startServer(t, &Config{OnAttach: func(l *Link, r *AttachReply) error { links <- l; return nil }})
	c := dial(t, addr, nil)
	rcv, err := session(t, c).NewReceiver(ctx(t), "src", &goamqp.ReceiverOptions{Credit: -1})
	if err != nil {
		t.Fatal(err)
	}
	l := <-links
	if err := rcv.IssueCredit(5); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { cr, _ := l.Credit(); return cr == 5 })
	for i := 0; i < 2; i++ {
		if _, err := l.Send(ctx(t), &Message{Value: int64(i)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := rcv.DrainCredit(ctx(t), nil); err != nil {
		t.Fatalf("drain: %v", err)
	}
	if cr, _ := l.Credit(); cr != 0 {
		t.Fatalf("credit after drain %d, want 0", cr)
	}
	for i := 0; i < 2; i++ {
		m, err := rcv.Receive(ctx(t), nil)
		if err != nil || m.Value != int64(i) {
			t.Fatalf("got %v %v", m, err)
		}
		_ = rcv.AcceptMessage(ctx(t), m)
	}
	// Credit again, and a send goes through after the drain.
	if err := rcv.IssueCredit(1); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Send(ctx(t), &Message{Value: "after"}, nil); err != nil {
		t.Fatal(err)
	}
	if m, err := rcv.Receive(ctx(t), nil); err != nil || m.Value != "after" {
		t.Fatalf("got %v %v", m, err)
	}
}

func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// An application that holds deliveries unsettled holds the peer's credit:
// the peer cannot send more than the window until one is settled.
func TestBackPressureHoldsCredit(t *testing.T) {
	deliveries := make(chan *Delivery, 100)
	addr := startServer(t, &Config{Credit: 3, OnAttach: func(l *Link, r *AttachReply) error {
		go func() {
			for {
				d, err := l.Receive(context.Background())
				if err != nil {
					return
				}
				deliveries <- d
			}
		}()
		return nil
	}})
	c := dial(t, addr, nil)
	snd, err := session(t, c).NewSender(ctx(t), "q", nil)
	if err != nil {
		t.Fatal(err)
	}
	results := make(chan error, 10)
	for i := 0; i < 5; i++ {
		go func() { results <- snd.Send(ctx(t), goamqp.NewMessage([]byte("x")), nil) }()
	}
	var held []*Delivery
	for i := 0; i < 3; i++ {
		held = append(held, <-deliveries)
	}
	select {
	case d := <-deliveries:
		t.Fatalf("a fourth delivery %x arrived while three were unsettled with a window of 3", d.Tag)
	case <-time.After(200 * time.Millisecond):
	}
	for _, d := range held {
		if err := d.Accept(); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 2; i++ {
		if err := (<-deliveries).Accept(); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 5; i++ {
		if err := <-results; err != nil {
			t.Fatal(err)
		}
	}
}

// Heartbeats keep a quiet connection alive inside the client's idle
// timeout; the server's own idle timeout closes a silent peer.
func TestHeartbeatsAndIdleTimeout(t *testing.T) {
	t.Run("server sends heartbeats", func(t *testing.T) {
		b := newBroker()
		addr := startServer(t, &Config{OnAttach: b.attach, IdleTimeout: -1})
		c := dial(t, addr, &goamqp.ConnOptions{SASLType: goamqp.SASLTypeAnonymous(), IdleTimeout: 600 * time.Millisecond})
		s := session(t, c)
		time.Sleep(2 * time.Second) // three client idle windows without traffic
		snd, err := s.NewSender(ctx(t), "hb", nil)
		if err != nil {
			t.Fatalf("connection died while idle: %v", err)
		}
		if err := snd.Send(ctx(t), goamqp.NewMessage([]byte("x")), nil); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("server closes a silent peer", func(t *testing.T) {
		addr := startServer(t, &Config{IdleTimeout: 200 * time.Millisecond})
		p := rawDial(t, addr)
		so := p.open(nil)
		if so.IdleTimeout != 200*time.Millisecond {
			t.Fatalf("advertised idle-time-out %v", so.IdleTimeout)
		}
		p.expectClose(ErrResourceLimitExceeded)
		p.send(0, &performClose{}, nil)
		p.expectEOF()
	})
	t.Run("go-amqp heartbeats satisfy our idle timeout", func(t *testing.T) {
		b := newBroker()
		addr := startServer(t, &Config{OnAttach: b.attach, IdleTimeout: 800 * time.Millisecond})
		c := dial(t, addr, nil)
		s := session(t, c)
		time.Sleep(2 * time.Second)
		if _, err := s.NewSender(ctx(t), "hb", nil); err != nil {
			t.Fatalf("connection died although the client sent heartbeats: %v", err)
		}
	})
	t.Run("pre-open deadline", func(t *testing.T) {
		addr := startServer(t, &Config{OpenTimeout: 200 * time.Millisecond})
		p := rawDial(t, addr)
		p.write(protoHeader(protoSASL))
		p.header()
		start := time.Now()
		p.expectEOF()
		if time.Since(start) > 5*time.Second {
			t.Fatal("an unauthenticated peer held the socket")
		}
	})
}

// go azeventhubs opens a session and a $cbs link pair per token: churn
// must leave nothing behind.
func TestLinkAndSessionChurn(t *testing.T) {
	var live atomic.Int64
	addr := startServer(t, &Config{MaxLinks: 64, MaxSessions: 16, OnAttach: func(l *Link, r *AttachReply) error {
		live.Add(1)
		go func() { <-l.Done(); live.Add(-1) }()
		return nil
	}})
	c := dial(t, addr, nil)
	s := session(t, c)
	for i := 0; i < 1000; i++ {
		snd, err := s.NewSender(ctx(t), "$cbs", nil)
		if err != nil {
			t.Fatalf("link %d: %v", i, err)
		}
		if err := snd.Close(ctx(t)); err != nil {
			t.Fatalf("close link %d: %v", i, err)
		}
	}
	for i := 0; i < 200; i++ {
		s2 := session(t, c)
		snd, err := s2.NewSender(ctx(t), "$cbs", nil)
		if err != nil {
			t.Fatalf("session %d: %v", i, err)
		}
		rcv, err := s2.NewReceiver(ctx(t), "$cbs", nil)
		if err != nil {
			t.Fatalf("session %d: %v", i, err)
		}
		_ = snd.Close(ctx(t))
		_ = rcv.Close(ctx(t))
		if err := s2.Close(ctx(t)); err != nil {
			t.Fatalf("end session %d: %v", i, err)
		}
	}
	waitFor(t, func() bool { return live.Load() == 0 })
}

// The application detaches a link, ends a session or closes the
// connection with an error at any time; the client sees each error.
func TestApplicationSideErrors(t *testing.T) {
	links := make(chan *Link, 10)
	addr := startServer(t, &Config{OnAttach: func(l *Link, r *AttachReply) error { links <- l; return nil }})
	c := dial(t, addr, nil)
	s := session(t, c)

	rcv, err := s.NewReceiver(ctx(t), "a", nil)
	if err != nil {
		t.Fatal(err)
	}
	other, err := s.NewReceiver(ctx(t), "b", &goamqp.ReceiverOptions{Credit: 1})
	if err != nil {
		t.Fatal(err)
	}
	la, lb := <-links, <-links
	la.Detach(Errorf(ErrLinkStolen, "a newer epoch"))
	_, err = rcv.Receive(ctx(t), nil)
	var le *goamqp.LinkError
	if !errors.As(err, &le) || le.RemoteErr == nil || le.RemoteErr.Condition != goamqp.ErrCond(ErrLinkStolen) {
		t.Fatalf("got %v, want link stolen", err)
	}
	<-la.Done()
	if _, err := la.Send(ctx(t), &Message{Value: "x"}, nil); err == nil {
		t.Fatal("Send on a detached link succeeded")
	}
	// The other link on the same session keeps working.
	go func() { _, _ = lb.Send(context.Background(), &Message{Value: "still here"}, nil) }()
	if m, err := other.Receive(ctx(t), nil); err != nil || m.Value != "still here" {
		t.Fatalf("got %v %v", m, err)
	}

	lb.Session().End(Errorf(ErrUnauthorizedAccess, "token expired"))
	<-lb.Done()
	if !errors.Is(lb.Err(), lb.Session().Err()) {
		t.Fatalf("link error %v, session error %v", lb.Err(), lb.Session().Err())
	}
	_, err = other.Receive(ctx(t), nil)
	var se *goamqp.SessionError
	if !errors.As(err, &se) && !errors.As(err, &le) {
		t.Fatalf("got %v, want the session's end", err)
	}

	s2 := session(t, c)
	if _, err := s2.NewSender(ctx(t), "c", nil); err != nil {
		t.Fatal(err)
	}
	lc := <-links
	lc.Conn().Close(Errorf(ErrConnectionForced, "fault injected"))
	<-lc.Conn().Done()
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("client did not see the close")
	}
	var ce *goamqp.ConnError
	if err := c.Err(); !errors.As(err, &ce) || ce.RemoteErr == nil || ce.RemoteErr.Condition != goamqp.ErrCond(ErrConnectionForced) {
		t.Fatalf("client conn error %v", err)
	}
}

// The peer ending the session, detaching one link, or closing with an
// error ends the right things on the server.
func TestPeerSideEnds(t *testing.T) {
	links := make(chan *Link, 10)
	addr := startServer(t, &Config{OnAttach: func(l *Link, r *AttachReply) error { links <- l; return nil }})
	c := dial(t, addr, nil)
	s := session(t, c)
	snd, _ := s.NewSender(ctx(t), "a", nil)
	_, _ = s.NewSender(ctx(t), "b", nil)
	la, lb := <-links, <-links
	_ = snd.Close(ctx(t))
	<-la.Done()
	if !errors.Is(la.Err(), ErrLinkDetached) {
		t.Fatalf("link a: %v", la.Err())
	}
	select {
	case <-lb.Done():
		t.Fatal("link b ended with a")
	default:
	}
	_ = s.Close(ctx(t))
	<-lb.Done()
	<-lb.Session().Done()
	conn := lb.Conn()
	c.Close()
	<-conn.Done()
	if conn.Err() != nil {
		t.Fatalf("clean close gave %v", conn.Err())
	}
}

// Several sessions and links at once on one connection, each direction.
func TestManyLinksConcurrently(t *testing.T) {
	b := newBroker()
	addr := startServer(t, &Config{OnAttach: b.attach})
	c := dial(t, addr, nil)
	const n = 8
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() {
			errs <- func() error {
				s, err := c.NewSession(ctx(t), nil)
				if err != nil {
					return err
				}
				q := fmt.Sprintf("q%d", i)
				snd, err := s.NewSender(ctx(t), q, nil)
				if err != nil {
					return err
				}
				rcv, err := s.NewReceiver(ctx(t), q, &goamqp.ReceiverOptions{Credit: 50})
				if err != nil {
					return err
				}
				for j := 0; j < 200; j++ {
					if err := snd.Send(ctx(t), goamqp.NewMessage([]byte(fmt.Sprint(j))), nil); err != nil {
						return err
					}
				}
				for j := 0; j < 200; j++ {
					m, err := rcv.Receive(ctx(t), nil)
					if err != nil {
						return err
					}
					if string(m.GetData()) != fmt.Sprint(j) {
						return fmt.Errorf("%s: message %d is %q", q, j, m.GetData())
					}
					if err := rcv.AcceptMessage(ctx(t), m); err != nil {
						return err
					}
				}
				return s.Close(ctx(t))
			}()
		}()
	}
	for i := 0; i < n; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// A peer that stops reading is dropped by the write deadline, and another
// connection on the same server keeps working meanwhile.
func TestStalledReaderIsDropped(t *testing.T) {
	links := make(chan *Link, 10)
	b := newBroker()
	addr := startServer(t, &Config{WriteTimeout: 300 * time.Millisecond, MaxWriteQueue: 64 << 10,
		OnAttach: func(l *Link, r *AttachReply) error {
			if l.Role() == RoleSender && l.Source().Address == "firehose" {
				links <- l
				return nil
			}
			return b.attach(l, r)
		}})
	p := rawDial(t, addr)
	p.open(nil)
	p.send(0, &performBegin{IncomingWindow: 1 << 30, OutgoingWindow: 1000, HandleMax: 10}, nil)
	p.send(0, &performAttach{Name: "r", Handle: 0, Role: RoleReceiver, Source: &Source{Address: "firehose"}, Target: &Target{}}, nil)
	l := <-links
	p.send(0, &performFlow{NextIncomingID: u32p(0), IncomingWindow: 1 << 30, OutgoingWindow: 1000, Handle: u32p(0),
		DeliveryCount: u32p(0), LinkCredit: u32p(1 << 30)}, nil)
	// The raw peer never reads again. The server keeps sending until the
	// socket buffers fill, then the write deadline drops the peer.
	sendErr := make(chan error, 1)
	go func() {
		payload := make([]byte, 32<<10)
		for {
			if _, err := l.Send(context.Background(), &Message{Data: [][]byte{payload}}, &SendOptions{Settled: true}); err != nil {
				sendErr <- err
				return
			}
		}
	}()
	// Meanwhile a well-behaved client is served.
	c := dial(t, addr, nil)
	s := session(t, c)
	snd, err := s.NewSender(ctx(t), "q", nil)
	if err != nil {
		t.Fatal(err)
	}
	rcv, err := s.NewReceiver(ctx(t), "q", nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		if err := snd.Send(ctx(t), goamqp.NewMessage([]byte("ok")), nil); err != nil {
			t.Fatal(err)
		}
		m, err := rcv.Receive(ctx(t), nil)
		if err != nil {
			t.Fatal(err)
		}
		_ = rcv.AcceptMessage(ctx(t), m)
	}
	select {
	case err := <-sendErr:
		if err == nil {
			t.Fatal("send succeeded on a dropped connection")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stalled peer was never dropped")
	}
	<-l.Conn().Done()
	if l.Conn().Err() == nil {
		t.Fatal("connection ended without an error")
	}
}

// TLS: the application sees the client certificate, in Authenticate (SASL
// EXTERNAL) and on the connection.
func TestTLSClientCertificate(t *testing.T) {
	now := time.Now()
	srvCert, err := certs.SelfSigned("localhost", now)
	if err != nil {
		t.Fatal(err)
	}
	devCert, err := certs.SelfSigned("device-1", now)
	if err != nil {
		t.Fatal(err)
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{srvCert}, ClientAuth: tls.RequireAnyClientCert})
	if err != nil {
		t.Fatal(err)
	}
	var cn, attachCN atomic.Value
	cfg := &Config{
		SASLMechanisms: []Symbol{SASLExternal},
		RequireSASL:    true,
		Logger:         testLogger(),
		Authenticate: func(ctx context.Context, r *SASLRequest) (any, error) {
			if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
				return nil, errors.New("no client certificate")
			}
			cn.Store(r.TLS.PeerCertificates[0].Subject.CommonName)
			return r.TLS.PeerCertificates[0].Subject.CommonName, nil
		},
		OnAttach: func(l *Link, r *AttachReply) error {
			attachCN.Store(l.Conn().TLS().PeerCertificates[0].Subject.CommonName)
			return nil
		},
	}
	srvCtx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = Serve(srvCtx, l, cfg) }()
	defer func() { cancel(); <-done }()
	c, err := goamqp.Dial(ctx(t), "amqps://"+l.Addr().String(), &goamqp.ConnOptions{
		SASLType:  goamqp.SASLTypeExternal(""),
		TLSConfig: &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{devCert}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := session(t, c).NewSender(ctx(t), "x", nil); err != nil {
		t.Fatal(err)
	}
	if cn.Load() != "device-1" || attachCN.Load() != "device-1" {
		t.Fatalf("certificate CN seen as %v / %v", cn.Load(), attachCN.Load())
	}
}

// Detach called from inside OnAttach turns into the refusal.
func TestDetachInsideOnAttach(t *testing.T) {
	addr := startServer(t, &Config{OnAttach: func(l *Link, r *AttachReply) error {
		l.Detach(Errorf(ErrUnauthorizedAccess, "no claim for %s", l.Target().Address))
		return nil
	}})
	c := dial(t, addr, nil)
	_, err := session(t, c).NewSender(ctx(t), "/messages/devicebound", nil)
	var ae *goamqp.Error
	if !errors.As(err, &ae) || ae.Condition != goamqp.ErrCondUnauthorizedAccess || !strings.Contains(ae.Description, "devicebound") {
		t.Fatalf("got %v", err)
	}
}

// A peer that closes with an error: the server's connection ends with it,
// and its links see it.
func TestPeerClosesWithError(t *testing.T) {
	links := make(chan *Link, 1)
	addr := startServer(t, acceptAll(links))
	p := rawDial(t, addr)
	p.open(nil)
	p.begin(0)
	p.attach(&performAttach{Name: "r", Handle: 0, Role: RoleReceiver, Source: &Source{Address: "s"}, Target: &Target{}})
	l := <-links
	p.send(0, &performClose{Error: &Error{Condition: ErrInternal, Description: "client bug", Info: map[Symbol]any{"k": "v"}}}, nil)
	p.expectClose("")
	<-l.Done()
	var ae *Error
	if !errors.As(l.Conn().Err(), &ae) || ae.Description != "client bug" || ae.Info["k"] != "v" {
		t.Fatalf("connection error %v", l.Conn().Err())
	}
	if !errors.As(l.Err(), &ae) {
		t.Fatalf("link error %v", l.Err())
	}
}

// Config.MaxBufferedBytes bounds what one connection holds for the
// application across links: past it, no link gets new credit until the
// application settles.
func TestConnectionBufferBudget(t *testing.T) {
	deliveries := make(chan *Delivery, 100)
	addr := startServer(t, &Config{Credit: 5, MaxBufferedBytes: 3000, OnAttach: func(l *Link, r *AttachReply) error {
		go func() {
			for {
				d, err := l.Receive(context.Background())
				if err != nil {
					return
				}
				deliveries <- d
			}
		}()
		return nil
	}})
	c := dial(t, addr, nil)
	s := session(t, c)
	a, err := s.NewSender(ctx(t), "a", nil)
	if err != nil {
		t.Fatal(err)
	}
	var held []*Delivery
	for i := 0; i < 5; i++ {
		if _, err := a.SendWithReceipt(ctx(t), goamqp.NewMessage(make([]byte, 1000)), nil); err != nil {
			t.Fatal(err)
		}
		held = append(held, <-deliveries)
	}
	// 5 KB held: a second link gets no credit at all.
	bLink, err := s.NewSender(ctx(t), "b", nil)
	if err != nil {
		t.Fatal(err)
	}
	sent := make(chan error, 1)
	go func() { sent <- bLink.Send(context.Background(), goamqp.NewMessage([]byte("b")), nil) }()
	select {
	case d := <-deliveries:
		t.Fatalf("a delivery (%d bytes) arrived over the budget", len(d.Raw))
	case <-time.After(200 * time.Millisecond):
	}
	for _, d := range held[:3] {
		if err := d.Accept(); err != nil {
			t.Fatal(err)
		}
	}
	// Now below the budget: b gets credit, its message arrives.
	select {
	case d := <-deliveries:
		if string(d.Message.Data[0]) != "b" {
			t.Fatalf("got %q", d.Message.Data[0])
		}
		_ = d.Accept()
	case <-time.After(5 * time.Second):
		t.Fatal("credit never came back after settling")
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	for _, d := range held[3:] {
		_ = d.Accept()
	}
}

// The application may answer with other settle modes than the peer asked
// for; go-amqp, which asked for none in particular, follows.
func TestReplySettleModes(t *testing.T) {
	links := make(chan *Link, 2)
	addr := startServer(t, &Config{OnAttach: func(l *Link, r *AttachReply) error {
		settled, second := SenderSettled, ReceiverSecond
		r.SndSettleMode, r.RcvSettleMode = &settled, &second
		links <- l
		if l.Role() == RoleReceiver {
			go func() {
				for {
					d, err := l.Receive(context.Background())
					if err != nil {
						return
					}
					_ = d.Accept()
				}
			}()
		}
		return nil
	}})
	c := dial(t, addr, nil)
	s := session(t, c)
	rcv, err := s.NewReceiver(ctx(t), "r", nil)
	if err != nil {
		t.Fatal(err)
	}
	l := <-links
	if l.SenderSettleMode() != SenderSettled {
		t.Fatalf("snd-settle-mode %d", l.SenderSettleMode())
	}
	go func() { _, _ = l.Send(context.Background(), &Message{Value: "v"}, nil) }()
	m, err := rcv.Receive(ctx(t), nil)
	if err != nil || m.Value != "v" {
		t.Fatalf("got %v %v", m, err)
	}
	snd, err := s.NewSender(ctx(t), "s", nil)
	if err != nil {
		t.Fatal(err)
	}
	if l2 := <-links; l2.ReceiverSettleMode() != ReceiverSecond {
		t.Fatalf("rcv-settle-mode %d", l2.ReceiverSettleMode())
	}
	if err := snd.Send(ctx(t), goamqp.NewMessage([]byte("x")), nil); err != nil {
		t.Fatal(err)
	}
}
