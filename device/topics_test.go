// SPDX-License-Identifier: MIT

package device

import (
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/iothubemulator/iothub/internal/wire"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		name  string
		topic string
		want  inbound
	}{
		{
			name:  "twin response with version",
			topic: "$iothub/twin/res/204/?$rid=abc&$version=7",
			want:  inbound{kind: inboundTwinResponse, status: 204, rid: "abc", version: 7, hasVersion: true},
		},
		{
			name:  "twin response without version",
			topic: "$iothub/twin/res/200/?$rid=a%20b",
			want:  inbound{kind: inboundTwinResponse, status: 200, rid: "a b"},
		},
		{
			name:  "twin response with odd status",
			topic: "$iothub/twin/res/x/?$rid=1",
			want:  inbound{kind: inboundTwinResponse, rid: "1"},
		},
		{name: "twin response without rid", topic: "$iothub/twin/res/200/", want: inbound{}},
		{
			name:  "desired patch",
			topic: "$iothub/twin/PATCH/properties/desired/?$version=8",
			want:  inbound{kind: inboundDesired, version: 8, hasVersion: true},
		},
		{
			name:  "method request",
			topic: "$iothub/methods/POST/setFan/?$rid=1f",
			want:  inbound{kind: inboundMethod, method: "setFan", rid: "1f"},
		},
		{
			name:  "method request with escaped name",
			topic: "$iothub/methods/POST/set%20fan/?$rid=2",
			want:  inbound{kind: inboundMethod, method: "set fan", rid: "2"},
		},
		{name: "method request without rid", topic: "$iothub/methods/POST/x/", want: inbound{}},
		{name: "method request without name", topic: "$iothub/methods/POST//?$rid=1", want: inbound{}},
		{
			name:  "c2d with bag",
			topic: "devices/dev1/messages/devicebound/%24.mid=1&p=v",
			want:  inbound{kind: inboundC2D, bag: "%24.mid=1&p=v"},
		},
		{name: "c2d without bag", topic: "devices/dev1/messages/devicebound/", want: inbound{kind: inboundC2D}},
		{name: "c2d bare", topic: "devices/dev1/messages/devicebound", want: inbound{kind: inboundC2D}},
		{
			name:  "c2d with extra segments",
			topic: "devices/dev1/messages/devicebound/p=v/extra",
			want:  inbound{kind: inboundC2D, bag: "p=v"},
		},
		{name: "c2d for another device", topic: "devices/dev2/messages/devicebound/p=v", want: inbound{}},
		{name: "c2d for a device with a longer id", topic: "devices/dev1/messages/deviceboundx", want: inbound{}},
		{name: "unknown", topic: "something/else", want: inbound{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := classify(tt.topic, "dev1")
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(inbound{})); diff != "" {
				t.Errorf("classify(%q) mismatch (-want +got):\n%s", tt.topic, diff)
			}
		})
	}
}

// TestClassifyC2DDeviceID checks that a cloud-to-device topic is recognised
// whether the device id in it is raw (as Node and this client subscribe)
// or percent-encoded (Python's mqtt_topic_iothub.py quotes it with
// safe="", encodeURIComponent leaves !*'() alone, and hex digits may be in
// either case).
func TestClassifyC2DDeviceID(t *testing.T) {
	tests := []struct {
		name     string
		deviceID string
		topic    string
		want     bool
	}{
		{name: "raw", deviceID: "dev:1(a)", topic: "devices/dev:1(a)/messages/devicebound/p=v", want: true},
		{name: "python quote", deviceID: "dev:1(a)", topic: "devices/dev%3A1%28a%29/messages/devicebound/p=v", want: true},
		{name: "encodeURIComponent", deviceID: "dev:1(a)", topic: "devices/dev%3A1(a)/messages/devicebound/p=v", want: true},
		{name: "lower-case hex", deviceID: "dev:1(a)", topic: "devices/dev%3a1%28a%29/messages/devicebound", want: true},
		{name: "encoded other device", deviceID: "dev:1(a)", topic: "devices/dev%3A2%28a%29/messages/devicebound/p=v"},
		{name: "percent in id, raw", deviceID: "a%41", topic: "devices/a%41/messages/devicebound/", want: true},
		{name: "percent in id, encoded", deviceID: "a%41", topic: "devices/a%2541/messages/devicebound/", want: true},
		{name: "percent in id, decoded spelling", deviceID: "a%41", topic: "devices/aA/messages/devicebound/"},
		{name: "encoded slash is not a segment", deviceID: "dev1", topic: "devices/dev1%2Fmessages%2Fdevicebound/p=v"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := classify(tt.topic, tt.deviceID).kind == inboundC2D
			if got != tt.want {
				t.Errorf("classify(%q, %q) is C2D = %v, want %v", tt.topic, tt.deviceID, got, tt.want)
			}
		})
	}
}

// FuzzClassifyC2DDeviceID checks that any device id the hub may use is
// recognised both raw and escaped, with the bag intact.
func FuzzClassifyC2DDeviceID(f *testing.F) {
	for _, id := range []string{"dev1", "dev:1(a)", "a%41", "ü @$", "%"} {
		f.Add(id)
	}
	f.Fuzz(func(t *testing.T, id string) {
		if id == "" || strings.ContainsAny(id, "/+#") {
			return // not a device id the hub accepts
		}
		for _, spelled := range []string{id, wire.Escape(id)} {
			topic := "devices/" + spelled + "/messages/devicebound/p=v"
			if got := classify(topic, id); got.kind != inboundC2D || got.bag != "p=v" {
				t.Errorf("classify(%q, %q) = %+v, want C2D with bag p=v", topic, id, got)
			}
		}
	})
}

// FuzzClassify checks that no topic from the broker makes the classifier
// panic and that what it extracts is consistent.
func FuzzClassify(f *testing.F) {
	for _, s := range []string{
		"$iothub/twin/res/200/?$rid=1&$version=2", "$iothub/twin/res/", "$iothub/twin/res/?",
		"$iothub/methods/POST/m/?$rid=1", "$iothub/methods/POST/", "$iothub/twin/PATCH/properties/desired/?$version=x",
		"devices/dev1/messages/devicebound/%24.mid=1", "devices/dev1/messages/devicebound", "",
		"devices/dev%31/messages/devicebound/p=v", "devices/%/messages/devicebound",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, topic string) {
		in := classify(topic, "dev1")
		switch in.kind {
		case inboundTwinResponse:
			if in.rid == "" {
				t.Errorf("classify(%q): twin response without rid", topic)
			}
		case inboundMethod:
			if in.method == "" {
				t.Errorf("classify(%q): method request without name", topic)
			}
		case inboundC2D:
			var m Message
			decodeProperties(in.bag, &m)
		}
	})
}

func TestMethodResponseTopic(t *testing.T) {
	tests := []struct {
		name   string
		status int
		rid    string
		want   string
	}{
		{name: "plain", status: 200, rid: "1f", want: "$iothub/methods/res/200/?$rid=1f"},
		{name: "device status", status: 404, rid: "abc", want: "$iothub/methods/res/404/?$rid=abc"},
		{name: "rid needing escapes", status: 500, rid: "a b&c", want: "$iothub/methods/res/500/?$rid=a%20b%26c"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := methodResponseTopic(tt.status, tt.rid); got != tt.want {
				t.Errorf("methodResponseTopic(%d, %q) = %q, want %q", tt.status, tt.rid, got, tt.want)
			}
		})
	}
}

// TestUsername checks the CONNECT username byte for byte against the shape
// the Python SDK builds (pipeline_stages_iothub_mqtt.py: host and client id
// raw, query values quoted with %20 for spaces) and Node's escaping
// (mqtt.ts _getBaseTransportConfig, encodeURIComponent of the user agent).
func TestUsername(t *testing.T) {
	ua := "iothub-go-device%2F0.1.0%20(" + runtime.Version() + "%3B%20" + runtime.GOOS + "%3B%20" + runtime.GOARCH + ")"
	tests := []struct {
		name                 string
		host, device, module string
		productInfo, modelID string
		want                 string
	}{
		{
			name: "device", host: "myhub.azure-devices.net", device: "dev1",
			want: "myhub.azure-devices.net/dev1/?api-version=2021-04-12&DeviceClientType=" + ua,
		},
		{
			name: "module", host: "myhub.azure-devices.net", device: "dev1", module: "mod1",
			want: "myhub.azure-devices.net/dev1/mod1/?api-version=2021-04-12&DeviceClientType=" + ua,
		},
		{
			name: "port dropped", host: "localhost:8883", device: "dev1",
			want: "localhost/dev1/?api-version=2021-04-12&DeviceClientType=" + ua,
		},
		{
			name: "product info and model id", host: "h", device: "d",
			productInfo: " my app/2", modelID: "dtmi:com:example:Thermostat;1",
			want: "h/d/?api-version=2021-04-12&DeviceClientType=" + ua + "%20my%20app%2F2" +
				"&model-id=dtmi%3Acom%3Aexample%3AThermostat%3B1",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := newIdentity(tt.host, "", tt.device, tt.module)
			if err != nil {
				t.Fatal(err)
			}
			if got := username(id, tt.productInfo, tt.modelID); got != tt.want {
				t.Errorf("username() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestAddress(t *testing.T) {
	tests := []struct {
		name          string
		host, gateway string
		ws            bool
		wantAddr      string
		wantName      string
		wantUserHost  string
	}{
		{name: "hub default port", host: "h.azure-devices.net", wantAddr: "h.azure-devices.net:8883", wantName: "h.azure-devices.net", wantUserHost: "h.azure-devices.net"},
		{name: "websockets default port", host: "h.azure-devices.net", ws: true, wantAddr: "h.azure-devices.net:443", wantName: "h.azure-devices.net", wantUserHost: "h.azure-devices.net"},
		{name: "port in host name", host: "localhost:18883", wantAddr: "localhost:18883", wantName: "localhost", wantUserHost: "localhost"},
		{name: "gateway", host: "h.azure-devices.net", gateway: "edge.local", wantAddr: "edge.local:8883", wantName: "edge.local", wantUserHost: "h.azure-devices.net"},
		{name: "gateway with port", host: "h.azure-devices.net", gateway: "127.0.0.1:9000", ws: true, wantAddr: "127.0.0.1:9000", wantName: "127.0.0.1", wantUserHost: "h.azure-devices.net"},
		{name: "ipv6", host: "[::1]:9000", wantAddr: "[::1]:9000", wantName: "::1", wantUserHost: "[::1]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := newIdentity(tt.host, tt.gateway, "d", "")
			if err != nil {
				t.Fatal(err)
			}
			addr, name := id.address(tt.ws)
			if addr != tt.wantAddr || name != tt.wantName {
				t.Errorf("address() = %q, %q, want %q, %q", addr, name, tt.wantAddr, tt.wantName)
			}
			if id.host != tt.wantUserHost {
				t.Errorf("username host = %q, want %q", id.host, tt.wantUserHost)
			}
		})
	}
}
