// SPDX-License-Identifier: MIT

package device_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/iothubemulator/iothub/device"
	"github.com/iothubemulator/iothub/emulator"
	svc "github.com/iothubemulator/iothub/service"
)

// hubClockSkew is how long after its expiry the hub still honours a SAS
// token (iothub-protocol.md §2.5).
const hubClockSkew = 5 * time.Minute

// TestEmulatorTokenRenewal gives the client three-second tokens, renewed
// 1.5 s before they expire. The emulator's clock runs ahead by the hub's
// clock-skew allowance, so it drops a connection the moment its token
// expires: every reconnect must therefore be a renewal the client asked
// for (no error), never a drop, and methods must keep working after each.
func TestEmulatorTokenRenewal(t *testing.T) {
	t.Parallel()
	forEachEmuTransport(t, func(t *testing.T, tr emuTransport) {
		srv := emulator.RunT(t)
		srv.SetClock(func() time.Time { return time.Now().Add(hubClockSkew) })
		sc := emuService(t, srv)
		c := emuClient(t, srv, tr, createDevice(t, srv, "dev1"),
			device.WithTokenLifetime(3*time.Second), device.WithTokenRenewMargin(1500*time.Millisecond))
		c.HandleMethod("ping", echoMethod)
		states := watchStates(c)
		if err := c.Connect(testContext(t)); err != nil {
			t.Fatalf("Connect: %v", err)
		}
		mustInvoke(t, sc, "dev1", "", "ping", 0, "0")

		const renewals = 3
		next := len(states.snapshot())
		for n := 1; n <= renewals; n++ {
			i := states.waitFor(t, next, "reconnecting", is(device.StateReconnecting))
			next = states.waitFor(t, i+1, "connected", is(device.StateConnected)) + 1
			mustInvoke(t, sc, "dev1", "", "ping", n, strconv.Itoa(n))
		}
		for _, ch := range states.snapshot() {
			if dropped(ch) {
				t.Errorf("connection dropped (%v); want only renewals before expiry, in %v", ch.err, states.snapshot())
				break
			}
		}
	})
}

// TestEmulatorExpiredTokenDropped moves the emulator's clock past the
// client's token expiry plus the five minutes of skew. The emulator closes
// the connection; the client reconnects at once with a freshly signed token
// and serves methods again.
func TestEmulatorExpiredTokenDropped(t *testing.T) {
	t.Parallel()
	forEachEmuTransport(t, func(t *testing.T, tr emuTransport) {
		srv := emulator.RunT(t)
		// The service's own tokens must outlive the clock jump.
		sc := emuService(t, srv, svc.WithTokenLifetime(3*time.Hour))
		c := emuClient(t, srv, tr, createDevice(t, srv, "dev1"))
		c.HandleMethod("ping", echoMethod)
		states := watchStates(c)
		if err := c.Connect(testContext(t)); err != nil {
			t.Fatalf("Connect: %v", err)
		}
		connected := time.Now()
		mustInvoke(t, sc, "dev1", "", "ping", 1, "1")
		mark := len(states.snapshot())

		// The token's se is whole seconds, rounded up: it expires at the
		// latest at lastExpiry. Freezing the clock just past that plus the
		// skew expires it, while a token signed once the wall clock is past
		// lastExpiry minus the lifetime has a later se and is still good.
		// Wait for that moment first (under a second): a reconnect refused
		// as unauthorized would end the client's retries.
		lastExpiry := connected.Add(device.DefaultTokenLifetime).Truncate(time.Second).Add(time.Second)
		time.Sleep(time.Until(lastExpiry.Add(-device.DefaultTokenLifetime)))
		srv.SetTime(lastExpiry.Add(hubClockSkew + 500*time.Millisecond))

		i := states.waitFor(t, mark, "dropped", dropped)
		states.waitFor(t, i+1, "connected", is(device.StateConnected))
		mustInvoke(t, sc, "dev1", "", "ping", 2, "2")
		if !srv.IsConnected("dev1", "") {
			t.Error("IsConnected = false after the client recovered")
		}
	})
}
