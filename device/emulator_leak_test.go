// SPDX-License-Identifier: MIT

package device_test

import (
	"context"
	"errors"
	"testing"

	"go.uber.org/goleak"

	"github.com/iothubemulator/iothub/device"
	"github.com/iothubemulator/iothub/emulator"
)

// TestEmulatorCloseLeavesNoGoroutines uses every feature against the
// emulator, including a drop and a reconnect, with receivers blocked at the
// time of Close. Close must end them with ErrClosed and leave no goroutine
// behind. It does not run in parallel, so that goleak sees only its own
// goroutines.
func TestEmulatorCloseLeavesNoGoroutines(t *testing.T) {
	before := goleak.IgnoreCurrent()
	for _, tr := range emuTransports {
		t.Run(tr.name, func(t *testing.T) {
			srv := emulator.RunT(t)
			sc := emuService(t, srv)
			cs := createDevice(t, srv, "dev1")
			c := emuClient(t, srv, tr, cs)
			c.HandleMethod("ping", echoMethod)
			c.OnDesiredPropertiesUpdate(func(device.Properties, int64) {})
			states := watchStates(c)
			if err := c.Connect(testContext(t)); err != nil {
				t.Fatalf("Connect: %v", err)
			}
			if err := c.SendMessage(testContext(t), &device.Message{Body: []byte("x")}); err != nil {
				t.Fatalf("SendMessage: %v", err)
			}
			if _, err := c.UpdateReportedProperties(testContext(t), map[string]int{"n": 1}); err != nil {
				t.Fatalf("UpdateReportedProperties: %v", err)
			}
			updateDesired(t, sc, map[string]any{"n": 2})
			mustInvoke(t, sc, "dev1", "", "ping", 1, "1")

			// A takeover that the client recovers from.
			mark := len(states.snapshot())
			intruder := emuClient(t, srv, tr, cs, device.WithoutRetries())
			if err := intruder.Connect(testContext(t)); err != nil {
				// The client may take the identity back first (see TestEmulatorTakeover).
				t.Logf("second Connect lost the identity before its CONNACK: %v", err)
			}
			i := states.waitFor(t, mark, "dropped", dropped)
			states.waitFor(t, i+1, "connected", is(device.StateConnected))
			mustInvoke(t, sc, "dev1", "", "ping", 2, "2")
			if _, err := c.GetTwin(testContext(t)); err != nil {
				t.Fatalf("GetTwin: %v", err)
			}

			// Receivers blocked in the client when it closes.
			errs := make(chan error, 2)
			go func() {
				_, err := c.ReceiveMethodRequest(context.Background(), "never")
				errs <- err
			}()
			go func() {
				c.OnDesiredPropertiesUpdate(nil)
				_, err := c.ReceiveDesiredPatch(context.Background())
				errs <- err
			}()
			for _, cl := range []*device.Client{intruder, c, c} {
				if err := cl.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			}
			for range 2 {
				if err := <-errs; !errors.Is(err, device.ErrClosed) {
					t.Errorf("blocked receiver returned %v after Close, want ErrClosed", err)
				}
			}
			if err := c.SendMessage(testContext(t), &device.Message{}); !errors.Is(err, device.ErrClosed) {
				t.Errorf("SendMessage after Close = %v, want ErrClosed", err)
			}
		})
	}
	goleak.VerifyNone(t, before)
}
