// SPDX-License-Identifier: MIT

package amqpapi

import (
	"bytes"
	"testing"
	"time"

	goamqp "github.com/Azure/go-amqp"
	"github.com/google/go-cmp/cmp"

	"github.com/iothubemulator/iothub/emulator/internal/hub"
)

// TestDeviceTelemetry: a device's message over each transport is recorded
// as the hub records MQTT telemetry, with its system and application
// properties, the transport and the authentication method, and accepted
// only once it is durable (it is in the log when Send returns).
func TestDeviceTelemetry(t *testing.T) {
	e := newEnv(t)
	want := map[transport]string{viaPlain: "amqp-plain", viaTLS: "amqp", viaWebSocket: "amqp-ws", viaServiceBusSocket: "amqp-ws"}
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			id := hub.Identity{DeviceID: "tele-" + tr.name}
			dev := e.connectDevice(t, tr.via, id, e.addDevice(t, id.DeviceID))
			snd := dev.sender(t, "messages/events", nil)
			if got := snd.MaxMessageSize(); got != maxEventWireSize {
				t.Errorf("max-message-size %d, want %d", got, maxEventWireSize)
			}
			mid := goamqp.UUID{0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0x4d, 0xef, 0x81, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef}
			ct, ce := "application/json", "utf-8"
			to := dev.path("messages/events")
			expiry := time.Date(2030, 1, 2, 3, 4, 5, 6e6, time.UTC)
			msg := &goamqp.Message{
				Properties: &goamqp.MessageProperties{MessageID: mid, CorrelationID: "corr/1", UserID: []byte("user"),
					To: &to, ContentType: &ct, ContentEncoding: &ce, AbsoluteExpiryTime: &expiry},
				ApplicationProperties: map[string]any{"alert": "high & rising", "count": int32(7), "ok": true, "ratio": 0.5,
					"iothub-creation-time-utc": "2026-01-02T03:04:05.678Z", "iothub-message-schema": "v1"},
				Annotations: goamqp.Annotations{"iothub-interface-id": "dtmi:x;1", "dt-subject": "thermostat1"},
				Data:        [][]byte{[]byte(`{"temperature":21.5}`)},
			}
			if err := snd.Send(ctxT(t), msg, nil); err != nil {
				t.Fatalf("send: %v", err)
			}
			got := e.telemetry(t, id)
			if len(got) != 1 {
				t.Fatalf("recorded %d messages, want 1", len(got))
			}
			m := got[0]
			wantMsg := hub.Message{DeviceID: id.DeviceID, AuthMethod: "sas", Transport: want[tr.via],
				MessageID: "12345678-9abc-4def-8123-456789abcdef", CorrelationID: "corr/1", UserID: "user", To: to,
				ContentType: ct, ContentEncoding: ce, ExpiryTime: "2030-01-02T03:04:05.006Z",
				CreationTime: "2026-01-02T03:04:05.678Z", MessageSchema: "v1", InterfaceID: "dtmi:x;1", ComponentName: "thermostat1",
				Properties: map[string]string{"alert": "high & rising", "count": "7", "ok": "true", "ratio": "0.5"},
				Body:       []byte(`{"temperature":21.5}`)}
			ignore := func(p cmp.Path) bool {
				switch p.Last().String() {
				case ".SequenceNumber", ".EnqueuedTime", ".GenerationID", ".Partition", ".PartitionSequenceNumber":
					return true
				}
				return false
			}
			if diff := cmp.Diff(wantMsg, *m, cmp.FilterPath(ignore, cmp.Ignore())); diff != "" {
				t.Errorf("recorded message (-want +got):\n%s", diff)
			}
			if !e.hub.IsConnected(id) {
				t.Error("the device is not connected")
			}
		})
	}
}

// TestDeviceTelemetryBatch: the batched format (0x80013700, C#'s and the
// C SDK's SendEventBatch) records every message of the batch, each with
// its own properties, in one transaction; a malformed batch is rejected
// and records nothing.
func TestDeviceTelemetryBatch(t *testing.T) {
	e := newEnv(t)
	id := hub.Identity{DeviceID: "batcher"}
	dev := e.connectDevice(t, viaTLS, id, e.addDevice(t, id.DeviceID))
	snd := dev.sender(t, "messages/events", nil)
	var parts [][]byte
	for i, body := range []string{"one", "two", "three"} {
		m := &goamqp.Message{Properties: &goamqp.MessageProperties{MessageID: body},
			ApplicationProperties: map[string]any{"i": int64(i)}, Data: [][]byte{[]byte(body)}}
		b, err := m.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, b)
	}
	batch := &goamqp.Message{Format: 0x80013700, Data: parts}
	if err := snd.Send(ctxT(t), batch, nil); err != nil {
		t.Fatalf("send batch: %v", err)
	}
	got := e.telemetry(t, id)
	if len(got) != 3 {
		t.Fatalf("recorded %d messages, want 3", len(got))
	}
	for i, m := range got {
		want := []string{"one", "two", "three"}[i]
		if string(m.Body) != want || m.MessageID != want || m.Properties["i"] != string(rune('0'+i)) {
			t.Errorf("message %d: body %q id %q props %v", i, m.Body, m.MessageID, m.Properties)
		}
		if i > 0 && m.SequenceNumber != got[i-1].SequenceNumber+1 {
			t.Errorf("message %d: sequence number %d after %d; a batch is one transaction", i, m.SequenceNumber, got[i-1].SequenceNumber)
		}
	}

	for _, tc := range []struct {
		name string
		msg  *goamqp.Message
		cond goamqp.ErrCond
	}{
		{"an entry that is not a message", &goamqp.Message{Format: 0x80013700, Data: [][]byte{parts[0], []byte("garbage")}}, goamqp.ErrCondDecodeError},
		{"an empty batch", &goamqp.Message{Format: 0x80013700, Value: "nothing"}, "com.microsoft:argument-error"},
	} {
		err := snd.Send(ctxT(t), tc.msg, nil)
		wantCondition(t, tc.name, linkError(t, err), tc.cond, "")
	}
	if n := len(e.telemetry(t, id)); n != 3 {
		t.Errorf("after refused batches: %d messages recorded, want still 3", n)
	}
}

// TestDeviceTelemetryLimits: the hub's 256 KB (body and properties) holds
// over AMQP as over MQTT: a message just within it is recorded, one just
// past it is rejected with amqp:link:message-size-exceeded (the link
// stays; a transfer past the advertised max-message-size, which go-amqp
// refuses to send, would get the link detached with the same condition by
// the engine, as its own tests show). The device stays connected; other
// devices are not affected.
func TestDeviceTelemetryLimits(t *testing.T) {
	e := newEnv(t)
	id := hub.Identity{DeviceID: "big"}
	dev := e.connectDevice(t, viaTLS, id, e.addDevice(t, id.DeviceID))
	other := e.connectDevice(t, viaTLS, hub.Identity{DeviceID: "small"}, e.addDevice(t, "small"))
	otherSnd := other.sender(t, "messages/events", nil)
	snd := dev.sender(t, "messages/events", nil)
	props := map[string]any{"k": "vv"} // 3 bytes counted
	fits := &goamqp.Message{ApplicationProperties: props, Data: [][]byte{bytes.Repeat([]byte("a"), hub.MaxD2CSize-3)}}
	if err := snd.Send(ctxT(t), fits, nil); err != nil {
		t.Fatalf("a message of exactly 256 KB: %v", err)
	}
	over := &goamqp.Message{ApplicationProperties: props, Data: [][]byte{bytes.Repeat([]byte("a"), hub.MaxD2CSize-2)}}
	wantCondition(t, "one byte over", linkError(t, snd.Send(ctxT(t), over, nil)), goamqp.ErrCondMessageSizeExceeded, "maximum is 262144")
	if err := snd.Send(ctxT(t), &goamqp.Message{Data: [][]byte{[]byte("after")}}, nil); err != nil {
		t.Fatalf("the link after a rejected message: %v", err)
	}
	if got := len(e.telemetry(t, id)); got != 2 {
		t.Errorf("recorded %d messages, want 2", got)
	}
	if !e.hub.IsConnected(id) {
		t.Error("the device was disconnected by an oversized message")
	}
	if err := otherSnd.Send(ctxT(t), &goamqp.Message{Data: [][]byte{[]byte("unaffected")}}, nil); err != nil {
		t.Errorf("another device's telemetry: %v", err)
	}
}

// TestModuleTelemetry: a module's events link records the module's
// messages, its output name included.
func TestModuleTelemetry(t *testing.T) {
	e := newEnv(t)
	e.addDevice(t, "edge")
	id := hub.Identity{DeviceID: "edge", ModuleID: "filter"}
	dev := e.connectDevice(t, viaWebSocket, id, e.addModule(t, "edge", "filter"))
	snd := dev.sender(t, "messages/events", nil)
	if err := snd.Send(ctxT(t), &goamqp.Message{ApplicationProperties: map[string]any{"iothub-outputname": "out1"}, Value: "text body"}, nil); err != nil {
		t.Fatal(err)
	}
	got := e.telemetry(t, id)
	if len(got) != 1 || got[0].ModuleID != "filter" || got[0].OutputName != "out1" || string(got[0].Body) != "text body" || got[0].Transport != "amqp-ws" {
		t.Fatalf("recorded %+v, want the module's message from output out1", got)
	}
	if ms := e.telemetry(t, hub.Identity{DeviceID: "edge"}); len(ms) != 1 {
		t.Errorf("the device's log: %d messages, want the module's one under its device", len(ms))
	}
}
