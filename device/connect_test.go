// SPDX-License-Identifier: MIT

package device_test

import (
	"crypto/tls"
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/iothubemulator/iothub/device"
	"github.com/iothubemulator/iothub/device/internal/fakehub"
	"github.com/iothubemulator/iothub/internal/sas"
	"github.com/iothubemulator/iothub/internal/testutil"
)

// userAgent is the DeviceClientType value as it appears in the username.
var userAgent = "iothub-go-device%2F0.1.0%20(" + runtime.Version() + "%3B%20" + runtime.GOOS + "%3B%20" + runtime.GOARCH + ")"

// TestConnectPacket checks the CONNECT fields the hub sees against what the
// official SDKs send (protocol reference §3.2; Node mqtt.ts
// _getBaseTransportConfig and azure-iot-mqtt-base: clean false, MQTT 3.1.1;
// Python pipeline_stages_iothub_mqtt.py for the username; keep-alive 60 s as
// in Python).
func TestConnectPacket(t *testing.T) {
	h := fakehub.Start(t)
	cert, err := h.CA.Issue("dev1")
	if err != nil {
		t.Fatal(err)
	}
	token, err := sas.NewToken(sas.ResourceURI(testHost, "dev1", ""), "", testKey, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	base := fakehub.Connect{
		ClientID: "dev1", UsernameFlag: true, PasswordFlag: true, Keepalive: 60,
		ProtocolName: "MQTT", ProtocolVersion: 4, Listener: "tls", Accepted: true,
		Username: testHost + "/dev1/?api-version=2021-04-12&DeviceClientType=" + userAgent,
	}
	tests := []struct {
		name     string
		newFn    func() (*device.Client, error)
		want     func(fakehub.Connect) fakehub.Connect
		resource string // SAS resource expected in the password; "" for a verbatim token or none
		keyName  string
	}{
		{
			name: "device key",
			newFn: func() (*device.Client, error) {
				return device.NewFromConnectionString(deviceString(h.TLSAddr), device.WithRootCAs(h.CA.Pool))
			},
			want:     func(c fakehub.Connect) fakehub.Connect { return c },
			resource: testHost + "/devices/dev1",
		},
		{
			name: "module key",
			newFn: func() (*device.Client, error) {
				cs := "HostName=" + testHost + ";DeviceId=dev1;ModuleId=mod1;SharedAccessKey=" + testKey + ";GatewayHostName=" + h.TLSAddr
				return device.NewFromConnectionString(cs, device.WithRootCAs(h.CA.Pool))
			},
			want: func(c fakehub.Connect) fakehub.Connect {
				c.ClientID = "dev1/mod1"
				c.Username = testHost + "/dev1/mod1/?api-version=2021-04-12&DeviceClientType=" + userAgent
				return c
			},
			resource: testHost + "/devices/dev1/modules/mod1",
		},
		{
			name: "policy key sends skn",
			newFn: func() (*device.Client, error) {
				cs := "HostName=" + testHost + ";DeviceId=dev1;SharedAccessKeyName=device;SharedAccessKey=" + testKey + ";GatewayHostName=" + h.TLSAddr
				return device.NewFromConnectionString(cs, device.WithRootCAs(h.CA.Pool))
			},
			want:     func(c fakehub.Connect) fakehub.Connect { return c },
			resource: testHost + "/devices/dev1",
			keyName:  "device",
		},
		{
			name: "port in host name, model id, product info, keep-alive",
			newFn: func() (*device.Client, error) {
				cs := "HostName=" + h.TLSAddr + ";DeviceId=dev1;SharedAccessKey=" + testKey
				return device.NewFromConnectionString(cs, device.WithRootCAs(h.CA.Pool),
					device.WithModelID("dtmi:com:example:Thermostat;1"), device.WithProductInfo("/app"),
					device.WithKeepAlive(120*time.Second))
			},
			want: func(c fakehub.Connect) fakehub.Connect {
				c.Keepalive = 120
				c.Username = "127.0.0.1/dev1/?api-version=2021-04-12&DeviceClientType=" + userAgent +
					"%2Fapp&model-id=dtmi%3Acom%3Aexample%3AThermostat%3B1"
				return c
			},
			resource: "127.0.0.1/devices/dev1",
		},
		{
			name: "SAS token verbatim",
			newFn: func() (*device.Client, error) {
				return device.NewFromSASToken(h.TLSAddr, "dev1", "", token, device.WithRootCAs(h.CA.Pool))
			},
			want: func(c fakehub.Connect) fakehub.Connect {
				c.Username = "127.0.0.1/dev1/?api-version=2021-04-12&DeviceClientType=" + userAgent
				c.Password = token
				return c
			},
		},
		{
			name: "X.509 sends no password",
			newFn: func() (*device.Client, error) {
				return device.NewFromX509(h.TLSAddr, "dev1", "", cert, device.WithRootCAs(h.CA.Pool))
			},
			want: func(c fakehub.Connect) fakehub.Connect {
				c.Username = "127.0.0.1/dev1/?api-version=2021-04-12&DeviceClientType=" + userAgent
				c.PasswordFlag = false
				c.PeerCommonName = "dev1"
				return c
			},
		},
		{
			name: "x509=true connection string",
			newFn: func() (*device.Client, error) {
				cs := "HostName=" + testHost + ";DeviceId=dev1;x509=true;GatewayHostName=" + h.TLSAddr
				return device.NewFromConnectionString(cs, device.WithRootCAs(h.CA.Pool), device.WithX509Certificate(cert))
			},
			want: func(c fakehub.Connect) fakehub.Connect {
				c.PasswordFlag = false
				c.PeerCommonName = "dev1"
				return c
			},
		},
		{
			name: "websockets",
			newFn: func() (*device.Client, error) {
				cs := "HostName=" + testHost + ";DeviceId=dev1;SharedAccessKey=" + testKey + ";GatewayHostName=" + h.WSAddr
				return device.NewFromConnectionString(cs, device.WithRootCAs(h.CA.Pool), device.WithWebSockets())
			},
			want: func(c fakehub.Connect) fakehub.Connect {
				c.Listener = "wss"
				return c
			},
			resource: testHost + "/devices/dev1",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(h.Connects())
			c, err := tt.newFn()
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := c.Connect(testContext(t)); err != nil {
				t.Fatalf("Connect: %v", err)
			}
			got := h.WaitConnects(t, before+1)[before]
			want := tt.want(base)
			if tt.resource != "" {
				checkToken(t, got.Password, tt.resource, tt.keyName)
				want.Password = got.Password
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("CONNECT mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// checkToken checks that password is the token sas.NewToken (byte-for-byte
// the Node SDK's) makes for resource, valid for about an hour.
func checkToken(t *testing.T, password, resource, keyName string) {
	t.Helper()
	tok, err := sas.ParseToken(password)
	if err != nil {
		t.Fatalf("password %q is not a SAS token: %v", password, err)
	}
	want, err := sas.NewToken(resource, keyName, testKey, tok.Expiry)
	if err != nil {
		t.Fatal(err)
	}
	if password != want {
		t.Errorf("password = %q, want %q", password, want)
	}
	if life := time.Until(tok.Expiry); life < 59*time.Minute || life > time.Hour+time.Second {
		t.Errorf("token lifetime = %v, want about 1h", life)
	}
}

func TestConnectRefused(t *testing.T) {
	h := fakehub.Start(t)
	h.SetAuth(func(fakehub.Connect) bool { return false })
	c := newClient(t, h, deviceString(h.TLSAddr))
	err := c.Connect(testContext(t))
	if !errors.Is(err, device.ErrUnauthorized) {
		t.Fatalf("Connect() = %v, want ErrUnauthorized", err)
	}
	var he *device.Error
	if !errors.As(err, &he) || he.StatusCode != 401 {
		t.Errorf("Connect() error = %#v, want *Error with status 401", err)
	}
	if got := c.State(); got != device.StateDisconnected {
		t.Errorf("State() = %v, want %v", got, device.StateDisconnected)
	}
	if err := c.SendMessage(testContext(t), &device.Message{}); !errors.Is(err, device.ErrNotConnected) {
		t.Errorf("SendMessage after refused Connect = %v, want ErrNotConnected", err)
	}
}

func TestConnectUntrustedServer(t *testing.T) {
	h := fakehub.Start(t)
	other, err := testutil.NewCA("a CA the device does not trust")
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(t, h, deviceString(h.TLSAddr), device.WithRootCAs(other.Pool))
	var verr *tls.CertificateVerificationError
	if err := c.Connect(testContext(t)); !errors.As(err, &verr) {
		t.Fatalf("Connect() = %v, want a certificate verification error", err)
	}
	if n := len(h.Connects()); n != 0 {
		t.Errorf("hub saw %d CONNECTs, want 0", n)
	}
}

func TestConstructorErrors(t *testing.T) {
	cert := tls.Certificate{Certificate: [][]byte{{1}}}
	tests := []struct {
		name string
		fn   func() error
	}{
		{name: "service string", fn: func() error {
			_, err := device.NewFromConnectionString("HostName=h;SharedAccessKeyName=iothubowner;SharedAccessKey=" + testKey)
			return err
		}},
		{name: "no credential", fn: func() error {
			_, err := device.NewFromConnectionString("HostName=h;DeviceId=d")
			return err
		}},
		{name: "x509 without certificate", fn: func() error {
			_, err := device.NewFromConnectionString("HostName=h;DeviceId=d;x509=true")
			return err
		}},
		{name: "certificate with key", fn: func() error {
			_, err := device.NewFromConnectionString("HostName=h;DeviceId=d;SharedAccessKey="+testKey, device.WithX509Certificate(cert))
			return err
		}},
		{name: "bad token", fn: func() error {
			_, err := device.NewFromSASToken("h", "d", "", "not a token")
			return err
		}},
		{name: "missing CA file", fn: func() error {
			_, err := device.NewFromConnectionString("HostName=h;DeviceId=d;SharedAccessKey="+testKey, device.WithCAFile("/nonexistent/ca.pem"))
			return err
		}},
		{name: "keep-alive too long", fn: func() error {
			_, err := device.NewFromConnectionString("HostName=h;DeviceId=d;SharedAccessKey="+testKey, device.WithKeepAlive(time.Hour))
			return err
		}},
		{name: "empty device id", fn: func() error {
			_, err := device.NewFromX509("h", "", "", cert)
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.fn(); err == nil {
				t.Error("got nil error, want one")
			}
		})
	}
}

// TestConnectionStates checks the sequence reported to the state handler
// over a connect, a drop and reconnect, and Close.
func TestConnectionStates(t *testing.T) {
	h := fakehub.Start(t)
	c := newClient(t, h, deviceString(h.TLSAddr))
	type change struct {
		State device.ConnectionState
		Err   bool
	}
	states := make(chan change, 16)
	c.OnConnectionStateChange(func(s device.ConnectionState, err error) { states <- change{s, err != nil} })
	if err := c.Connect(testContext(t)); err != nil {
		t.Fatal(err)
	}
	next := func() change {
		t.Helper()
		select {
		case s := <-states:
			return s
		case <-time.After(fakehub.WaitTimeout):
			t.Fatal("no state change")
			return change{}
		}
	}
	var got []change
	got = append(got, next(), next())
	if err := h.Drop("dev1"); err != nil {
		t.Fatal(err)
	}
	got = append(got, next(), next())
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	got = append(got, next())
	want := []change{
		{device.StateConnecting, false}, {device.StateConnected, false},
		{device.StateReconnecting, true}, {device.StateConnected, false},
		{device.StateClosed, false},
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateComparable(change{})); diff != "" {
		t.Errorf("state changes mismatch (-want +got):\n%s", diff)
	}
	if err := c.Connect(testContext(t)); !errors.Is(err, device.ErrClosed) {
		t.Errorf("Connect after Close = %v, want ErrClosed", err)
	}
}
