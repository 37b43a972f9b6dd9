// SPDX-License-Identifier: MIT

package device_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/iothubemulator/iothub/device"
	"github.com/iothubemulator/iothub/emulator"
)

// TestEmulatorTakeover connects a second client with the same identity. The
// hub closes the first connection; the first client notices, reconnects by
// itself (taking the identity back, as on the real hub) and subscribes
// again, so methods reach it. Once it closes, the second client can connect
// and the methods reach that one instead.
func TestEmulatorTakeover(t *testing.T) {
	t.Parallel()
	forEachEmuTransport(t, func(t *testing.T, tr emuTransport) {
		srv := emulator.RunT(t)
		sc := emuService(t, srv)
		cs := createDevice(t, srv, "dev1")
		whoami := func(name string) device.MethodHandler {
			return func(context.Context, *device.MethodRequest) (int, any) { return 200, name }
		}

		first := emuClient(t, srv, tr, cs)
		first.HandleMethod("whoami", whoami("first"))
		patches := make(chan device.Properties, 1)
		first.OnDesiredPropertiesUpdate(func(p device.Properties, _ int64) { patches <- p })
		firstStates := watchStates(first)
		if err := first.Connect(testContext(t)); err != nil {
			t.Fatalf("first Connect: %v", err)
		}
		mustInvoke(t, sc, "dev1", "", "whoami", nil, `"first"`)
		mark := len(firstStates.snapshot())

		// The second client does not reconnect, or the two would take the
		// identity from each other for ever.
		second := emuClient(t, srv, tr, cs, device.WithoutRetries())
		second.HandleMethod("whoami", whoami("second"))
		secondStates := watchStates(second)
		// The first client's immediate reconnect may take the identity back
		// before the hub has answered the second CONNECT; the hub has taken
		// it over either way.
		if err := second.Connect(testContext(t)); err != nil {
			t.Logf("second Connect lost the identity before its CONNACK: %v", err)
		}

		i := firstStates.waitFor(t, mark, "dropped", dropped)
		firstStates.waitFor(t, i+1, "connected", is(device.StateConnected))
		secondStates.waitFor(t, 0, "disconnected", is(device.StateDisconnected))
		if got := second.State(); got != device.StateDisconnected {
			t.Errorf("second client State() = %v, want %v", got, device.StateDisconnected)
		}
		for _, ch := range secondStates.snapshot() {
			if ch.state == device.StateReconnecting {
				t.Errorf("second client WithoutRetries reconnected after a drop (%v), want it to stay disconnected", ch.err)
				break
			}
		}
		mustInvoke(t, sc, "dev1", "", "whoami", nil, `"first"`)
		waitPatch(t, patches, updateDesired(t, sc, map[string]any{"after": "takeover"}))

		if err := first.Close(); err != nil {
			t.Fatalf("first Close: %v", err)
		}
		eventually(t, "the hub to see the first client go", func() bool { return !srv.IsConnected("dev1", "") })
		if err := second.Connect(testContext(t)); err != nil {
			t.Fatalf("second Connect again: %v", err)
		}
		mustInvoke(t, sc, "dev1", "", "whoami", nil, `"second"`)
		if got := first.State(); got != device.StateClosed {
			t.Errorf("first client State() = %v after Close, want %v", got, device.StateClosed)
		}
	})
}

// TestEmulatorRestart stops the emulator under a connected client and
// starts it again on the same ports and data. The client reconnects by
// itself with the identity the database kept, subscribes again (the new
// server has no session state to resume) and serves methods, desired
// patches and twin requests; telemetry sent while the hub was down is
// delivered after the reconnect.
func TestEmulatorRestart(t *testing.T) {
	t.Parallel()
	forEachEmuTransport(t, func(t *testing.T, tr emuTransport) {
		opts := emulator.Options{MQTTAddr: freeAddr(t), HTTPSAddr: freeAddr(t), AMQPAddr: "127.0.0.1:0", AMQPPlainAddr: "127.0.0.1:0", DataDir: t.TempDir()}
		srv := emulator.RunT(t, emulator.WithOptions(opts))
		// Retry for as long as the test lasts: the restart must not race
		// the retry budget.
		patient := device.ExponentialBackoff{Initial: 10 * time.Millisecond, Max: 100 * time.Millisecond}
		c := emuClient(t, srv, tr, createDevice(t, srv, "dev1"), device.WithRetryPolicy(patient), device.WithOperationTimeout(waitTimeout))
		c.HandleMethod("ping", echoMethod)
		patches := make(chan device.Properties, 1)
		c.OnDesiredPropertiesUpdate(func(p device.Properties, _ int64) { patches <- p })
		states := watchStates(c)
		if err := c.Connect(testContext(t)); err != nil {
			t.Fatalf("Connect: %v", err)
		}
		if _, err := c.UpdateReportedProperties(testContext(t), map[string]int{"boot": 1}); err != nil {
			t.Fatal(err)
		}
		mustInvoke(t, emuService(t, srv), "dev1", "", "ping", 1, "1")
		mark := len(states.snapshot())

		if err := srv.Close(); err != nil {
			t.Fatalf("emulator Close: %v", err)
		}
		states.waitFor(t, mark, "dropped", dropped)
		// Sent while the hub is down: it waits for the reconnect.
		sent := make(chan error, 1)
		ctx := testContext(t)
		go func() { sent <- c.SendMessage(ctx, &device.Message{MessageID: "during restart"}) }()

		srv = emulator.RunT(t, emulator.WithOptions(opts))
		if srv.MQTTAddr() != opts.MQTTAddr || srv.HTTPSAddr() != opts.HTTPSAddr {
			t.Fatalf("restarted on %s and %s, want %s and %s", srv.MQTTAddr(), srv.HTTPSAddr(), opts.MQTTAddr, opts.HTTPSAddr)
		}
		states.waitFor(t, mark, "connected", is(device.StateConnected))
		sc := emuService(t, srv)
		mustInvoke(t, sc, "dev1", "", "ping", 2, "2")
		waitPatch(t, patches, updateDesired(t, sc, map[string]any{"after": "restart"}))
		if err := <-sent; err != nil {
			t.Errorf("SendMessage across the restart: %v", err)
		}
		msgs, err := srv.WaitMessages("dev1", 1, waitTimeout)
		if err != nil {
			t.Fatal(err)
		}
		if msgs[len(msgs)-1].MessageID != "during restart" {
			t.Errorf("last recorded message %q, want %q", msgs[len(msgs)-1].MessageID, "during restart")
		}
		tw, err := c.GetTwin(testContext(t))
		if err != nil {
			t.Fatalf("GetTwin after restart: %v", err)
		}
		if tw.Reported["boot"] != 1.0 {
			t.Errorf("reported properties after restart = %v, want boot 1 kept", tw.Reported)
		}
	})
}

// freeAddr returns a loopback address with a port that was free a moment
// ago, for an emulator that must come back on the same port.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// waitPatch waits for a desired patch at version on patches.
func waitPatch(t *testing.T, patches <-chan device.Properties, version int64) {
	t.Helper()
	select {
	case p := <-patches:
		if p.Version() != version {
			t.Errorf("desired patch %v, want $version %d", p, version)
		}
	case <-time.After(waitTimeout):
		t.Fatalf("no desired patch at version %d", version)
	}
}
