// SPDX-License-Identifier: MIT

package device_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/iothubemulator/iothub/device"
	"github.com/iothubemulator/iothub/device/internal/fakehub"
)

// TestMethodHandlers checks routing and the response wire format
// ($iothub/methods/res/{status}/?$rid={rid}, body JSON; Node mqtt.ts
// sendMethodResponse, Python get_method_topic_for_publish).
func TestMethodHandlers(t *testing.T) {
	h := fakehub.Start(t)
	c := newClient(t, h, deviceString(h.TLSAddr))
	got := make(chan *device.MethodRequest, 4)
	c.HandleMethod("setFan", func(_ context.Context, req *device.MethodRequest) (int, any) {
		got <- req
		var in struct{ Speed int }
		if err := json.Unmarshal(req.Payload, &in); err != nil {
			return 400, map[string]string{"error": err.Error()}
		}
		return 200, map[string]any{"speed": in.Speed, "applied": true}
	})
	c.SetDefaultMethodHandler(func(_ context.Context, req *device.MethodRequest) (int, any) {
		got <- req
		return 404, nil
	})
	c.HandleMethod("noisy", func(context.Context, *device.MethodRequest) (int, any) {
		return 200, func() {} // cannot be marshalled
	})
	if err := c.Connect(testContext(t)); err != nil {
		t.Fatal(err)
	}
	h.WaitSubscribed(t, "dev1", "$iothub/methods/POST/#")
	if qos := h.Subscriptions("dev1")["$iothub/methods/POST/#"]; qos != 0 {
		t.Errorf("methods subscription QoS = %d, want 0", qos)
	}

	tests := []struct {
		name        string
		method      string
		payload     string
		wantStatus  int
		wantPayload string
		wantReq     *device.MethodRequest // nil when the handler does not report it
	}{
		{
			name: "named handler", method: "setFan", payload: `{"speed":3}`,
			wantStatus: 200, wantPayload: `{"applied":true,"speed":3}`,
			wantReq: &device.MethodRequest{Name: "setFan", Payload: json.RawMessage(`{"speed":3}`)},
		},
		{
			name: "empty body is null", method: "setFan", payload: "",
			wantStatus: 200, wantPayload: `{"applied":true,"speed":0}`,
			wantReq: &device.MethodRequest{Name: "setFan", Payload: json.RawMessage(`null`)},
		},
		{
			name: "default handler and null response", method: "reboot", payload: `"now"`,
			wantStatus: 404, wantPayload: `null`,
			wantReq: &device.MethodRequest{Name: "reboot", Payload: json.RawMessage(`"now"`)},
		},
		{
			name: "unmarshallable payload becomes 500", method: "noisy", payload: `{}`,
			wantStatus: 500, wantPayload: `{"message":"device: method payload: json: unsupported type: func()"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := h.InvokeMethod(t, tt.method, []byte(tt.payload))
			if res.Status != tt.wantStatus || string(res.Payload) != tt.wantPayload {
				t.Errorf("response = %d %s, want %d %s", res.Status, res.Payload, tt.wantStatus, tt.wantPayload)
			}
			if tt.wantReq == nil {
				return
			}
			req := <-got
			req.RequestID = "" // chosen by the hub
			if diff := cmp.Diff(tt.wantReq, req); diff != "" {
				t.Errorf("request mismatch (-want +got):\n%s", diff)
			}
		})
	}
	pubs := h.Publishes("$iothub/methods/res/")
	if want := "$iothub/methods/res/200/?$rid=1"; len(pubs) == 0 || pubs[0].Topic != want || pubs[0].QoS != 0 {
		t.Errorf("first response publish = %+v, want topic %s at QoS 0", pubs, want)
	}
}

// TestReceiveMethodRequest checks the blocking style (Python's
// receive_method_request / send_method_response).
func TestReceiveMethodRequest(t *testing.T) {
	h := fakehub.Start(t)
	c := connected(t, h)
	ctx := testContext(t)

	invoke := func(name, payload string) <-chan fakehub.MethodResult {
		ch := make(chan fakehub.MethodResult, 1)
		go func() {
			r, err := h.Invoke(ctx, name, []byte(payload))
			if err != nil {
				t.Errorf("invoke %s: %v", name, err)
			}
			ch <- r
		}()
		return ch
	}
	// A call that returns at once still claims the name: later "ping"
	// requests queue for it rather than for the catch-all inbox.
	gone, cancelGone := context.WithCancel(ctx)
	cancelGone()
	if _, err := c.ReceiveMethodRequest(gone, "ping"); !errors.Is(err, context.Canceled) {
		t.Fatalf("ReceiveMethodRequest(cancelled) = %v, want context.Canceled", err)
	}
	h.WaitSubscribed(t, "dev1", "$iothub/methods/POST/#")
	ping := invoke("ping", `{"n":1}`)
	req, err := c.ReceiveMethodRequest(ctx, "ping")
	if err != nil {
		t.Fatalf("ReceiveMethodRequest(ping): %v", err)
	}
	if req.Name != "ping" || string(req.Payload) != `{"n":1}` {
		t.Errorf("ping request = %+v, want ping {\"n\":1}", req)
	}
	if err := c.SendMethodResponse(ctx, device.NewMethodResponse(req, 201, json.RawMessage(`{"pong":true}`))); err != nil {
		t.Fatal(err)
	}
	if r := <-ping; r.Status != 201 || string(r.Payload) != `{"pong":true}` {
		t.Errorf("ping response = %d %s, want 201 {\"pong\":true}", r.Status, r.Payload)
	}

	other := invoke("other", `[1,2]`)
	req, err = c.ReceiveMethodRequest(ctx, "")
	if err != nil {
		t.Fatalf("ReceiveMethodRequest(any): %v", err)
	}
	if req.Name != "other" || string(req.Payload) != `[1,2]` {
		t.Errorf("catch-all request = %+v, want other [1,2]", req)
	}
	if err := c.SendMethodResponse(ctx, device.NewMethodResponse(req, 200, "ok")); err != nil {
		t.Fatal(err)
	}
	if r := <-other; r.Status != 200 || string(r.Payload) != `"ok"` {
		t.Errorf("other response = %d %s, want 200 \"ok\"", r.Status, r.Payload)
	}

	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := c.ReceiveMethodRequest(short, "ping"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("ReceiveMethodRequest with nothing pending = %v, want DeadlineExceeded", err)
	}
	_ = c.Close()
	if _, err := c.ReceiveMethodRequest(ctx, "ping"); !errors.Is(err, device.ErrClosed) {
		t.Errorf("ReceiveMethodRequest after Close = %v, want ErrClosed", err)
	}
	if err := c.SendMethodResponse(ctx, &device.MethodResponse{RequestID: "1", Status: 200}); !errors.Is(err, device.ErrClosed) {
		t.Errorf("SendMethodResponse after Close = %v, want ErrClosed", err)
	}
}

func TestSendMethodResponseNotConnected(t *testing.T) {
	h := fakehub.Start(t)
	c := newClient(t, h, deviceString(h.TLSAddr))
	err := c.SendMethodResponse(testContext(t), &device.MethodResponse{RequestID: "1", Status: 200})
	if !errors.Is(err, device.ErrNotConnected) {
		t.Errorf("SendMethodResponse before Connect = %v, want ErrNotConnected", err)
	}
}
