// SPDX-License-Identifier: MIT

package mqttapi

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/iothubemulator/iothub/emulator/internal/hub"
)

// The topics of azure-sdk-for-c, the embedded C SDK (ESP32, FreeRTOS,
// Azure RTOS), as its sources build them: the subscribe filters are the
// AZ_IOT_HUB_CLIENT_*_SUBSCRIBE_TOPIC constants of az_iot_hub_client.h;
// the publish topics come from az_iot_hub_client_telemetry.c,
// az_iot_hub_client_methods.c and az_iot_hub_client_twin.c.
const (
	cSDKC2DFilter          = "devices/+/messages/devicebound/#"
	cSDKMethodsFilter      = "$iothub/methods/POST/#"
	cSDKTwinResponseFilter = "$iothub/twin/res/#"
	cSDKTwinPatchFilter    = "$iothub/twin/PATCH/properties/desired/#"
)

// cSDKProperty finds a property in a bag the way
// az_iot_message_properties_find does: split on '&' and '=', compared
// without decoding (the SDK spells its names pre-encoded, "%24.mid").
func cSDKProperty(bag, name string) (string, bool) {
	for item := range strings.SplitSeq(bag, "&") {
		if k, v, _ := strings.Cut(item, "="); k == name {
			return v, true
		}
	}
	return "", false
}

// cSDKAfter returns what follows the first marker in topic, as the SDK's
// parsers (az_span_find) cut it, or fails.
func cSDKAfter(t *testing.T, topic, marker string) string {
	t.Helper()
	_, rest, ok := strings.Cut(topic, marker)
	if !ok {
		t.Fatalf("topic %q: no %q, the C SDK reports AZ_ERROR_IOT_TOPIC_NO_MATCH", topic, marker)
	}
	return rest
}

// TestAzureSDKForCTopics replays azure-sdk-for-c's exact topics and reads
// what comes back as its topic parsers do.
func TestAzureSDKForCTopics(t *testing.T) {
	forEachTransport(t, func(t *testing.T, e *env, ws bool) {
		const id = "dev:1"
		key := e.addDevice(t, id)
		d := e.mustConnect(t, dialer{
			clientID: id,
			username: hostName + "/" + id + "/?api-version=2020-09-30&DeviceClientType=azsdk-c%2F1.5.0",
			password: token(t, hub.Identity{DeviceID: id}, "", key, farFuture()),
			ws:       ws,
			clean:    true,
		})
		// The samples subscribe each at QoS 1.
		tok := d.SubscribeMultiple(map[string]byte{cSDKC2DFilter: 1, cSDKMethodsFilter: 1, cSDKTwinResponseFilter: 1, cSDKTwinPatchFilter: 1}, nil)
		if !tok.WaitTimeout(waitTime) || tok.Error() != nil {
			t.Fatalf("subscribe: %v", tok.Error())
		}
		want := map[string]byte{cSDKC2DFilter: 1, cSDKMethodsFilter: 1, cSDKTwinResponseFilter: 1, cSDKTwinPatchFilter: 1}
		if diff := cmp.Diff(want, tok.(interface{ Result() map[string]byte }).Result()); diff != "" {
			t.Fatalf("granted QoS (-want +got):\n%s", diff)
		}

		t.Run("c2d", func(t *testing.T) {
			e.sendC2D(t, id, &hub.C2DMessage{MessageID: "m1", Properties: map[string]string{"alert": "high"}, Body: []byte("hi")})
			m := d.next(t)
			const prefix = "devices/" + id + "/messages/devicebound/"
			if !strings.HasPrefix(m.Topic(), prefix) || strings.ContainsAny(m.Topic(), "+#") {
				t.Fatalf("got topic %q, want %s{bag} (the real id, no wildcard)", m.Topic(), prefix)
			}
			bag := cSDKAfter(t, m.Topic(), "/messages/devicebound/")
			if mid, _ := cSDKProperty(bag, "%24.mid"); mid != "m1" {
				t.Errorf("%%24.mid: got %q, want m1", mid)
			}
			if v, _ := cSDKProperty(bag, "alert"); v != "high" {
				t.Errorf("alert: got %q, want high", v)
			}
			if m.Qos() != 1 || string(m.Payload()) != "hi" {
				t.Errorf("got QoS %d, payload %q; want QoS 1, hi", m.Qos(), m.Payload())
			}
			eventually(t, "message completed by the PUBACK", func() bool { return len(e.pendingCounts(t, id)) == 0 })
		})

		t.Run("method", func(t *testing.T) {
			done := invoke(e, hub.Identity{DeviceID: id}, hub.MethodRequest{Name: "reboot", Payload: []byte(`{"delay":1}`)})
			m := d.next(t)
			rest := cSDKAfter(t, cSDKAfter(t, m.Topic(), "$iothub/methods/"), "POST/")
			name, rid, ok := strings.Cut(rest, "/?$rid=")
			if !ok || name != "reboot" || rid == "" {
				t.Fatalf("request topic %q: got name %q rid %q, want reboot and a rid", m.Topic(), name, rid)
			}
			// az_iot_hub_client_methods_response_get_publish_topic.
			d.publish(t, "$iothub/methods/res/200/?$rid="+rid, 1, `{"ok":true}`)
			o := <-done
			if o.err != nil || o.res.Status != 200 || string(o.res.Payload) != `{"ok":true}` {
				t.Errorf("method result: got %+v, %v; want 200 {\"ok\":true}", o.res, o.err)
			}
		})

		t.Run("twin", func(t *testing.T) {
			// az_iot_hub_client_twin_document_get_publish_topic; empty payload.
			d.publish(t, "$iothub/twin/GET/?$rid=get1", 1, "")
			status, props := cSDKTwinResponse(t, d)
			if rid, _ := cSDKProperty(props, "$rid"); status != "200" || rid != "get1" {
				t.Errorf("GET: got status %s, properties %q; want 200 with $rid=get1", status, props)
			}
			// az_iot_hub_client_twin_patch_get_publish_topic.
			d.publish(t, "$iothub/twin/PATCH/properties/reported/?$rid=patch1", 1, `{"fw":"1.0"}`)
			status, props = cSDKTwinResponse(t, d)
			rid, _ := cSDKProperty(props, "$rid")
			// The SDK fails a 204 without $version.
			version, ok := cSDKProperty(props, "$version")
			if status != "204" || rid != "patch1" || !ok || version == "" {
				t.Errorf("PATCH: got status %s, properties %q; want 204 with $rid=patch1 and $version", status, props)
			}

			if _, err := e.hub.UpdateTwin(context.Background(), hub.Identity{DeviceID: id}, []byte(`{"properties":{"desired":{"fan":4}}}`), "*", false); err != nil {
				t.Fatal(err)
			}
			m := d.next(t)
			query := cSDKAfter(t, cSDKAfter(t, m.Topic(), "$iothub/twin/"), "PATCH/properties/desired/?")
			if v, ok := cSDKProperty(query, "$version"); !ok || v == "" {
				t.Errorf("desired topic %q: no $version", m.Topic())
			}
		})

		t.Run("telemetry", func(t *testing.T) {
			// The SDK's property names are pre-encoded (AZ_IOT_MESSAGE_PROPERTIES_CONTENT_TYPE is
			// "%24.ct"); values are the application's to encode.
			d.publish(t, "devices/"+id+"/messages/events/%24.ct=application%2Fjson&%24.ce=utf-8&alert=high", 1, `{"t":21}`)
			d.publish(t, "devices/"+id+"/messages/events/", 1, "plain")
			msgs, err := e.hub.Telemetry(id, "", 0, 0)
			if err != nil || len(msgs) != 2 {
				t.Fatalf("telemetry: got %d messages, %v; want 2", len(msgs), err)
			}
			if m := msgs[0]; m.ContentType != "application/json" || m.ContentEncoding != "utf-8" || m.Properties["alert"] != "high" {
				t.Errorf("first message: got content type %q, encoding %q, properties %v", m.ContentType, m.ContentEncoding, m.Properties)
			}
		})
		if !d.IsConnectionOpen() {
			t.Error("connection closed, want it open")
		}
	})
}

// cSDKTwinResponse reads a twin response as az_iot_hub_client_twin_parse_received_topic
// does: the status after "res/" up to '/', then the properties after '?'.
func cSDKTwinResponse(t *testing.T, d *device) (status, props string) {
	t.Helper()
	m := d.next(t)
	rest := cSDKAfter(t, cSDKAfter(t, m.Topic(), "$iothub/twin/"), "res/")
	status, query, ok := strings.Cut(rest, "/")
	if !ok || !strings.HasPrefix(query, "?") {
		t.Fatalf("twin response %q: no /?{properties} after the status", m.Topic())
	}
	return status, query[1:]
}

// TestModuleWideFilter replays the C# v1 ModuleClient, which subscribes
// devices/{id}/modules/{mid}/# (MqttTransportHandler's
// ReceiveEventMessagePatternFilter) when an input or message handler is
// set, beside its method and twin filters. The module itself may; any
// other identity loses its connection.
func TestModuleWideFilter(t *testing.T) {
	tests := []struct {
		name     string
		clientID string
		filter   string
		allowed  bool
	}{
		{"own module", "edge/m1", "devices/edge/modules/m1/#", true},
		{"own module percent-encoded", "edge/m1", "devices/edge/modules/m%31/#", true},
		{"another module", "edge/m1", "devices/edge/modules/m2/#", false},
		{"module of another device", "edge/m1", "devices/other/modules/m1/#", false},
		{"device identity", "edge", "devices/edge/modules/m1/#", false},
		{"any device's C2D for a module", "edge/m1", "devices/+/messages/devicebound/#", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			keys := map[string]string{"edge": e.addDevice(t, "edge"), "edge/m1": e.addModule(t, "edge", "m1")}
			e.addDevice(t, "other")
			id, err := parseClientID(tt.clientID)
			if err != nil {
				t.Fatal(err)
			}
			c := e.mustConnect(t, dialer{clientID: tt.clientID, password: token(t, id, "", keys[tt.clientID], farFuture())})
			if !tt.allowed {
				c.Subscribe(tt.filter, 1, nil)
				c.waitLost(t)
				eventually(t, "hub sees the disconnect", func() bool { return !e.hub.IsConnected(id) })
				return
			}
			// The ModuleClient's subscriptions with every handler set.
			c.subscribe(t, filterMethods, filterTwinResponses, filterDesired)
			c.subscribeQoS1(t, tt.filter)
			done := invoke(e, id, hub.MethodRequest{Name: "ping"})
			m := c.next(t)
			c.publish(t, "$iothub/methods/res/200/?$rid="+ridOf(t, m.Topic()), 1, "{}")
			if o := <-done; o.err != nil || o.res.Status != 200 {
				t.Fatalf("method after the module-wide SUBSCRIBE: got %+v, %v; want 200", o.res, o.err)
			}
			c.publish(t, "$iothub/twin/GET/?$rid=1", 1, "")
			if r := c.twinReply(t); r.Status != "200" || r.RID != "1" {
				t.Errorf("twin GET: got %+v, want 200 for rid 1", r)
			}
			if tok := c.Unsubscribe(tt.filter); !tok.WaitTimeout(waitTime) || tok.Error() != nil {
				t.Fatalf("unsubscribe: %v", tok.Error())
			}
			if !c.IsConnectionOpen() {
				t.Error("connection closed, want it open")
			}
		})
	}
}
