// SPDX-License-Identifier: MIT

package query

import (
	"bytes"
	"math"
	"strconv"
	"unicode/utf8"
)

// maxStringLen caps strings built by CONCAT, LOWER and UPPER: nesting CONCAT
// doubles a length per level, so without a cap a short query could ask for
// an exponential amount of memory. Longer results are undefined.
const maxStringLen = 64 << 10

// funcDef is a built-in scalar function.
type funcDef struct {
	name    string // canonical spelling, for errors
	minArgs int
	maxArgs int // -1: no upper bound
	call    func(args []Value) Value
}

// functions holds the built-ins by upper-case name. The set is the one the
// query-language page documents (IS_DEFINED for twin queries; the type,
// math and string functions for route conditions, which share the grammar),
// plus ROUND and TRUNC from the Cosmos DB dialect the language derives from,
// and STARTSWITH/ENDSWITH, the spelling real twin queries use
// ("WHERE STARTSWITH(deviceId, 'x')" in the C# SDK samples).
var functions = map[string]*funcDef{}

func init() {
	def := func(name string, minArgs, maxArgs int, call func([]Value) Value, aliases ...string) {
		f := &funcDef{name: name, minArgs: minArgs, maxArgs: maxArgs, call: call}
		functions[name] = f
		for _, a := range aliases {
			functions[a] = f
		}
	}
	isKind := func(ks ...kind) func([]Value) Value {
		return func(a []Value) Value {
			for _, k := range ks {
				if a[0].kind == k {
					return boolV(true)
				}
			}
			return boolV(false)
		}
	}
	def("IS_DEFINED", 1, 1, func(a []Value) Value { return boolV(a[0].defined()) })
	def("IS_NULL", 1, 1, isKind(kNull))
	def("IS_BOOL", 1, 1, isKind(kBool))
	def("IS_NUMBER", 1, 1, isKind(kNumber))
	def("IS_STRING", 1, 1, isKind(kString))
	def("IS_OBJECT", 1, 1, isKind(kObject))
	def("IS_ARRAY", 1, 1, isKind(kArray))
	def("IS_PRIMITIVE", 1, 1, isKind(kNull, kBool, kNumber, kString))
	def("AS_NUMBER", 1, 1, asNumber)

	def("ABS", 1, 1, math1(math.Abs))
	def("CEILING", 1, 1, math1(math.Ceil))
	def("FLOOR", 1, 1, math1(math.Floor))
	def("ROUND", 1, 1, math1(math.Round))
	def("TRUNC", 1, 1, math1(math.Trunc))
	def("SQUARE", 1, 1, math1(func(x float64) float64 { return x * x }))
	def("SQRT", 1, 1, math1(math.Sqrt))
	def("EXP", 1, 1, math1(math.Exp))
	def("SIGN", 1, 1, math1(sign))
	def("POWER", 2, 2, func(a []Value) Value {
		if a[0].kind != kNumber || a[1].kind != kNumber {
			return Value{}
		}
		return numOrUndef(math.Pow(a[0].n, a[1].n))
	})

	def("LENGTH", 1, 1, func(a []Value) Value {
		if a[0].kind != kString {
			return Value{}
		}
		return numV(float64(utf8.RuneCount(a[0].str)))
	})
	def("LOWER", 1, 1, str1(bytes.ToLower))
	def("UPPER", 1, 1, str1(bytes.ToUpper))
	def("CONCAT", 2, -1, concat)
	def("SUBSTRING", 2, 3, substring)
	def("INDEX_OF", 2, 2, func(a []Value) Value {
		if a[0].kind != kString || a[1].kind != kString {
			return Value{}
		}
		i := bytes.Index(a[0].str, a[1].str)
		if i < 0 {
			return numV(-1)
		}
		return numV(float64(utf8.RuneCount(a[0].str[:i])))
	})
	def("STARTS_WITH", 2, 2, str2(bytes.HasPrefix), "STARTSWITH")
	def("ENDS_WITH", 2, 2, str2(bytes.HasSuffix), "ENDSWITH")
	def("CONTAINS", 2, 2, str2(bytes.Contains))
}

func math1(f func(float64) float64) func([]Value) Value {
	return func(a []Value) Value {
		if a[0].kind != kNumber {
			return Value{}
		}
		return numOrUndef(f(a[0].n))
	}
}

func sign(x float64) float64 {
	switch {
	case x > 0:
		return 1
	case x < 0:
		return -1
	}
	return 0
}

func str1(f func([]byte) []byte) func([]Value) Value {
	return func(a []Value) Value {
		if a[0].kind != kString {
			return Value{}
		}
		out := f(a[0].str)
		if len(out) > maxStringLen {
			return Value{}
		}
		return strV(out)
	}
}

func str2(f func(s, t []byte) bool) func([]Value) Value {
	return func(a []Value) Value {
		if a[0].kind != kString || a[1].kind != kString {
			return Value{}
		}
		return boolV(f(a[0].str, a[1].str))
	}
}

func concat(a []Value) Value {
	n := 0
	for _, v := range a {
		if v.kind != kString {
			return Value{}
		}
		n += len(v.str)
	}
	if n > maxStringLen {
		return Value{}
	}
	out := make([]byte, 0, n)
	for _, v := range a {
		out = append(out, v.str...)
	}
	return strV(out)
}

// substring takes a zero-based start and an optional length, both counted in
// characters and truncated to integers. A negative start counts as 0; a
// start past the end or a negative length gives "".
func substring(a []Value) Value {
	if a[0].kind != kString || a[1].kind != kNumber || (len(a) == 3 && a[2].kind != kNumber) {
		return Value{}
	}
	s := a[0].str
	runes := utf8.RuneCount(s)
	start := clampInt(a[1].n, 0, runes)
	length := runes - start
	if len(a) == 3 {
		length = clampInt(a[2].n, 0, runes-start)
	}
	lo := runeOffset(s, start)
	hi := lo + runeOffset(s[lo:], length)
	return strV(s[lo:hi])
}

func clampInt(f float64, lo, hi int) int {
	f = math.Trunc(f)
	switch {
	case f < float64(lo):
		return lo
	case f > float64(hi):
		return hi
	}
	return int(f)
}

// runeOffset returns the byte offset of the n-th character of s.
func runeOffset(s []byte, n int) int {
	off := 0
	for ; n > 0 && off < len(s); n-- {
		_, size := utf8.DecodeRune(s[off:])
		off += size
	}
	return off
}

// asNumber converts a string holding a JSON number; numbers pass through.
func asNumber(a []Value) Value {
	switch a[0].kind {
	case kNumber:
		return a[0]
	case kString:
		s := a[0].str
		if !isJSONNumber(s) {
			return Value{}
		}
		f, err := strconv.ParseFloat(string(s), 64)
		if err != nil {
			return Value{}
		}
		return numV(f)
	}
	return Value{}
}

// isJSONNumber reports whether s follows the JSON number grammar, which is
// stricter than strconv (no "Inf", "0x", "_" or leading '+').
func isJSONNumber(s []byte) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	default:
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if i >= len(s) || !isDigit(s[i]) {
			return false
		}
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if i >= len(s) || !isDigit(s[i]) {
			return false
		}
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	}
	return i == len(s)
}
