// SPDX-License-Identifier: MIT

package device_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/iothubemulator/iothub/device"
	"github.com/iothubemulator/iothub/emulator"
	"github.com/iothubemulator/iothub/internal/sas"
	"github.com/iothubemulator/iothub/internal/testutil"
	svc "github.com/iothubemulator/iothub/service"
)

// Helpers for the integration tests against the in-process emulator
// (emulator_*_test.go). Each test body runs once per transport, on an
// emulator of its own, with the real service client on the other side.

// waitTimeout bounds every wait for an asynchronous outcome.
const waitTimeout = 10 * time.Second

// emuTransport is one way for a device client to reach the emulator.
type emuTransport struct {
	name string
	ws   bool // MQTT over WebSockets on the HTTPS port, else MQTT over TLS
}

// emuTransports are the transports every emulator test body runs under.
var emuTransports = []emuTransport{{name: "mqtt"}, {name: "mqtt-ws", ws: true}}

// forEachEmuTransport runs body as a parallel subtest per transport; each
// body starts its own emulator.
func forEachEmuTransport(t *testing.T, body func(t *testing.T, tr emuTransport)) {
	t.Helper()
	for _, tr := range emuTransports {
		t.Run(tr.name, func(t *testing.T) {
			t.Parallel()
			body(t, tr)
		})
	}
}

// host returns where a client of this transport connects, as host:port.
func (tr emuTransport) host(srv *emulator.Server) string {
	if tr.ws {
		return srv.WebSocketHost()
	}
	_, port, _ := net.SplitHostPort(srv.MQTTAddr())
	return net.JoinHostPort(srv.HostName(), port)
}

// connString points a connection string from the emulator at this
// transport's port.
func (tr emuTransport) connString(t *testing.T, srv *emulator.Server, cs string) string {
	t.Helper()
	parsed, err := sas.ParseConnectionString(cs)
	if err != nil {
		t.Fatalf("ParseConnectionString(%q): %v", cs, err)
	}
	parsed.HostName = tr.host(srv)
	return parsed.String()
}

// options returns the client options for this transport: trust in the
// emulator's CA, quick reconnects and bounded operations, then extra.
func (tr emuTransport) options(srv *emulator.Server, extra ...device.Option) []device.Option {
	o := []device.Option{
		device.WithRootCAs(srv.CAPool()),
		device.WithRetryPolicy(fastRetry),
		device.WithOperationTimeout(5 * time.Second),
		device.WithConnectTimeout(5 * time.Second),
	}
	if tr.ws {
		o = append(o, device.WithWebSockets())
	}
	return append(o, extra...)
}

// recordedTransport is how the emulator labels this transport in its
// telemetry log.
func (tr emuTransport) recordedTransport() string {
	if tr.ws {
		return "mqtt-ws"
	}
	return "mqtt"
}

// emuClient returns a client (not connected) for the connection string cs
// over tr, closed at cleanup.
func emuClient(t *testing.T, srv *emulator.Server, tr emuTransport, cs string, opts ...device.Option) *device.Client {
	t.Helper()
	c, err := device.NewFromConnectionString(tr.connString(t, srv, cs), tr.options(srv, opts...)...)
	if err != nil {
		t.Fatalf("NewFromConnectionString: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// createDevice registers a SAS device and returns its connection string.
func createDevice(t *testing.T, srv *emulator.Server, id string) string {
	t.Helper()
	cs, err := srv.CreateDevice(id)
	if err != nil {
		t.Fatalf("CreateDevice(%q): %v", id, err)
	}
	return cs
}

// createModule registers a SAS module and returns its connection string.
func createModule(t *testing.T, srv *emulator.Server, deviceID, moduleID string) string {
	t.Helper()
	cs, err := srv.CreateModule(deviceID, moduleID)
	if err != nil {
		t.Fatalf("CreateModule(%q, %q): %v", deviceID, moduleID, err)
	}
	return cs
}

// emuService returns a service client for the emulator's iothubowner
// policy, without retries so that emulator faults are not hidden. Its idle
// connections are closed at cleanup, before the emulator stops.
func emuService(t *testing.T, srv *emulator.Server, opts ...svc.Option) *svc.Client {
	t.Helper()
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: srv.CAPool(), MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2: true,
	}
	t.Cleanup(tr.CloseIdleConnections)
	base := []svc.Option{svc.WithHTTPClient(&http.Client{Transport: tr}), svc.WithoutRetries()}
	sc, err := svc.NewFromConnectionString(srv.ConnectionString(), append(base, opts...)...)
	if err != nil {
		t.Fatalf("service.NewFromConnectionString: %v", err)
	}
	return sc
}

// invoke calls a direct method of a device (moduleID "") or module through
// the service REST API. The hub waits up to five seconds for the device to
// be connected and subscribed, and five more for its answer.
func invoke(ctx context.Context, sc *svc.Client, deviceID, moduleID, name string, payload any) (*svc.MethodResult, error) {
	m := svc.MethodCall{Name: name, Payload: payload, ResponseTimeout: 5 * time.Second, ConnectTimeout: 5 * time.Second}
	if moduleID != "" {
		return sc.InvokeModuleMethod(ctx, deviceID, moduleID, m)
	}
	return sc.InvokeMethod(ctx, deviceID, m)
}

// mustInvoke is invoke for calls that must succeed with status 200 and the
// payload want (compact JSON).
func mustInvoke(t *testing.T, sc *svc.Client, deviceID, moduleID, name string, payload any, want string) {
	t.Helper()
	res, err := invoke(testContext(t), sc, deviceID, moduleID, name, payload)
	if err != nil {
		t.Fatalf("invoke %s on %s: %v", name, deviceID, err)
	}
	if res.Status != 200 || string(res.Payload) != want {
		t.Fatalf("invoke %s on %s = %d %s, want 200 %s", name, deviceID, res.Status, res.Payload, want)
	}
}

// echoMethod is a method handler that answers 200 with the payload it got.
func echoMethod(_ context.Context, req *device.MethodRequest) (int, any) {
	return 200, req.Payload
}

// stateChange is one connection-state notification.
type stateChange struct {
	state device.ConnectionState
	err   error
}

func (s stateChange) String() string {
	if s.err == nil {
		return s.state.String()
	}
	return fmt.Sprintf("%s (%v)", s.state, s.err)
}

// stateLog records a client's connection-state notifications.
type stateLog struct {
	mu      sync.Mutex
	changes []stateChange
	changed chan struct{} // closed and replaced on every notification
}

// watchStates records c's state notifications from now on.
func watchStates(c *device.Client) *stateLog {
	l := &stateLog{changed: make(chan struct{})}
	c.OnConnectionStateChange(func(st device.ConnectionState, err error) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.changes = append(l.changes, stateChange{st, err})
		close(l.changed)
		l.changed = make(chan struct{})
	})
	return l
}

// snapshot returns the notifications so far.
func (l *stateLog) snapshot() []stateChange {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]stateChange(nil), l.changes...)
}

// waitFor waits for a notification at index from or later that matches
// match, and returns its index.
func (l *stateLog) waitFor(t *testing.T, from int, what string, match func(stateChange) bool) int {
	t.Helper()
	timeout := time.NewTimer(waitTimeout)
	defer timeout.Stop()
	for {
		l.mu.Lock()
		for i := from; i < len(l.changes); i++ {
			if match(l.changes[i]) {
				l.mu.Unlock()
				return i
			}
		}
		ch := l.changed
		l.mu.Unlock()
		select {
		case <-ch:
		case <-timeout.C:
			t.Fatalf("no %s notification after #%d within %v; got %v", what, from, waitTimeout, l.snapshot())
		}
	}
}

// is matches a state notification by state alone.
func is(st device.ConnectionState) func(stateChange) bool {
	return func(c stateChange) bool { return c.state == st }
}

// dropped matches a reconnect caused by the connection ending (as opposed
// to a requested renewal, which has no error).
func dropped(c stateChange) bool { return c.state == device.StateReconnecting && c.err != nil }

// eventually polls cond until it holds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, what, cond)
}

// selfSignedCert returns a fresh self-signed client certificate and its
// SHA-1 thumbprint as the registry stores it.
func selfSignedCert(t *testing.T, commonName string) (tls.Certificate, string) {
	t.Helper()
	c, err := testutil.SelfSigned(commonName)
	if err != nil {
		t.Fatal(err)
	}
	return c, testutil.Thumbprint(c)
}

// createX509Device registers a device that authenticates with the
// self-signed certificate whose thumbprint is given.
func createX509Device(t *testing.T, srv *emulator.Server, id, thumbprint string) {
	t.Helper()
	d := &emulator.Device{DeviceID: id, Auth: emulator.Authentication{Type: emulator.AuthSelfSigned, PrimaryThumbprint: thumbprint}}
	if _, err := srv.PutDevice(d, ""); err != nil {
		t.Fatalf("PutDevice(%s): %v", id, err)
	}
}

// disableDevice sets a device's status to disabled.
func disableDevice(t *testing.T, srv *emulator.Server, id string) {
	t.Helper()
	d, err := srv.Device(id)
	if err != nil {
		t.Fatalf("Device(%q): %v", id, err)
	}
	d.Disabled = true
	if _, err := srv.PutDevice(d, "*"); err != nil {
		t.Fatalf("PutDevice(%q, disabled): %v", id, err)
	}
}

// sharedAccessKey returns the key of a device or module connection string.
func sharedAccessKey(t *testing.T, cs string) string {
	t.Helper()
	parsed, err := sas.ParseConnectionString(cs)
	if err != nil {
		t.Fatal(err)
	}
	return parsed.SharedAccessKey
}
