// SPDX-License-Identifier: MIT

package device_test

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/iothubemulator/iothub/device"
	"github.com/iothubemulator/iothub/device/internal/fakehub"
)

// TestWebSockets runs the features over MQTT over WSS and checks the
// upgrade request: path /$iothub/websocket and subprotocol mqtt (Node
// mqtt_ws.ts; protocol reference §3.1).
func TestWebSockets(t *testing.T) {
	h := fakehub.Start(t)
	c := newClient(t, h, deviceString(h.WSAddr), device.WithWebSockets())
	c.HandleMethod("echo", func(_ context.Context, req *device.MethodRequest) (int, any) {
		return 200, req.Payload
	})
	if err := c.Connect(testContext(t)); err != nil {
		t.Fatalf("Connect: %v", err)
	}
	want := []fakehub.WSHandshake{{Path: "/$iothub/websocket", Subprotocols: []string{"mqtt"}}}
	if diff := cmp.Diff(want, h.WSHandshakes()); diff != "" {
		t.Errorf("handshakes mismatch (-want +got):\n%s", diff)
	}
	big := make([]byte, 100_000) // spans many WebSocket reads
	for i := range big {
		big[i] = 'a' + byte(i%26)
	}
	if err := c.SendMessage(testContext(t), &device.Message{Body: big, MessageID: "big"}); err != nil {
		t.Fatalf("SendMessage: %v", err)
	}
	if got := h.Publishes("devices/dev1/messages/events/"); len(got) != 1 || string(got[0].Payload) != string(big) {
		t.Errorf("telemetry over WSS not received intact (%d publishes)", len(got))
	}
	if _, err := c.UpdateReportedProperties(testContext(t), map[string]string{"transport": "wss"}); err != nil {
		t.Fatalf("UpdateReportedProperties: %v", err)
	}
	if res := h.InvokeMethod(t, "echo", []byte(`{"x":1}`)); res.Status != 200 || string(res.Payload) != `{"x":1}` {
		t.Errorf("echo = %d %s, want 200 {\"x\":1}", res.Status, res.Payload)
	}
	if err := h.Drop("dev1"); err != nil {
		t.Fatal(err)
	}
	h.WaitConnects(t, 2)
	h.WaitSubscribed(t, "dev1", "$iothub/methods/POST/#")
	if res := h.InvokeMethod(t, "echo", []byte(`2`)); res.Status != 200 || string(res.Payload) != `2` {
		t.Errorf("echo after reconnect = %d %s, want 200 2", res.Status, res.Payload)
	}
}
