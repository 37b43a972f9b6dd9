// SPDX-License-Identifier: MIT

package amqpapi

import (
	"bytes"
	"testing"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/amqp"
	"github.com/iothubemulator/iothub/emulator/internal/amqp/codec"
)

// The device-side parsers face every byte a device sends. The fuzz
// targets feed them decoded messages (and the raw bytes where a parser
// decodes on its own, as the batch format does) and check that they never
// panic and that what they accept is well formed. The seeds run as
// ordinary tests.

func mustEncode(tb testing.TB, m *amqp.Message) []byte {
	tb.Helper()
	b, err := m.MarshalBinary()
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func FuzzTwinRequest(f *testing.F) {
	ann := func(kv ...any) amqp.Annotations {
		a := amqp.Annotations{}
		for i := 0; i < len(kv); i += 2 {
			a[amqp.Symbol(kv[i].(string))] = kv[i+1]
		}
		return a
	}
	for _, m := range []*amqp.Message{
		{Properties: &amqp.Properties{CorrelationID: "c1"}, Annotations: ann("operation", "GET"), Data: [][]byte{[]byte(" ")}},
		{Properties: &amqp.Properties{CorrelationID: "c2"}, Annotations: ann("operation", "PATCH", "resource", "/properties/reported", "version", int64(3)), Data: [][]byte{[]byte(`{"a":1}`)}},
		{Properties: &amqp.Properties{CorrelationID: "c3"}, Annotations: ann("operation", amqp.Symbol("PUT"), "resource", "/notifications/twin/properties/desired", "version", nil)},
		{Properties: &amqp.Properties{CorrelationID: uint64(4)}, Annotations: ann("operation", "DELETE", "resource", "/Notifications/Twin/Properties/Desired")},
		{Properties: &amqp.Properties{CorrelationID: "c5"}, Annotations: ann("operation", "PATCH", "resource", "/properties/reported", "version", "x")},
		{Annotations: ann("operation", "GET")},
		{Properties: &amqp.Properties{CorrelationID: "c6"}, Annotations: ann("operation", int32(1)), Sequence: [][]any{{"x"}}},
	} {
		f.Add(mustEncode(f, m))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := amqp.DecodeMessage(b, codec.Limits{})
		if err != nil {
			return
		}
		r, err := parseTwinRequest(m)
		if err != nil {
			return
		}
		switch r.op {
		case "GET", "PUT", "DELETE":
		case "PATCH":
			if r.version < 0 {
				t.Fatalf("accepted a negative version %d", r.version)
			}
		default:
			t.Fatalf("accepted operation %q", r.op)
		}
		if r.correlationID == nil {
			t.Fatal("accepted a request without correlation-id")
		}
	})
}

func FuzzMethodResponse(f *testing.F) {
	u := amqp.UUID{0xde, 0xad, 0xbe, 0xef, 0, 1, 0x42, 3, 0x84, 5, 6, 7, 8, 9, 10, 11}
	for _, m := range []*amqp.Message{
		{Properties: &amqp.Properties{CorrelationID: u}, ApplicationProperties: map[string]any{appMethodStatus: int32(200)}, Data: [][]byte{[]byte(`{"ok":1}`)}},
		{Properties: &amqp.Properties{CorrelationID: u.String()}, ApplicationProperties: map[string]any{appMethodStatus: "404"}},
		{Properties: &amqp.Properties{CorrelationID: u[:]}, ApplicationProperties: map[string]any{appMethodStatus: uint64(1 << 40)}, Value: "text"},
		{Properties: &amqp.Properties{CorrelationID: "nope"}, ApplicationProperties: map[string]any{appMethodStatus: int64(-1)}},
		{ApplicationProperties: map[string]any{appMethodStatus: int32(200)}},
	} {
		f.Add(mustEncode(f, m))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := amqp.DecodeMessage(b, codec.Limits{})
		if err != nil {
			return
		}
		r, err := parseMethodResponse(m)
		if err != nil {
			return
		}
		if _, ok := codec.ParseUUID(r.correlationID); !ok || r.correlationID != string(bytes.ToLower([]byte(r.correlationID))) {
			t.Fatalf("accepted correlation id %q, not a canonical uuid", r.correlationID)
		}
		if int64(r.status) != int64(int32(r.status)) {
			t.Fatalf("accepted status %d beyond an int", r.status)
		}
	})
}

// FuzzTelemetry decodes a delivery's bytes as a message or (batch) as a
// batch of messages, the way the events link does, and builds the hub's
// records of them.
func FuzzTelemetry(f *testing.F) {
	one := &amqp.Message{
		Properties:            &amqp.Properties{MessageID: amqp.UUID{1}, CorrelationID: uint64(7), UserID: []byte{0xff}, CreationTime: time.Unix(1, 0)},
		ApplicationProperties: map[string]any{"a": int16(-3), "b": 1.5, "iothub-outputname": "o"},
		Annotations:           amqp.Annotations{"dt-subject": "c", "iothub-interface-id": amqp.Symbol("i")},
		Data:                  [][]byte{[]byte("x"), []byte("y")},
	}
	f.Add(mustEncode(f, one), false)
	batch, err := amqp.EncodeBatch([]*amqp.Message{one, {Value: []byte("z")}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(batch, true)
	f.Add(mustEncode(f, &amqp.Message{Data: [][]byte{[]byte("not a message")}}), true)
	f.Add(mustEncode(f, &amqp.Message{Sequence: [][]any{{1}}}), false)
	f.Fuzz(func(t *testing.T, b []byte, isBatch bool) {
		m, err := amqp.DecodeMessage(b, codec.Limits{})
		if err != nil {
			return
		}
		d := &amqp.Delivery{Message: m, Raw: b}
		if isBatch {
			d.Format = amqp.MessageFormatBatch
		}
		msgs, err := telemetryOf(d)
		if err != nil {
			return
		}
		if len(msgs) == 0 {
			t.Fatal("accepted a delivery with no message")
		}
		for _, hm := range msgs {
			if hm.Properties == nil {
				t.Fatal("a record without its property map")
			}
		}
	})
}
