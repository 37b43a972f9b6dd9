// SPDX-License-Identifier: MIT

package device_test

import (
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/iothubemulator/iothub/device"
	"github.com/iothubemulator/iothub/device/internal/fakehub"
)

// TestReceiveMessage checks the C2D subscription (QoS 1, Node mqtt.ts
// enableC2D) and the decoding of the hub's property bags (protocol
// reference §3.7), through ReceiveMessage and then through a handler.
func TestReceiveMessage(t *testing.T) {
	h := fakehub.Start(t)
	c := connected(t, h)
	ctx := testContext(t)

	first := make(chan *device.Message, 1)
	go func() {
		m, err := c.ReceiveMessage(ctx)
		if err != nil {
			t.Errorf("ReceiveMessage: %v", err)
		}
		first <- m
	}()
	h.WaitSubscribed(t, "dev1", "devices/dev1/messages/devicebound/#")
	if qos := h.Subscriptions("dev1")["devices/dev1/messages/devicebound/#"]; qos != 1 {
		t.Errorf("C2D subscription QoS = %d, want 1", qos)
	}
	bag := "%24.mid=7d1c&%24.to=%2Fdevices%2Fdev1%2Fmessages%2FdeviceBound&%24.cid=c%201&iothub-ack=full" +
		"&%24.exp=2030-01-01T00%3A00%3A00.000Z&prop1&prop2=&prop3=a%20string"
	if err := h.SendC2D("dev1", bag, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	want := &device.Message{
		Body: []byte("hello"), MessageID: "7d1c", To: "/devices/dev1/messages/deviceBound", CorrelationID: "c 1",
		Ack: "full", ExpiryTime: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC),
		Properties: map[string]string{"prop1": "", "prop2": "", "prop3": "a string"},
	}
	if diff := cmp.Diff(want, <-first); diff != "" {
		t.Errorf("message mismatch (-want +got):\n%s", diff)
	}

	handled := make(chan *device.Message, 2)
	c.OnMessage(func(m *device.Message) { handled <- m })
	for _, body := range []string{"one", "two"} {
		if err := h.SendC2D("dev1", "", []byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	for _, body := range []string{"one", "two"} {
		select {
		case m := <-handled:
			if string(m.Body) != body || m.Properties != nil {
				t.Errorf("handled message = %+v, want body %q and no properties", m, body)
			}
		case <-time.After(fakehub.WaitTimeout):
			t.Fatalf("handler did not get %q", body)
		}
	}
}

func TestReceiveMessageOnModule(t *testing.T) {
	h := fakehub.Start(t)
	cs := "HostName=" + testHost + ";DeviceId=dev1;ModuleId=mod1;SharedAccessKey=" + testKey + ";GatewayHostName=" + h.TLSAddr
	c := newClient(t, h, cs)
	c.OnMessage(func(*device.Message) {})
	if err := c.Connect(testContext(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ReceiveMessage(testContext(t)); err == nil {
		t.Error("ReceiveMessage on a module client = nil error, want one")
	}
	if _, err := c.GetTwin(testContext(t)); err != nil { // a round trip after any subscription
		t.Fatal(err)
	}
	if got, want := h.Subscriptions("dev1/mod1"), map[string]byte{"$iothub/twin/res/#": 0}; !cmp.Equal(got, want) {
		t.Errorf("module subscriptions = %v, want only %v", got, want)
	}
}

// TestOnMessageGetsMessagesQueuedBeforeIt checks that a handler set after
// Connect receives the messages that arrived before it. The hub keeps the
// device's session (CleanSession 0), so messages sent while the device was
// offline are delivered right after the CONNACK, before the application
// has had a chance to call OnMessage.
func TestOnMessageGetsMessagesQueuedBeforeIt(t *testing.T) {
	h := fakehub.Start(t)
	first := connected(t, h)
	first.OnMessage(func(*device.Message) {})
	h.WaitSubscribed(t, "dev1", "devices/dev1/messages/devicebound/#")
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	h.WaitDisconnects(t, 1)
	for _, body := range []string{"one", "two"} {
		if err := h.SendC2D("dev1", "", []byte(body)); err != nil {
			t.Fatal(err)
		}
	}

	c := connected(t, h)
	h.WaitAcks(t, "dev1", 2) // both delivered, with no handler yet
	got := make(chan string, 3)
	c.OnMessage(func(m *device.Message) { got <- string(m.Body) })
	if err := h.SendC2D("dev1", "", []byte("three")); err != nil {
		t.Fatal(err)
	}
	var bodies []string
	for len(bodies) < 3 {
		select {
		case body := <-got:
			bodies = append(bodies, body)
		case <-time.After(fakehub.WaitTimeout):
			t.Fatalf("handler got %q, want 3 messages", bodies)
		}
	}
	// The queued two come first, in the order they arrived; the broker
	// (mochi) may resend a session's messages in any order.
	slices.Sort(bodies[:2])
	if want := []string{"one", "two", "three"}; !slices.Equal(bodies, want) {
		t.Errorf("handler got %q, want %q with the first two in any order", bodies, want)
	}
}
