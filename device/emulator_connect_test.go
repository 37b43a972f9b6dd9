// SPDX-License-Identifier: MIT

package device_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/iothubemulator/iothub/device"
	"github.com/iothubemulator/iothub/emulator"
	"github.com/iothubemulator/iothub/internal/sas"
	svc "github.com/iothubemulator/iothub/service"
)

// testModelID is an IoT Plug and Play model id (a DTMI).
const testModelID = "dtmi:com:example:Thermostat;1"

// TestEmulatorConnectIdentities connects with every kind of credential and
// proves each identity end to end: the hub records the telemetry under the
// right identity, auth method and transport, routes a direct method to it,
// and the registry shows it connected until Close.
func TestEmulatorConnectIdentities(t *testing.T) {
	t.Parallel()
	forEachEmuTransport(t, func(t *testing.T, tr emuTransport) {
		srv := emulator.RunT(t)
		sc := emuService(t, srv)
		tests := []struct {
			name      string
			deviceID  string
			moduleID  string
			wantAuth  string // connectionAuthMethod the hub records
			wantModel string // the twin's modelId afterwards
			newClient func(t *testing.T) *device.Client
		}{
			{
				name: "device key", deviceID: "dev-key", wantAuth: "sas",
				newClient: func(t *testing.T) *device.Client {
					return emuClient(t, srv, tr, createDevice(t, srv, "dev-key"))
				},
			},
			{
				name: "module key", deviceID: "dev-mod", moduleID: "mod1", wantAuth: "sas",
				newClient: func(t *testing.T) *device.Client {
					createDevice(t, srv, "dev-mod")
					return emuClient(t, srv, tr, createModule(t, srv, "dev-mod", "mod1"))
				},
			},
			{
				name: "device SAS token", deviceID: "dev-token", wantAuth: "sas",
				newClient: func(t *testing.T) *device.Client {
					key := sharedAccessKey(t, createDevice(t, srv, "dev-token"))
					return tokenClient(t, srv, tr, "dev-token", "", key, time.Now().Add(time.Hour))
				},
			},
			{
				name: "module SAS token", deviceID: "dev-mtoken", moduleID: "mod1", wantAuth: "sas",
				newClient: func(t *testing.T) *device.Client {
					createDevice(t, srv, "dev-mtoken")
					key := sharedAccessKey(t, createModule(t, srv, "dev-mtoken", "mod1"))
					return tokenClient(t, srv, tr, "dev-mtoken", "mod1", key, time.Now().Add(time.Hour))
				},
			},
			{
				name: "X.509 self-signed", deviceID: "dev-x509", wantAuth: "x509",
				newClient: func(t *testing.T) *device.Client {
					cert, thumb := selfSignedCert(t, "dev-x509")
					createX509Device(t, srv, "dev-x509", thumb)
					c, err := device.NewFromX509(tr.host(srv), "dev-x509", "", cert, tr.options(srv)...)
					if err != nil {
						t.Fatalf("NewFromX509: %v", err)
					}
					t.Cleanup(func() { _ = c.Close() })
					return c
				},
			},
			{
				name: "model id", deviceID: "dev-pnp", wantAuth: "sas", wantModel: testModelID,
				newClient: func(t *testing.T) *device.Client {
					return emuClient(t, srv, tr, createDevice(t, srv, "dev-pnp"), device.WithModelID(testModelID))
				},
			},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				c := tt.newClient(t)
				c.HandleMethod("whoami", func(context.Context, *device.MethodRequest) (int, any) {
					return 200, map[string]string{"deviceId": c.DeviceID(), "moduleId": c.ModuleID()}
				})
				if err := c.Connect(testContext(t)); err != nil {
					t.Fatalf("Connect: %v", err)
				}
				if got := c.State(); got != device.StateConnected {
					t.Errorf("State() = %v, want %v", got, device.StateConnected)
				}
				if !srv.IsConnected(tt.deviceID, tt.moduleID) {
					t.Errorf("IsConnected(%q, %q) = false, want true", tt.deviceID, tt.moduleID)
				}

				if err := c.SendMessage(testContext(t), &device.Message{Body: []byte(tt.name)}); err != nil {
					t.Fatalf("SendMessage: %v", err)
				}
				msgs, err := srv.WaitMessages(tt.deviceID, 1, waitTimeout)
				if err != nil {
					t.Fatal(err)
				}
				m := msgs[0]
				if m.ModuleID != tt.moduleID || m.AuthMethod != tt.wantAuth || m.Transport != tr.recordedTransport() || string(m.Body) != tt.name {
					t.Errorf("recorded module %q, auth %q, transport %q, body %q; want %q, %q, %q, %q",
						m.ModuleID, m.AuthMethod, m.Transport, m.Body, tt.moduleID, tt.wantAuth, tr.recordedTransport(), tt.name)
				}

				want, _ := json.Marshal(map[string]string{"deviceId": tt.deviceID, "moduleId": tt.moduleID})
				mustInvoke(t, sc, tt.deviceID, tt.moduleID, "whoami", nil, string(want))

				raw, err := srv.Twin(tt.deviceID, tt.moduleID)
				if err != nil {
					t.Fatal(err)
				}
				var tw struct {
					ModelID string `json:"modelId"`
				}
				if err := json.Unmarshal(raw, &tw); err != nil {
					t.Fatal(err)
				}
				if tw.ModelID != tt.wantModel {
					t.Errorf("twin modelId = %q, want %q", tw.ModelID, tt.wantModel)
				}

				if got := serviceConnectionState(t, sc, tt.deviceID, tt.moduleID); got != svc.Connected {
					t.Errorf("service sees connectionState %q while connected, want %q", got, svc.Connected)
				}
				if err := c.Close(); err != nil {
					t.Fatalf("Close: %v", err)
				}
				eventually(t, "the service to see the identity disconnected", func() bool {
					return serviceConnectionState(t, sc, tt.deviceID, tt.moduleID) == svc.Disconnected
				})
			})
		}
	})
}

// serviceConnectionState returns the registry's connectionState of a
// device (moduleID "") or module.
func serviceConnectionState(t *testing.T, sc *svc.Client, deviceID, moduleID string) svc.ConnectionState {
	t.Helper()
	if moduleID != "" {
		m, err := sc.GetModule(testContext(t), deviceID, moduleID)
		if err != nil {
			t.Fatalf("service GetModule: %v", err)
		}
		return m.ConnectionState
	}
	d, err := sc.GetDevice(testContext(t), deviceID)
	if err != nil {
		t.Fatalf("service GetDevice: %v", err)
	}
	return d.ConnectionState
}

// tokenClient returns a client built with NewFromSASToken from a token
// signed with key, closed at cleanup.
func tokenClient(t *testing.T, srv *emulator.Server, tr emuTransport, deviceID, moduleID, key string, expiry time.Time) *device.Client {
	t.Helper()
	tok, err := sas.NewToken(sas.ResourceURI(srv.HostName(), deviceID, moduleID), "", key, expiry)
	if err != nil {
		t.Fatal(err)
	}
	c, err := device.NewFromSASToken(tr.host(srv), deviceID, moduleID, tok, tr.options(srv)...)
	if err != nil {
		t.Fatalf("NewFromSASToken: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// TestEmulatorConnectRefused checks that every credential failure the hub
// answers with CONNACK 5 surfaces as ErrUnauthorized, and that the client
// stays disconnected without retrying.
func TestEmulatorConnectRefused(t *testing.T) {
	t.Parallel()
	forEachEmuTransport(t, func(t *testing.T, tr emuTransport) {
		srv := emulator.RunT(t)
		tests := []struct {
			name      string
			deviceID  string
			newClient func(t *testing.T) *device.Client
		}{
			{
				name: "wrong key", deviceID: "dev-wrong",
				newClient: func(t *testing.T) *device.Client {
					createDevice(t, srv, "dev-wrong")
					cs := "HostName=" + srv.HostName() + ";DeviceId=dev-wrong;SharedAccessKey=" + sas.GenerateKey()
					return emuClient(t, srv, tr, cs)
				},
			},
			{
				name: "unknown device", deviceID: "dev-ghost",
				newClient: func(t *testing.T) *device.Client {
					cs := "HostName=" + srv.HostName() + ";DeviceId=dev-ghost;SharedAccessKey=" + sas.GenerateKey()
					return emuClient(t, srv, tr, cs)
				},
			},
			{
				name: "unknown module", deviceID: "dev-nomod",
				newClient: func(t *testing.T) *device.Client {
					key := sharedAccessKey(t, createDevice(t, srv, "dev-nomod"))
					return emuClient(t, srv, tr, "HostName="+srv.HostName()+";DeviceId=dev-nomod;ModuleId=ghost;SharedAccessKey="+key)
				},
			},
			{
				name: "disabled device", deviceID: "dev-off",
				newClient: func(t *testing.T) *device.Client {
					cs := createDevice(t, srv, "dev-off")
					disableDevice(t, srv, "dev-off")
					return emuClient(t, srv, tr, cs)
				},
			},
			{
				name: "expired SAS token", deviceID: "dev-old",
				newClient: func(t *testing.T) *device.Client {
					key := sharedAccessKey(t, createDevice(t, srv, "dev-old"))
					// Past the hub's five minutes of clock-skew allowance.
					return tokenClient(t, srv, tr, "dev-old", "", key, time.Now().Add(-6*time.Minute))
				},
			},
			{
				name: "unregistered certificate", deviceID: "dev-x509",
				newClient: func(t *testing.T) *device.Client {
					_, thumb := selfSignedCert(t, "dev-x509")
					createX509Device(t, srv, "dev-x509", thumb)
					other, _ := selfSignedCert(t, "dev-x509")
					c, err := device.NewFromX509(tr.host(srv), "dev-x509", "", other, tr.options(srv)...)
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { _ = c.Close() })
					return c
				},
			},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				c := tt.newClient(t)
				err := c.Connect(testContext(t))
				var he *device.Error
				if !errors.Is(err, device.ErrUnauthorized) || !errors.As(err, &he) || he.StatusCode != http.StatusUnauthorized {
					t.Fatalf("Connect = %v, want a *device.Error with status 401 matching ErrUnauthorized", err)
				}
				if got := c.State(); got != device.StateDisconnected {
					t.Errorf("State() = %v, want %v", got, device.StateDisconnected)
				}
				if srv.IsConnected(tt.deviceID, "") {
					t.Errorf("IsConnected(%q) = true after a refused CONNECT", tt.deviceID)
				}
				// No reconnect loop after a failed Connect: operations fail at once.
				if err := c.SendMessage(testContext(t), &device.Message{Body: []byte("x")}); !errors.Is(err, device.ErrNotConnected) {
					t.Errorf("SendMessage after refused Connect = %v, want ErrNotConnected", err)
				}
			})
		}
	})
}

// TestEmulatorDisabledWhileConnected disables a connected device: the hub
// drops the connection, the client's reconnects are refused, and once its
// retry policy gives up it reports StateDisconnected with the 401 as the
// reason, which later operations carry too.
func TestEmulatorDisabledWhileConnected(t *testing.T) {
	t.Parallel()
	forEachEmuTransport(t, func(t *testing.T, tr emuTransport) {
		srv := emulator.RunT(t)
		giveUp := device.ExponentialBackoff{Initial: 10 * time.Millisecond, Max: 20 * time.Millisecond, MaxFailures: 3}
		c := emuClient(t, srv, tr, createDevice(t, srv, "dev1"), device.WithRetryPolicy(giveUp))
		states := watchStates(c)
		if err := c.Connect(testContext(t)); err != nil {
			t.Fatalf("Connect: %v", err)
		}
		start := len(states.snapshot())

		disableDevice(t, srv, "dev1")
		i := states.waitFor(t, start, "dropped", dropped)
		j := states.waitFor(t, i+1, "disconnected", is(device.StateDisconnected))
		if err := states.snapshot()[j].err; !errors.Is(err, device.ErrUnauthorized) {
			t.Errorf("StateDisconnected reason = %v, want ErrUnauthorized", err)
		}
		err := c.SendMessage(testContext(t), &device.Message{Body: []byte("x")})
		if !errors.Is(err, device.ErrNotConnected) || !errors.Is(err, device.ErrUnauthorized) {
			t.Errorf("SendMessage after giving up = %v, want ErrNotConnected wrapping ErrUnauthorized", err)
		}
		if srv.IsConnected("dev1", "") {
			t.Error("IsConnected = true for a disabled device")
		}
	})
}
