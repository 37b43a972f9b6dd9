// SPDX-License-Identifier: MIT

package mqttapi

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/iothubemulator/iothub/emulator/internal/hub"
)

func TestParsePublishTopic(t *testing.T) {
	tests := []struct {
		name  string
		topic string
		want  pubTopic
	}{
		{"telemetry without bag", "devices/dev1/messages/events/", pubTopic{kind: pubTelemetry, device: "dev1"}},
		{"telemetry without trailing slash", "devices/dev1/messages/events", pubTopic{kind: pubTelemetry, device: "dev1"}},
		{"telemetry doc example", "devices/dev1/messages/events/%24.mid=42&%24.ct=application%2Fjson&%24.ce=utf-8&alert=high",
			pubTopic{kind: pubTelemetry, device: "dev1", bag: "%24.mid=42&%24.ct=application%2Fjson&%24.ce=utf-8&alert=high"}},
		{"module telemetry", "devices/dev1/modules/m1/messages/events/a=b", pubTopic{kind: pubTelemetry, device: "dev1", module: "m1", bag: "a=b"}},
		{"node output event ends with slash", "devices/dev1/modules/m1/messages/events/%24.on=out1/", pubTopic{kind: pubTelemetry, device: "dev1", module: "m1", bag: "%24.on=out1"}},
		{"python-encoded id", "devices/dev%3A1/messages/events/", pubTopic{kind: pubTelemetry, device: "dev%3A1"}},
		{"twin get", "$iothub/twin/GET/?$rid=1", pubTopic{kind: pubTwinGet, rid: "1"}},
		{"twin get uuid rid", "$iothub/twin/GET/?$rid=0b6d1c1e-8e2f-4c8a-9f53-3f6b7b1b2a10", pubTopic{kind: pubTwinGet, rid: "0b6d1c1e-8e2f-4c8a-9f53-3f6b7b1b2a10"}},
		{"twin reported", "$iothub/twin/PATCH/properties/reported/?$rid=7", pubTopic{kind: pubTwinReported, rid: "7"}},
		{"twin reported with version", "$iothub/twin/PATCH/properties/reported/?$rid=7&$version=12", pubTopic{kind: pubTwinReported, rid: "7", version: 12}},
		{"twin reported encoded keys", "$iothub/twin/PATCH/properties/reported/?%24rid=7&%24version=3", pubTopic{kind: pubTwinReported, rid: "7", version: 3}},
		{"unknown query key ignored", "$iothub/twin/GET/?$rid=9&foo=bar", pubTopic{kind: pubTwinGet, rid: "9"}},
		{"version ignored on get", "$iothub/twin/GET/?$rid=9&$version=x", pubTopic{kind: pubTwinGet, rid: "9"}},
		{"rid kept as sent", "$iothub/twin/GET/?$rid=a%2Fb", pubTopic{kind: pubTwinGet, rid: "a%2Fb"}},
		{"method response", "$iothub/methods/res/200/?$rid=5", pubTopic{kind: pubMethodResponse, rid: "5", status: 200}},
		{"method response error status", "$iothub/methods/res/500/?$rid=abc", pubTopic{kind: pubMethodResponse, rid: "abc", status: 500}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parsePublishTopic(tt.topic)
			if err != nil {
				t.Fatalf("parsePublishTopic(%q): %v", tt.topic, err)
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(pubTopic{})); diff != "" {
				t.Errorf("parsePublishTopic(%q) (-want +got):\n%s", tt.topic, diff)
			}
		})
	}
}

func TestParsePublishTopicRefuses(t *testing.T) {
	tests := []struct {
		name  string
		topic string
	}{
		{"c2d topic", "devices/dev1/messages/devicebound/x"},
		{"other broker topic", "foo/bar"},
		{"sys", "$SYS/broker/version"},
		{"empty device", "devices//messages/events/"},
		{"empty module", "devices/d/modules//messages/events/"},
		{"device only", "devices/dev1"},
		{"events misspelt", "devices/dev1/messages/event/"},
		{"twin get without slash", "$iothub/twin/GET?$rid=1"},
		{"twin get without rid", "$iothub/twin/GET/"},
		{"twin get empty rid", "$iothub/twin/GET/?$rid="},
		{"twin get with path", "$iothub/twin/GET/x?$rid=1"},
		{"bad version", "$iothub/twin/PATCH/properties/reported/?$rid=1&$version=x"},
		{"negative version", "$iothub/twin/PATCH/properties/reported/?$rid=1&$version=-1"},
		{"desired is hub to device", "$iothub/twin/PATCH/properties/desired/?$version=1"},
		{"method request is hub to device", "$iothub/methods/POST/reboot/?$rid=1"},
		{"method status not a number", "$iothub/methods/res/ok/?$rid=1"},
		{"method response without rid", "$iothub/methods/res/200"},
		{"method response rid missing", "$iothub/methods/res/200/?foo=1"},
		{"bad key escape", "$iothub/twin/GET/?%zz=1&$rid=1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parsePublishTopic(tt.topic)
			if !errors.Is(err, errTopic) {
				t.Errorf("parsePublishTopic(%q) = %+v, %v; want an error wrapping errTopic", tt.topic, got, err)
			}
		})
	}
}

func TestTopicNames(t *testing.T) {
	dev := hub.Identity{DeviceID: "dev:1"}
	mod := hub.Identity{DeviceID: "dev:1", ModuleID: "m 1"}
	tests := []struct {
		name  string
		topic string
		id    hub.Identity
		want  bool
	}{
		{"raw device id", "devices/dev:1/messages/events/", dev, true},
		{"python-encoded device id", "devices/dev%3A1/messages/events/", dev, true},
		{"another device", "devices/dev2/messages/events/", dev, false},
		{"prefix of id", "devices/dev/messages/events/", dev, false},
		{"module topic, device identity", "devices/dev:1/modules/m%201/messages/events/", dev, false},
		{"device topic, module identity", "devices/dev:1/messages/events/", mod, false},
		{"module topic encoded", "devices/dev%3A1/modules/m%201/messages/events/", mod, true},
		{"another module", "devices/dev:1/modules/m2/messages/events/", mod, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := parsePublishTopic(tt.topic)
			if err != nil {
				t.Fatal(err)
			}
			if got := p.names(tt.id); got != tt.want {
				t.Errorf("%q names %v: got %v, want %v", tt.topic, tt.id, got, tt.want)
			}
		})
	}
}

func TestParseFilter(t *testing.T) {
	dev := hub.Identity{DeviceID: "dev1"}
	mod := hub.Identity{DeviceID: "dev1", ModuleID: "m1"}
	tests := []struct {
		name     string
		filter   string
		kind     subKind
		devOK    bool // allowed for dev1
		moduleOK bool // allowed for dev1/m1
	}{
		{"methods", "$iothub/methods/POST/#", subMethods, true, true},
		{"twin responses", "$iothub/twin/res/#", subTwinResponses, true, true},
		{"desired", "$iothub/twin/PATCH/properties/desired/#", subDesired, true, true},
		{"c2d", "devices/dev1/messages/devicebound/#", subC2D, true, false},
		{"c2d python-encoded", "devices/dev%31/messages/devicebound/#", subC2D, true, false},
		{"c2d of another device", "devices/dev2/messages/devicebound/#", subC2D, false, false},
		{"c2d any device (azure-sdk-for-c)", "devices/+/messages/devicebound/#", subC2D, true, false},
		{"module inputs", "devices/dev1/modules/m1/inputs/#", subModuleInputs, false, true},
		{"inputs of another module", "devices/dev1/modules/m2/inputs/#", subModuleInputs, false, false},
		{"module-wide (C# ModuleClient)", "devices/dev1/modules/m1/#", subModuleInputs, false, true},
		{"module-wide python-encoded", "devices/dev%31/modules/m%31/#", subModuleInputs, false, true},
		{"module-wide of another module", "devices/dev1/modules/m2/#", subModuleInputs, false, false},
		{"module-wide of another device", "devices/dev2/modules/m1/#", subModuleInputs, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := parseFilter(tt.filter)
			if err != nil {
				t.Fatalf("parseFilter(%q): %v", tt.filter, err)
			}
			if f.kind != tt.kind {
				t.Errorf("kind: got %d, want %d", f.kind, tt.kind)
			}
			if got := f.allowedFor(dev); got != tt.devOK {
				t.Errorf("allowed for device: got %v, want %v", got, tt.devOK)
			}
			if got := f.allowedFor(mod); got != tt.moduleOK {
				t.Errorf("allowed for module: got %v, want %v", got, tt.moduleOK)
			}
		})
	}
}

func TestParseFilterRefuses(t *testing.T) {
	for _, f := range []string{
		"#", "+/#", "$iothub/#", "$iothub/methods/#", "$iothub/methods/POST/reboot/#", "$iothub/methods/POST/+",
		"$iothub/twin/res/200/#", "$iothub/twin/PATCH/properties/desired/?$version=#", "$SYS/#",
		"devices/#", "devices/dev1/messages/events/#",
		"devices/dev1/messages/devicebound/x", "devices/dev1/modules/+/inputs/#",
		"devices//messages/devicebound/#", "devices/dev1/modules//inputs/#",
		"devices/+/messages/devicebound/+", "devices/+/messages/devicebound/x", "devices/+/messages/#",
		"devices/+dev/messages/devicebound/#", "devices/#/messages/devicebound/#", "devices/+/modules/m1/#",
		"devices/+/modules/m1/inputs/#", "devices/dev1/modules/+/#", "devices/dev1/modules/m1/+",
		"devices/dev1/modules/m1/inputs/+", "devices/dev1/modules/m1/messages/#", "devices/dev1/modules/#",
		"devices/dev1/modules/m1", "devices/dev1/modules//#",
	} {
		t.Run(f, func(t *testing.T) {
			if got, err := parseFilter(f); !errors.Is(err, errTopic) {
				t.Errorf("parseFilter(%q) = %+v, %v; want an error wrapping errTopic", f, got, err)
			}
		})
	}
}

func TestDecodePropertyBag(t *testing.T) {
	tests := []struct {
		name string
		bag  string
		want []property
	}{
		{"empty", "", nil},
		{"doc example", "%24.mid=42&%24.ct=application%2Fjson&%24.ce=utf-8&alert=high",
			[]property{{"$.mid", "42"}, {"$.ct", "application/json"}, {"$.ce", "utf-8"}, {"alert", "high"}}},
		{"dollar not encoded (C SDK)", "$.mid=1&$.cid=2", []property{{"$.mid", "1"}, {"$.cid", "2"}}},
		{"node querystring escapes", "%24.exp=2024-01-01T00%3A00%3A00.000Z&k%20ey=v%20al",
			[]property{{"$.exp", "2024-01-01T00:00:00.000Z"}, {"k ey", "v al"}}},
		{"plus stays plus", "a=1+2&b+c=d", []property{{"a", "1+2"}, {"b+c", "d"}}},
		{"value keeps later equals signs", "expr=a%3Db=c", []property{{"expr", "a=b=c"}}},
		{"bare key has empty value", "flag&x=", []property{{"flag", ""}, {"x", ""}}},
		{"empty members skipped", "&a=1&&b=2&", []property{{"a", "1"}, {"b", "2"}}},
		{"utf-8", "na%C3%AFve=%E2%9C%93", []property{{"naïve", "✓"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodePropertyBag(tt.bag)
			if err != nil {
				t.Fatalf("decodePropertyBag(%q): %v", tt.bag, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("decodePropertyBag(%q) (-want +got):\n%s", tt.bag, diff)
			}
		})
	}
}

func TestDecodePropertyBagErrors(t *testing.T) {
	for _, bag := range []string{"a=%zz", "%zz=1", "=value", "a=1&=2", "a=%"} {
		t.Run(bag, func(t *testing.T) {
			if got, err := decodePropertyBag(bag); err == nil {
				t.Errorf("decodePropertyBag(%q) = %v; want an error", bag, got)
			}
		})
	}
}

func TestEncodePropertyBag(t *testing.T) {
	props := []property{
		{"$.mid", "42"},
		{"$.to", "/devices/dev1/messages/deviceBound"},
		{"iothub-ack", "full"},
		{"a b", "x&y=z+1"},
		{"ok", "-_.!~*'()"},
	}
	const want = "%24.mid=42&%24.to=%2Fdevices%2Fdev1%2Fmessages%2FdeviceBound&iothub-ack=full&a%20b=x%26y%3Dz%2B1&ok=-_.!~*'()"
	got := encodePropertyBag(props)
	if got != want {
		t.Errorf("encodePropertyBag: got %q, want %q", got, want)
	}
	back, err := decodePropertyBag(got)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(props, back); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

func TestMessageFromBag(t *testing.T) {
	props, err := decodePropertyBag("%24.mid=m&%24.cid=c&%24.uid=u&%24.to=t&%24.exp=e&%24.ct=application%2Fjson&%24.ce=utf-8" +
		"&%24.ctime=ct&%24.schema=s&%24.on=o&%24.ifid=i&%24.sub=comp&%24.other=x&alert=high&alert=higher")
	if err != nil {
		t.Fatal(err)
	}
	got := messageFromBag(props, []byte("{}"))
	want := &hub.Message{
		MessageID: "m", CorrelationID: "c", UserID: "u", To: "t", ExpiryTime: "e",
		ContentType: "application/json", ContentEncoding: "utf-8", CreationTime: "ct", MessageSchema: "s",
		OutputName: "o", InterfaceID: "i", ComponentName: "comp",
		Properties: map[string]string{"$.other": "x", "alert": "higher"},
		Body:       []byte("{}"),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("messageFromBag (-want +got):\n%s", diff)
	}
}
