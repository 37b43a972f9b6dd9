// SPDX-License-Identifier: MIT

package wire

import (
	"net/url"
	"strings"
)

// Escape percent-encodes s as JavaScript's encodeURIComponent does: every
// byte but A-Z a-z 0-9 - _ . ! ~ * ' ( ) becomes %XX with upper-case hex.
// The Node SDKs build REST paths this way (encodeURIComponent(deviceId) in
// azure-iothub dist/registry.js) and escape property-bag keys and values
// and the user agent in the MQTT username with it. Device ids may contain
// + % # * ? ! ( ) , : = @ $ ' and must reach the hub intact. Python's
// quote(safe="") also escapes ! * ' ( ); the hub decodes both.
//
// SAS tokens use the stricter escaping of internal/sas instead, which must
// reproduce the Node SDK's tokens byte for byte.
func Escape(s string) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if !unreserved(s[i]) {
			n++
		}
	}
	if n == 0 {
		return s
	}
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s) + 2*n)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if unreserved(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

func unreserved(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("-_.!~*'()", c) >= 0
}

// Unescape decodes %XX sequences and leaves '+' alone (the Python SDK warns
// against unquote_plus for topics, and ids may contain '+'). Malformed input
// comes back unchanged, as Python's unquote does, so that nothing the hub
// or a broker sends can make decoding fail.
func Unescape(s string) string {
	if strings.IndexByte(s, '%') < 0 {
		return s
	}
	u, err := url.PathUnescape(s)
	if err != nil {
		return s
	}
	return u
}

// IdentityPath returns the REST path of an identity, /devices/{id} or
// /devices/{id}/modules/{mid}, each id escaped with Escape. The twin routes
// are the same under /twins (see TwinPath).
func IdentityPath(deviceID, moduleID string) string {
	return identity("/devices/", deviceID, moduleID, Escape)
}

// TwinPath returns /twins/{id} or /twins/{id}/modules/{mid}, escaped as
// IdentityPath is.
func TwinPath(deviceID, moduleID string) string {
	return identity("/twins/", deviceID, moduleID, Escape)
}

// IdentityTopic returns devices/{id} or devices/{id}/modules/{mid} for MQTT
// topics. The ids go in raw, as the Node SDK writes them: the hub reads the
// topic as the identity of the connection, and Python's percent-encoded
// spelling agrees with the raw one for the characters SDKs support in
// topics (alphanumerics and - . _). Ids cannot contain '/', and + and # in
// an id cannot work in any MQTT client's subscriptions.
func IdentityTopic(deviceID, moduleID string) string {
	return identity("devices/", deviceID, moduleID, func(s string) string { return s })
}

func identity(prefix, deviceID, moduleID string, esc func(string) string) string {
	p := prefix + esc(deviceID)
	if moduleID != "" {
		p += "/modules/" + esc(moduleID)
	}
	return p
}

// SameID reports whether a topic segment names id, either raw (Node, and
// our device client, subscribe with the raw id) or percent-encoded (Python
// quotes ids in its topics, so the hub may echo that spelling).
func SameID(segment, id string) bool {
	return segment == id || Unescape(segment) == id
}
