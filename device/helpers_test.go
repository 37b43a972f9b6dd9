// SPDX-License-Identifier: MIT

package device_test

import (
	"context"
	"testing"
	"time"

	"github.com/iothubemulator/iothub/device"
	"github.com/iothubemulator/iothub/device/internal/fakehub"
)

// testKey is the protocol reference's SAS test key (§2.2).
const testKey = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="

// testHost is the hub name the tests put in connection strings; the network
// connection goes to the fake hub through GatewayHostName.
const testHost = "myhub.azure-devices.net"

// fastRetry reconnects quickly so drop tests stay short.
var fastRetry = device.ExponentialBackoff{Initial: 10 * time.Millisecond, Max: 100 * time.Millisecond, MaxFailures: 50}

// newClient returns a client for dev1 (or dev1/mod1 with a module) on h,
// closed at cleanup.
func newClient(t *testing.T, h *fakehub.Hub, cs string, opts ...device.Option) *device.Client {
	t.Helper()
	base := []device.Option{device.WithRootCAs(h.CA.Pool), device.WithRetryPolicy(fastRetry), device.WithOperationTimeout(5 * time.Second)}
	c, err := device.NewFromConnectionString(cs, append(base, opts...)...)
	if err != nil {
		t.Fatalf("NewFromConnectionString(%q): %v", cs, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// deviceString returns a device connection string for dev1 routed to addr.
func deviceString(addr string) string {
	return "HostName=" + testHost + ";DeviceId=dev1;SharedAccessKey=" + testKey + ";GatewayHostName=" + addr
}

// connected returns a connected client for dev1 on h.
func connected(t *testing.T, h *fakehub.Hub, opts ...device.Option) *device.Client {
	t.Helper()
	c := newClient(t, h, deviceString(h.TLSAddr), opts...)
	if err := c.Connect(testContext(t)); err != nil {
		t.Fatalf("Connect: %v", err)
	}
	return c
}

// testContext returns a context that ends with the test or after 15 s.
func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	t.Cleanup(cancel)
	return ctx
}
