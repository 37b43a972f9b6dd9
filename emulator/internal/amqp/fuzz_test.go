// SPDX-License-Identifier: MIT

package amqp

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/iothubemulator/iothub/emulator/internal/amqp/codec"
)

// seedFrames returns encoded frame streams a client might send after the
// protocol header.
func seedFrames(t testing.TB) [][]byte {
	frames := func(ps ...codec.Marshaler) []byte {
		var b []byte
		for _, p := range ps {
			var err error
			var payload []byte
			if tr, ok := p.(*performTransfer); ok {
				payload = tr.Payload
			}
			if b, err = appendFrame(b, frameAMQP, 0, p, payload); err != nil {
				t.Fatal(err)
			}
		}
		return b
	}
	msg, _ := (&Message{Value: "x", Properties: &Properties{MessageID: "m"}}).MarshalBinary()
	open := &performOpen{ContainerID: "c", MaxFrameSize: 512, ChannelMax: 4, IdleTimeout: time.Second}
	begin := &performBegin{NextOutgoingID: 0, IncomingWindow: 10, OutgoingWindow: 10, HandleMax: 4}
	snd := &performAttach{Name: "s", Handle: 0, Role: RoleSender, Source: &Source{}, Target: &Target{Address: "q"}, InitialDeliveryCount: u32p(0)}
	rcv := &performAttach{Name: "r", Handle: 1, Role: RoleReceiver, Source: &Source{Address: "q", Filter: map[Symbol]any{
		"sel": &Described{Descriptor: uint64(0x0000468C00000004), Value: "a > '1'"}}}, Target: &Target{}}
	return [][]byte{
		frames(open),
		frames(open, begin, snd, &performTransfer{Handle: 0, DeliveryID: u32p(0), DeliveryTag: []byte{1}, Payload: msg}),
		frames(open, begin, rcv, &performFlow{IncomingWindow: 10, OutgoingWindow: 10, Handle: u32p(1), DeliveryCount: u32p(0), LinkCredit: u32p(3), Drain: true}),
		frames(open, begin, snd, &performTransfer{Handle: 0, DeliveryID: u32p(0), DeliveryTag: []byte{1}, More: true, Payload: msg[:3]},
			&performTransfer{Handle: 0, Payload: msg[3:]}, &performDisposition{Role: RoleReceiver, First: 0, Settled: true, State: &Accepted{}},
			&performDetach{Handle: 0, Closed: true, Error: &Error{Condition: "x", Info: map[Symbol]any{"a": int32(1)}}},
			&performEnd{}, &performClose{}),
		append(frames(open), heartbeat...),
	}
}

// FuzzFrameReader: the frame reader and performative decoder never panic,
// and whatever decodes re-encodes to the same performative.
func FuzzFrameReader(f *testing.F) {
	for _, s := range seedFrames(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bufio.NewReader(bytes.NewReader(in))
		lim := codec.Limits{MaxDepth: 16, MaxElements: 4096}
		for i := 0; i < 64; i++ {
			fr, err := readFrame(r, 1<<16)
			if err != nil {
				return
			}
			if len(fr.body) == 0 {
				continue
			}
			p, err := decodeFrameBody(fr.body, lim)
			if err != nil {
				continue
			}
			var payload []byte
			if tr, ok := p.(*performTransfer); ok {
				payload = tr.Payload
			}
			b, err := appendFrame(nil, fr.typ, fr.channel, p.(codec.Marshaler), payload)
			if err != nil {
				t.Fatalf("re-encoding %s: %v", perfName(p), err)
			}
			fr2, err := readFrame(bufio.NewReader(bytes.NewReader(b)), 1<<24)
			if err != nil {
				t.Fatal(err)
			}
			p2, err := decodeFrameBody(fr2.body, lim)
			if err != nil {
				t.Fatalf("decoding our re-encoding of %s: %v", perfName(p), err)
			}
			if diff := cmp.Diff(p, p2, cmpopts.EquateEmpty(), cmpopts.EquateNaNs(), cmp.AllowUnexported(performAttach{})); diff != "" {
				t.Fatalf("%s changed in a round trip (-first +second)\n%s", perfName(p), diff)
			}
		}
	})
}

// FuzzServeConn feeds arbitrary frames to a live connection after the
// header: it must answer or close, never panic or hang, and its goroutines
// must end.
func FuzzServeConn(f *testing.F) {
	for _, s := range seedFrames(f) {
		f.Add(s)
	}
	cfg := &Config{
		IdleTimeout: 200 * time.Millisecond, CloseTimeout: 50 * time.Millisecond, WriteTimeout: time.Second,
		MaxSessions: 4, MaxLinksPerSession: 4, Credit: 2, MaxMessageSize: 4096,
		Limits: codec.Limits{MaxDepth: 16, MaxElements: 4096},
		OnAttach: func(l *Link, r *AttachReply) error {
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
			} else {
				go func() {
					ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
					defer cancel()
					_, _ = l.Send(ctx, &Message{Value: "v"}, nil)
				}()
			}
			return nil
		},
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		srv, cli := net.Pipe()
		done := make(chan error, 1)
		go func() { done <- ServeConn(context.Background(), srv, cfg) }()
		go func() { _, _ = io.Copy(io.Discard, cli) }()
		_ = cli.SetWriteDeadline(time.Now().Add(2 * time.Second))
		_, _ = cli.Write(protoHeader(protoAMQP))
		_, _ = cli.Write(in)
		cli.Close()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("ServeConn did not return after the peer went away")
		}
	})
}
