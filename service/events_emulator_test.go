// SPDX-License-Identifier: MIT

package service_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azeventhubs"
	"github.com/google/go-cmp/cmp"

	"github.com/iothubemulator/iothub/device"
	"github.com/iothubemulator/iothub/emulator"
	"github.com/iothubemulator/iothub/internal/sas"
	"github.com/iothubemulator/iothub/service"
)

// Tests of the Event Hub-compatible endpoint's client: the redirect, the
// event receiver from each starting position, over WebSockets and AMQP
// over TLS, and from the endpoint's own connection strings.

// receiveN receives n events.
func receiveN(t *testing.T, ctx context.Context, r *service.EventReceiver, n int) []*service.Event {
	t.Helper()
	var out []*service.Event
	for len(out) < n {
		ev, err := r.Receive(ctx)
		if err != nil {
			t.Fatalf("Receive after %d of %d events: %v", len(out), n, err)
		}
		out = append(out, ev)
	}
	return out
}

// expectNothing checks that no event arrives for a while.
func expectNothing(t *testing.T, ctx context.Context, r *service.EventReceiver) {
	t.Helper()
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if ev, err := r.Receive(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Receive = %+v, %v; want nothing more", ev, err)
	}
}

func messageIDs(evs []*service.Event) []string {
	var ids []string
	for _, ev := range evs {
		ids = append(ids, ev.MessageID)
	}
	return ids
}

func newEventReceiver(t *testing.T, ctx context.Context, c *service.Client, o service.EventReceiverOptions) *service.EventReceiver {
	t.Helper()
	r, err := c.NewEventReceiver(ctx, o)
	if err != nil {
		t.Fatalf("NewEventReceiver(%+v): %v", o, err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

func TestEventReceiver(t *testing.T) {
	for _, tr := range amqpTransports {
		t.Run(tr.name, func(t *testing.T) {
			srv := emulator.RunT(t)
			ctx := testCtx(t)
			c := amqpClient(t, srv, "", tr.opts(srv)...)
			d := connectDevice(t, ctx, srv, createDevice(t, srv, "dev1"))
			createDevice(t, srv, "dev2")
			modCS, err := srv.CreateModule("dev2", "m1")
			if err != nil {
				t.Fatal(err)
			}
			m := connectDevice(t, ctx, srv, modCS)
			send(t, ctx, d, &device.Message{Body: []byte(`{"t":21.5}`), MessageID: "e1", CorrelationID: "c1",
				ContentType: "application/json", ContentEncoding: "utf-8", Properties: map[string]string{"alert": "high"}})
			send(t, ctx, m, &device.Message{Body: []byte("from the module"), MessageID: "e2"})

			// From the start: both, with what the hub adds.
			all := newEventReceiver(t, ctx, c, service.EventReceiverOptions{Start: service.EventPosition{Earliest: true}})
			if got := all.Partitions(); len(got) != 4 || all.EventHubName() != srv.EventHubName() {
				t.Errorf("partitions %v of %q, want 4 of %q", got, all.EventHubName(), srv.EventHubName())
			}
			evs := receiveN(t, ctx, all, 2)
			if evs[0].MessageID != "e1" {
				evs[0], evs[1] = evs[1], evs[0] // two partitions: any order
			}
			e1, e2 := evs[0], evs[1]
			if diff := cmp.Diff([]string{"e1", "e2"}, messageIDs(evs)); diff != "" {
				t.Fatalf("events (-want +got):\n%s", diff)
			}
			if e1.Partition != strconv.Itoa(srv.PartitionOf("dev1")) || e2.Partition != strconv.Itoa(srv.PartitionOf("dev2")) {
				t.Errorf("partitions %s and %s, want %d and %d", e1.Partition, e2.Partition, srv.PartitionOf("dev1"), srv.PartitionOf("dev2"))
			}
			if e1.DeviceID != "dev1" || e1.ModuleID != "" || e2.DeviceID != "dev2" || e2.ModuleID != "m1" {
				t.Errorf("senders %s/%s and %s/%s", e1.DeviceID, e1.ModuleID, e2.DeviceID, e2.ModuleID)
			}
			if e1.CorrelationID != "c1" || e1.ContentType != "application/json" || e1.ContentEncoding != "utf-8" ||
				string(e1.Body) != `{"t":21.5}` || !cmp.Equal(e1.Properties, map[string]string{"alert": "high"}) {
				t.Errorf("e1's properties and body: %+v", e1)
			}
			if e1.MessageSource != "Telemetry" || !strings.Contains(e1.AuthMethod, `"type":"sas"`) || e1.Offset == "" ||
				e1.EnqueuedTime.IsZero() || e1.SequenceNumber < 0 || e1.Annotations["x-opt-offset"] != e1.Offset {
				t.Errorf("e1's hub properties: source %q auth %q offset %q enqueued %v seq %d", e1.MessageSource, e1.AuthMethod, e1.Offset, e1.EnqueuedTime, e1.SequenceNumber)
			}

			// From the end (the default): only what comes later.
			latest := newEventReceiver(t, ctx, c, service.EventReceiverOptions{})
			time.Sleep(10 * time.Millisecond) // a later enqueued time than e1 and e2
			after := time.Now()
			time.Sleep(10 * time.Millisecond)
			send(t, ctx, d, &device.Message{MessageID: "e3"})
			if got := receiveN(t, ctx, latest, 1); got[0].MessageID != "e3" {
				t.Errorf("from the end: got %s, want e3", got[0].MessageID)
			}
			expectNothing(t, ctx, latest)

			// From an enqueued time.
			r := newEventReceiver(t, ctx, c, service.EventReceiverOptions{Start: service.EventPosition{EnqueuedTime: after}})
			if got := receiveN(t, ctx, r, 1); got[0].MessageID != "e3" {
				t.Errorf("from %v: got %s, want e3", after, got[0].MessageID)
			}
			expectNothing(t, ctx, r)

			// One partition, from a sequence number or offset, exclusive
			// or not.
			p := e1.Partition
			seq := e1.SequenceNumber
			for _, tt := range []struct {
				name string
				pos  service.EventPosition
				want []string
			}{
				{"after sequence number", service.EventPosition{SequenceNumber: &seq}, []string{"e3"}},
				{"at sequence number", service.EventPosition{SequenceNumber: &seq, Inclusive: true}, []string{"e1", "e3"}},
				{"after offset", service.EventPosition{Offset: e1.Offset}, []string{"e3"}},
				{"at offset", service.EventPosition{Offset: e1.Offset, Inclusive: true}, []string{"e1", "e3"}},
			} {
				t.Run(tt.name, func(t *testing.T) {
					r := newEventReceiver(t, ctx, c, service.EventReceiverOptions{Partitions: []string{p},
						PartitionStart: map[string]service.EventPosition{p: tt.pos}})
					if diff := cmp.Diff(tt.want, messageIDs(receiveN(t, ctx, r, len(tt.want)))); diff != "" {
						t.Errorf("events (-want +got):\n%s", diff)
					}
					expectNothing(t, ctx, r)
				})
			}

			// Another consumer group reads the same events.
			cg := newEventReceiver(t, ctx, c, service.EventReceiverOptions{ConsumerGroup: "backend",
				Partitions: []string{e2.Partition}, Start: service.EventPosition{Earliest: true}})
			if got := receiveN(t, ctx, cg, 1); got[0].MessageID != "e2" {
				t.Errorf("consumer group backend: got %s, want e2", got[0].MessageID)
			}
		})
	}
}

func TestEventReceiverOptionErrors(t *testing.T) {
	srv := emulator.RunT(t)
	ctx := testCtx(t)
	c := amqpClient(t, srv, "")
	seq := int64(1)
	for _, tt := range []struct {
		name string
		o    service.EventReceiverOptions
		want string
	}{
		{"unknown partition", service.EventReceiverOptions{Partitions: []string{"9"}}, `has no partition "9"; its partitions are 0, 1, 2, 3`},
		{"two positions", service.EventReceiverOptions{Start: service.EventPosition{Earliest: true, SequenceNumber: &seq}}, "more than one of"},
		{"start of a partition not read", service.EventReceiverOptions{Partitions: []string{"0"}, PartitionStart: map[string]service.EventPosition{"1": {Earliest: true}}}, `names partition "1"`},
		{"negative prefetch", service.EventReceiverOptions{Prefetch: -1}, "negative prefetch"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, err := c.NewEventReceiver(ctx, tt.o)
			if err == nil {
				r.Close()
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("NewEventReceiver: %v; want an error with %q", err, tt.want)
			}
		})
	}
}

// TestEventHubEndpoint follows the hub's redirect and checks the
// connection string it yields with the official Go Event Hubs SDK.
func TestEventHubEndpoint(t *testing.T) {
	for _, tr := range amqpTransports {
		t.Run(tr.name, func(t *testing.T) {
			srv := emulator.RunT(t)
			ctx := testCtx(t)
			c := amqpClient(t, srv, "", tr.opts(srv)...)
			ep, err := c.EventHubEndpoint(ctx)
			if err != nil {
				t.Fatalf("EventHubEndpoint: %v", err)
			}
			if ep.Name != srv.EventHubName() || ep.ConnectionString != srv.EventHubConnectionString() {
				t.Errorf("endpoint %+v, want name %q and connection string %q", ep, srv.EventHubName(), srv.EventHubConnectionString())
			}
			cc, err := azeventhubs.NewConsumerClientFromConnectionString(ep.ConnectionString, "", azeventhubs.DefaultConsumerGroup,
				&azeventhubs.ConsumerClientOptions{TLSConfig: srv.TLSConfig()})
			if err != nil {
				t.Fatal(err)
			}
			defer cc.Close(ctx)
			props, err := cc.GetEventHubProperties(ctx, nil)
			if err != nil || props.Name != ep.Name || len(props.PartitionIDs) != 4 {
				t.Errorf("azeventhubs with the endpoint's connection string: %+v, %v", props, err)
			}
		})
	}
}

func TestEventReceiverFromConnectionString(t *testing.T) {
	srv := emulator.RunT(t)
	ctx := testCtx(t)
	d := connectDevice(t, ctx, srv, createDevice(t, srv, "dev1"))
	send(t, ctx, d, &device.Message{MessageID: "e1"})
	for _, tt := range []struct {
		name string
		cs   string
		opts []service.Option
	}{
		{"TLS", srv.EventHubConnectionString(), []service.Option{service.WithRootCAs(srv.CAPool())}},
		{"UseDevelopmentEmulator", srv.EventHubEmulatorConnectionString(), nil},
		{"TLS at an address", strings.Replace(srv.EventHubConnectionString(), srv.EventHubConnectionString()[len("Endpoint=sb://"):strings.Index(srv.EventHubConnectionString(), "/;")], "localhost", 1),
			[]service.Option{service.WithRootCAs(srv.CAPool()), service.WithAMQPAddr(srv.AMQPAddr())}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, err := service.NewEventReceiverFromConnectionString(ctx, tt.cs,
				service.EventReceiverOptions{Start: service.EventPosition{Earliest: true}}, append(tt.opts, service.WithoutRetries())...)
			if err != nil {
				t.Fatalf("NewEventReceiverFromConnectionString(%q): %v", tt.cs, err)
			}
			defer r.Close()
			if got := receiveN(t, ctx, r, 1); got[0].MessageID != "e1" || got[0].DeviceID != "dev1" {
				t.Errorf("got %+v, want dev1's e1", got[0])
			}
		})
	}

	wrongKey := strings.Replace(srv.EventHubEmulatorConnectionString(), "SharedAccessKey=", "SharedAccessKey=AAAA", 1)
	if _, err := service.NewEventReceiverFromConnectionString(ctx, wrongKey, service.EventReceiverOptions{}, service.WithoutRetries()); !errors.Is(err, service.ErrUnauthorized) {
		t.Errorf("a wrong key: %v; want ErrUnauthorized", err)
	}
	for _, bad := range []string{
		"",
		"Endpoint=sb://localhost/;SharedAccessKeyName=iothubowner;SharedAccessKey=a2V5",
		"Endpoint=localhost;SharedAccessKeyName=iothubowner;SharedAccessKey=a2V5;EntityPath=hub",
		"Endpoint=sb://localhost/;SharedAccessSignature=SharedAccessSignature sr=x&sig=y&se=1;EntityPath=hub",
		"Endpoint=sb://localhost/;SharedAccessKeyName=iothubowner;SharedAccessKey=not base64!;EntityPath=hub",
		"Endpoint",
	} {
		if r, err := service.NewEventReceiverFromConnectionString(ctx, bad, service.EventReceiverOptions{}); err == nil {
			r.Close()
			t.Errorf("NewEventReceiverFromConnectionString(%q) succeeded", bad)
		}
	}
}

// TestEventReceiverNeedsAKey checks that a client built from a SAS token,
// which cannot sign for the event hub, says so.
func TestEventReceiverNeedsAKey(t *testing.T) {
	srv := emulator.RunT(t)
	ctx := testCtx(t)
	cs, err := sas.ParseConnectionString(srv.ConnectionString())
	if err != nil {
		t.Fatal(err)
	}
	tok, err := sas.NewToken(sas.ResourceURI(cs.HostName, "", ""), cs.SharedAccessKeyName, cs.SharedAccessKey, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	c, err := service.NewFromSASToken(cs.HostName, tok, service.WithRootCAs(srv.CAPool()), service.WithoutRetries())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	createDevice(t, srv, "dev1")
	if err := c.SendC2D(ctx, "dev1", &service.C2DMessage{}); err != nil {
		t.Fatalf("SendC2D with the token: %v", err)
	}
	ep, err := c.EventHubEndpoint(ctx)
	if err != nil || ep.ConnectionString != "" || ep.Name != srv.EventHubName() {
		t.Fatalf("EventHubEndpoint = %+v, %v; want the endpoint without a connection string", ep, err)
	}
	if _, err := c.NewEventReceiver(ctx, service.EventReceiverOptions{}); err == nil || !strings.Contains(err.Error(), "with a key") {
		t.Errorf("NewEventReceiver: %v; want an error saying a key is needed", err)
	}
}
