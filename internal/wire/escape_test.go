// SPDX-License-Identifier: MIT

package wire

import (
	"net/url"
	"testing"
)

func TestEscape(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{name: "plain id", in: "dev1", want: "dev1"},
		{name: "unreserved", in: "AZaz09-_.!~*'()", want: "AZaz09-_.!~*'()"},
		{name: "space", in: "a b", want: "a%20b"},
		{name: "plus and percent", in: "a+b%c", want: "a%2Bb%25c"},
		{name: "reserved", in: "$&=+/?#:;,@", want: "%24%26%3D%2B%2F%3F%23%3A%3B%2C%40"},
		{name: "utf-8", in: "é€", want: "%C3%A9%E2%82%AC"},
		{name: "empty", in: "", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Escape(tt.in); got != tt.want {
				t.Errorf("Escape(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if got := Unescape(Escape(tt.in)); got != tt.in {
				t.Errorf("Unescape(Escape(%q)) = %q, want the input back", tt.in, got)
			}
		})
	}
}

func TestUnescape(t *testing.T) {
	tests := []struct{ in, want string }{
		{"a%20b", "a b"},
		{"a+b", "a+b"},         // '+' is a plus, never a space
		{"%2a%2A", "**"},       // either case of hex
		{"100%", "100%"},       // malformed: unchanged
		{"%zz%20", "%zz%20"},   // malformed anywhere: all unchanged
		{"%E2%82", "\xe2\x82"}, // a truncated UTF-8 sequence is decoded byte for byte
	}
	for _, tt := range tests {
		if got := Unescape(tt.in); got != tt.want {
			t.Errorf("Unescape(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestIdentityPaths(t *testing.T) {
	tests := []struct {
		name, device, module string
		path, twin, topic    string
	}{
		{name: "device", device: "dev1", path: "/devices/dev1", twin: "/twins/dev1", topic: "devices/dev1"},
		{name: "module", device: "dev1", module: "m1", path: "/devices/dev1/modules/m1", twin: "/twins/dev1/modules/m1", topic: "devices/dev1/modules/m1"},
		{
			// REST paths escape every segment (Node encodeURIComponent);
			// topics carry the id as is (Node's MQTT transport).
			name: "special characters", device: "dev+1$x", module: "m:1",
			path: "/devices/dev%2B1%24x/modules/m%3A1", twin: "/twins/dev%2B1%24x/modules/m%3A1", topic: "devices/dev+1$x/modules/m:1",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IdentityPath(tt.device, tt.module); got != tt.path {
				t.Errorf("IdentityPath = %q, want %q", got, tt.path)
			}
			if got := TwinPath(tt.device, tt.module); got != tt.twin {
				t.Errorf("TwinPath = %q, want %q", got, tt.twin)
			}
			if got := IdentityTopic(tt.device, tt.module); got != tt.topic {
				t.Errorf("IdentityTopic = %q, want %q", got, tt.topic)
			}
			// What a server's router sees after decoding must be the id.
			u, err := url.Parse("https://h" + IdentityPath(tt.device, tt.module))
			if err != nil {
				t.Fatal(err)
			}
			want := "/devices/" + tt.device
			if tt.module != "" {
				want += "/modules/" + tt.module
			}
			if u.Path != want {
				t.Errorf("decoded path = %q, want %q", u.Path, want)
			}
		})
	}
}

func TestSameID(t *testing.T) {
	tests := []struct {
		segment, id string
		want        bool
	}{
		{"dev1", "dev1", true},
		{"dev%2B1", "dev+1", true}, // Python's spelling
		{"dev+1", "dev+1", true},   // Node's spelling
		{"dev%2B1", "dev%2B1", true},
		{"dev2", "dev1", false},
		{"DEV1", "dev1", false}, // ids are case-sensitive
	}
	for _, tt := range tests {
		if got := SameID(tt.segment, tt.id); got != tt.want {
			t.Errorf("SameID(%q, %q) = %v, want %v", tt.segment, tt.id, got, tt.want)
		}
	}
}

// FuzzEscape checks that every string survives Escape and both decoders a
// receiver may use, and that Escape's output is plain ASCII without any
// character that would split a path, query or topic.
func FuzzEscape(f *testing.F) {
	for _, s := range []string{"dev1", "a b+c%d", "é€", "$&=+/?#:;,@", "\x00\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e := Escape(s)
		for i := 0; i < len(e); i++ {
			if c := e[i]; c != '%' && !unreserved(c) {
				t.Fatalf("Escape(%q) = %q keeps %q", s, e, c)
			}
		}
		if got := Unescape(e); got != s {
			t.Errorf("Unescape(Escape(%q)) = %q", s, got)
		}
		if got, err := url.PathUnescape(e); err != nil || got != s {
			t.Errorf("url.PathUnescape(Escape(%q)) = %q, %v", s, got, err)
		}
	})
}
