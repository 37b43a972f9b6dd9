// SPDX-License-Identifier: MIT

package emulator_test

import (
	"context"
	"crypto/tls"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/google/go-cmp/cmp"

	"github.com/iothubemulator/iothub/device"
	"github.com/iothubemulator/iothub/emulator"
	"github.com/iothubemulator/iothub/internal/sas"
	"github.com/iothubemulator/iothub/internal/testutil"
)

// The emulator's cloud-to-device test API (SendC2D, PendingC2D, Feedback,
// SetTime) and WaitMessages, driven through real device clients.

// c2dWait bounds every wait for the network in these tests.
const c2dWait = 10 * time.Second

// TestC2DEchoThroughDevice has a device client answer every
// cloud-to-device message with telemetry, and checks the whole loop with
// the test API: SendC2D in, WaitMessages out, the queue emptied by the
// PUBACK, and feedback for the acks that asked for it.
func TestC2DEchoThroughDevice(t *testing.T) {
	srv := emulator.RunT(t)
	cs, err := srv.CreateDevice("echo")
	if err != nil {
		t.Fatal(err)
	}
	c, err := device.NewFromConnectionString(cs, device.WithRootCAs(srv.CAPool()), device.WithOperationTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	// The emulator records an echo before the device has its PUBACK: the
	// test waits for the handlers too, so none outlives it.
	echoed := make(chan error, 8)
	c.OnMessage(func(m *device.Message) {
		reply := &device.Message{Body: m.Body, CorrelationID: m.MessageID, Properties: m.Properties}
		echoed <- c.SendMessage(ctx, reply)
	})
	if err := c.Connect(ctx); err != nil {
		t.Fatalf("Connect: %v", err)
	}

	acks := []string{"none", "positive", "negative", "full"}
	for _, ack := range acks {
		props := map[string]string{"ack": ack, "note": "a b&c=d/é+"}
		if _, err := srv.SendC2D("echo", &emulator.C2DMessage{MessageID: "msg-" + ack, Ack: ack, Properties: props, Body: []byte("body " + ack)}, time.Minute); err != nil {
			t.Fatalf("SendC2D(%s): %v", ack, err)
		}
	}
	for range acks {
		select {
		case err := <-echoed:
			if err != nil {
				t.Fatalf("echo: %v", err)
			}
		case <-ctx.Done():
			t.Fatal("the device did not echo every message")
		}
	}
	got, err := srv.WaitMessages("echo", len(acks), c2dWait)
	if err != nil {
		t.Fatal(err)
	}
	for i, ack := range acks {
		m := got[i]
		if m.CorrelationID != "msg-"+ack || string(m.Body) != "body "+ack {
			t.Errorf("echo %d: got correlation %q, body %q; want msg-%s, body %s", i, m.CorrelationID, m.Body, ack, ack)
		}
		want := map[string]string{"ack": ack, "note": "a b&c=d/é+"}
		if diff := cmp.Diff(want, m.Properties); diff != "" {
			t.Errorf("echo %d properties (-want +got):\n%s", i, diff)
		}
	}
	c2dEventually(t, "queue emptied by the PUBACKs", func() bool {
		q, err := srv.PendingC2D("echo")
		return err == nil && len(q) == 0
	})
	fb, err := srv.Feedback()
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, f := range fb {
		if f.DeviceID != "echo" || f.StatusCode != "Success" {
			t.Errorf("feedback %+v: want Success for device echo", f)
		}
		ids = append(ids, f.OriginalMessageID)
	}
	if diff := cmp.Diff([]string{"msg-positive", "msg-full"}, ids); diff != "" {
		t.Errorf("feedback for (-want +got):\n%s", diff)
	}
}

// TestC2DPendingShowsDeliveries follows one unacknowledged message through
// PendingC2D across connections, then expires another with SetTime.
func TestC2DPendingShowsDeliveries(t *testing.T) {
	start := time.Now().UTC().Truncate(time.Second)
	srv := emulator.RunT(t, func(o *emulator.Options) { o.Clock = func() time.Time { return start } })
	cs, err := srv.CreateDevice("d1")
	if err != nil {
		t.Fatal(err)
	}
	sent, err := srv.SendC2D("d1", &emulator.C2DMessage{MessageID: "m", Ack: "full"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !sent.EnqueuedTime.Equal(start) || !sent.ExpiryTime.Equal(start.Add(time.Hour)) || sent.DeviceID != "d1" {
		t.Errorf("SendC2D returned enqueued %v, expiry %v, device %q; want %v, %v (default TTL), d1",
			sent.EnqueuedTime, sent.ExpiryTime, sent.DeviceID, start, start.Add(time.Hour))
	}

	for i := 1; i <= 2; i++ {
		d := c2dPaho(t, srv, cs)
		if tok := d.Subscribe("devices/d1/messages/devicebound/#", 1, nil); !tok.WaitTimeout(c2dWait) || tok.Error() != nil {
			t.Fatalf("subscribe: %v", tok.Error())
		}
		c2dEventually(t, "delivery", func() bool { return len(d.got) > 0 })
		q, err := srv.PendingC2D("d1")
		if err != nil || len(q) != 1 {
			t.Fatalf("connection %d: PendingC2D = %v, %v; want the message", i, q, err)
		}
		if q[0].DeliveryCount != i {
			t.Errorf("connection %d: delivery count %d, want %d", i, q[0].DeliveryCount, i)
		}
		d.Disconnect(0) // without acknowledging: the hub redelivers
		c2dEventually(t, "disconnect seen", func() bool { return !srv.IsConnected("d1", "") })
	}
	// Past its expiry by the emulator's clock, the message is dropped with
	// feedback, without any device activity.
	srv.SetTime(start.Add(time.Hour + time.Second))
	if q, err := srv.PendingC2D("d1"); err != nil || len(q) != 0 {
		t.Fatalf("PendingC2D after expiry = %v, %v; want empty", q, err)
	}
	fb, err := srv.Feedback()
	if err != nil || len(fb) != 1 || fb[0].StatusCode != "Expired" || fb[0].OriginalMessageID != "m" {
		t.Fatalf("Feedback = %+v, %v; want Expired for m", fb, err)
	}
}

func TestC2DSendErrors(t *testing.T) {
	srv := emulator.RunT(t)
	if _, err := srv.CreateDevice("full"); err != nil {
		t.Fatal(err)
	}
	for range 50 {
		if _, err := srv.SendC2D("full", &emulator.C2DMessage{}, 0); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name   string
		device string
		msg    emulator.C2DMessage
		want   string
	}{
		{"queue of 50", "full", emulator.C2DMessage{}, "DeviceMaximumQueueDepthExceeded"},
		{"unknown device", "nobody", emulator.C2DMessage{}, "DeviceNotFound"},
		{"over 64 KB", "full", emulator.C2DMessage{Body: make([]byte, 64*1024+1)}, "MessageTooLarge"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := tt.msg
			_, err := srv.SendC2D(tt.device, &msg, 0)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want %s", err, tt.want)
			}
		})
	}
}

// c2dDevice is a paho device that never acknowledges what it receives.
type c2dDevice struct {
	paho.Client
	got chan paho.Message
}

// c2dPaho connects a CleanSession=0 paho client for the device of cs, with
// automatic PUBACKs off.
func c2dPaho(t *testing.T, srv *emulator.Server, cs string) *c2dDevice {
	t.Helper()
	parsed, err := sas.ParseConnectionString(cs)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := sas.NewToken(sas.ResourceURI(srv.HostName(), parsed.DeviceID, ""), "", parsed.SharedAccessKey, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	d := &c2dDevice{got: make(chan paho.Message, 16)}
	o := paho.NewClientOptions().
		AddBroker("ssl://" + srv.MQTTAddr()).
		SetTLSConfig(&tls.Config{RootCAs: srv.CAPool(), ServerName: srv.HostName()}).
		SetClientID(parsed.DeviceID).
		SetUsername(srv.HostName() + "/" + parsed.DeviceID + "/?api-version=2021-04-12").
		SetPassword(tok).
		SetCleanSession(false).
		SetAutoAckDisabled(true).
		SetAutoReconnect(false).
		SetConnectTimeout(c2dWait).
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { d.got <- m })
	d.Client = paho.NewClient(o)
	if ct := d.Connect(); !ct.WaitTimeout(c2dWait) || ct.Error() != nil {
		t.Fatalf("connect %s: %v", parsed.DeviceID, ct.Error())
	}
	t.Cleanup(func() { d.Disconnect(0) })
	return d
}

// c2dEventually polls cond until it holds.
func c2dEventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testutil.EventuallyWithin(t, c2dWait, what, cond)
}
