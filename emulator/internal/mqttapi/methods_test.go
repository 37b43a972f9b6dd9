// SPDX-License-Identifier: MIT

package mqttapi

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/iothubemulator/iothub/emulator/internal/hub"
)

// invoke calls a method in the background; the result arrives on the channel.
func invoke(e *env, id hub.Identity, r hub.MethodRequest) <-chan methodOutcome {
	out := make(chan methodOutcome, 1)
	if r.ResponseTimeout == 0 {
		r.ResponseTimeout = 5 * time.Second
	}
	go func() {
		res, err := e.hub.InvokeMethod(context.Background(), id, r)
		out <- methodOutcome{res, err}
	}()
	return out
}

type methodOutcome struct {
	res hub.MethodResult
	err error
}

func TestMethodRoundTrip(t *testing.T) {
	forEachTransport(t, func(t *testing.T, e *env, ws bool) {
		c := e.connectDevice(t, "dev1", ws)
		c.subscribe(t, filterMethods)
		done := invoke(e, hub.Identity{DeviceID: "dev1"}, hub.MethodRequest{Name: "reboot", Payload: []byte(`{"delay":1}`)})

		m := c.next(t)
		rid := ridOf(t, m.Topic())
		if want := prefixMethodRequest + "reboot/?$rid=" + rid; m.Topic() != want {
			t.Errorf("request topic: got %q, want %q", m.Topic(), want)
		}
		if m.Qos() != 0 {
			t.Errorf("request QoS: got %d, want 0", m.Qos())
		}
		if string(m.Payload()) != `{"delay":1}` {
			t.Errorf("request body: got %s, want {\"delay\":1}", m.Payload())
		}
		c.publish(t, "$iothub/methods/res/201/?$rid="+rid, 0, `{"ok":true}`)
		o := <-done
		if o.err != nil {
			t.Fatal(o.err)
		}
		if diff := cmp.Diff(hub.MethodResult{Status: 201, Payload: []byte(`{"ok":true}`)}, o.res); diff != "" {
			t.Errorf("method result (-want +got):\n%s", diff)
		}
	})
}

func TestMethodNullPayloadAndModule(t *testing.T) {
	e := newEnv(t)
	e.addDevice(t, "dev1")
	key := e.addModule(t, "dev1", "mod1")
	id := hub.Identity{DeviceID: "dev1", ModuleID: "mod1"}
	c := e.mustConnect(t, dialer{clientID: "dev1/mod1", password: token(t, id, "", key, farFuture())})
	c.subscribe(t, filterMethods)
	done := invoke(e, id, hub.MethodRequest{Name: "get", Payload: []byte("null")})
	m := c.next(t)
	if string(m.Payload()) != "null" {
		t.Errorf("null payload reaches the device as %q, want null (§3.9)", m.Payload())
	}
	// Python percent-encodes the rid it echoes.
	c.publish(t, "$iothub/methods/res/200/?%24rid="+strings.ReplaceAll(ridOf(t, m.Topic()), "1", "%31"), 1, "")
	o := <-done
	if o.err != nil || o.res.Status != 200 || string(o.res.Payload) != "null" {
		t.Errorf("module method: got %+v, %v; want status 200, payload null", o.res, o.err)
	}
}

// TestMethodOmittedPayload: a request without a payload reaches the device
// as an empty body (§3.9).
func TestMethodOmittedPayload(t *testing.T) {
	e := newEnv(t)
	c := e.connectDevice(t, "dev1", false)
	c.subscribe(t, filterMethods)
	done := invoke(e, hub.Identity{DeviceID: "dev1"}, hub.MethodRequest{Name: "ping"})
	m := c.next(t)
	if len(m.Payload()) != 0 {
		t.Errorf("omitted payload reaches the device as %q, want an empty body", m.Payload())
	}
	c.publish(t, "$iothub/methods/res/200/?$rid="+ridOf(t, m.Topic()), 0, "{}")
	if o := <-done; o.err != nil || string(o.res.Payload) != "{}" {
		t.Errorf("got %+v, %v; want payload {}", o.res, o.err)
	}
}

// TestDeviceJSONPaddedWithNULs: embedded C clients publish fixed-size
// buffers, so the JSON a device sends may be followed by NUL bytes and
// white space. A reported patch is accepted, and a method response comes
// back to the service as the JSON value, not wrapped as a string (§3.9).
func TestDeviceJSONPaddedWithNULs(t *testing.T) {
	forEachTransport(t, func(t *testing.T, e *env, ws bool) {
		c := e.connectDevice(t, "dev1", ws)
		c.subscribe(t, filterMethods, filterTwinResponses)
		pad := "\r\n\x00\x00\x00 \x00"

		c.publish(t, "$iothub/twin/PATCH/properties/reported/?$rid=1", 0, `{"fw":"2.0"}`+pad)
		if got := c.twinReply(t); got.Status != "204" {
			t.Fatalf("padded reported patch: got %+v, want 204", got)
		}
		tw, err := e.hub.GetTwin(context.Background(), hub.Identity{DeviceID: "dev1"})
		if err != nil || !strings.Contains(string(tw.Properties.Reported), `"fw":"2.0"`) {
			t.Fatalf("reported after padded patch: %s, %v", tw.Properties.Reported, err)
		}

		done := invoke(e, hub.Identity{DeviceID: "dev1"}, hub.MethodRequest{Name: "status", Payload: []byte(`{}`)})
		m := c.next(t)
		c.publish(t, "$iothub/methods/res/200/?$rid="+ridOf(t, m.Topic()), 0, `{"ok":[1,2]}`+pad)
		o := <-done
		if o.err != nil || string(o.res.Payload) != `{"ok":[1,2]}` {
			t.Errorf("padded method response: got %s, %v; want {\"ok\":[1,2]}", o.res.Payload, o.err)
		}
	})
}

func TestMethodNotSubscribed(t *testing.T) {
	forEachTransport(t, func(t *testing.T, e *env, ws bool) {
		c := e.connectDevice(t, "dev1", ws)
		o := <-invoke(e, hub.Identity{DeviceID: "dev1"}, hub.MethodRequest{Name: "x"})
		if got := hubCode(o.err); got != 404103 {
			t.Errorf("method to a connected, unsubscribed device: got %v (code %d), want 404103", o.err, got)
		}
		// After unsubscribing, the device is again not reachable.
		c.subscribe(t, filterMethods)
		if tok := c.Unsubscribe(filterMethods); !tok.WaitTimeout(waitTime) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
		o = <-invoke(e, hub.Identity{DeviceID: "dev1"}, hub.MethodRequest{Name: "x"})
		if got := hubCode(o.err); got != 404103 {
			t.Errorf("method after UNSUBSCRIBE: got %v (code %d), want 404103", o.err, got)
		}
	})
}

func TestMethodWaitsForSubscription(t *testing.T) {
	e := newEnv(t)
	c := e.connectDevice(t, "dev1", false)
	done := invoke(e, hub.Identity{DeviceID: "dev1"}, hub.MethodRequest{Name: "late", ConnectTimeout: 5 * time.Second})
	c.subscribe(t, filterMethods)
	m := c.next(t)
	c.publish(t, "$iothub/methods/res/200/?$rid="+ridOf(t, m.Topic()), 0, "{}")
	if o := <-done; o.err != nil {
		t.Fatalf("method with connect timeout: %v", o.err)
	}
}

func TestPersistentSessionKeepsSubscriptions(t *testing.T) {
	e := newEnv(t)
	key := e.addDevice(t, "dev1")
	id := hub.Identity{DeviceID: "dev1"}
	d := dialer{clientID: "dev1", password: token(t, id, "", key, farFuture())}
	c := e.mustConnect(t, d)
	c.subscribe(t, filterMethods, filterDesired)
	c.Disconnect(100)
	eventually(t, "disconnected", func() bool { return !e.hub.IsConnected(id) })

	// CleanSession=0: the subscriptions are back without a SUBSCRIBE (§3.3).
	c = e.mustConnect(t, d)
	done := invoke(e, id, hub.MethodRequest{Name: "again"})
	m := c.next(t)
	c.publish(t, "$iothub/methods/res/200/?$rid="+ridOf(t, m.Topic()), 0, "{}")
	if o := <-done; o.err != nil {
		t.Fatalf("method on a resumed session: %v", o.err)
	}
	c.Disconnect(100)
	eventually(t, "disconnected", func() bool { return !e.hub.IsConnected(id) })

	// CleanSession=1 starts empty.
	d.clean = true
	e.mustConnect(t, d)
	if o := <-invoke(e, id, hub.MethodRequest{Name: "gone"}); hubCode(o.err) != 404103 {
		t.Errorf("method on a clean session: got %v, want 404103", o.err)
	}
}
