// SPDX-License-Identifier: MIT

package device_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/iothubemulator/iothub/device"
	"github.com/iothubemulator/iothub/emulator"
	"github.com/iothubemulator/iothub/internal/sas"
	"github.com/iothubemulator/iothub/internal/testutil"
)

// Cloud-to-device messages from the emulator's queue to this client, over
// MQTT/TLS and MQTT/WebSockets: what the hub puts in the topic must come
// out of OnMessage and ReceiveMessage intact.

// c2dTransports are the two ways the client reaches the emulator.
var c2dTransports = []struct {
	name string
	ws   bool
}{{"mqtt", false}, {"mqtt-ws", true}}

// c2dClient starts an emulator with device dev1 and returns a client for
// it (not connected) over MQTT/TLS or, with ws, MQTT/WebSockets on the
// HTTPS port.
func c2dClient(t *testing.T, ws bool) (*emulator.Server, *device.Client) {
	t.Helper()
	srv := emulator.RunT(t)
	cs, err := srv.CreateDevice("dev1")
	if err != nil {
		t.Fatal(err)
	}
	opts := []device.Option{device.WithRootCAs(srv.CAPool()), device.WithRetryPolicy(fastRetry), device.WithOperationTimeout(5 * time.Second)}
	if ws {
		parsed, err := sas.ParseConnectionString(cs)
		if err != nil {
			t.Fatal(err)
		}
		parsed.HostName = srv.WebSocketHost()
		cs = parsed.String()
		opts = append(opts, device.WithWebSockets())
	}
	c, err := device.NewFromConnectionString(cs, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return srv, c
}

// c2dAwkward are application properties that need every kind of escaping.
var c2dAwkward = map[string]string{
	"space key": "a b",
	"amp&eq=":   "x&y=z",
	"slash":     "/a/b/#",
	"percent":   "100% %41",
	"plus":      "1+1",
	"unicode":   "naïve ✓ 日本",
	"empty":     "",
}

// waitC2DSettled waits until the device's queue is empty: the client's
// PUBACK has completed every message.
func waitC2DSettled(t *testing.T, srv *emulator.Server) {
	t.Helper()
	testutil.Eventually(t, "the PUBACKs to complete the queued messages", func() bool {
		q, err := srv.PendingC2D("dev1")
		if err != nil {
			t.Fatal(err)
		}
		return len(q) == 0
	})
}

func TestEmulatorC2DOnMessage(t *testing.T) {
	for _, tr := range c2dTransports {
		t.Run(tr.name, func(t *testing.T) {
			t.Parallel()
			srv, c := c2dClient(t, tr.ws)
			// Queued before the device is even connected.
			sent, err := srv.SendC2D("dev1", &emulator.C2DMessage{
				MessageID: "m 1", CorrelationID: "c/1", UserID: "u+1", ContentType: "application/json",
				ContentEncoding: "utf-8", Ack: "full", Properties: c2dAwkward, Body: []byte(`{"fan":3}`),
			}, 10*time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			got := make(chan *device.Message, 4)
			c.OnMessage(func(m *device.Message) { got <- m })
			if err := c.Connect(testContext(t)); err != nil {
				t.Fatalf("Connect: %v", err)
			}

			var m *device.Message
			select {
			case m = <-got:
			case <-testContext(t).Done():
				t.Fatal("no message within the test's time")
			}
			want := &device.Message{
				Body: []byte(`{"fan":3}`), MessageID: "m 1", CorrelationID: "c/1", UserID: "u+1",
				ContentType: "application/json", ContentEncoding: "utf-8", To: "/devices/dev1/messages/deviceBound",
				Ack: "full", ExpiryTime: sent.ExpiryTime.Truncate(time.Millisecond), Properties: c2dAwkward,
			}
			if diff := cmp.Diff(want, m); diff != "" {
				t.Errorf("received message (-want +got):\n%s", diff)
			}
			waitC2DSettled(t, srv)
			fb, err := srv.Feedback()
			if err != nil || len(fb) != 1 || fb[0].OriginalMessageID != "m 1" || fb[0].StatusCode != "Success" {
				t.Errorf("feedback: got %+v, %v; want one Success for m 1", fb, err)
			}

			// While connected, a new message arrives at once.
			if _, err := srv.SendC2D("dev1", &emulator.C2DMessage{MessageID: "m 2", Body: []byte("second")}, 0); err != nil {
				t.Fatal(err)
			}
			select {
			case m = <-got:
			case <-testContext(t).Done():
				t.Fatal("no second message")
			}
			if m.MessageID != "m 2" || string(m.Body) != "second" || m.Ack != "none" {
				t.Errorf("second message: got %+v", m)
			}
			waitC2DSettled(t, srv)
		})
	}
}

func TestEmulatorC2DReceiveMessage(t *testing.T) {
	for _, tr := range c2dTransports {
		t.Run(tr.name, func(t *testing.T) {
			t.Parallel()
			srv, c := c2dClient(t, tr.ws)
			if err := c.Connect(testContext(t)); err != nil {
				t.Fatalf("Connect: %v", err)
			}
			for _, id := range []string{"first", "second"} {
				if _, err := srv.SendC2D("dev1", &emulator.C2DMessage{MessageID: id, Properties: map[string]string{"n": id}}, 0); err != nil {
					t.Fatal(err)
				}
			}
			// ReceiveMessage subscribes on first use; both arrive in order.
			for _, want := range []string{"first", "second"} {
				ctx, cancel := context.WithTimeout(testContext(t), 10*time.Second)
				m, err := c.ReceiveMessage(ctx)
				cancel()
				if err != nil {
					t.Fatalf("ReceiveMessage: %v", err)
				}
				if m.MessageID != want || m.Properties["n"] != want {
					t.Errorf("got %s %v, want %s", m.MessageID, m.Properties, want)
				}
			}
			waitC2DSettled(t, srv)
		})
	}
}
