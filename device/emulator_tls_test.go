// SPDX-License-Identifier: MIT

package device_test

import (
	"crypto/tls"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iothubemulator/iothub/device"
	"github.com/iothubemulator/iothub/emulator"
)

// TestEmulatorUntrustedCA connects without trusting the emulator's CA and
// expects an error that says so and what to do, over both transports.
func TestEmulatorUntrustedCA(t *testing.T) {
	t.Parallel()
	forEachEmuTransport(t, func(t *testing.T, tr emuTransport) {
		srv := emulator.RunT(t)
		opts := []device.Option{device.WithConnectTimeout(5 * time.Second)}
		if tr.ws {
			opts = append(opts, device.WithWebSockets())
		}
		c, err := device.NewFromConnectionString(tr.connString(t, srv, createDevice(t, srv, "dev1")), opts...)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		err = c.Connect(testContext(t))
		if err == nil {
			t.Fatal("Connect succeeded without trusting the emulator's CA")
		}
		for _, want := range []string{"certificate signed by unknown authority", "this is the IoT Hub emulator, whose CA is not trusted",
			"device.WithCAFile", "IOTHUB_CA_FILE", "iothub-data/ca.pem", "/emulator/ca.pem"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q lacks %q", err, want)
			}
		}
		var verr *tls.CertificateVerificationError
		if !errors.As(err, &verr) {
			t.Errorf("errors.As(*tls.CertificateVerificationError) fails on %v", err)
		}
	})
}

// countingPolicy counts how often the client consults it; it retries
// quickly, for ever.
type countingPolicy struct{ calls atomic.Int32 }

func (p *countingPolicy) Delay(int, error) (time.Duration, bool) {
	p.calls.Add(1)
	return 10 * time.Millisecond, true
}

// TestEmulatorReconnectStopsOnUntrustedCertificate restarts the hub with a
// new CA on the same address: the client's reconnection then fails on the
// certificate, and it gives up at once instead of retrying for ever.
func TestEmulatorReconnectStopsOnUntrustedCertificate(t *testing.T) {
	t.Parallel()
	opts := emulator.Options{MQTTAddr: freeAddr(t), HTTPSAddr: freeAddr(t), DataDir: t.TempDir()}
	srv := emulator.RunT(t, emulator.WithOptions(opts))
	p := &countingPolicy{}
	tr := emuTransport{name: "mqtt"}
	c := emuClient(t, srv, tr, createDevice(t, srv, "dev1"), device.WithRetryPolicy(p))
	states := watchStates(c)
	if err := c.Connect(testContext(t)); err != nil {
		t.Fatalf("Connect: %v", err)
	}
	mark := len(states.snapshot())
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	// Same addresses, another data dir: a new CA the client does not trust.
	opts.DataDir = t.TempDir()
	emulator.RunT(t, emulator.WithOptions(opts))
	ch := states.waitFor(t, mark, "disconnected", is(device.StateDisconnected))
	got := states.snapshot()[ch]
	if got.err == nil || !strings.Contains(got.err.Error(), "whose CA is not trusted") {
		t.Errorf("disconnected with %v, want the certificate error", got.err)
	}
	// Attempts before the new emulator listened were refused connections,
	// which the policy decides on; the certificate failure ends it without
	// asking. So no more calls happen now.
	before := p.calls.Load()
	time.Sleep(200 * time.Millisecond)
	if after := p.calls.Load(); after != before {
		t.Errorf("the policy was consulted %d more times after giving up", after-before)
	}
}
