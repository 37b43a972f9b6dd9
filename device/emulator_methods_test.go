// SPDX-License-Identifier: MIT

package device_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/iothubemulator/iothub/device"
	"github.com/iothubemulator/iothub/emulator"
)

// TestEmulatorMethods invokes direct methods through the service REST API
// and checks every way the client can answer them: a named handler, the
// default handler, and ReceiveMethodRequest with SendMethodResponse, with
// null and near-limit payloads. The emulator's recording of the calls must
// match what the service saw.
func TestEmulatorMethods(t *testing.T) {
	t.Parallel()
	forEachEmuTransport(t, func(t *testing.T, tr emuTransport) {
		srv := emulator.RunT(t)
		sc := emuService(t, srv)
		c := emuClient(t, srv, tr, createDevice(t, srv, "dev1"))
		if err := c.Connect(testContext(t)); err != nil {
			t.Fatalf("Connect: %v", err)
		}

		// Registered after Connect: the subscription is made lazily, and
		// the invocations' connect timeout waits for it.
		c.HandleMethod("setFan", func(_ context.Context, req *device.MethodRequest) (int, any) {
			return 201, map[string]json.RawMessage{"echo": req.Payload}
		})
		c.HandleMethod("ping", func(context.Context, *device.MethodRequest) (int, any) {
			return 200, nil
		})
		c.SetDefaultMethodHandler(func(_ context.Context, req *device.MethodRequest) (int, any) {
			return 501, map[string]any{"method": req.Name, "payload": req.Payload}
		})

		// A ReceiveMethodRequest that finds nothing still claims its name:
		// later "reboot" requests queue for it instead of reaching the
		// default handler.
		ctx, cancel := context.WithCancel(t.Context())
		cancelled, stop := context.WithCancel(ctx)
		stop()
		if _, err := c.ReceiveMethodRequest(cancelled, "reboot"); !errors.Is(err, context.Canceled) {
			t.Fatalf("ReceiveMethodRequest with a cancelled context = %v, want context.Canceled", err)
		}
		var wg sync.WaitGroup
		t.Cleanup(wg.Wait)
		t.Cleanup(cancel)
		wg.Go(func() {
			for {
				req, err := c.ReceiveMethodRequest(ctx, "reboot")
				if err != nil {
					return
				}
				resp := device.NewMethodResponse(req, 202, map[string]json.RawMessage{"queued": req.Payload})
				if err := c.SendMethodResponse(ctx, resp); err != nil {
					t.Errorf("SendMethodResponse: %v", err)
				}
			}
		})

		large := strings.Repeat("x", 120*1024) // the hub allows 128 KB each way
		tests := []struct {
			name        string
			method      string
			payload     any
			wantStatus  int
			wantPayload string
		}{
			{"handler", "setFan", map[string]int{"speed": 3}, 201, `{"echo":{"speed":3}}`},
			{"null payload reaches the handler as null", "setFan", nil, 201, `{"echo":null}`},
			{"handler without payload answers null", "ping", map[string]bool{"hello": true}, 200, `null`},
			{"large payload both ways", "setFan", large, 201, `{"echo":"` + large + `"}`},
			{"ReceiveMethodRequest and SendMethodResponse", "reboot", map[string]int{"delay": 5}, 202, `{"queued":{"delay":5}}`},
			{"ReceiveMethodRequest with null payload", "reboot", nil, 202, `{"queued":null}`},
			{"default handler", "unknown", []int{1, 2}, 501, `{"method":"unknown","payload":[1,2]}`},
		}
		var want []emulator.MethodCall
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				res, err := invoke(testContext(t), sc, "dev1", "", tt.method, tt.payload)
				if err != nil {
					t.Fatalf("InvokeMethod(%s): %v", tt.method, err)
				}
				if res.Status != tt.wantStatus || string(res.Payload) != tt.wantPayload {
					t.Errorf("InvokeMethod(%s) = %d %.200s, want %d %.200s", tt.method, res.Status, res.Payload, tt.wantStatus, tt.wantPayload)
				}
			})
			sent, err := json.Marshal(tt.payload)
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, emulator.MethodCall{DeviceID: "dev1", MethodName: tt.method, Payload: sent,
				Status: tt.wantStatus, ResponsePayload: json.RawMessage(tt.wantPayload)})
		}

		got := srv.MethodCalls("dev1")
		opts := []cmp.Option{
			cmpopts.IgnoreFields(emulator.MethodCall{}, "StartTime", "Duration"),
			cmp.Transformer("json", func(r json.RawMessage) string { return string(r) }),
		}
		if diff := cmp.Diff(want, got, opts...); diff != "" {
			t.Errorf("emulator's method recording mismatch (-want +got):\n%.2000s", diff)
		}
	})
}

// TestEmulatorMethodHandlerRemoved checks that HandleMethod(name, nil)
// hands the method back to the default handler.
func TestEmulatorMethodHandlerRemoved(t *testing.T) {
	t.Parallel()
	forEachEmuTransport(t, func(t *testing.T, tr emuTransport) {
		srv := emulator.RunT(t)
		sc := emuService(t, srv)
		c := emuClient(t, srv, tr, createDevice(t, srv, "dev1"))
		c.HandleMethod("m", func(context.Context, *device.MethodRequest) (int, any) { return 200, "own" })
		c.SetDefaultMethodHandler(func(context.Context, *device.MethodRequest) (int, any) { return 200, "default" })
		if err := c.Connect(testContext(t)); err != nil {
			t.Fatalf("Connect: %v", err)
		}
		mustInvoke(t, sc, "dev1", "", "m", nil, `"own"`)
		c.HandleMethod("m", nil)
		mustInvoke(t, sc, "dev1", "", "m", nil, `"default"`)
	})
}
