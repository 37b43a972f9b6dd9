// SPDX-License-Identifier: MIT

// Package jsonstr appends JSON strings without reflection, in the two
// forms the emulator writes: the hub's, which escapes only what JSON
// requires (twins), and encoding/json's (stored telemetry, read back with
// encoding/json).
package jsonstr

import "unicode/utf8"

// Append appends s as a JSON string escaping only quotes, backslashes and
// control characters below U+0020, as the hub's serializer does. s must be
// valid UTF-8: its runes are copied as they are.
func Append(b []byte, s string) []byte { return appendString(b, s, false) }

// AppendGo appends s as encoding/json writes a string: <, > and &, U+2028
// and U+2029 escaped as well, and invalid UTF-8 replaced by U+FFFD.
func AppendGo(b []byte, s string) []byte { return appendString(b, s, true) }

func appendString(b []byte, s string, goCompat bool) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf && goCompat {
			r, size := utf8.DecodeRuneInString(s[i:])
			switch {
			case r == utf8.RuneError && size == 1:
				b = append(append(b, s[start:i]...), `\ufffd`...)
			case r == '\u2028' || r == '\u2029':
				b = append(append(b, s[start:i]...), '\\', 'u', '2', '0', '2', hex[r&0xF])
			default:
				i += size
				continue
			}
			i += size
			start = i
			continue
		}
		if c >= 0x20 && c != '"' && c != '\\' && (!goCompat || c != '<' && c != '>' && c != '&') {
			i++
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		case '\b':
			b = append(b, '\\', 'b')
		case '\f':
			b = append(b, '\\', 'f')
		default:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
		}
		i++
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
