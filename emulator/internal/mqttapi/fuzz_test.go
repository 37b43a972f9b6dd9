// SPDX-License-Identifier: MIT

package mqttapi

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func FuzzParseTopic(f *testing.F) {
	for _, s := range []string{
		"devices/dev1/messages/events/%24.mid=42&%24.ct=application%2Fjson&alert=high",
		"devices/dev1/modules/m1/messages/events/%24.on=out/",
		"$iothub/twin/GET/?$rid=1",
		"$iothub/twin/PATCH/properties/reported/?$rid=2&$version=3",
		"$iothub/methods/res/200/?$rid=4",
		"$iothub/methods/POST/#",
		"devices/dev1/messages/devicebound/#",
		"devices/dev1/modules/m1/inputs/#",
		"devices/+/messages/devicebound/#",
		"devices/dev1/modules/m1/#",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if p, err := parsePublishTopic(s); err == nil {
			switch p.kind {
			case pubTelemetry:
				if !strings.HasPrefix(s, "devices/"+p.device+"/") || p.device == "" {
					t.Errorf("%q: telemetry for device %q", s, p.device)
				}
				if p.bag != "" && !strings.Contains(s, "/messages/events/"+p.bag) {
					t.Errorf("%q: bag %q is not in the topic", s, p.bag)
				}
			case pubTwinGet, pubTwinReported, pubMethodResponse:
				if p.rid == "" || !strings.HasPrefix(s, "$iothub/") || !strings.Contains(s, p.rid) {
					t.Errorf("%q: rid %q", s, p.rid)
				}
			default:
				t.Errorf("%q: kind %d", s, p.kind)
			}
		}
		if f, err := parseFilter(s); err == nil {
			// '+' only as azure-sdk-for-c's whole device segment.
			plusOK := s == "devices/+/messages/devicebound/#"
			if !strings.HasSuffix(s, "/#") || strings.Count(s, "#") != 1 || (strings.Contains(s, "+") && !plusOK) {
				t.Errorf("filter %q accepted as kind %d", s, f.kind)
			}
			if f.kind == subC2D && f.device == anyDevice && !plusOK {
				t.Errorf("filter %q accepted as any device's C2D", s)
			}
		}
	})
}

func FuzzPropertyBag(f *testing.F) {
	for _, s := range []string{
		"%24.mid=42&%24.ct=application%2Fjson&%24.ce=utf-8&alert=high",
		"a=1+2&flag&&x=",
		"na%C3%AFve=%E2%9C%93",
		"k=a%3Db=c",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, bag string) {
		props, err := decodePropertyBag(bag)
		if err != nil {
			return
		}
		enc := encodePropertyBag(props)
		back, err := decodePropertyBag(enc)
		if err != nil {
			t.Fatalf("decode(encode(decode(%q))) = %v", bag, err)
		}
		if len(props) == 0 {
			props = nil
		}
		if diff := cmp.Diff(props, back); diff != "" {
			t.Errorf("round trip of %q through %q (-want +got):\n%s", bag, enc, diff)
		}
	})
}
