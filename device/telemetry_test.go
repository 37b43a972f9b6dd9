// SPDX-License-Identifier: MIT

package device_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/iothubemulator/iothub/device"
	"github.com/iothubemulator/iothub/device/internal/fakehub"
)

// TestSendMessageTopic checks the telemetry topics the hub receives, byte
// for byte (protocol reference §3.6; Node mqtt.ts _getEventTopicFromMessage,
// Python mqtt_topic_iothub.py encode_message_properties_in_topic), and that
// they are published at QoS 1 with the body untouched.
func TestSendMessageTopic(t *testing.T) {
	h := fakehub.Start(t)
	exp := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name   string
		module bool
		msg    device.Message
		want   string
	}{
		{name: "no properties", msg: device.Message{Body: []byte("x")}, want: "devices/dev1/messages/events/"},
		{
			name: "characters that need encoding",
			msg: device.Message{
				Body:      []byte(`{"t":21.5}`),
				MessageID: "id 1/2", ContentType: "application/json", ContentEncoding: "utf-8", ExpiryTime: exp,
				Properties: map[string]string{"space key": "a b", "plus": "1+1=2", "amp&": "x&y", "unicode": "°C", "hash": "#"},
			},
			want: "devices/dev1/messages/events/%24.mid=id%201%2F2&%24.ct=application%2Fjson&%24.ce=utf-8" +
				"&%24.exp=2030-01-02T03%3A04%3A05.000Z&amp%26=x%26y&hash=%23&plus=1%2B1%3D2&space%20key=a%20b&unicode=%C2%B0C",
		},
		{
			name:   "module output",
			module: true,
			msg:    device.Message{Body: []byte("m"), OutputName: "alerts", CorrelationID: "c1"},
			want:   "devices/dev1/modules/mod1/messages/events/%24.on=alerts&%24.cid=c1",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs := deviceString(h.TLSAddr)
			clientID := "dev1"
			if tt.module {
				cs = "HostName=" + testHost + ";DeviceId=dev1;ModuleId=mod1;SharedAccessKey=" + testKey + ";GatewayHostName=" + h.TLSAddr
				clientID = "dev1/mod1"
			}
			c := newClient(t, h, cs)
			if err := c.Connect(testContext(t)); err != nil {
				t.Fatal(err)
			}
			before := len(h.Publishes("devices/"))
			if err := c.SendMessage(testContext(t), &tt.msg); err != nil {
				t.Fatalf("SendMessage: %v", err)
			}
			got := h.Publishes("devices/")[before] // recorded before the PUBACK
			if got.Topic != tt.want {
				t.Errorf("topic = %q, want %q", got.Topic, tt.want)
			}
			if got.QoS != 1 || got.Retain || got.ClientID != clientID || !bytes.Equal(got.Payload, tt.msg.Body) {
				t.Errorf("publish = %+v, want QoS 1, no retain, client %s, body %q", got, clientID, tt.msg.Body)
			}
		})
	}
}

func TestSendMessageTooLarge(t *testing.T) {
	h := fakehub.Start(t)
	c := connected(t, h)
	tests := []struct {
		name string
		msg  device.Message
		ok   bool
	}{
		{name: "at the limit", msg: device.Message{Body: make([]byte, device.MaxMessageSize)}, ok: true},
		{name: "body over", msg: device.Message{Body: make([]byte, device.MaxMessageSize+1)}},
		{name: "properties push it over", msg: device.Message{Body: make([]byte, device.MaxMessageSize-4), Properties: map[string]string{"kk": "vv"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := c.SendMessage(testContext(t), &tt.msg)
			if tt.ok != (err == nil) || (!tt.ok && !errors.Is(err, device.ErrMessageTooLarge)) {
				t.Errorf("SendMessage() = %v, want ok=%v or ErrMessageTooLarge", err, tt.ok)
			}
		})
	}
}

// TestSendMessageResentAfterDrop checks at-least-once delivery: the hub
// drops the connection instead of acknowledging, and the message is
// published again on the next connection.
func TestSendMessageResentAfterDrop(t *testing.T) {
	h := fakehub.Start(t)
	c := connected(t, h)
	h.DropOnPublish("devices/dev1/messages/events/")
	if err := c.SendMessage(testContext(t), &device.Message{Body: []byte("once"), MessageID: "m1"}); err != nil {
		t.Fatalf("SendMessage: %v", err)
	}
	pubs := h.Publishes("devices/dev1/messages/events/")
	if len(pubs) != 2 {
		t.Fatalf("hub saw %d publishes, want 2 (dropped, then resent)", len(pubs))
	}
	if pubs[0].Topic != pubs[1].Topic || string(pubs[1].Payload) != "once" {
		t.Errorf("resent publish = %+v, want a copy of %+v", pubs[1], pubs[0])
	}
	if n := len(h.Connects()); n != 2 {
		t.Errorf("hub saw %d CONNECTs, want 2", n)
	}
}

func TestSendMessageNotConnected(t *testing.T) {
	h := fakehub.Start(t)
	c := newClient(t, h, deviceString(h.TLSAddr))
	if err := c.SendMessage(testContext(t), &device.Message{}); !errors.Is(err, device.ErrNotConnected) {
		t.Errorf("SendMessage before Connect = %v, want ErrNotConnected", err)
	}
	_ = c.Close()
	if err := c.SendMessage(testContext(t), &device.Message{}); !errors.Is(err, device.ErrClosed) {
		t.Errorf("SendMessage after Close = %v, want ErrClosed", err)
	}
}

// TestSendMessageWaitsForReconnect checks that a send during an outage is
// bounded by the operation timeout, and that the client, which goes on
// retrying (the hub answers CONNACK 3, server unavailable), sends again once
// the outage is over.
func TestSendMessageWaitsForReconnect(t *testing.T) {
	h := fakehub.Start(t)
	c := connected(t, h, device.WithOperationTimeout(500*time.Millisecond),
		device.WithRetryPolicy(device.ExponentialBackoff{Initial: 20 * time.Millisecond, Max: 20 * time.Millisecond}))
	h.SetServerUnavailable(true)
	if err := h.Drop("dev1"); err != nil {
		t.Fatal(err)
	}
	err := c.SendMessage(testContext(t), &device.Message{Body: []byte("late")})
	if !errors.Is(err, device.ErrTimeout) {
		t.Fatalf("SendMessage during outage = %v, want ErrTimeout", err)
	}
	h.SetServerUnavailable(false)
	// The reconnect, a TLS handshake, can take longer than the 500 ms
	// operation timeout under -race on a busy machine: wait for it first.
	eventually(t, "the reconnect", func() bool { return c.State() == device.StateConnected })
	if err := c.SendMessage(testContext(t), &device.Message{Body: []byte("back")}); err != nil {
		t.Fatalf("SendMessage after outage: %v", err)
	}
	pubs := h.Publishes("devices/dev1/messages/events/")
	if len(pubs) != 1 || !strings.Contains(string(pubs[0].Payload), "back") {
		t.Errorf("publishes = %+v, want only the message sent after the outage", pubs)
	}
}
