// SPDX-License-Identifier: MIT

package amqpapi

import (
	"crypto/tls"
	"net/url"
	"testing"
	"time"

	goamqp "github.com/Azure/go-amqp"
	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/iothubemulator/iothub/emulator/internal/hub"
	"github.com/iothubemulator/iothub/emulator/internal/mqttapi"
)

// The MQTT adapter on the same hub: for the hub's one connection per
// identity across transports, and as the baseline of the benchmarks.

// withMQTT starts the MQTT adapter on e's hub and returns its address.
func (e *env) withMQTT(tb testing.TB) string {
	tb.Helper()
	m, err := mqttapi.New(mqttapi.Options{Hub: e.hub, Addr: "127.0.0.1:0", TLSConfig: e.srv.opts.TLSConfig, Logger: testLogger()})
	if err != nil {
		tb.Fatal(err)
	}
	if err := m.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = m.Close() })
	return m.Addr().String()
}

// mqttDevice connects a paho client as id with a SAS token; lost gets the
// error it loses its connection with.
func (e *env) mqttDevice(tb testing.TB, addr string, id hub.Identity, key string) (paho.Client, <-chan error) {
	tb.Helper()
	lost := make(chan error, 1)
	o := paho.NewClientOptions().AddBroker("ssl://" + addr).
		SetTLSConfig(&tls.Config{RootCAs: e.roots, ServerName: hostName}).
		SetClientID(id.DeviceID).
		SetUsername(hostName + "/" + id.DeviceID + "/?api-version=2021-04-12").
		SetPassword(deviceToken(tb, id, key, later())).
		SetCleanSession(true).SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(waitTime).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			select {
			case lost <- err:
			default:
			}
		})
	c := paho.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(waitTime) || tok.Error() != nil {
		tb.Fatalf("MQTT connect %s: %v", id, tok.Error())
	}
	tb.Cleanup(func() { c.Disconnect(0) })
	return c, lost
}

// TestDeviceOneConnectionAcrossTransports: the hub keeps one connection
// per identity whatever its transport, as it does between two MQTT
// connections (C SDK issue 1416: a second connection of one device, AMQP
// over WebSockets included, drops the first; the hub's maintainers: one
// connection per device id). An AMQP put-token takes the device over from
// its MQTT connection and an MQTT CONNECT from its AMQP one; the newer
// connection is the one the hub calls.
func TestDeviceOneConnectionAcrossTransports(t *testing.T) {
	e := newEnv(t)
	addr := e.withMQTT(t)
	id := hub.Identity{DeviceID: "both"}
	key := e.addDevice(t, id.DeviceID)

	_, lost := e.mqttDevice(t, addr, id, key)
	dev := e.connectDevice(t, viaTLS, id, key)
	select {
	case <-lost:
	case <-time.After(waitTime):
		t.Fatal("the MQTT connection survived the device's AMQP connection")
	}
	snd, rcv := dev.methodLinks(t)
	call := e.invoke(id, "where", "null", 0)
	req := receive(t, rcv)
	_ = rcv.AcceptMessage(ctxT(t), req)
	if err := snd.Send(ctxT(t), &goamqp.Message{Properties: &goamqp.MessageProperties{CorrelationID: req.Properties.CorrelationID},
		ApplicationProperties: map[string]any{"IoThub-status": int32(200)}, Value: "amqp"}, nil); err != nil {
		t.Fatal(err)
	}
	if o := waitOutcome(t, call); o.err != nil || string(o.res.Payload) != `"amqp"` {
		t.Fatalf("a call over AMQP: %+v, %v", o.res, o.err)
	}

	m, _ := e.mqttDevice(t, addr, id, key)
	if _, err := rcv.Receive(ctxT(t), nil); err == nil {
		t.Fatal("the AMQP connection survived the device's MQTT connection")
	}
	got := make(chan string, 1)
	m.Subscribe("$iothub/methods/POST/#", 0, func(c paho.Client, msg paho.Message) {
		got <- msg.Topic()
		u, _ := url.Parse("x://h/" + msg.Topic())
		c.Publish("$iothub/methods/res/200/?$rid="+u.Query().Get("$rid"), 0, false, "{}")
	}).WaitTimeout(waitTime)
	if o := waitOutcome(t, e.invoke(id, "now-mqtt", "null", 5*time.Second)); o.err != nil || o.res.Status != 200 {
		t.Fatalf("a call after the MQTT takeover: %+v, %v", o.res, o.err)
	}
	if topic := <-got; topic == "" {
		t.Fatal("no request over MQTT")
	}
	if !e.hub.IsConnected(id) {
		t.Error("not connected")
	}
}
