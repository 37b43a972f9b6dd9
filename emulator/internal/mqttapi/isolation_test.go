// SPDX-License-Identifier: MIT

package mqttapi

import (
	"context"
	"strings"
	"testing"

	"github.com/iothubemulator/iothub/emulator/internal/hub"
)

// TestCrossDeviceIsolation checks that what the hub sends to one device
// never reaches another, although both subscribe the same $iothub filters.
func TestCrossDeviceIsolation(t *testing.T) {
	forEachTransport(t, func(t *testing.T, e *env, ws bool) {
		a := e.connectDevice(t, "devA", ws)
		b := e.connectDevice(t, "devB", ws)
		for _, c := range []*device{a, b} {
			c.subscribe(t, filterMethods, filterTwinResponses, filterDesired)
		}
		idA, idB := hub.Identity{DeviceID: "devA"}, hub.Identity{DeviceID: "devB"}

		// B: a method round trip, a twin GET and a desired push.
		done := invoke(e, idB, hub.MethodRequest{Name: "forB"})
		m := b.next(t)
		b.publish(t, "$iothub/methods/res/200/?$rid="+ridOf(t, m.Topic()), 0, "{}")
		if o := <-done; o.err != nil {
			t.Fatal(o.err)
		}
		b.publish(t, "$iothub/twin/GET/?$rid=b1", 0, "")
		if got := b.twinReply(t); got.RID != "b1" {
			t.Fatalf("B's twin reply: got rid %q, want b1", got.RID)
		}
		if _, err := e.hub.UpdateTwin(context.Background(), idB, []byte(`{"properties":{"desired":{"forB":1}}}`), "*", false); err != nil {
			t.Fatal(err)
		}
		if m := b.next(t); !strings.HasPrefix(m.Topic(), prefixDesiredPush) {
			t.Fatalf("B got %q, want a desired push", m.Topic())
		}

		// A's first message must be A's own method request: everything
		// for B was written before it, on B's connection only.
		done = invoke(e, idA, hub.MethodRequest{Name: "forA"})
		m = a.next(t)
		if got, want := m.Topic(), prefixMethodRequest+"forA/?$rid="+ridOf(t, m.Topic()); got != want {
			t.Fatalf("A's first message: got %q, want its own request %q", got, want)
		}
		a.publish(t, "$iothub/methods/res/200/?$rid="+ridOf(t, m.Topic()), 0, "{}")
		if o := <-done; o.err != nil {
			t.Fatal(o.err)
		}
		select {
		case m := <-a.messages:
			t.Fatalf("A received %q, which is not for A", m.Topic())
		default:
		}
	})
}

// TestForeignTopicsCloseConnection checks that a device naming another
// identity, or a topic outside §3.5, loses its connection, and that the
// other device is untouched.
func TestForeignTopicsCloseConnection(t *testing.T) {
	tests := []struct {
		name   string
		act    func(a *device) // what A tries
		filter string
	}{
		{"publish to B's telemetry", func(a *device) { a.Publish("devices/devB/messages/events/", 1, false, "x") }, ""},
		{"publish as B's module", func(a *device) { a.Publish("devices/devB/modules/m/messages/events/", 0, false, "x") }, ""},
		{"publish a method request", func(a *device) { a.Publish("$iothub/methods/POST/x/?$rid=1", 0, false, "x") }, ""},
		{"publish a desired patch", func(a *device) { a.Publish("$iothub/twin/PATCH/properties/desired/?$version=9", 0, false, "{}") }, ""},
		{"publish to $SYS", func(a *device) { a.Publish("$SYS/broker/version", 0, false, "x") }, ""},
		{"publish with QoS 2", func(a *device) { a.Publish("devices/devA/messages/events/", 2, false, "x") }, ""},
		{"subscribe B's devicebound", nil, "devices/devB/messages/devicebound/#"},
		{"subscribe everything", nil, "#"},
		{"subscribe all $iothub", nil, "$iothub/#"},
		{"subscribe B's events", nil, "devices/devB/messages/events/#"},
	}
	for _, tt := range tests {
		for _, ws := range []bool{false, true} {
			name := tt.name + map[bool]string{false: "/tls", true: "/wss"}[ws]
			t.Run(name, func(t *testing.T) {
				e := newEnv(t)
				a := e.connectDevice(t, "devA", ws)
				b := e.connectDevice(t, "devB", ws)
				b.subscribe(t, filterMethods)
				if tt.act != nil {
					tt.act(a)
				} else {
					a.Subscribe(tt.filter, 1, nil)
				}
				a.waitLost(t)

				if msgs, _ := e.hub.Telemetry("devB", "", 0, 0); len(msgs) != 0 {
					t.Errorf("B has %d telemetry messages, want none", len(msgs))
				}
				if !b.IsConnectionOpen() || !e.hub.IsConnected(hub.Identity{DeviceID: "devB"}) {
					t.Fatal("B lost its connection")
				}
				done := invoke(e, hub.Identity{DeviceID: "devB"}, hub.MethodRequest{Name: "stillThere"})
				m := b.next(t)
				b.publish(t, "$iothub/methods/res/200/?$rid="+ridOf(t, m.Topic()), 0, "{}")
				if o := <-done; o.err != nil {
					t.Fatalf("B after A's attempt: %v", o.err)
				}
				eventually(t, "A disconnected in the hub", func() bool { return !e.hub.IsConnected(hub.Identity{DeviceID: "devA"}) })
			})
		}
	}
}

func TestSubscriptionRules(t *testing.T) {
	e := newEnv(t)
	t.Run("QoS 2 is granted QoS 1", func(t *testing.T) {
		c := e.connectDevice(t, "q2", false)
		tok := c.SubscribeMultiple(map[string]byte{filterMethods: 2, filterTwinResponses: 0, "devices/q2/messages/devicebound/#": 1}, nil)
		if !tok.WaitTimeout(waitTime) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
		want := map[string]byte{filterMethods: 1, filterTwinResponses: 0, "devices/q2/messages/devicebound/#": 1}
		got := tok.(interface{ Result() map[string]byte }).Result()
		for f, q := range want {
			if got[f] != q {
				t.Errorf("granted QoS for %s: got %d, want %d", f, got[f], q)
			}
		}
	})
	t.Run("five subscriptions are allowed, a sixth closes", func(t *testing.T) {
		c := e.connectDevice(t, "dev1", false)
		// Python percent-encodes ids: two spellings are two subscriptions.
		c.subscribe(t, filterMethods, filterTwinResponses, filterDesired,
			"devices/dev1/messages/devicebound/#", "devices/dev%31/messages/devicebound/#")
		c.subscribe(t, filterMethods) // again: still five
		if !c.IsConnectionOpen() {
			t.Fatal("connection closed at five subscriptions")
		}
		c.Subscribe("devices/%64ev1/messages/devicebound/#", 1, nil)
		c.waitLost(t)
	})
	t.Run("module inputs but not devicebound for a module", func(t *testing.T) {
		e.addDevice(t, "edge")
		key := e.addModule(t, "edge", "m1")
		id := hub.Identity{DeviceID: "edge", ModuleID: "m1"}
		c := e.mustConnect(t, dialer{clientID: "edge/m1", password: token(t, id, "", key, farFuture())})
		c.subscribe(t, "devices/edge/modules/m1/inputs/#")
		c.Subscribe("devices/edge/messages/devicebound/#", 1, nil)
		c.waitLost(t)
	})
}
