// SPDX-License-Identifier: MIT

package device_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/iothubemulator/iothub/device"
	"github.com/iothubemulator/iothub/emulator"
)

// TestEmulatorConnectionFaults breaks the client's connection with each
// fault the emulator serves over MQTT, with a duration during which the
// hub refuses reconnects. The client retries by itself, is refused until
// the duration ends (moved by FastForward), reconnects, subscribes again,
// and methods, desired patches, cloud-to-device messages and telemetry
// work as before.
func TestEmulatorConnectionFaults(t *testing.T) {
	t.Parallel()
	for _, kind := range []emulator.FaultType{emulator.FaultKillTcp, emulator.FaultShutDownMqtt} {
		t.Run(string(kind), func(t *testing.T) {
			forEachEmuTransport(t, func(t *testing.T, tr emuTransport) {
				srv := emulator.RunT(t)
				srv.SetTime(time.Now())
				patient := device.ExponentialBackoff{Initial: 10 * time.Millisecond, Max: 50 * time.Millisecond}
				c := emuClient(t, srv, tr, createDevice(t, srv, "dev1"), device.WithRetryPolicy(patient), device.WithOperationTimeout(waitTimeout))
				c.HandleMethod("ping", echoMethod)
				patches := make(chan device.Properties, 1)
				c.OnDesiredPropertiesUpdate(func(p device.Properties, _ int64) { patches <- p })
				c2d := make(chan *device.Message, 1)
				c.OnMessage(func(m *device.Message) { c2d <- m })
				states := watchStates(c)
				if err := c.Connect(testContext(t)); err != nil {
					t.Fatalf("Connect: %v", err)
				}
				sc := emuService(t, srv)
				mustInvoke(t, sc, "dev1", "", "ping", 1, "1")
				mark := len(states.snapshot())

				if _, err := srv.InjectFault(emulator.FaultSpec{DeviceID: "dev1", Type: kind, CloseReason: "test", Duration: 5 * time.Second}); err != nil {
					t.Fatal(err)
				}
				states.waitFor(t, mark, "dropped", dropped)
				eventually(t, "a refused reconnect", func() bool {
					fs := srv.Faults("dev1")
					return len(fs) == 1 && fs[0].Refused > 0
				})
				if c.State() == device.StateConnected {
					t.Fatal("the client connected during the fault's duration")
				}
				srv.FastForward(5 * time.Second)
				states.waitFor(t, mark, "connected", is(device.StateConnected))

				mustInvoke(t, sc, "dev1", "", "ping", 2, "2")
				waitPatch(t, patches, updateDesired(t, sc, map[string]any{"after": string(kind)}))
				if _, err := srv.SendC2D("dev1", &emulator.C2DMessage{MessageID: "after fault"}, 0); err != nil {
					t.Fatal(err)
				}
				select {
				case m := <-c2d:
					if m.MessageID != "after fault" {
						t.Errorf("C2D message %q, want %q", m.MessageID, "after fault")
					}
				case <-time.After(waitTimeout):
					t.Fatal("no C2D message after the reconnect")
				}
				if err := c.SendMessage(testContext(t), &device.Message{MessageID: "after fault"}); err != nil {
					t.Fatalf("SendMessage after the reconnect: %v", err)
				}
				msgs, err := srv.WaitMessages("dev1", 1, waitTimeout)
				if err != nil {
					t.Fatal(err)
				}
				if msgs[len(msgs)-1].MessageID != "after fault" {
					t.Errorf("last recorded message %q, want %q", msgs[len(msgs)-1].MessageID, "after fault")
				}
				f := srv.Faults("dev1")[0]
				if f.Outcome != emulator.FaultApplied || f.Connection.Transport != map[bool]string{false: "mqtt", true: "mqtt-ws"}[tr.ws] {
					t.Errorf("fault record: %+v", f)
				}
			})
		})
	}
}

// TestEmulatorThrottleSwitch is the hub-wide throttling switch as a device
// sees it over MQTT. A throttled reported patch is answered on the twin
// response topic with the chosen error (here 403 IotHubQuotaExceeded), for
// an even share of the patches. Throttled telemetry closes the connection
// (MQTT 3.1.1 has no negative PUBACK): the client reconnects and sends the
// message again, and every message is recorded once. Off, nothing is
// refused.
func TestEmulatorThrottleSwitch(t *testing.T) {
	t.Parallel()
	forEachEmuTransport(t, func(t *testing.T, tr emuTransport) {
		srv := emulator.RunT(t)
		c := emuClient(t, srv, tr, createDevice(t, srv, "dev1"))
		states := watchStates(c)
		ctx := testContext(t)
		if err := c.Connect(ctx); err != nil {
			t.Fatalf("Connect: %v", err)
		}

		if err := srv.SetThrottle(emulator.Throttle{Rate: 0.5, Err: emulator.ErrQuotaExceeded, Ops: []emulator.Op{emulator.OpPatchReported}}); err != nil {
			t.Fatal(err)
		}
		var codes []int
		for i := range 4 {
			_, err := c.UpdateReportedProperties(ctx, map[string]int{"n": i})
			var he *device.Error
			switch {
			case err == nil:
				codes = append(codes, 0)
			case errors.As(err, &he) && errors.Is(err, device.ErrForbidden) && he.CodeName == "IotHubQuotaExceeded":
				codes = append(codes, he.Code)
			default:
				t.Fatalf("UpdateReportedProperties %d: %v, want nil or 403002 IotHubQuotaExceeded", i, err)
			}
		}
		if want := []int{0, 403002, 0, 403002}; !slices.Equal(codes, want) {
			t.Fatalf("reported patches under a 0.5 throttle: %v, want %v", codes, want)
		}
		if _, err := c.GetTwin(ctx); err != nil {
			t.Fatalf("GetTwin, which the throttle does not name: %v", err)
		}

		mark := len(states.snapshot())
		if err := srv.SetThrottle(emulator.Throttle{Rate: 0.5, Ops: []emulator.Op{emulator.OpTelemetry}}); err != nil {
			t.Fatal(err)
		}
		// Every other attempt is refused: each message after the first is
		// refused once, then recorded when the client sends it again.
		for i := range 4 {
			if err := c.SendMessage(ctx, &device.Message{MessageID: fmt.Sprint("m", i)}); err != nil {
				t.Fatalf("SendMessage m%d under the throttle: %v", i, err)
			}
		}
		if n := countDrops(states.snapshot()[mark:]); n != 3 {
			t.Fatalf("%d connections dropped for throttled telemetry, want 3: %v", n, states.snapshot()[mark:])
		}

		if err := srv.SetThrottle(emulator.Throttle{}); err != nil {
			t.Fatal(err)
		}
		if err := c.SendMessage(ctx, &device.Message{MessageID: "m4"}); err != nil {
			t.Fatalf("SendMessage with the throttle off: %v", err)
		}
		msgs, err := srv.WaitMessages("dev1", 5, waitTimeout)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, m := range msgs {
			ids = append(ids, m.MessageID)
		}
		if want := []string{"m0", "m1", "m2", "m3", "m4"}; !slices.Equal(ids, want) {
			t.Fatalf("recorded messages %v, want %v", ids, want)
		}
		if n := countDrops(states.snapshot()[mark:]); n != 3 {
			t.Fatalf("%d connections dropped in all, want 3: %v", n, states.snapshot()[mark:])
		}
	})
}

// countDrops counts the reconnects caused by a connection ending.
func countDrops(changes []stateChange) int {
	n := 0
	for _, c := range changes {
		if dropped(c) {
			n++
		}
	}
	return n
}
