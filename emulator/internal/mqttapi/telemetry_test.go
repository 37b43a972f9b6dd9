// SPDX-License-Identifier: MIT

package mqttapi

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/iothubemulator/iothub/emulator/internal/hub"
)

func TestTelemetry(t *testing.T) {
	forEachTransport(t, func(t *testing.T, e *env, ws bool) {
		c := e.connectDevice(t, "dev1", ws)
		// QoS 1: the PUBACK comes once the message is durable, so it is
		// already recorded when publish returns.
		c.publish(t, "devices/dev1/messages/events/%24.mid=42&%24.ct=application%2Fjson&%24.ce=utf-8&alert=high&note=a%20b%2Bc", 1, `{"temperature":21.5}`)
		c.publish(t, "devices/dev1/messages/events/", 0, "plain")
		var msgs []*hub.Message
		eventually(t, "two messages recorded", func() bool {
			var err error
			msgs, err = e.hub.Telemetry("dev1", "", 0, 0)
			return err == nil && len(msgs) == 2
		})
		transport := "mqtt"
		if ws {
			transport = "mqtt-ws"
		}
		p := e.hub.PartitionOf("dev1")
		d, err := e.hub.GetDevice(context.Background(), "dev1")
		if err != nil {
			t.Fatal(err)
		}
		gen := d.GenerationID
		want := []*hub.Message{
			{DeviceID: "dev1", AuthMethod: "sas", GenerationID: gen, Transport: transport, MessageID: "42", ContentType: "application/json", ContentEncoding: "utf-8",
				Partition: p, PartitionSequenceNumber: 0,
				Properties: map[string]string{"alert": "high", "note": "a b+c"}, Body: []byte(`{"temperature":21.5}`)},
			{DeviceID: "dev1", AuthMethod: "sas", GenerationID: gen, Transport: transport, Partition: p, PartitionSequenceNumber: 1,
				Properties: map[string]string{}, Body: []byte("plain")},
		}
		if diff := cmp.Diff(want, msgs, cmpopts.IgnoreFields(hub.Message{}, "SequenceNumber", "EnqueuedTime")); diff != "" {
			t.Errorf("recorded telemetry (-want +got):\n%s", diff)
		}
	})
}

func TestTelemetryRetainAndModule(t *testing.T) {
	e := newEnv(t)
	e.addDevice(t, "dev1")
	key := e.addModule(t, "dev1", "mod1")
	id := hub.Identity{DeviceID: "dev1", ModuleID: "mod1"}
	c := e.mustConnect(t, dialer{clientID: "dev1/mod1", password: token(t, id, "", key, farFuture())})
	tok := c.Publish("devices/dev1/modules/mod1/messages/events/%24.on=out1/", 1, true, "x")
	if !tok.WaitTimeout(waitTime) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	msgs, err := e.hub.Telemetry("dev1", "mod1", 0, 0)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("module telemetry: got %d messages, %v; want 1", len(msgs), err)
	}
	m := msgs[0]
	if m.ModuleID != "mod1" || m.OutputName != "out1" || m.Properties[propRetain] != "true" {
		t.Errorf("module message: got module %q output %q properties %v; want mod1, out1, mqtt-retain true", m.ModuleID, m.OutputName, m.Properties)
	}
}

func TestTelemetryRefused(t *testing.T) {
	tests := []struct {
		name    string
		topic   string
		payload string
	}{
		{"over 256 KB", "devices/dev1/messages/events/", strings.Repeat("x", hub.MaxD2CSize+1)},
		{"bad property escape", "devices/dev1/messages/events/a=%zz", "x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			c := e.connectDevice(t, "dev1", false)
			c.Publish(tt.topic, 1, false, tt.payload)
			c.waitLost(t)
			if msgs, _ := e.hub.Telemetry("dev1", "", 0, 0); len(msgs) != 0 {
				t.Errorf("recorded %d messages, want none", len(msgs))
			}
		})
	}
}

func TestWillForwardedAsTelemetry(t *testing.T) {
	e := newEnv(t)
	key := e.addDevice(t, "dev1")
	c := e.mustConnect(t, dialer{clientID: "dev1", password: token(t, hub.Identity{DeviceID: "dev1"}, "", key, farFuture()),
		will: "devices/dev1/messages/events/reason=crash"})
	// A protocol error closes the connection without DISCONNECT: the will is due.
	c.Publish("not/an/iothub/topic", 0, false, "x")
	c.waitLost(t)
	var msgs []*hub.Message
	eventually(t, "will recorded", func() bool {
		msgs, _ = e.hub.Telemetry("dev1", "", 0, 0)
		return len(msgs) == 1
	})
	want := map[string]string{"reason": "crash", propMessageType: "Will"}
	if diff := cmp.Diff(want, msgs[0].Properties); diff != "" || string(msgs[0].Body) != "gone" {
		t.Errorf("will message body %q, properties (-want +got):\n%s", msgs[0].Body, diff)
	}
}
