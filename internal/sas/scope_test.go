// SPDX-License-Identifier: MIT

package sas

import "testing"

func TestResourceURI(t *testing.T) {
	tests := []struct {
		name, host, device, module, want string
	}{
		{"hub", "h.net", "", "", "h.net"},
		{"device", "h.net", "d1", "", "h.net/devices/d1"},
		{"module", "h.net", "d1", "m1", "h.net/devices/d1/modules/m1"},
		{"module without device", "h.net", "", "m1", "h.net"},
		{"port stripped", "localhost:8883", "d1", "", "localhost/devices/d1"},
		{"ipv6 port stripped", "[::1]:443", "d1", "", "[::1]/devices/d1"},
		{"bare ipv6 kept", "::1", "", "", "::1"},
		{"not a port", "h:x", "", "", "h:x"},
		{"ids unescaped", "h.net", "a/b c", "", "h.net/devices/a/b c"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ResourceURI(tt.host, tt.device, tt.module); got != tt.want {
				t.Errorf("ResourceURI(%q, %q, %q) = %q, want %q", tt.host, tt.device, tt.module, got, tt.want)
			}
		})
	}
}

func TestCovers(t *testing.T) {
	tests := []struct {
		name     string
		sr       string // decoded token resource
		resource string
		want     bool
	}{
		{"hub covers hub", "h.net", "h.net", true},
		{"hub covers device", "h.net", "h.net/devices/d1", true},
		{"hub covers module", "h.net", "h.net/devices/d1/modules/m1", true},
		{"host case-insensitive", "H.Net", "h.net/devices/d1", true},
		{"other host", "g.net", "h.net/devices/d1", false},
		{"host prefix is not a segment", "h.ne", "h.net", false},
		{"device covers itself", "h.net/devices/d1", "h.net/devices/d1", true},
		{"device covers its module", "h.net/devices/d1", "h.net/devices/d1/modules/m1", true},
		{"device does not cover longer id", "h.net/devices/d1", "h.net/devices/d10", false},
		{"device does not cover other device", "h.net/devices/d1", "h.net/devices/d2", false},
		{"device does not cover hub", "h.net/devices/d1", "h.net", false},
		{"ids case-sensitive", "h.net/devices/D1", "h.net/devices/d1", false},
		{"devices collection covers device", "h.net/devices", "h.net/devices/d1", true},
		{"module does not cover its device", "h.net/devices/d1/modules/m1", "h.net/devices/d1", false},
		{"module does not cover sibling", "h.net/devices/d1/modules/m1", "h.net/devices/d1/modules/m2", false},
		{"trailing slash on token", "h.net/devices/d1/", "h.net/devices/d1", true},
		{"trailing slash on resource", "h.net/devices/d1", "h.net/devices/d1/", true},
		{"trailing slash on hub token", "h.net/", "h.net/devices/d1", true},
		{"token with port", "localhost:8883/devices/d1", "localhost/devices/d1", true},
		{"resource with port", "localhost/devices/d1", "localhost:8883/devices/d1", true},
		{"empty resource", "", "h.net", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := Token{Resource: tt.sr}
			if got := tok.Covers(tt.resource); got != tt.want {
				t.Errorf("Token{sr=%q}.Covers(%q) = %v, want %v", tt.sr, tt.resource, got, tt.want)
			}
		})
	}
}
