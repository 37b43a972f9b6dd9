// SPDX-License-Identifier: MIT

package device

import (
	"net/url"
	"strings"
)

// escape percent-encodes s as JavaScript's encodeURIComponent does, which is
// what the Node SDK applies to property-bag keys and values and to the user
// agent in the MQTT username: everything but A-Z a-z 0-9 - _ . ! ~ * ' ( )
// becomes %XX (upper-case hex) of its UTF-8 bytes. Python's quote(safe="")
// also escapes ! * ' ( ); the hub decodes both.
func escape(s string) string {
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

// unescape decodes %XX sequences and leaves '+' alone (the Python SDK warns
// against unquote_plus for topics). Malformed input is returned unchanged, as
// Python's unquote does, so no broker input can make decoding fail.
func unescape(s string) string {
	if strings.IndexByte(s, '%') < 0 {
		return s
	}
	u, err := url.PathUnescape(s)
	if err != nil {
		return s
	}
	return u
}
