// SPDX-License-Identifier: MIT

package mqttapi

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/iothubemulator/iothub/emulator/internal/certs"
	"github.com/iothubemulator/iothub/emulator/internal/hub"
	"github.com/iothubemulator/iothub/emulator/internal/huberr"
	"github.com/iothubemulator/iothub/emulator/internal/store"
	"github.com/iothubemulator/iothub/internal/sas"
	"github.com/iothubemulator/iothub/internal/testutil"
)

// waitTime bounds every wait for a network event in the tests.
const waitTime = 10 * time.Second

// hostName is the test hub's name; the server certificate covers it.
const hostName = "localhost"

// env is a hub with the MQTT adapter listening on 127.0.0.1, and an HTTPS
// test server mounting its WebSocket handler.
type env struct {
	hub      *hub.Hub
	db       *store.DB
	closeDB  func() error // closes db once
	srv      *Server
	ws       *httptest.Server
	roots    *x509.CertPool
	ownerKey string
}

func testLogger() *slog.Logger {
	if os.Getenv("MQTTAPI_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// newEnv starts a hub, the adapter and the WebSocket test server; cleanup
// closes them.
func newEnv(tb testing.TB) *env {
	tb.Helper()
	return newEnvWith(tb, nil)
}

// newEnvWith is newEnv with configure, if not nil, applied to the server
// before it starts.
func newEnvWith(tb testing.TB, configure func(*Server)) *env {
	tb.Helper()
	return newEnvConfigured(tb, func(e *env) {
		if configure != nil {
			configure(e.srv)
		}
	})
}

// newEnvConfigured is newEnvWith for a configure that needs the env (its
// hub and store) too.
func newEnvConfigured(tb testing.TB, configure func(*env)) *env {
	tb.Helper()
	db, err := store.OpenTemp()
	if err != nil {
		tb.Fatal(err)
	}
	e := &env{db: db, closeDB: sync.OnceValue(db.Close), ownerKey: sas.GenerateKey()}
	tb.Cleanup(func() { _ = e.closeDB() })
	e.hub, err = hub.New(db, hub.Config{HostName: hostName, Policies: hub.DefaultPolicies(e.ownerKey)})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(e.hub.Close)
	mat, err := certs.Ensure(tb.TempDir(), []string{hostName}, time.Now())
	if err != nil {
		tb.Fatal(err)
	}
	e.roots = mat.Pool
	cfg := &tls.Config{Certificates: []tls.Certificate{mat.Server}, ClientAuth: tls.RequestClientCert, MinVersion: tls.VersionTLS12}
	e.srv, err = New(Options{Hub: e.hub, Addr: "127.0.0.1:0", TLSConfig: cfg, Logger: testLogger()})
	if err != nil {
		tb.Fatal(err)
	}
	configure(e)
	if err := e.srv.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = e.srv.Close() })
	mux := http.NewServeMux()
	mux.Handle("/$iothub/websocket", e.srv.WebSocketHandler())
	e.ws = httptest.NewUnstartedServer(mux)
	e.ws.TLS = cfg.Clone()
	e.ws.StartTLS()
	tb.Cleanup(e.ws.Close)
	return e
}

// addDevice registers a SAS device and returns its primary key.
func (e *env) addDevice(tb testing.TB, id string) string {
	tb.Helper()
	d, err := e.hub.PutDevice(context.Background(), &hub.Device{DeviceID: id}, "")
	if err != nil {
		tb.Fatal(err)
	}
	return d.Authentication.SymmetricKey.PrimaryKey
}

// addModule registers a SAS module and returns its primary key.
func (e *env) addModule(tb testing.TB, deviceID, moduleID string) string {
	tb.Helper()
	m, err := e.hub.PutModule(context.Background(), &hub.Module{DeviceID: deviceID, ModuleID: moduleID}, "")
	if err != nil {
		tb.Fatal(err)
	}
	return m.Authentication.SymmetricKey.PrimaryKey
}

// token signs a SAS token for id with key (policy "" for an identity key).
func token(tb testing.TB, id hub.Identity, policy, key string, expiry time.Time) string {
	tb.Helper()
	tok, err := sas.NewToken(sas.ResourceURI(hostName, id.DeviceID, id.ModuleID), policy, key, expiry)
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

// farFuture is an expiry for tokens that must not expire during a test.
func farFuture() time.Time { return time.Now().Add(time.Hour) }

// username is the SDKs' CONNECT username for a client id.
func username(clientID string) string {
	return hostName + "/" + clientID + "/?api-version=2021-04-12&DeviceClientType=mqttapi-test"
}

// errConnectTimeout is dial's error when no CONNACK came within the wait
// time and the connection did not close either.
var errConnectTimeout = errors.New("CONNECT timed out")

// dialer describes a device connection.
type dialer struct {
	clientID  string
	username  string // "" means username(clientID)
	password  string
	cert      *tls.Certificate
	ws        bool
	clean     bool          // CleanSession; the SDK default is false
	version   uint          // MQTT protocol level; 0 means 4
	keepAlive time.Duration // 0 means 60 s; negative means 0 (none)
	will      string        // will topic, if any
	manualAck bool          // QoS 1 publishes from the hub are not acknowledged unless the test calls Ack
}

// device is a paho client with what the tests observe.
type device struct {
	paho.Client
	lost     chan error        // connection lost
	messages chan paho.Message // publishes without a subscription handler of their own
}

// connect dials and returns the device and the CONNACK return code. A
// refused connection is returned as the code with a nil device.
func (e *env) connect(tb testing.TB, d dialer) (*device, byte) {
	tb.Helper()
	dev, code, err := e.dial(d)
	if err != nil {
		tb.Fatal(err)
	}
	if dev != nil {
		tb.Cleanup(func() { dev.Disconnect(0) })
	}
	return dev, code
}

// dial is connect for any goroutine: it reports a CONNECT that timed out
// or failed without a CONNACK as an error instead of failing the test, and
// leaves disconnecting the device to the caller.
func (e *env) dial(d dialer) (*device, byte, error) {
	dev := &device{lost: make(chan error, 1), messages: make(chan paho.Message, 64)}
	o := paho.NewClientOptions()
	if d.ws {
		o.AddBroker("wss" + strings.TrimPrefix(e.ws.URL, "https") + "/$iothub/websocket")
	} else {
		o.AddBroker("ssl://" + e.srv.Addr().String())
	}
	tc := &tls.Config{RootCAs: e.roots, ServerName: hostName}
	if d.cert != nil {
		tc.Certificates = []tls.Certificate{*d.cert}
	}
	o.SetTLSConfig(tc)
	o.SetClientID(d.clientID)
	if d.username == "" {
		d.username = username(d.clientID)
	}
	o.SetUsername(d.username)
	if d.password != "" {
		o.SetPassword(d.password)
	}
	o.SetCleanSession(d.clean)
	if d.version == 0 {
		d.version = 4
	}
	o.SetProtocolVersion(d.version)
	switch {
	case d.keepAlive == 0:
		o.SetKeepAlive(60 * time.Second)
	case d.keepAlive < 0:
		o.SetKeepAlive(0)
	default:
		o.SetKeepAlive(d.keepAlive)
	}
	if d.will != "" {
		o.SetWill(d.will, "gone", 1, false)
	}
	o.SetAutoAckDisabled(d.manualAck)
	o.SetAutoReconnect(false)
	o.SetConnectRetry(false)
	o.SetConnectTimeout(waitTime)
	o.SetConnectionLostHandler(func(_ paho.Client, err error) {
		select {
		case dev.lost <- err:
		default:
		}
	})
	o.SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) {
		select {
		case dev.messages <- m:
		default:
		}
	})
	dev.Client = paho.NewClient(o)
	tok := dev.Connect()
	if !tok.WaitTimeout(waitTime) {
		dev.Disconnect(0)
		return nil, 0, fmt.Errorf("%s: %w", d.clientID, errConnectTimeout)
	}
	code := tok.(*paho.ConnectToken).ReturnCode()
	if tok.Error() != nil {
		if code == 0 {
			return nil, 0, fmt.Errorf("%s: connect failed without a CONNACK: %w", d.clientID, tok.Error())
		}
		return nil, code, nil
	}
	return dev, code, nil
}

// mustConnect connects with CONNACK 0 or fails the test.
func (e *env) mustConnect(tb testing.TB, d dialer) *device {
	tb.Helper()
	dev, code := e.connect(tb, d)
	if code != 0 || dev == nil {
		tb.Fatalf("%s: CONNACK %d, want 0", d.clientID, code)
	}
	return dev
}

// connectDevice registers a SAS device and connects it over TLS or WebSockets.
func (e *env) connectDevice(tb testing.TB, id string, ws bool) *device {
	tb.Helper()
	key := e.addDevice(tb, id)
	return e.mustConnect(tb, dialer{clientID: id, password: token(tb, hub.Identity{DeviceID: id}, "", key, time.Now().Add(time.Hour)), ws: ws})
}

// subscribe subscribes to filters at QoS 0 and returns the granted QoS.
func (d *device) subscribe(tb testing.TB, filters ...string) map[string]byte {
	tb.Helper()
	m := map[string]byte{}
	for _, f := range filters {
		m[f] = 0
	}
	tok := d.SubscribeMultiple(m, nil)
	if !tok.WaitTimeout(waitTime) || tok.Error() != nil {
		tb.Fatalf("subscribe %v: %v", filters, tok.Error())
	}
	return tok.(*paho.SubscribeToken).Result()
}

// publish publishes and waits for the publish to complete (PUBACK at QoS 1).
func (d *device) publish(tb testing.TB, topic string, qos byte, payload string) {
	tb.Helper()
	tok := d.Publish(topic, qos, false, payload)
	if !tok.WaitTimeout(waitTime) || tok.Error() != nil {
		tb.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

// next returns the next message the device received.
func (d *device) next(tb testing.TB) paho.Message {
	tb.Helper()
	select {
	case m := <-d.messages:
		return m
	case err := <-d.lost:
		tb.Fatalf("connection lost while waiting for a message: %v", err)
	case <-time.After(waitTime):
		tb.Fatal("no message within the wait time")
	}
	return nil
}

// waitLost waits for the server to close the device's connection.
func (d *device) waitLost(tb testing.TB) {
	tb.Helper()
	select {
	case <-d.lost:
	case <-time.After(waitTime):
		tb.Fatal("the connection was not closed")
	}
}

// eventually polls cond until it holds or the wait time passes.
func eventually(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	testutil.Eventually(tb, what, cond)
}

// ridOf returns the $rid of a hub-to-device topic.
func ridOf(tb testing.TB, topic string) string {
	tb.Helper()
	_, q, ok := strings.Cut(topic, "?$rid=")
	if !ok {
		tb.Fatalf("topic %q has no $rid", topic)
	}
	rid, _, _ := strings.Cut(q, "&")
	return rid
}

// hubCode returns the IoT Hub error code err carries, or 0.
func hubCode(err error) int {
	var he *huberr.Error
	if errors.As(err, &he) {
		return he.Code
	}
	return 0
}

// forEachTransport runs body over MQTT/TLS and over MQTT/WebSockets, each
// with its own hub and server.
func forEachTransport(t *testing.T, body func(t *testing.T, e *env, ws bool)) {
	t.Helper()
	for _, ws := range []bool{false, true} {
		name := "tls"
		if ws {
			name = "wss"
		}
		t.Run(name, func(t *testing.T) { body(t, newEnv(t), ws) })
	}
}
