// SPDX-License-Identifier: MIT

package device

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestEncodeProperties checks property bags byte for byte against what the
// Node SDK builds (device/transport/mqtt/src/mqtt.ts,
// _getEventTopicFromMessage: querystring.stringify for system properties,
// encodeURIComponent for application ones) with the Python SDK's order
// (iothub/pipeline/mqtt_topic_iothub.py, encode_message_properties_in_topic:
// $.on first, application properties sorted).
func TestEncodeProperties(t *testing.T) {
	exp := time.Date(2024, 1, 2, 3, 4, 5, 678_000_000, time.UTC)
	tests := []struct {
		name string
		msg  Message
		want string
	}{
		{name: "empty", msg: Message{}, want: ""},
		{
			name: "message id with space",
			msg:  Message{MessageID: "msg 1"},
			want: "%24.mid=msg%201",
		},
		{
			name: "all system properties in SDK order",
			msg: Message{
				OutputName: "out1", MessageID: "m1", CorrelationID: "c/1", UserID: "u1",
				ContentType: "application/json", ContentEncoding: "utf-8",
				ExpiryTime: exp, CreationTime: exp.Add(-time.Hour),
			},
			want: "%24.on=out1&%24.mid=m1&%24.cid=c%2F1&%24.uid=u1&%24.ct=application%2Fjson&%24.ce=utf-8" +
				"&%24.exp=2024-01-02T03%3A04%3A05.678Z&%24.ctime=2024-01-02T02%3A04%3A05.678Z",
		},
		{
			name: "expiry in another zone is sent in UTC",
			msg:  Message{ExpiryTime: exp.In(time.FixedZone("X", 3600))},
			want: "%24.exp=2024-01-02T03%3A04%3A05.678Z",
		},
		{
			name: "application properties sorted and escaped",
			msg: Message{Properties: map[string]string{
				"zeta": "last", "alert level": "high & low", "emoji": "é", "plus": "a+b",
				"marks": "*'()!~-_.", "eq": "a=b", "hash": "#1", "empty": "",
			}},
			want: "alert%20level=high%20%26%20low&emoji=%C3%A9&empty=&eq=a%3Db&hash=%231" +
				"&marks=*'()!~-_.&plus=a%2Bb&zeta=last",
		},
		{
			name: "system then application",
			msg:  Message{MessageID: "42", ContentType: "application/json", ContentEncoding: "utf-8", Properties: map[string]string{"alert": "high"}},
			// The protocol reference's example (§3.6).
			want: "%24.mid=42&%24.ct=application%2Fjson&%24.ce=utf-8&alert=high",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := encodeProperties(&tt.msg); got != tt.want {
				t.Errorf("encodeProperties() = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestDecodeProperties checks cloud-to-device bags as the hub sends them
// (protocol reference §3.7) against the Node and Python parsers' mapping.
func TestDecodeProperties(t *testing.T) {
	exp := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		bag  string
		want Message
	}{
		{name: "empty", bag: "", want: Message{}},
		{
			name: "hub system properties",
			bag: "%24.mid=7d1c&%24.to=%2Fdevices%2Fdev1%2Fmessages%2FdeviceBound&%24.cid=c1&%24.uid=u1" +
				"&%24.ct=application%2Fjson&%24.ce=utf-8&%24.exp=2024-05-01T10%3A00%3A00.0000000Z&iothub-ack=full&prop=val",
			want: Message{
				MessageID: "7d1c", To: "/devices/dev1/messages/deviceBound", CorrelationID: "c1", UserID: "u1",
				ContentType: "application/json", ContentEncoding: "utf-8", ExpiryTime: exp, Ack: "full",
				Properties: map[string]string{"prop": "val"},
			},
		},
		{
			name: "null, empty and spaced values",
			bag:  "prop1&prop2=&prop3=a%20string",
			want: Message{Properties: map[string]string{"prop1": "", "prop2": "", "prop3": "a string"}},
		},
		{
			name: "plus stays a plus",
			bag:  "k=a+b&a%2Bb=c",
			want: Message{Properties: map[string]string{"k": "a+b", "a+b": "c"}},
		},
		{
			name: "value containing an equals sign",
			bag:  "k=a=b",
			want: Message{Properties: map[string]string{"k": "a=b"}},
		},
		{
			name: "unescaped dollar keys",
			bag:  "$.mid=m&$.ctime=2024-05-01T10:00:00Z",
			want: Message{MessageID: "m", CreationTime: exp},
		},
		{
			name: "malformed escapes and times kept verbatim",
			bag:  "bad=%zz&%24.exp=tomorrow&&",
			want: Message{Properties: map[string]string{"bad": "%zz", "$.exp": "tomorrow"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got Message
			decodeProperties(tt.bag, &got)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("decodeProperties(%q) mismatch (-want +got):\n%s", tt.bag, diff)
			}
		})
	}
}

// FuzzDecodeProperties feeds arbitrary bags to the decoder, which faces the
// network: it must not panic, and a bag it produced must decode back.
func FuzzDecodeProperties(f *testing.F) {
	for _, s := range []string{"", "a", "a=", "=b", "&&", "%", "%2", "%zz=%", "%24.exp=x", "%24.mid=1&k=v&k=w", "$.to=%2F"} {
		f.Add(s, "k", "v")
	}
	f.Fuzz(func(t *testing.T, bag, key, value string) {
		var m Message
		decodeProperties(bag, &m)

		if key == "" || isSystemKey(key) {
			return
		}
		sent := Message{MessageID: value, Properties: map[string]string{key: value}}
		var got Message
		decodeProperties(encodeProperties(&sent), &got)
		if got.Properties[key] != value || got.MessageID != value {
			t.Errorf("round trip of %q=%q: got properties %q, message id %q", key, value, got.Properties, got.MessageID)
		}
	})
}

// isSystemKey reports keys the decoder maps to Message fields.
func isSystemKey(k string) bool {
	switch k {
	case keyMessageID, keyCorrelationID, keyUserID, keyTo, keyExpiry, keyContentType,
		keyContentEncoding, keyCreationTime, keyOutputName, keyAck:
		return true
	}
	return false
}

func BenchmarkEncodeProperties(b *testing.B) {
	m := &Message{MessageID: "msg 1", ContentType: "application/json", ContentEncoding: "utf-8",
		Properties: map[string]string{"alert level": "high", "site": "Zürich", "n": "42"}}
	for b.Loop() {
		_ = encodeProperties(m)
	}
}

func BenchmarkDecodeProperties(b *testing.B) {
	bag := "%24.mid=7d1c&%24.to=%2Fdevices%2Fdev1%2Fmessages%2FdeviceBound&%24.cid=c1&iothub-ack=full&prop=a%20b"
	for b.Loop() {
		var m Message
		decodeProperties(bag, &m)
	}
}
