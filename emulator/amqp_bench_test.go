// SPDX-License-Identifier: MIT

package emulator_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azeventhubs"
	goamqp "github.com/Azure/go-amqp"

	"github.com/iothubemulator/iothub/device"
	"github.com/iothubemulator/iothub/emulator"
)

// benchDevices spreads cloud-to-device messages over enough devices that
// no queue reaches its limit of 50 within a run; the queues are purged
// (untimed) at the start of each run and whenever they might fill.
const benchDevices = 400

func c2dBenchHub(b *testing.B) (*emulator.Server, func(i int) string, func(b *testing.B, i int)) {
	srv := emulator.RunT(b)
	for i := range benchDevices {
		if _, err := srv.CreateDevice(fmt.Sprintf("c2d-%d", i)); err != nil {
			b.Fatal(err)
		}
	}
	id := func(i int) string { return fmt.Sprintf("c2d-%d", i%benchDevices) }
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: srv.TLSConfig()}}
	purgeIfFull := func(b *testing.B, i int) {
		if i%(benchDevices*40) != 0 {
			return
		}
		b.StopTimer()
		for d := range benchDevices {
			req, _ := http.NewRequest(http.MethodDelete, "https://"+srv.HTTPSAddr()+"/devices/"+id(d)+"/commands?api-version=2021-04-12", nil)
			req.Header.Set("Authorization", ownerToken(b, srv))
			resp, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			resp.Body.Close()
		}
		b.StartTimer()
	}
	return srv, id, purgeIfFull
}

// BenchmarkC2D measures cloud-to-device messages accepted over AMQP (a
// service SDK's /messages/devicebound link, each send waiting for its
// accepted outcome) beside the emulator-only REST route, one at a time and
// from 8 senders; report the AMQP/REST ratio of each.
func BenchmarkC2D(b *testing.B) {
	srv, id, purgeIfFull := c2dBenchHub(b)
	tok := ownerToken(b, srv)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: srv.TLSConfig(), MaxIdleConnsPerHost: 64}}
	rest := func(b *testing.B, i int) {
		req, _ := http.NewRequest(http.MethodPost, "https://"+srv.HTTPSAddr()+"/emulator/devices/"+id(i)+"/messages/devicebound", strings.NewReader("payload"))
		req.Header.Set("Authorization", tok)
		resp, err := client.Do(req)
		if err != nil {
			b.Error(err)
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Errorf("REST C2D: %d", resp.StatusCode)
		}
	}
	ctx := context.Background()
	conn, err := goamqp.Dial(ctx, "amqps://"+srv.AMQPAddr(), &goamqp.ConnOptions{SASLType: goamqp.SASLTypeAnonymous(), TLSConfig: srv.TLSConfig()})
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	if st := amqpPutToken(b, srv, conn); st != 200 {
		b.Fatalf("put-token: %d", st)
	}
	newSender := func() *goamqp.Sender {
		s, err := conn.NewSession(ctx, nil)
		if err != nil {
			b.Fatal(err)
		}
		snd, err := s.NewSender(ctx, "/messages/devicebound", nil)
		if err != nil {
			b.Fatal(err)
		}
		return snd
	}
	amqpSend := func(b *testing.B, snd *goamqp.Sender, i int) {
		to := "/devices/" + id(i) + "/messages/devicebound"
		if err := snd.Send(ctx, &goamqp.Message{Data: [][]byte{[]byte("payload")}, Properties: &goamqp.MessageProperties{To: &to}}, nil); err != nil {
			b.Error(err)
		}
	}
	b.Run("rest", func(b *testing.B) {
		for i := range b.N {
			purgeIfFull(b, i)
			rest(b, i)
		}
	})
	snd := newSender()
	b.Run("amqp", func(b *testing.B) {
		for i := range b.N {
			purgeIfFull(b, i)
			amqpSend(b, snd, i)
		}
	})
	var n atomic.Int64
	b.Run("rest-8", func(b *testing.B) {
		purgeIfFull(b, 0)
		n.Store(0)
		b.SetParallelism(max(1, 8/runtime.GOMAXPROCS(0)))
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				rest(b, int(n.Add(1)))
			}
		})
	})
	senders := make(chan *goamqp.Sender, 64)
	b.Run("amqp-8", func(b *testing.B) {
		purgeIfFull(b, 0)
		n.Store(0)
		b.SetParallelism(max(1, 8/runtime.GOMAXPROCS(0)))
		b.RunParallel(func(pb *testing.PB) {
			var snd *goamqp.Sender
			select {
			case snd = <-senders:
			default:
				snd = newSender()
			}
			defer func() { senders <- snd }()
			for pb.Next() {
				amqpSend(b, snd, int(n.Add(1)))
			}
		})
	})
}

// BenchmarkTelemetryThroughput measures device-to-cloud messages per
// second: ingested over MQTT (QoS 1, each acknowledged once durable),
// delivered to an Event Hubs consumer (azeventhubs) from a backlog, and
// delivered while a device sends (ingest and read together). Report the
// read rates as ratios of the ingest rate: reading keeps up when
// ingest-and-read runs at the ingest rate.
func BenchmarkTelemetryThroughput(b *testing.B) {
	srv := emulator.RunT(b)
	cs, err := srv.CreateDevice("bench-sensor")
	if err != nil {
		b.Fatal(err)
	}
	dc, err := device.NewFromConnectionString(cs, device.WithRootCAs(srv.CAPool()), device.WithoutRetries())
	if err != nil {
		b.Fatal(err)
	}
	defer dc.Close()
	ctx := context.Background()
	if err := dc.Connect(ctx); err != nil {
		b.Fatal(err)
	}
	send := func(b *testing.B, n int) {
		for i := range n {
			if err := dc.SendMessage(ctx, &device.Message{Body: []byte(fmt.Sprintf(`{"n":%d}`, i)), Properties: map[string]string{"k": "v"}}); err != nil {
				b.Fatal(err)
			}
		}
	}
	client, err := azeventhubs.NewConsumerClientFromConnectionString(srv.EventHubConnectionString(), "", azeventhubs.DefaultConsumerGroup,
		&azeventhubs.ConsumerClientOptions{TLSConfig: srv.TLSConfig()})
	if err != nil {
		b.Fatal(err)
	}
	defer client.Close(ctx)
	partition := fmt.Sprint(srv.PartitionOf("bench-sensor"))
	var next int64 // the partition's next sequence number, across sub-benchmarks
	read := func(b *testing.B, n int) {
		pc, err := client.NewPartitionClient(partition, &azeventhubs.PartitionClientOptions{
			StartPosition: azeventhubs.StartPosition{SequenceNumber: to.Ptr(next), Inclusive: true}})
		if err != nil {
			b.Fatal(err)
		}
		defer pc.Close(ctx)
		for got := 0; got < n; {
			rctx, cancel := context.WithTimeout(ctx, time.Minute)
			evs, err := pc.ReceiveEvents(rctx, min(300, n-got), nil)
			cancel()
			if err != nil {
				b.Fatalf("after %d of %d events: %v", got, n, err)
			}
			got += len(evs)
			next = evs[len(evs)-1].SequenceNumber + 1
		}
	}
	b.Run("mqtt-ingest", func(b *testing.B) {
		send(b, b.N)
		b.StopTimer()
		read(b, b.N) // keep the reader's position at the end of the log
	})
	b.Run("eventhub-read-backlog", func(b *testing.B) {
		b.StopTimer()
		send(b, b.N)
		b.StartTimer()
		read(b, b.N)
	})
	b.Run("ingest-and-read", func(b *testing.B) {
		done := make(chan struct{})
		go func() {
			defer close(done)
			send(b, b.N)
		}()
		read(b, b.N)
		<-done
	})
}
