// SPDX-License-Identifier: MIT

package service

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/Azure/go-amqp"
	"github.com/google/go-cmp/cmp"
)

// TestAMQPTargets checks where the client connects: the hub's AMQP port,
// WebSockets on 443 or on the HostName's port, a given address; and for
// an event hub, the redirect's host and port or, on the hub's own host,
// the way to the hub.
func TestAMQPTargets(t *testing.T) {
	const key = "a2V5LWtleS1rZXkta2V5LWtleS1rZXkta2V5LWtleSE="
	client := func(host string, opts ...Option) *Client {
		t.Helper()
		c, err := NewFromConnectionString("HostName="+host+";SharedAccessKeyName=iothubowner;SharedAccessKey="+key, opts...)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	remote := &EventHubEndpoint{hostname: "ihsu-1.servicebus.windows.net", port: "5671"}
	local := &EventHubEndpoint{hostname: "localhost", port: "35671"}
	tests := []struct {
		name    string
		c       *Client
		hub, eh amqpTarget
		ep      *EventHubEndpoint
	}{
		{"real hub", client("myhub.azure-devices.net"),
			amqpTarget{transportTLS, "myhub.azure-devices.net:5671", "myhub.azure-devices.net", ""},
			amqpTarget{transportTLS, "ihsu-1.servicebus.windows.net:5671", "ihsu-1.servicebus.windows.net", ""}, remote},
		{"real hub over WebSockets", client("myhub.azure-devices.net", WithWebSockets()),
			amqpTarget{transportWS, "myhub.azure-devices.net", "myhub.azure-devices.net", "/$iothub/websocket"},
			amqpTarget{transportWS, "ihsu-1.servicebus.windows.net", "ihsu-1.servicebus.windows.net", "/$servicebus/websocket"}, remote},
		{"emulator on its HTTPS port", client("localhost:8443"),
			amqpTarget{transportWS, "localhost:8443", "localhost", "/$iothub/websocket"},
			amqpTarget{transportWS, "localhost:8443", "localhost", "/$servicebus/websocket"}, local},
		{"emulator's AMQP port", client("localhost:8443", WithAMQPAddr("127.0.0.1:35671")),
			amqpTarget{transportTLS, "127.0.0.1:35671", "localhost", ""},
			amqpTarget{transportTLS, "127.0.0.1:35671", "localhost", ""}, local},
		{"emulator on default ports", client("localhost"),
			amqpTarget{transportTLS, "localhost:5671", "localhost", ""},
			amqpTarget{transportTLS, "localhost:5671", "localhost", ""}, local},
	}
	opt := cmp.AllowUnexported(amqpTarget{})
	for _, tt := range tests {
		if diff := cmp.Diff(tt.hub, tt.c.hubTarget(), opt); diff != "" {
			t.Errorf("%s: hub target (-want +got):\n%s", tt.name, diff)
		}
		if diff := cmp.Diff(tt.eh, tt.c.eventHubTarget(tt.ep), opt); diff != "" {
			t.Errorf("%s: event hub target (-want +got):\n%s", tt.name, diff)
		}
	}
	if _, err := NewFromConnectionString("HostName=h;SharedAccessKeyName=p;SharedAccessKey="+key, WithWebSockets(), WithAMQPAddr("h:1")); err == nil {
		t.Error("WithWebSockets and WithAMQPAddr were accepted together")
	}
	if _, err := NewFromConnectionString("HostName=h;SharedAccessKeyName=p;SharedAccessKey="+key, WithAMQPAddr("h")); err == nil {
		t.Error("WithAMQPAddr without a port was accepted")
	}
}

func TestParseRedirect(t *testing.T) {
	tests := []struct {
		name string
		info map[string]any
		want *EventHubEndpoint
	}{
		{"real hub", map[string]any{"hostname": "ihsu-1.servicebus.windows.net", "address": "amqps://ihsu-1.servicebus.windows.net:5671/iothub-ehub-myhub-123-abc/$management"},
			&EventHubEndpoint{Host: "ihsu-1.servicebus.windows.net", Name: "iothub-ehub-myhub-123-abc", hostname: "ihsu-1.servicebus.windows.net", port: "5671"}},
		{"emulator port", map[string]any{"hostname": "localhost", "address": "amqps://localhost:35671/localhost/$management", "port": int32(35671)},
			&EventHubEndpoint{Host: "localhost:35671", Name: "localhost", hostname: "localhost", port: "35671"}},
		{"port from info", map[string]any{"hostname": "h", "address": "amqps://h/hub/ConsumerGroups/$Default/Partitions/0", "port": int32(5000)},
			&EventHubEndpoint{Host: "h:5000", Name: "hub", hostname: "h", port: "5000"}},
		{"no hostname", map[string]any{"address": "amqps://h:5671/hub/$management"}, nil},
		{"no event hub", map[string]any{"hostname": "h", "address": "amqps://h:5671/$management"}, nil},
		{"address not a URL", map[string]any{"hostname": "h", "address": "::"}, nil},
		{"wrong types", map[string]any{"hostname": 1, "address": []byte("x")}, nil},
	}
	for _, tt := range tests {
		got, err := parseRedirect("op", &amqp.Error{Condition: amqp.ErrCondLinkRedirect, Info: tt.info})
		if tt.want == nil {
			if err == nil {
				t.Errorf("%s: got %+v, want an error", tt.name, got)
			}
			continue
		}
		if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(EventHubEndpoint{})); err != nil || diff != "" {
			t.Errorf("%s: %v, (-want +got):\n%s", tt.name, err, diff)
		}
	}
}

func TestEventPositionSelector(t *testing.T) {
	seq := int64(41)
	at := time.UnixMilli(1714640400123)
	tests := []struct {
		p    EventPosition
		want string
	}{
		{EventPosition{}, "amqp.annotation.x-opt-offset > '@latest'"},
		{EventPosition{Earliest: true}, "amqp.annotation.x-opt-offset > '-1'"},
		{EventPosition{SequenceNumber: &seq}, "amqp.annotation.x-opt-sequence-number > '41'"},
		{EventPosition{SequenceNumber: &seq, Inclusive: true}, "amqp.annotation.x-opt-sequence-number >= '41'"},
		{EventPosition{Offset: "1024"}, "amqp.annotation.x-opt-offset > '1024'"},
		{EventPosition{EnqueuedTime: at}, "amqp.annotation.x-opt-enqueued-time > '1714640400123'"},
		{EventPosition{EnqueuedTime: at, Inclusive: true}, "amqp.annotation.x-opt-enqueued-time >= '1714640400123'"},
	}
	for _, tt := range tests {
		got, err := tt.p.selector()
		if err != nil || got != tt.want {
			t.Errorf("%+v: got %q, %v; want %q", tt.p, got, err, tt.want)
		}
	}
	for _, bad := range []EventPosition{{Earliest: true, Offset: "1"}, {Offset: "1' OR '1'='1"}} {
		if got, err := bad.selector(); err == nil {
			t.Errorf("%+v: got %q, want an error", bad, got)
		}
	}
}

// FuzzDecodeMessages feeds what a hub (or anything posing as one) may send
// to the decoders of received messages: events, feedback batches and file
// notifications must decode or fail, never panic.
func FuzzDecodeMessages(f *testing.F) {
	seed := func(m *amqp.Message) {
		b, err := m.MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	now := time.Date(2024, 5, 2, 9, 0, 0, 0, time.UTC)
	seed(&amqp.Message{
		Annotations: amqp.Annotations{"x-opt-sequence-number": int64(7), "x-opt-offset": "42", "x-opt-enqueued-time": now,
			"iothub-connection-device-id": "dev1", "iothub-message-source": "Telemetry"},
		Properties:            &amqp.MessageProperties{MessageID: "m1", CorrelationID: amqp.UUID{1}, ContentType: ptr("application/json"), CreationTime: &now},
		ApplicationProperties: map[string]any{"a": "b", "n": int32(3), "t": now},
		Data:                  [][]byte{[]byte(`{"t":1}`)},
	})
	seed(&amqp.Message{Header: &amqp.MessageHeader{DeliveryCount: 2}, DeliveryTag: make([]byte, 16),
		Annotations: amqp.Annotations{"iothub-enqueuedtime": now},
		Data:        [][]byte{[]byte(`[{"originalMessageId":"m1","statusCode":"Success","enqueuedTimeUtc":"2024-05-02T09:00:00Z"}]`)}})
	seed(&amqp.Message{Value: `{"deviceId":"d","blobName":"d/a","blobSizeInBytes":5}`})
	seed(&amqp.Message{Annotations: amqp.Annotations{"x-opt-offset": int64(9), "x-opt-sequence-number": "x"}, Sequence: [][]any{{1}}})
	f.Fuzz(func(t *testing.T, data []byte) {
		var m amqp.Message
		if err := m.UnmarshalBinary(data); err != nil {
			return
		}
		ev := eventOf("0", &m)
		if ev.Partition != "0" || ev.Properties == nil || ev.Annotations == nil {
			t.Fatalf("event %+v", ev)
		}
		var records []Feedback
		_ = json.Unmarshal(body(&m), &records)
		var n FileNotification
		_ = json.Unmarshal(body(&m), &n)
		_ = lockToken(m.DeliveryTag)
		_ = annotationTime(&m, "iothub-enqueuedtime")
	})
}
