// SPDX-License-Identifier: MIT

package sas

import (
	"net/url"
	"strings"
)

// encodeComponent escapes s like the Node SDK's encodeUriComponentStrict:
// JavaScript's encodeURIComponent (upper-case escapes; only A-Z a-z 0-9 and
// -_.~ kept) followed by escaping of !'()*, which JavaScript leaves alone.
// Node builds those extra escapes with charCode.toString(16), so they come
// out lower-case ("%2a"); we keep that quirk to mint byte-identical tokens.
func encodeComponent(s string) string {
	const upperHex, lowerHex = "0123456789ABCDEF", "0123456789abcdef"
	var b strings.Builder
	b.Grow(len(s) + len(s)/2)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9',
			c == '-', c == '_', c == '.', c == '~':
			b.WriteByte(c)
		case c == '!', c == '\'', c == '(', c == ')', c == '*':
			b.WriteByte('%')
			b.WriteByte(lowerHex[c>>4])
			b.WriteByte(lowerHex[c&15])
		default:
			b.WriteByte('%')
			b.WriteByte(upperHex[c>>4])
			b.WriteByte(upperHex[c&15])
		}
	}
	return b.String()
}

// decodeComponent reverses percent-encoding. It keeps '+' as is: signers
// that forget to escape base64 '+' in sig mean a plus, never a space, and
// device ids may contain '+'.
func decodeComponent(s string) (string, error) {
	return url.PathUnescape(s)
}
