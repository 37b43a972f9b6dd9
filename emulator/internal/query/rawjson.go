// SPDX-License-Identifier: MIT

package query

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/bits"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// RawDocument is a Document over the JSON text of a twin. Lookup scans the
// text for the path, skipping unrelated members without decoding them, so a
// condition touching two properties costs roughly one pass over the bytes
// before them and nothing after. The text is assumed to be valid JSON (the
// store wrote it); malformed text never panics, it just makes paths
// undefined. If a name occurs twice in one object the first occurrence wins.
type RawDocument []byte

// Lookup finds path in the document.
func (d RawDocument) Lookup(path Path) (Value, bool) { return rawLookup(d, path) }

func rawLookup(b []byte, path Path) (Value, bool) {
	i := skipWS(b, 0)
	for _, s := range path {
		if s.IsIndex {
			i = rawIndex(b, i, s.Index)
		} else {
			i = rawMember(b, i, s.Name)
		}
		if i < 0 {
			return Value{}, false
		}
	}
	v, end := rawValue(b, i)
	return v, end >= 0
}

func skipWS(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// rawMember returns the offset of the value of member name in the object
// starting at b[i], or -1.
func rawMember(b []byte, i int, name string) int {
	if i >= len(b) || b[i] != '{' {
		return -1
	}
	// A name holding a quote or backslash can only match an escaped key, so
	// it must not take the byte-comparison shortcut below.
	plain := strings.IndexByte(name, '"') < 0 && strings.IndexByte(name, '\\') < 0
	i++
	for {
		i = skipWS(b, i)
		if i >= len(b) || b[i] != '"' {
			return -1
		}
		// Most keys are not the one sought and carry no escapes: compare
		// the bytes in place first and only scan to the closing quote
		// when they differ.
		var match bool
		end := i + 1 + len(name)
		if plain && end < len(b) && b[end] == '"' && string(b[i+1:end]) == name {
			match = true
			end++
		} else {
			var esc bool
			if end, esc = scanString(b, i); end < 0 {
				return -1
			}
			match = esc && string(unescape(nil, b[i+1:end-1])) == name
		}
		i = skipWS(b, end)
		if i >= len(b) || b[i] != ':' {
			return -1
		}
		i = skipWS(b, i+1)
		if match {
			return i
		}
		if i = skipValue(b, i); i < 0 {
			return -1
		}
		i = skipWS(b, i)
		if i >= len(b) || b[i] != ',' {
			return -1
		}
		i++
	}
}

// rawIndex returns the offset of element n of the array starting at b[i], or
// -1.
func rawIndex(b []byte, i int, n int) int {
	if i >= len(b) || b[i] != '[' || n < 0 {
		return -1
	}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == ']' {
		return -1
	}
	for k := 0; ; k++ {
		i = skipWS(b, i)
		if k == n {
			if i >= len(b) {
				return -1
			}
			return i
		}
		if i = skipValue(b, i); i < 0 {
			return -1
		}
		i = skipWS(b, i)
		if i >= len(b) || b[i] != ',' {
			return -1
		}
		i++
	}
}

// rawElements decodes the elements of a JSON array.
func rawElements(raw []byte) []Value {
	i := skipWS(raw, 0)
	if i >= len(raw) || raw[i] != '[' {
		return nil
	}
	out := []Value{}
	i = skipWS(raw, i+1)
	if i < len(raw) && raw[i] == ']' {
		return out
	}
	for {
		v, end := rawValue(raw, i)
		if end < 0 {
			return out
		}
		out = append(out, v)
		i = skipWS(raw, end)
		if i >= len(raw) || raw[i] != ',' {
			return out
		}
		i = skipWS(raw, i+1)
	}
}

// rawValue decodes the value starting at b[i] and returns it with the offset
// just past it (-1 if malformed).
func rawValue(b []byte, i int) (Value, int) {
	if i >= len(b) {
		return Value{}, -1
	}
	switch c := b[i]; c {
	case '"':
		end, esc := scanString(b, i)
		if end < 0 {
			return Value{}, -1
		}
		s := b[i+1 : end-1]
		if esc {
			s = unescape(nil, s)
		}
		return Value{kind: kString, str: s, raw: b[i:end]}, end
	case '{', '[':
		end := skipComposite(b, i)
		if end < 0 {
			return Value{}, -1
		}
		k := kObject
		if c == '[' {
			k = kArray
		}
		return Value{kind: k, raw: b[i:end]}, end
	case 't':
		if bytes.HasPrefix(b[i:], []byte("true")) {
			return Value{kind: kBool, b: true, raw: b[i : i+4]}, i + 4
		}
	case 'f':
		if bytes.HasPrefix(b[i:], []byte("false")) {
			return Value{kind: kBool, raw: b[i : i+5]}, i + 5
		}
	case 'n':
		if bytes.HasPrefix(b[i:], []byte("null")) {
			return Value{kind: kNull, raw: b[i : i+4]}, i + 4
		}
	default:
		if c == '-' || isDigit(c) {
			end := scanNumber(b, i)
			f, ok := parseNumber(b[i:end])
			if !ok {
				return Value{}, -1
			}
			return Value{kind: kNumber, n: f, raw: b[i:end]}, end
		}
	}
	return Value{}, -1
}

// skipValue returns the offset just past the value starting at b[i], or -1.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch c := b[i]; c {
	case '"':
		end, _ := scanString(b, i)
		return end
	case '{', '[':
		return skipComposite(b, i)
	case 't', 'n':
		if i+4 > len(b) {
			return -1
		}
		return i + 4
	case 'f':
		if i+5 > len(b) {
			return -1
		}
		return i + 5
	default:
		if c == '-' || isDigit(c) {
			return scanNumber(b, i)
		}
	}
	return -1
}

// skipComposite returns the offset just past the object or array starting at
// b[i], or -1. It tracks only bracket depth and string boundaries: that is
// all skipping needs, and it is what keeps a lookup cheap.
func skipComposite(b []byte, i int) int {
	depth := 0
	for i < len(b) {
		switch b[i] {
		case '"':
			end, _ := scanString(b, i)
			if end < 0 {
				return -1
			}
			i = end
			continue
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				return i + 1
			}
		}
		i++
	}
	return -1
}

// scanString returns the offset just past the string starting at b[i] (a
// quote) and whether it contains escapes; -1 if unterminated. It looks at
// eight bytes at a time for a quote or backslash: strings (keys,
// timestamps) are most of a twin's text, so this loop is where lookups
// spend their time.
func scanString(b []byte, i int) (int, bool) {
	esc := false
	j := i + 1
	for j < len(b) {
		if j+8 <= len(b) {
			x := binary.LittleEndian.Uint64(b[j:])
			m := hasByte(x, '"') | hasByte(x, '\\')
			if m == 0 {
				j += 8
				continue
			}
			j += bits.TrailingZeros64(m) >> 3
		}
		switch b[j] {
		case '"':
			return j + 1, esc
		case '\\':
			esc = true
			j += 2
		default:
			j++
		}
	}
	return -1, esc
}

const (
	lsbs = 0x0101010101010101
	msbs = 0x8080808080808080
)

// hasByte sets the high bit of each byte of x equal to c. Bits above the
// first match may be set spuriously (borrows propagate upwards), so only
// the lowest set bit is meaningful.
func hasByte(x uint64, c byte) uint64 {
	y := x ^ (lsbs * uint64(c))
	return (y - lsbs) &^ y & msbs
}

func scanNumber(b []byte, i int) int {
	for i < len(b) {
		switch c := b[i]; {
		case isDigit(c), c == '-', c == '+', c == '.', c == 'e', c == 'E':
			i++
		default:
			return i
		}
	}
	return i
}

// parseNumber parses JSON number text. Plain integers of up to 15 digits,
// which is what twins hold almost always, take a fast path that avoids
// strconv's allocation for the string conversion.
func parseNumber(s []byte) (float64, bool) {
	neg := false
	d := s
	if len(d) > 0 && d[0] == '-' {
		neg, d = true, d[1:]
	}
	if len(d) > 0 && len(d) <= 15 {
		var n int64
		simple := true
		for _, c := range d {
			if !isDigit(c) {
				simple = false
				break
			}
			n = n*10 + int64(c-'0')
		}
		if simple {
			f := float64(n)
			if neg {
				f = -f
			}
			return f, true
		}
	}
	f, err := strconv.ParseFloat(string(s), 64)
	if err != nil || math.IsInf(f, 0) {
		return 0, false
	}
	return f, true
}

// unescape decodes the body of a JSON string (without quotes) into dst.
// Invalid escapes are kept literally; lone surrogates become U+FFFD.
func unescape(dst, s []byte) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c != '\\' || i+1 >= len(s) {
			dst = append(dst, c)
			i++
			continue
		}
		switch e := s[i+1]; e {
		case '"', '\\', '/':
			dst = append(dst, e)
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, ok := hex4(string(s[min(i+2, len(s)):min(i+6, len(s))]), 0)
			if !ok {
				dst = append(dst, '\\', 'u')
				break
			}
			i += 6
			if utf16.IsSurrogate(r) {
				if i+6 <= len(s) && s[i] == '\\' && s[i+1] == 'u' {
					if r2, ok := hex4(string(s[i+2:i+6]), 0); ok {
						if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
							dst = utf8.AppendRune(dst, dec)
							i += 6
							continue
						}
					}
				}
				r = utf8.RuneError
			}
			dst = utf8.AppendRune(dst, r)
			continue
		default:
			dst = append(dst, '\\', e)
		}
		i += 2
	}
	return dst
}

// RawMember returns the JSON text of member name of the object b, or nil
// when b is not an object or has no such member. It aliases b.
func RawMember(b []byte, name string) []byte {
	i := rawMember(b, skipWS(b, 0), name)
	if i < 0 {
		return nil
	}
	end := skipValue(b, i)
	if end < 0 {
		return nil
	}
	return b[i:end]
}

// RawMemberFrom is RawMember without finding where the value ends: it
// returns b from the start of the value on, which a Lookup or RawValue of
// it reads just as well, without a pass over the value to find its end.
func RawMemberFrom(b []byte, name string) []byte {
	i := rawMember(b, skipWS(b, 0), name)
	if i < 0 {
		return nil
	}
	return b[i:]
}
