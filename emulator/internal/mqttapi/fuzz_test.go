// SPDX-License-Identifier: MIT

package mqttapi

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/mochi-mqtt/server/v2/packets"
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

// FuzzConnect feeds arbitrary bytes to the pre-authentication CONNECT
// path: the framing reader, mochi's decoder, then the 3.1.1 screen. Any
// CONNECT the screen lets through must pass mochi's own validation, so
// that mochi never answers a 3.1.1 client with an MQTT 5 reason code.
func FuzzConnect(f *testing.F) {
	creds := byte(flagUsername | flagPassword)
	for _, c := range []rawConnect{
		{flags: creds | flagClean, clientID: "dev1", user: username("dev1"), pass: "SharedAccessSignature sr=x&sig=y&se=1"},
		{level: 3, flags: creds, clientID: "dev1", user: "u", pass: "p"},
		{name: "MQIsdp", level: 3, flags: creds, clientID: "dev1", user: "u", pass: "p"},
		{flags: creds | flagReserved, clientID: "dev1", user: "u", pass: "p"},
		{flags: creds | flagWill | flagWillQoS1, clientID: "d", willTop: "devices/d/messages/events/", willMsg: "bye", user: "u", pass: "p"},
		{flags: creds | flagWill, clientID: "d", willTop: "t", user: "u", pass: "p"},
		{flags: creds, clientID: "", user: "u", pass: ""},
		{flags: flagPassword, clientID: "d", pass: "p"},
		{level: 5, flags: flagClean, clientID: "d"},
	} {
		f.Add(c.bytes())
	}
	f.Add([]byte{0x10, 0xff, 0xff, 0xff, 0x7f})
	f.Add([]byte{0xc0, 0x00})
	f.Fuzz(func(t *testing.T, in []byte) {
		raw, err := readConnect(bytes.NewReader(in))
		if err != nil {
			return // the connection is closed without a CONNACK
		}
		if !bytes.HasPrefix(in, raw) {
			t.Fatalf("readConnect returned bytes that were not read: % x", raw)
		}
		var fh packets.FixedHeader
		if err := fh.Decode(raw[0]); err != nil || fh.Type != packets.Connect {
			t.Fatalf("readConnect let a non-CONNECT through: % x", raw[:1])
		}
		n, used, err := packets.DecodeLength(bytes.NewReader(raw[1:]))
		if err != nil || n > maxConnectSize || 1+used+n != len(raw) {
			t.Fatalf("remaining length %d (%v) for %d bytes", n, err, len(raw))
		}
		pk := packets.Packet{FixedHeader: fh}
		if err := pk.ConnectDecode(raw[1+used:]); err != nil {
			return // mochi closes the connection without a CONNACK
		}
		if r := screenConnect(&pk); r != nil {
			if r.code > 5 {
				t.Fatalf("return code %d is not a MQTT 3.1.1 code", r.code)
			}
			return
		}
		if pk.ProtocolVersion != 4 {
			if pk.ProtocolVersion != 5 {
				t.Fatalf("protocol level %d let through", pk.ProtocolVersion)
			}
			return // refused in OnConnect with MQTT 5's own code
		}
		if code := pk.ConnectValidate(); code != packets.CodeSuccess {
			t.Fatalf("mochi would refuse a screened 3.1.1 CONNECT with %#02x (%s)", code.Code, code.Reason)
		}
		if pk.Connect.WillQos > 2 {
			t.Fatalf("will QoS %d let through", pk.Connect.WillQos)
		}
	})
}
