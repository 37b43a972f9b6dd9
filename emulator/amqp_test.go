// SPDX-License-Identifier: MIT

package emulator_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azeventhubs"
	goamqp "github.com/Azure/go-amqp"
	"github.com/gorilla/websocket"

	"github.com/iothubemulator/iothub/device"
	"github.com/iothubemulator/iothub/emulator"
	"github.com/iothubemulator/iothub/internal/sas"
	"github.com/iothubemulator/iothub/internal/wsconn"
)

// amqpPutToken puts the owner's token on $cbs and reports the status.
func amqpPutToken(t testing.TB, srv *emulator.Server, c *goamqp.Conn) int32 {
	t.Helper()
	_, status := amqpPutTokenFor(t, c, srv.HostName(), ownerToken(t, srv))
	return status
}

// amqpPutTokenFor puts a token for audience on $cbs, on a new session of
// c, and reports the status; the session stays open for further links.
func amqpPutTokenFor(t testing.TB, c *goamqp.Conn, audience, token string) (*goamqp.Session, int32) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := c.NewSession(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	snd, err := s.NewSender(ctx, "$cbs", nil)
	if err != nil {
		t.Fatal(err)
	}
	rcv, err := s.NewReceiver(ctx, "$cbs", &goamqp.ReceiverOptions{TargetAddress: "cbs-reply"})
	if err != nil {
		t.Fatal(err)
	}
	reply := "cbs-reply"
	err = snd.Send(ctx, &goamqp.Message{Value: token, Properties: &goamqp.MessageProperties{MessageID: "1", ReplyTo: &reply},
		ApplicationProperties: map[string]any{"operation": "put-token", "type": "servicebus.windows.net:sastoken", "name": audience}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	m, err := rcv.Receive(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	status, _ := m.ApplicationProperties["status-code"].(int32)
	return s, status
}

// TestAMQPListeners: RunT serves AMQP over TLS, plain AMQP and AMQP over
// WebSockets on the HTTPS port, where MQTT over WebSockets still answers.
func TestAMQPListeners(t *testing.T) {
	srv := emulator.RunT(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	anon := &goamqp.ConnOptions{SASLType: goamqp.SASLTypeAnonymous()}
	tlsOpts := *anon
	tlsOpts.TLSConfig = srv.TLSConfig()
	dial := map[string]func() (*goamqp.Conn, error){
		"tls":   func() (*goamqp.Conn, error) { return goamqp.Dial(ctx, "amqps://"+srv.AMQPAddr(), &tlsOpts) },
		"plain": func() (*goamqp.Conn, error) { return goamqp.Dial(ctx, "amqp://"+srv.AMQPPlainAddr(), anon) },
	}
	for _, path := range []string{"/$iothub/websocket", "/$servicebus/websocket"} {
		dial["websocket "+path] = func() (*goamqp.Conn, error) {
			nc, err := wsDial(ctx, srv, path, "AMQPWSB10")
			if err != nil {
				return nil, err
			}
			return goamqp.NewConn(ctx, nc, anon)
		}
	}
	for name, d := range dial {
		t.Run(name, func(t *testing.T) {
			c, err := d()
			if err != nil {
				t.Fatalf("connect: %v", err)
			}
			defer c.Close()
			if got := amqpPutToken(t, srv, c); got != 200 {
				t.Fatalf("put-token: status %d, want 200", got)
			}
		})
	}
	t.Run("mqtt over websockets on the same path", func(t *testing.T) {
		nc, err := wsDial(ctx, srv, "/$iothub/websocket", "mqtt")
		if err != nil {
			t.Fatalf("MQTT-WS upgrade: %v", err)
		}
		nc.Close()
	})
}

// wsDial upgrades to a WebSocket with the subprotocol.
func wsDial(ctx context.Context, srv *emulator.Server, path, proto string) (net.Conn, error) {
	d := websocket.Dialer{TLSClientConfig: srv.TLSConfig(), Subprotocols: []string{proto},
		NetDialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, srv.HTTPSAddr())
		}}
	ws, resp, err := d.DialContext(ctx, "wss://"+srv.HostName()+path, nil)
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	if !strings.EqualFold(ws.Subprotocol(), proto) {
		ws.Close()
		return nil, errors.New("server chose subprotocol " + ws.Subprotocol())
	}
	return wsconn.New(ws), nil
}

// TestEventHubEndpointThroughDevice: a device sends over MQTT; the Go
// Event Hubs SDK reads the message with the connection strings the
// emulator gives (TLS, and UseDevelopmentEmulator over plain AMQP), and
// GET /emulator/eventhub returns the same strings.
func TestEventHubEndpointThroughDevice(t *testing.T) {
	srv := emulator.RunT(t)
	cs, err := srv.CreateDevice("sensor")
	if err != nil {
		t.Fatal(err)
	}
	dc, err := device.NewFromConnectionString(cs, device.WithRootCAs(srv.CAPool()), device.WithoutRetries())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dc.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := dc.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if err := dc.SendMessage(ctx, &device.Message{Body: []byte(`{"t":1}`), MessageID: "m1", ContentType: "application/json",
		Properties: map[string]string{"k": "v"}}); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		cs   string
		opts *azeventhubs.ConsumerClientOptions
	}{
		"tls":                    {srv.EventHubConnectionString(), &azeventhubs.ConsumerClientOptions{TLSConfig: srv.TLSConfig()}},
		"UseDevelopmentEmulator": {srv.EventHubEmulatorConnectionString(), nil},
	} {
		t.Run(name, func(t *testing.T) {
			client, err := azeventhubs.NewConsumerClientFromConnectionString(tc.cs, "", azeventhubs.DefaultConsumerGroup, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close(context.Background())
			props, err := client.GetEventHubProperties(ctx, nil)
			if err != nil {
				t.Fatalf("GetEventHubProperties: %v", err)
			}
			var got []string
			for _, p := range props.PartitionIDs {
				pc, err := client.NewPartitionClient(p, &azeventhubs.PartitionClientOptions{StartPosition: azeventhubs.StartPosition{Earliest: to.Ptr(true)}})
				if err != nil {
					t.Fatal(err)
				}
				short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
				evs, _ := pc.ReceiveEvents(short, 10, nil)
				cancel()
				pc.Close(context.Background())
				for _, ev := range evs {
					got = append(got, fmt.Sprintf("%s %s %s %s %s", p, ev.Body, *ev.MessageID, ev.Properties["k"], ev.SystemProperties["iothub-connection-device-id"]))
				}
			}
			want := fmt.Sprintf("%d {\"t\":1} m1 v sensor", srv.PartitionOf("sensor"))
			if len(got) != 1 || got[0] != want {
				t.Errorf("events %v, want [%s]", got, want)
			}
		})
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+srv.HTTPSAddr()+"/emulator/eventhub", nil)
	req.Header.Set("Authorization", ownerToken(t, srv))
	resp, err := (&http.Client{Transport: &http.Transport{TLSClientConfig: srv.TLSConfig()}}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var info map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&info); err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /emulator/eventhub: %d, %v", resp.StatusCode, err)
	}
	want := map[string]string{"name": srv.EventHubName(), "connectionString": srv.EventHubConnectionString(),
		"developmentEmulatorConnectionString": srv.EventHubEmulatorConnectionString()}
	if !reflect.DeepEqual(info, want) {
		t.Errorf("GET /emulator/eventhub = %v, want %v", info, want)
	}
}

func ownerToken(t testing.TB, srv *emulator.Server) string {
	t.Helper()
	cs, err := sas.ParseConnectionString(srv.ConnectionString())
	if err != nil {
		t.Fatal(err)
	}
	tok, err := sas.NewToken(srv.HostName(), cs.SharedAccessKeyName, cs.SharedAccessKey, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestAMQPPortsFollowAFreeHTTPSPort: an emulator whose HTTPS port is left
// to the system, and whose AMQP addresses are not set, takes free AMQP
// ports too, so that tests never fight over 5671 and 5672.
func TestAMQPPortsFollowAFreeHTTPSPort(t *testing.T) {
	var servers []*emulator.Server
	for range 2 {
		s, err := emulator.New(emulator.Options{InMemory: true, MQTTAddr: "127.0.0.1:0", HTTPSAddr: "127.0.0.1:0"})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if err := s.Start(); err != nil {
			t.Fatalf("start: %v", err)
		}
		servers = append(servers, s)
	}
	for _, s := range servers {
		for _, a := range []string{s.AMQPAddr(), s.AMQPPlainAddr()} {
			host, port, _ := net.SplitHostPort(a)
			if host != "127.0.0.1" || port == "5671" || port == "5672" {
				t.Errorf("AMQP listener on %s; want a free loopback port", a)
			}
		}
	}
}

// TestAMQPFrameTraceAtDebug: the emulator's logger at debug level (what
// --log-level debug sets) traces every AMQP frame.
func TestAMQPFrameTraceAtDebug(t *testing.T) {
	var mu sync.Mutex
	var buf strings.Builder
	w := writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return buf.Write(p) })
	srv := emulator.RunT(t, func(o *emulator.Options) {
		o.Logger = slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := goamqp.Dial(ctx, "amqp://"+srv.AMQPPlainAddr(), &goamqp.ConnOptions{SASLType: goamqp.SASLTypeAnonymous()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := amqpPutToken(t, srv, c); got != 200 {
		t.Fatalf("put-token: %d", got)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, want := range []string{`msg="amqp frame"`, "perf=open", "perf=attach", "perf=transfer"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("the debug log lacks %q", want)
		}
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// TestAMQPDeviceTelemetry: a device speaking AMQP to an in-process server
// is connected from its put-token, and its telemetry is what WaitMessages
// returns, labelled amqp (amqp-ws over WebSockets).
func TestAMQPDeviceTelemetry(t *testing.T) {
	srv := emulator.RunT(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cs, err := srv.CreateDevice("amqp-dev")
	if err != nil {
		t.Fatal(err)
	}
	dcs, err := sas.ParseConnectionString(cs)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := sas.NewToken(sas.ResourceURI(srv.HostName(), "amqp-dev", ""), "", dcs.SharedAccessKey, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	anon := &goamqp.ConnOptions{SASLType: goamqp.SASLTypeAnonymous(), TLSConfig: srv.TLSConfig()}
	send := func(c *goamqp.Conn, body string) {
		t.Helper()
		s, status := amqpPutTokenFor(t, c, srv.HostName()+"/devices/amqp-dev", tok)
		if status != 200 {
			t.Fatalf("put-token: status %d, want 200", status)
		}
		if !srv.IsConnected("amqp-dev", "") {
			t.Fatal("not connected after put-token")
		}
		ev, err := s.NewSender(ctx, "/devices/amqp-dev/messages/events", nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := ev.Send(ctx, &goamqp.Message{Data: [][]byte{[]byte(body)}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	c, err := goamqp.Dial(ctx, "amqps://"+srv.AMQPAddr(), anon)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	send(c, "over amqp")
	nc, err := wsDial(ctx, srv, "/$iothub/websocket", "AMQPWSB10")
	if err != nil {
		t.Fatal(err)
	}
	ws, err := goamqp.NewConn(ctx, nc, anon)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	send(ws, "over amqp-ws")
	ms, err := srv.WaitMessages("amqp-dev", 2, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	got := []string{ms[0].Transport + ": " + string(ms[0].Body), ms[1].Transport + ": " + string(ms[1].Body)}
	if got[0] != "amqp: over amqp" || got[1] != "amqp-ws: over amqp-ws" {
		t.Errorf("recorded %q, want amqp: over amqp, amqp-ws: over amqp-ws", got)
	}
}
