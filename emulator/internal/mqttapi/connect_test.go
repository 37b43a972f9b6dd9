// SPDX-License-Identifier: MIT

package mqttapi

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/certs"
	"github.com/iothubemulator/iothub/emulator/internal/hub"
	"github.com/iothubemulator/iothub/internal/sas"
)

// CONNACK return codes of MQTT 3.1.1.
const (
	codeAccepted           = 0
	codeBadProtocol        = 1
	codeIdentifierRejected = 2
	codeServerUnavailable  = 3
	codeNotAuthorized      = 5
)

func TestConnack(t *testing.T) {
	e := newEnv(t)
	hour := time.Now().Add(time.Hour)
	devicePolicy, _ := e.hub.Policy("device")
	servicePolicy, _ := e.hub.Policy("service")
	selfSigned, err := certs.SelfSigned("x509dev", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	otherCert, err := certs.SelfSigned("x509dev", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	thumb := certs.Thumbprint(selfSigned.Leaf)
	if _, err := e.hub.PutDevice(context.Background(), &hub.Device{DeviceID: "x509dev",
		Authentication: hub.Authentication{Type: hub.AuthSelfSigned, X509Thumbprint: &hub.X509Thumbprint{PrimaryThumbprint: &thumb}}}, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := e.hub.PutDevice(context.Background(), &hub.Device{DeviceID: "off", Status: hub.StatusDisabled}, ""); err != nil {
		t.Fatal(err)
	}
	off, err := e.hub.GetDevice(context.Background(), "off")
	if err != nil {
		t.Fatal(err)
	}
	offKey := off.Authentication.SymmetricKey.PrimaryKey
	dev := hub.Identity{DeviceID: "dev1"}
	devKey := e.addDevice(t, "dev1")
	dev2Key := e.addDevice(t, "dev2")
	mod := hub.Identity{DeviceID: "dev1", ModuleID: "mod1"}
	modKey := e.addModule(t, "dev1", "mod1")

	tests := []struct {
		name string
		d    dialer
		want byte
	}{
		{"device key", dialer{clientID: "dev1", password: token(t, dev, "", devKey, hour)}, codeAccepted},
		{"module key", dialer{clientID: "dev1/mod1", password: token(t, mod, "", modKey, hour)}, codeAccepted},
		{"policy with DeviceConnect", dialer{clientID: "dev1", password: token(t, dev, "device", devicePolicy.PrimaryKey, hour)}, codeAccepted},
		{"policy with DeviceConnect for a module", dialer{clientID: "dev1/mod1", password: token(t, mod, "device", devicePolicy.PrimaryKey, hour)}, codeAccepted},
		{"token within the clock skew", dialer{clientID: "dev1", password: token(t, dev, "", devKey, time.Now().Add(-time.Minute))}, codeAccepted},
		{"x509 self-signed thumbprint", dialer{clientID: "x509dev", cert: &selfSigned}, codeAccepted},
		{"username without query", dialer{clientID: "dev1", username: hostName + "/dev1/", password: token(t, dev, "", devKey, hour)}, codeAccepted},

		{"wrong key", dialer{clientID: "dev1", password: token(t, dev, "", sas.GenerateKey(), hour)}, codeNotAuthorized},
		{"policy without DeviceConnect", dialer{clientID: "dev1", password: token(t, dev, "service", servicePolicy.PrimaryKey, hour)}, codeNotAuthorized},
		{"unknown device", dialer{clientID: "ghost", password: token(t, hub.Identity{DeviceID: "ghost"}, "", devKey, hour)}, codeNotAuthorized},
		{"disabled device", dialer{clientID: "off", password: token(t, hub.Identity{DeviceID: "off"}, "", offKey, hour)}, codeNotAuthorized},
		{"expired token", dialer{clientID: "dev1", password: token(t, dev, "", devKey, time.Now().Add(-10*time.Minute))}, codeNotAuthorized},
		{"token of another device", dialer{clientID: "dev1", password: token(t, hub.Identity{DeviceID: "dev2"}, "", dev2Key, hour)}, codeNotAuthorized},
		{"client id of another device", dialer{clientID: "dev2", username: username("dev1"), password: token(t, dev, "", devKey, hour)}, codeNotAuthorized},
		{"username of another device", dialer{clientID: "dev1", username: username("dev2"), password: token(t, dev, "", devKey, hour)}, codeNotAuthorized},
		{"device key for a module", dialer{clientID: "dev1/mod1", password: token(t, mod, "", devKey, hour)}, codeNotAuthorized},
		{"not a SAS token", dialer{clientID: "dev1", password: "secret"}, codeNotAuthorized},
		{"no credentials", dialer{clientID: "dev1"}, codeNotAuthorized},
		{"x509 certificate with another thumbprint", dialer{clientID: "x509dev", cert: &otherCert}, codeNotAuthorized},
		{"x509 certificate for a SAS device", dialer{clientID: "dev1", cert: &selfSigned}, codeNotAuthorized},
		{"malformed client id", dialer{clientID: "a/b/c", password: token(t, dev, "", devKey, hour)}, codeNotAuthorized},
		{"MQTT 3.1", dialer{clientID: "dev1", version: 3, password: token(t, dev, "", devKey, hour)}, codeBadProtocol},
	}
	for _, tt := range tests {
		for _, ws := range []bool{false, true} {
			name := tt.name + "/tls"
			if ws {
				name = tt.name + "/wss"
			}
			t.Run(name, func(t *testing.T) {
				d := tt.d
				d.ws = ws
				c, code := e.connect(t, d)
				if code != tt.want {
					t.Fatalf("CONNACK: got %d, want %d", code, tt.want)
				}
				if c != nil {
					c.Disconnect(0)
				}
			})
		}
	}
}

func TestConnackEmptyClientID(t *testing.T) {
	e := newEnv(t)
	key := e.addDevice(t, "dev1")
	tok := token(t, hub.Identity{DeviceID: "dev1"}, "", key, time.Now().Add(time.Hour))
	tests := []struct {
		name  string
		clean bool
		want  byte
	}{
		{"persistent session needs an id [MQTT-3.1.3-8]", false, codeIdentifierRejected},
		{"clean session names no device", true, codeNotAuthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, code := e.connect(t, dialer{clientID: "", username: username("dev1"), password: tok, clean: tt.clean})
			if code != tt.want {
				t.Errorf("CONNACK: got %d, want %d", code, tt.want)
			}
		})
	}
}

func TestConnackServerUnavailable(t *testing.T) {
	e := newEnv(t)
	key := e.addDevice(t, "dev1")
	if err := e.closeDB(); err != nil {
		t.Fatal(err)
	}
	_, code := e.connect(t, dialer{clientID: "dev1", password: token(t, hub.Identity{DeviceID: "dev1"}, "", key, time.Now().Add(time.Hour))})
	if code != codeServerUnavailable {
		t.Errorf("CONNACK with the store closed: got %d, want %d", code, codeServerUnavailable)
	}
}

func TestWillOnForeignTopicRefused(t *testing.T) {
	e := newEnv(t)
	key := e.addDevice(t, "dev1")
	e.addDevice(t, "dev2")
	for _, topic := range []string{"devices/dev2/messages/events/", "$iothub/methods/POST/x/?$rid=1", "a/b"} {
		t.Run(topic, func(t *testing.T) {
			d := dialer{clientID: "dev1", password: token(t, hub.Identity{DeviceID: "dev1"}, "", key, time.Now().Add(time.Hour)), will: topic}
			c, code := e.connect(t, d)
			if c != nil {
				c.Disconnect(0)
			}
			if code != codeNotAuthorized {
				t.Errorf("CONNACK: got %d, want %d", code, codeNotAuthorized)
			}
		})
	}
}

func TestConnectionState(t *testing.T) {
	e := newEnv(t)
	id := hub.Identity{DeviceID: "dev1"}
	c := e.connectDevice(t, "dev1", false)
	if !e.hub.IsConnected(id) {
		t.Fatal("connected after CONNACK: got false, want true")
	}
	c.Disconnect(100)
	eventually(t, "hub sees the device disconnected", func() bool { return !e.hub.IsConnected(id) })
}

func TestKeepAliveZero(t *testing.T) {
	e := newEnv(t)
	key := e.addDevice(t, "dev1")
	e.mustConnect(t, dialer{clientID: "dev1", password: token(t, hub.Identity{DeviceID: "dev1"}, "", key, time.Now().Add(time.Hour)), keepAlive: -1})
	cl, ok := e.srv.mochi.Clients.Get("dev1")
	if !ok {
		t.Fatal("no mochi client for dev1")
	}
	if got := cl.State.Keepalive; got != maxKeepAlive {
		t.Errorf("keep-alive for a client asking 0: got %d, want %d (1.5 × %d s = 1767 s)", got, maxKeepAlive, maxKeepAlive)
	}
}

func TestTokenExpiryClosesConnection(t *testing.T) {
	e := newEnv(t)
	key := e.addDevice(t, "dev1")
	c := e.mustConnect(t, dialer{clientID: "dev1", password: token(t, hub.Identity{DeviceID: "dev1"}, "", key, time.Now().Add(time.Hour))})
	t.Cleanup(func() { e.hub.Clock().SetFunc(nil) })
	e.hub.Clock().SetFunc(func() time.Time { return time.Now().Add(time.Hour + hub.ClockSkew + time.Minute) })
	c.waitLost(t)
	eventually(t, "hub sees the device disconnected", func() bool { return !e.hub.IsConnected(hub.Identity{DeviceID: "dev1"}) })
}

func TestDisablingDeviceClosesConnection(t *testing.T) {
	e := newEnv(t)
	c := e.connectDevice(t, "dev1", false)
	d, err := e.hub.GetDevice(context.Background(), "dev1")
	if err != nil {
		t.Fatal(err)
	}
	d.Status = hub.StatusDisabled
	if _, err := e.hub.PutDevice(context.Background(), d, "*"); err != nil {
		t.Fatal(err)
	}
	c.waitLost(t)
}

func TestTakeover(t *testing.T) {
	for _, ws := range []bool{false, true} {
		t.Run(map[bool]string{false: "tls", true: "wss"}[ws], func(t *testing.T) {
			e := newEnv(t)
			key := e.addDevice(t, "dev1")
			id := hub.Identity{DeviceID: "dev1"}
			d := dialer{clientID: "dev1", password: token(t, id, "", key, time.Now().Add(time.Hour))}
			first := e.mustConnect(t, d)
			d.ws = ws
			second := e.mustConnect(t, d)
			first.waitLost(t)
			if !second.IsConnectionOpen() {
				t.Fatal("the newer connection is closed, want it open")
			}
			if !e.hub.IsConnected(id) {
				t.Fatal("hub: device not connected after takeover")
			}
			// The newer connection works: a method reaches it.
			second.subscribe(t, filterMethods)
			res := make(chan error, 1)
			go func() {
				_, err := e.hub.InvokeMethod(context.Background(), id, hub.MethodRequest{Name: "ping", ResponseTimeout: 5 * time.Second})
				res <- err
			}()
			select {
			case m := <-second.messages:
				second.publish(t, "$iothub/methods/res/200/?$rid="+ridOf(t, m.Topic()), 0, "null")
				if err := <-res; err != nil {
					t.Fatalf("InvokeMethod after takeover: %v", err)
				}
			case err := <-res:
				t.Fatalf("InvokeMethod after takeover returned before the device answered: %v", err)
			case <-time.After(waitTime):
				t.Fatal("no method request within the wait time")
			}
		})
	}
}

func TestStartPortInUse(t *testing.T) {
	e := newEnv(t)
	s, err := New(Options{Hub: e.hub, Addr: e.srv.Addr().String(), TLSConfig: &tls.Config{}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = s.Start()
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("Start on a taken port: got %v, want an error matching EADDRINUSE", err)
	}
	var opErr *net.OpError
	if !errors.As(err, &opErr) {
		t.Errorf("Start on a taken port: got %T, want a wrapped *net.OpError", err)
	}
}

func TestNewRequiresHubAndTLS(t *testing.T) {
	e := newEnv(t)
	for _, o := range []Options{{TLSConfig: &tls.Config{}}, {Hub: e.hub}} {
		if s, err := New(o); err == nil {
			s.Close()
			t.Errorf("New(%+v): got no error, want one", o)
		}
	}
}
