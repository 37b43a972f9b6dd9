// SPDX-License-Identifier: MIT

package amqp

import (
	"bufio"
	"context"
	"net"
	"sync"
	"testing"
	"time"

	goamqp "github.com/Azure/go-amqp"
)

// Benchmarks of the engine with go-amqp as the peer. Compare them with the
// baselines measured in the same run: BenchmarkBaselineLoopback (the same
// transfer frames through a loopback socket, no AMQP processing) and
// BenchmarkBaselineGoAMQPCodec (go-amqp's own marshal and unmarshal of the
// message, which every message through a go-amqp peer pays).

var benchPayload = make([]byte, 256)

func reportRate(b *testing.B, start time.Time) {
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}

// Client to server: a go-amqp sender, the application accepts at once.
func BenchmarkClientToServer(b *testing.B) {
	addr := startServer(b, &Config{Credit: 300, OnAttach: func(l *Link, r *AttachReply) error {
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
	for _, senders := range []int{1, 8} {
		name := "sync"
		if senders > 1 {
			name = "8-senders"
		}
		b.Run(name, func(b *testing.B) {
			c := dial(b, addr, nil)
			s := session(b, c)
			snd, err := s.NewSender(context.Background(), "q", nil)
			if err != nil {
				b.Fatal(err)
			}
			msg := goamqp.NewMessage(benchPayload)
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			per := b.N / senders
			for g := 0; g < senders; g++ {
				n := per
				if g == 0 {
					n += b.N % senders
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < n; i++ {
						if err := snd.Send(context.Background(), msg, nil); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			reportRate(b, start)
		})
	}
}

// Server to client: the application sends with credit from a go-amqp
// receiver (prefetch 300, as azeventhubs), which accepts each message.
func BenchmarkServerToClient(b *testing.B) {
	for _, mode := range []string{"unsettled", "settled"} {
		b.Run(mode, func(b *testing.B) {
			links := make(chan *Link, 1)
			addr := startServer(b, &Config{OnAttach: func(l *Link, r *AttachReply) error { links <- l; return nil }})
			c := dial(b, addr, nil)
			opts := &goamqp.ReceiverOptions{Credit: 300}
			if mode == "settled" {
				opts.RequestedSenderSettleMode = goamqp.SenderSettleModeSettled.Ptr()
			}
			rcv, err := session(b, c).NewReceiver(context.Background(), "src", opts)
			if err != nil {
				b.Fatal(err)
			}
			l := <-links
			raw := mustMarshal(b, &Message{Data: [][]byte{benchPayload}})
			b.ResetTimer()
			start := time.Now()
			go func() {
				for i := 0; i < b.N; i++ {
					if _, err := l.SendRaw(context.Background(), raw, nil); err != nil {
						b.Error(err)
						return
					}
				}
			}()
			for i := 0; i < b.N; i++ {
				m, err := rcv.Receive(context.Background(), nil)
				if err != nil {
					b.Fatal(err)
				}
				if mode == "unsettled" {
					if err := rcv.AcceptMessage(context.Background(), m); err != nil {
						b.Fatal(err)
					}
				}
			}
			reportRate(b, start)
		})
	}
}

// The floor: the same transfer frames written to and read from a loopback
// socket, with no AMQP processing at all.
func BenchmarkBaselineLoopback(b *testing.B) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	raw := mustMarshal(b, &Message{Data: [][]byte{benchPayload}})
	id := uint32(0)
	frame, _ := appendFrame(nil, frameAMQP, 0, &performTransfer{Handle: 0, DeliveryID: &id, DeliveryTag: make([]byte, 8)}, raw)
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		for {
			if _, err := readFrame(r, 1<<20); err != nil {
				return
			}
		}
	}()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(c)
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		_, _ = w.Write(frame)
	}
	_ = w.Flush()
	c.Close()
	<-done
	reportRate(b, start)
}

// What go-amqp spends per message on its own codec.
func BenchmarkBaselineGoAMQPCodec(b *testing.B) {
	msg := goamqp.NewMessage(benchPayload)
	start := time.Now()
	for i := 0; i < b.N; i++ {
		enc, err := msg.MarshalBinary()
		if err != nil {
			b.Fatal(err)
		}
		var m goamqp.Message
		if err := m.UnmarshalBinary(enc); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b, start)
}

// Our message codec on the same message, for comparison.
func BenchmarkMessageCodec(b *testing.B) {
	msg := &Message{Data: [][]byte{benchPayload}}
	start := time.Now()
	for i := 0; i < b.N; i++ {
		enc, err := msg.MarshalBinary()
		if err != nil {
			b.Fatal(err)
		}
		if _, err := DecodeMessage(enc, Config{}.Limits); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b, start)
}
