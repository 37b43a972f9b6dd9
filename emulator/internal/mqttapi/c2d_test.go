// SPDX-License-Identifier: MIT

package mqttapi

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/iothubemulator/iothub/emulator/internal/hub"
)

// c2dFilterOf is a device's devicebound subscription as the SDKs spell it.
func c2dFilterOf(id string) string { return "devices/" + id + "/messages/devicebound/#" }

// subscribeQoS1 subscribes to filter at QoS 1, as the SDKs do for C2D.
func (d *device) subscribeQoS1(tb testing.TB, filter string) {
	tb.Helper()
	tok := d.Subscribe(filter, 1, nil)
	if !tok.WaitTimeout(waitTime) || tok.Error() != nil {
		tb.Fatalf("subscribe %s: %v", filter, tok.Error())
	}
}

// sendC2D queues a message through the hub.
func (e *env) sendC2D(tb testing.TB, deviceID string, m *hub.C2DMessage) *hub.C2DMessage {
	tb.Helper()
	out, err := e.hub.SendC2D(context.Background(), deviceID, m, 0)
	if err != nil {
		tb.Fatalf("SendC2D to %s: %v", deviceID, err)
	}
	return out
}

// pendingCounts returns the delivery count of each queued message by id.
func (e *env) pendingCounts(tb testing.TB, deviceID string) map[string]int {
	tb.Helper()
	ms, err := e.hub.PendingC2D(deviceID)
	if err != nil {
		tb.Fatal(err)
	}
	out := map[string]int{}
	for _, m := range ms {
		out[m.MessageID] = m.DeliveryCount
	}
	return out
}

// sdkMessage is a received C2D message as the Node SDK's MQTT receiver
// (azure-iot-device-mqtt _onC2DMessage) builds it: topic segment 4 split
// on '&', each pair split on '=', both halves decodeURIComponent-ed, the
// $.-keys mapped to fields and everything else an application property.
type sdkMessage struct {
	MessageID, To, Expiry, CorrelationID, UserID, ContentType, ContentEncoding string
	Properties                                                                 map[string]string
}

// parseLikeSDK parses a devicebound topic as the Node SDK does, and fails
// where the Node and Python parsers would read it differently: a bag that
// is not exactly segment 4, or a pair with more than one '='.
func parseLikeSDK(tb testing.TB, topic string) sdkMessage {
	tb.Helper()
	parts := strings.Split(topic, "/")
	if len(parts) != 5 || parts[2] != "messages" || parts[3] != "devicebound" {
		tb.Fatalf("topic %q: got %d segments, want devices/{id}/messages/devicebound/{bag}", topic, len(parts))
	}
	m := sdkMessage{Properties: map[string]string{}}
	if parts[4] == "" {
		return m
	}
	for _, pair := range strings.Split(parts[4], "&") {
		kv := strings.Split(pair, "=")
		if len(kv) != 2 {
			tb.Fatalf("topic %q: pair %q does not split into key and value", topic, pair)
		}
		k, err1 := url.PathUnescape(kv[0])
		v, err2 := url.PathUnescape(kv[1])
		if err1 != nil || err2 != nil {
			tb.Fatalf("topic %q: pair %q does not decode", topic, pair)
		}
		switch k {
		case "$.mid":
			m.MessageID = v
		case "$.to":
			m.To = v
		case "$.exp":
			m.Expiry = v
		case "$.cid":
			m.CorrelationID = v
		case "$.uid":
			m.UserID = v
		case "$.ct":
			m.ContentType = v
		case "$.ce":
			m.ContentEncoding = v
		default:
			m.Properties[k] = v
		}
	}
	return m
}

// awkwardProperties need every kind of escaping a bag can need.
var awkwardProperties = map[string]string{
	"space key":  "a value with spaces",
	"amp&key":    "x&y=z",
	"eq=key":     "==",
	"slash/key":  "/devices/other/messages/devicebound/#",
	"percent":    "100% %41 %zz",
	"plus":       "1+1 = 2",
	"unicode":    "naïve ✓ 日本",
	"empty":      "",
	"$.mid-like": "not a system property",
	"hash#plus+": "?query#frag",
}

func TestC2DDeliveryOverMQTT(t *testing.T) {
	forEachTransport(t, func(t *testing.T, e *env, ws bool) {
		d := e.connectDevice(t, "dev1", ws)
		first := e.sendC2D(t, "dev1", &hub.C2DMessage{
			MessageID: "mid 1", CorrelationID: "corr/1", UserID: "user+1", ContentType: "application/json",
			ContentEncoding: "utf-8", Ack: hub.AckFull, Properties: map[string]string{"b": "2", "a": ""}, Body: []byte(`{"n":1}`),
		})
		if got := e.pendingCounts(t, "dev1"); got["mid 1"] != 0 {
			t.Fatalf("delivered before SUBSCRIBE: %v", got)
		}

		d.subscribeQoS1(t, c2dFilterOf("dev1"))
		m := d.next(t)
		exp := strings.ReplaceAll(first.ExpiryTime.UTC().Format("2006-01-02T15:04:05.000Z"), ":", "%3A")
		want := "devices/dev1/messages/devicebound/%24.mid=mid%201&%24.exp=" + exp +
			"&%24.to=%2Fdevices%2Fdev1%2Fmessages%2FdeviceBound&%24.cid=corr%2F1&%24.uid=user%2B1" +
			"&%24.ct=application%2Fjson&%24.ce=utf-8&iothub-ack=full&a=&b=2"
		if m.Topic() != want {
			t.Errorf("topic:\n got %s\nwant %s", m.Topic(), want)
		}
		if m.Qos() != 1 || m.Duplicate() || m.Retained() || string(m.Payload()) != `{"n":1}` {
			t.Errorf("got QoS %d, dup %v, retain %v, payload %q; want QoS 1, no flags, the body", m.Qos(), m.Duplicate(), m.Retained(), m.Payload())
		}
		// paho has sent the PUBACK: the message is complete.
		eventually(t, "first message completed", func() bool { return len(e.pendingCounts(t, "dev1")) == 0 })
		fb, err := e.hub.Feedback()
		if err != nil || len(fb) != 1 || fb[0].OriginalMessageID != "mid 1" || fb[0].StatusCode != hub.FeedbackSuccess {
			t.Errorf("feedback: got %+v, %v; want Success for mid 1", fb, err)
		}

		// While subscribed, a new message goes out at once.
		e.sendC2D(t, "dev1", &hub.C2DMessage{MessageID: "live", Properties: awkwardProperties, Body: []byte("x")})
		got := parseLikeSDK(t, d.next(t).Topic())
		if got.MessageID != "live" || got.To != "/devices/dev1/messages/deviceBound" {
			t.Errorf("second message: got %+v", got)
		}
		wantProps := map[string]string{"iothub-ack": "none"}
		for k, v := range awkwardProperties {
			wantProps[k] = v
		}
		if diff := cmp.Diff(wantProps, got.Properties); diff != "" {
			t.Errorf("application properties as the SDK reads them (-want +got):\n%s", diff)
		}
		eventually(t, "second message completed", func() bool { return len(e.pendingCounts(t, "dev1")) == 0 })
	})
}

func TestC2DUnsubscribeStopsDelivery(t *testing.T) {
	e := newEnv(t)
	d := e.connectDevice(t, "dev1", false)
	d.subscribeQoS1(t, c2dFilterOf("dev1"))
	tok := d.Unsubscribe(c2dFilterOf("dev1"))
	if !tok.WaitTimeout(waitTime) || tok.Error() != nil {
		t.Fatalf("unsubscribe: %v", tok.Error())
	}
	// The hub delivers inside SendC2D when it delivers at all.
	e.sendC2D(t, "dev1", &hub.C2DMessage{MessageID: "m"})
	if diff := cmp.Diff(map[string]int{"m": 0}, e.pendingCounts(t, "dev1")); diff != "" {
		t.Fatalf("queue after UNSUBSCRIBE (-want +got):\n%s", diff)
	}
	d.subscribeQoS1(t, c2dFilterOf("dev1"))
	if got := parseLikeSDK(t, d.next(t).Topic()); got.MessageID != "m" {
		t.Errorf("after subscribing again: got %+v, want m", got)
	}
}

// TestC2DRedeliveredOnceAfterReconnect drops a connection with a message
// unacknowledged and checks that the next CleanSession=0 connection gets
// it exactly once, from the hub, right after CONNACK (the subscription
// carries over), before anything sent later.
func TestC2DRedeliveredOnceAfterReconnect(t *testing.T) {
	for _, drop := range []string{"disconnect", "network"} {
		t.Run(drop, func(t *testing.T) {
			forEachTransport(t, func(t *testing.T, e *env, ws bool) {
				key := e.addDevice(t, "dev1")
				dial := dialer{clientID: "dev1", password: token(t, hub.Identity{DeviceID: "dev1"}, "", key, farFuture()), ws: ws, manualAck: true}
				d1 := e.mustConnect(t, dial)
				d1.subscribeQoS1(t, c2dFilterOf("dev1"))
				e.sendC2D(t, "dev1", &hub.C2DMessage{MessageID: "m"})
				if got := parseLikeSDK(t, d1.next(t).Topic()); got.MessageID != "m" {
					t.Fatalf("first delivery: got %+v", got)
				}
				// Not acknowledged: the connection goes.
				if drop == "disconnect" {
					d1.Disconnect(0)
				} else {
					e.srv.dropConns("")
					d1.waitLost(t)
				}
				eventually(t, "hub sees the disconnect", func() bool { return !e.hub.IsConnected(hub.Identity{DeviceID: "dev1"}) })

				dial.manualAck = false
				d2 := e.mustConnect(t, dial)
				m := d2.next(t)
				if got := parseLikeSDK(t, m.Topic()); got.MessageID != "m" || m.Duplicate() {
					t.Fatalf("after reconnect: got %+v (dup %v), want m, sent afresh", got, m.Duplicate())
				}
				eventually(t, "redelivered message completed", func() bool { return len(e.pendingCounts(t, "dev1")) == 0 })
				// A second copy (a resend from the broker's own session
				// store) would arrive before this one.
				e.sendC2D(t, "dev1", &hub.C2DMessage{MessageID: "sentinel"})
				if got := parseLikeSDK(t, d2.next(t).Topic()); got.MessageID != "sentinel" {
					t.Fatalf("next message: got %+v, want sentinel (m was delivered twice?)", got)
				}
			})
		})
	}
}

// TestC2DRedeliveryCountsAndCleanSession checks the delivery count across
// connections and that a CleanSession=1 connection receives nothing until
// it subscribes.
func TestC2DRedeliveryCountsAndCleanSession(t *testing.T) {
	e := newEnv(t)
	key := e.addDevice(t, "dev1")
	dial := dialer{clientID: "dev1", password: token(t, hub.Identity{DeviceID: "dev1"}, "", key, farFuture()), manualAck: true}
	d1 := e.mustConnect(t, dial)
	d1.subscribeQoS1(t, c2dFilterOf("dev1"))
	e.sendC2D(t, "dev1", &hub.C2DMessage{MessageID: "m", Ack: hub.AckFull})
	d1.next(t)
	if diff := cmp.Diff(map[string]int{"m": 1}, e.pendingCounts(t, "dev1")); diff != "" {
		t.Fatalf("after the first delivery (-want +got):\n%s", diff)
	}
	d1.Disconnect(0)
	eventually(t, "hub sees the disconnect", func() bool { return !e.hub.IsConnected(hub.Identity{DeviceID: "dev1"}) })

	dial.clean = true
	d2 := e.mustConnect(t, dial)
	// The hub would deliver a carried-over subscription's messages before
	// it reads any packet: the twin answer coming first shows it did not.
	d2.subscribe(t, filterTwinResponses)
	d2.publish(t, "$iothub/twin/GET/?$rid=1", 0, "")
	if r := d2.twinReply(t); r.RID != "1" {
		t.Fatalf("got %+v, want the twin reply", r)
	}
	if diff := cmp.Diff(map[string]int{"m": 1}, e.pendingCounts(t, "dev1")); diff != "" {
		t.Fatalf("CleanSession=1 before SUBSCRIBE (-want +got):\n%s", diff)
	}
	d2.subscribeQoS1(t, c2dFilterOf("dev1"))
	m := d2.next(t)
	if got := parseLikeSDK(t, m.Topic()); got.MessageID != "m" {
		t.Fatalf("after SUBSCRIBE: got %+v, want m", got)
	}
	if diff := cmp.Diff(map[string]int{"m": 2}, e.pendingCounts(t, "dev1")); diff != "" {
		t.Errorf("delivery count of the redelivery (-want +got):\n%s", diff)
	}
	m.Ack()
	eventually(t, "acknowledged redelivery completed", func() bool { return len(e.pendingCounts(t, "dev1")) == 0 })
	fb, err := e.hub.Feedback()
	if err != nil || len(fb) != 1 || fb[0].StatusCode != hub.FeedbackSuccess {
		t.Errorf("feedback: got %+v, %v; want one Success", fb, err)
	}
}

// TestC2DQoS0Subscription checks that a QoS 0 subscription gets QoS 0
// deliveries, each complete once written.
func TestC2DQoS0Subscription(t *testing.T) {
	e := newEnv(t)
	d := e.connectDevice(t, "dev1", false)
	d.subscribe(t, c2dFilterOf("dev1"))
	e.sendC2D(t, "dev1", &hub.C2DMessage{MessageID: "m"})
	if m := d.next(t); m.Qos() != 0 {
		t.Errorf("got QoS %d, want 0", m.Qos())
	}
	// Completed right after the write, which the device may see first.
	eventually(t, "message complete without a PUBACK", func() bool { return len(e.pendingCounts(t, "dev1")) == 0 })
}

// TestC2DTopicSpelling checks that the topic names the device as its
// SUBSCRIBE did: Python percent-encodes ids, Node does not, and
// azure-sdk-for-c subscribes with '+', which never appears in a topic name.
func TestC2DTopicSpelling(t *testing.T) {
	tests := []struct {
		name   string
		filter string
		prefix string
	}{
		{"raw id (Node, C)", "devices/dev:1/messages/devicebound/#", "devices/dev:1/messages/devicebound/"},
		{"percent-encoded id (Python)", "devices/dev%3A1/messages/devicebound/#", "devices/dev%3A1/messages/devicebound/"},
		{"any device (azure-sdk-for-c)", "devices/+/messages/devicebound/#", "devices/dev:1/messages/devicebound/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			d := e.connectDevice(t, "dev:1", false)
			d.subscribeQoS1(t, tt.filter)
			e.sendC2D(t, "dev:1", &hub.C2DMessage{MessageID: "m"})
			m := d.next(t)
			if !strings.HasPrefix(m.Topic(), tt.prefix) {
				t.Errorf("got topic %q, want it to start with %q", m.Topic(), tt.prefix)
			}
			if m.Qos() != 1 {
				t.Errorf("got QoS %d, want 1 (the QoS subscribed)", m.Qos())
			}
			if got := parseLikeSDK(t, m.Topic()); got.To != "/devices/dev:1/messages/deviceBound" {
				t.Errorf("got $.to %q", got.To)
			}
		})
	}
}

// TestC2DAnyDeviceQoS0 checks that the QoS of a '+' subscription is found:
// it is the subscribed filter's, not the topic's.
func TestC2DAnyDeviceQoS0(t *testing.T) {
	e := newEnv(t)
	d := e.connectDevice(t, "dev1", false)
	d.subscribe(t, "devices/+/messages/devicebound/#")
	e.sendC2D(t, "dev1", &hub.C2DMessage{MessageID: "m"})
	if m := d.next(t); m.Qos() != 0 || !strings.HasPrefix(m.Topic(), "devices/dev1/messages/devicebound/%24.mid=m&") {
		t.Errorf("got QoS %d on %q, want QoS 0 on devices/dev1/messages/devicebound/%%24.mid=m&...", m.Qos(), m.Topic())
	}
	eventually(t, "message complete without a PUBACK", func() bool { return len(e.pendingCounts(t, "dev1")) == 0 })
}

// TestC2DSpellingAfterUnsubscribe checks that when a device holding two
// spellings of its devicebound filter drops one, messages follow the one
// it keeps.
func TestC2DSpellingAfterUnsubscribe(t *testing.T) {
	tests := []struct {
		name       string
		keep, drop string
		wantPrefix string
	}{
		{"keeps the encoded id", "devices/dev%3A1/messages/devicebound/#", "devices/+/messages/devicebound/#", "devices/dev%3A1/messages/devicebound/"},
		{"keeps any device", "devices/+/messages/devicebound/#", "devices/dev%3A1/messages/devicebound/#", "devices/dev:1/messages/devicebound/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			d := e.connectDevice(t, "dev:1", false)
			d.subscribeQoS1(t, tt.keep)
			d.subscribeQoS1(t, tt.drop)
			if tok := d.Unsubscribe(tt.drop); !tok.WaitTimeout(waitTime) || tok.Error() != nil {
				t.Fatalf("unsubscribe: %v", tok.Error())
			}
			e.sendC2D(t, "dev:1", &hub.C2DMessage{MessageID: "m"})
			if m := d.next(t); !strings.HasPrefix(m.Topic(), tt.wantPrefix) || m.Qos() != 1 {
				t.Errorf("got %q at QoS %d, want %s... at QoS 1", m.Topic(), m.Qos(), tt.wantPrefix)
			}
		})
	}
}

// TestC2DAnyDeviceCarriedOver checks that a '+' subscription of a
// CleanSession=0 session delivers to the device's real topic after a
// reconnect, without a new SUBSCRIBE (§3.3).
func TestC2DAnyDeviceCarriedOver(t *testing.T) {
	e := newEnv(t)
	key := e.addDevice(t, "dev1")
	dial := dialer{clientID: "dev1", password: token(t, hub.Identity{DeviceID: "dev1"}, "", key, farFuture())}
	d := e.mustConnect(t, dial)
	d.subscribeQoS1(t, "devices/+/messages/devicebound/#")
	d.Disconnect(0)
	eventually(t, "hub sees the disconnect", func() bool { return !e.hub.IsConnected(hub.Identity{DeviceID: "dev1"}) })
	e.sendC2D(t, "dev1", &hub.C2DMessage{MessageID: "queued"})

	d = e.mustConnect(t, dial)
	m := d.next(t)
	if got := parseLikeSDK(t, m.Topic()); !strings.HasPrefix(m.Topic(), "devices/dev1/messages/devicebound/") || got.MessageID != "queued" {
		t.Fatalf("after reconnect: got %q, want queued on devices/dev1/messages/devicebound/", m.Topic())
	}
	eventually(t, "message completed", func() bool { return len(e.pendingCounts(t, "dev1")) == 0 })
}

// TestC2DCrossDeviceIsolation checks that one device never receives
// another's cloud-to-device messages, and that a device trying to
// subscribe to another's loses its connection without touching that queue.
func TestC2DCrossDeviceIsolation(t *testing.T) {
	forEachTransport(t, func(t *testing.T, e *env, ws bool) {
		a := e.connectDevice(t, "devA", ws)
		b := e.connectDevice(t, "devB", ws)
		a.subscribeQoS1(t, c2dFilterOf("devA"))
		b.subscribeQoS1(t, c2dFilterOf("devB"))

		e.sendC2D(t, "devB", &hub.C2DMessage{MessageID: "forB"})
		if got := parseLikeSDK(t, b.next(t).Topic()); got.MessageID != "forB" {
			t.Fatalf("B got %+v, want forB", got)
		}
		e.sendC2D(t, "devA", &hub.C2DMessage{MessageID: "forA"})
		m := a.next(t)
		if !strings.HasPrefix(m.Topic(), "devices/devA/") || parseLikeSDK(t, m.Topic()).MessageID != "forA" {
			t.Fatalf("A's first message: got %q, want its own forA", m.Topic())
		}

		b.Unsubscribe(c2dFilterOf("devB")).WaitTimeout(waitTime)
		e.sendC2D(t, "devB", &hub.C2DMessage{MessageID: "queuedForB"})
		a.Subscribe(c2dFilterOf("devB"), 1, nil)
		a.waitLost(t)
		if diff := cmp.Diff(map[string]int{"queuedForB": 0}, e.pendingCounts(t, "devB")); diff != "" {
			t.Errorf("B's queue after A's attempt (-want +got):\n%s", diff)
		}
		select {
		case m := <-a.messages:
			t.Errorf("A received %q", m.Topic())
		default:
		}
	})
}

func TestEncodeC2DBag(t *testing.T) {
	exp := time.Date(2024, 5, 2, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		msg  hub.C2DMessage
		want string
	}{
		{"empty", hub.C2DMessage{}, ""},
		{"hub order", hub.C2DMessage{
			Properties: map[string]string{"z": "1", "a b": "x y"}, Ack: "positive", ContentEncoding: "utf-8",
			ContentType: "text/plain", UserID: "u", CorrelationID: "c", To: "/devices/d/messages/deviceBound",
			ExpiryTime: exp, MessageID: "m",
		}, "%24.mid=m&%24.exp=2024-05-02T10%3A00%3A00.000Z&%24.to=%2Fdevices%2Fd%2Fmessages%2FdeviceBound&%24.cid=c" +
			"&%24.uid=u&%24.ct=text%2Fplain&%24.ce=utf-8&iothub-ack=positive&a%20b=x%20y&z=1"},
		{"empty application value", hub.C2DMessage{Properties: map[string]string{"k": ""}}, "k="},
		{"no plus for space, plus escaped", hub.C2DMessage{Properties: map[string]string{"k": "a b+c"}}, "k=a%20b%2Bc"},
		{"unreserved characters kept", hub.C2DMessage{Properties: map[string]string{"k": "-_.!~*'()"}}, "k=-_.!~*'()"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := encodeC2DBag(&tt.msg); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestC2DBagRoundTrip(t *testing.T) {
	for k, v := range awkwardProperties {
		t.Run(k, func(t *testing.T) {
			m := &hub.C2DMessage{MessageID: v, Properties: map[string]string{k: v}}
			got := parseLikeSDK(t, "devices/d/messages/devicebound/"+encodeC2DBag(m))
			if got.MessageID != v {
				t.Errorf("$.mid: got %q, want %q", got.MessageID, v)
			}
			if diff := cmp.Diff(map[string]string{k: v}, got.Properties); diff != "" {
				t.Errorf("properties (-want +got):\n%s", diff)
			}
		})
	}
}

// FuzzC2DBag checks that any property survives the topic as the SDK
// parsers read it.
func FuzzC2DBag(f *testing.F) {
	for k, v := range awkwardProperties {
		f.Add(k, v)
	}
	f.Fuzz(func(t *testing.T, k, v string) {
		if k == "" || strings.HasPrefix(k, "$.") || k == "iothub-ack" {
			return // system keys are the hub's
		}
		m := &hub.C2DMessage{MessageID: v, Properties: map[string]string{k: v}}
		topic := "devices/d/messages/devicebound/" + encodeC2DBag(m)
		if strings.ContainsAny(topic[len("devices/d/messages/devicebound/"):], " +#/") {
			t.Fatalf("bag of %q=%q has a character a topic segment must not: %q", k, v, topic)
		}
		got := parseLikeSDK(t, topic)
		if got.MessageID != v || len(got.Properties) != 1 || got.Properties[k] != v {
			t.Errorf("%q=%q came back as %+v", k, v, got)
		}
	})
}
