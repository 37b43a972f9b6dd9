// SPDX-License-Identifier: MIT

package query

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"unicode/utf8"
)

type kind uint8

// The order of the kinds is the order MIN and MAX use across types (the
// Cosmos DB convention the IoT Hub language derives from): booleans sort
// before numbers, numbers before strings.
const (
	kUndefined kind = iota
	kNull
	kBool
	kNumber
	kString
	kArray
	kObject
)

// Value is one JSON value seen by the evaluator, or undefined (the zero
// Value), which is what a missing property evaluates to. Values taken from a
// RawDocument alias the document bytes.
type Value struct {
	kind kind
	b    bool
	n    float64
	str  []byte // decoded string (kString)
	raw  []byte // JSON text as found in a raw document, if any
	// tree is the decoded JSON ([]any, map[string]any) of an array or
	// object from a MapDocument, or the []Value of an array built by the
	// query. Keeping both in one field keeps Value small, which matters as
	// values are copied on every evaluation step.
	tree any
}

// ValueOf converts a decoded JSON value (nil, bool, float64, the integer
// types, json.Number, string, []any, map[string]any) into a Value. Any other
// type gives undefined.
func ValueOf(v any) Value {
	switch x := v.(type) {
	case nil:
		return Value{kind: kNull}
	case bool:
		return boolV(x)
	case float64:
		return numV(x)
	case int:
		return numV(float64(x))
	case int64:
		return numV(float64(x))
	case json.Number:
		f, err := strconv.ParseFloat(string(x), 64)
		if err != nil {
			return Value{}
		}
		return Value{kind: kNumber, n: f, raw: []byte(x)}
	case string:
		return Value{kind: kString, str: []byte(x)}
	case []any:
		return Value{kind: kArray, tree: x}
	case map[string]any:
		return Value{kind: kObject, tree: x}
	}
	return Value{}
}

// RawValue interprets one complete JSON value. Malformed input gives
// undefined.
func RawValue(raw []byte) Value {
	i := skipWS(raw, 0)
	v, end := rawValue(raw, i)
	if end < 0 || skipWS(raw, end) != len(raw) {
		return Value{}
	}
	return v
}

func boolV(b bool) Value      { return Value{kind: kBool, b: b} }
func numV(f float64) Value    { return Value{kind: kNumber, n: f} }
func strV(s []byte) Value     { return Value{kind: kString, str: s} }
func arrV(vs []Value) Value   { return Value{kind: kArray, tree: vs} }
func (v Value) defined() bool { return v.kind != kUndefined }
func (v Value) truthy() bool  { return v.kind == kBool && v.b }

// numOrUndef turns non-finite arithmetic results into undefined: JSON has no
// NaN or infinity, so such a value could neither be compared nor returned.
func numOrUndef(f float64) Value {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return Value{}
	}
	return numV(f)
}

// compare orders two values. It is defined only for two primitives of the
// same type (the docs: comparisons are supported only between primitive
// types); anything else, including undefined, gives ok=false.
func compare(a, b Value) (c int, ok bool) {
	if a.kind != b.kind {
		return 0, false
	}
	switch a.kind {
	case kNull:
		return 0, true
	case kBool:
		switch {
		case a.b == b.b:
			return 0, true
		case b.b:
			return -1, true
		}
		return 1, true
	case kNumber:
		switch {
		case a.n < b.n:
			return -1, true
		case a.n > b.n:
			return 1, true
		}
		return 0, true
	case kString:
		return bytes.Compare(a.str, b.str), true
	}
	return 0, false
}

// elements returns the members of an array value.
func (v Value) elements() []Value {
	if v.kind != kArray {
		return nil
	}
	if v.raw != nil {
		return rawElements(v.raw)
	}
	switch t := v.tree.(type) {
	case []Value:
		return t
	case []any:
		out := make([]Value, len(t))
		for i, e := range t {
			out[i] = ValueOf(e)
		}
		return out
	}
	return nil
}

// clone copies the bytes a value aliases, so that it outlives the document
// it came from (group keys and MIN/MAX results are kept across documents).
func (v Value) clone() Value {
	v.str = bytes.Clone(v.str)
	v.raw = bytes.Clone(v.raw)
	if vs, ok := v.tree.([]Value); ok {
		es := make([]Value, len(vs))
		for i, e := range vs {
			es[i] = e.clone()
		}
		v.tree = es
	}
	return v
}

// appendJSON appends the JSON encoding of a defined value. Raw document
// values are copied as written (numbers keep their exact text); compound raw
// values are compacted.
func appendJSON(dst []byte, v Value) []byte {
	if v.raw != nil {
		if v.kind == kArray || v.kind == kObject {
			var buf bytes.Buffer
			if json.Compact(&buf, v.raw) == nil {
				return append(dst, buf.Bytes()...)
			}
		}
		return append(dst, v.raw...)
	}
	switch v.kind {
	case kNull:
		return append(dst, "null"...)
	case kBool:
		return strconv.AppendBool(dst, v.b)
	case kNumber:
		return appendNumber(dst, v.n)
	case kString:
		return appendQuoted(dst, v.str)
	case kArray, kObject:
		if vs, ok := v.tree.([]Value); ok {
			dst = append(dst, '[')
			for i, e := range vs {
				if i > 0 {
					dst = append(dst, ',')
				}
				if e.defined() {
					dst = appendJSON(dst, e)
				} else {
					dst = append(dst, "null"...)
				}
			}
			return append(dst, ']')
		}
		b, err := json.Marshal(v.tree)
		if err != nil {
			return append(dst, "null"...)
		}
		return append(dst, b...)
	}
	return append(dst, "null"...)
}

// appendNumber formats a number the way encoding/json does (integers without
// a fraction or exponent).
func appendNumber(dst []byte, f float64) []byte {
	if f == math.Trunc(f) && math.Abs(f) < 1e21 {
		return strconv.AppendFloat(dst, f, 'f', -1, 64)
	}
	b, err := json.Marshal(f)
	if err != nil {
		return append(dst, "null"...)
	}
	return append(dst, b...)
}

// appendQuoted appends s as a JSON string, escaping only what JSON requires.
func appendQuoted(dst, s []byte) []byte {
	const hexDigits = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRune(s[i:])
			if r == utf8.RuneError && size == 1 {
				dst = append(dst, `\ufffd`...)
			} else {
				dst = append(dst, s[i:i+size]...)
			}
			i += size
			continue
		}
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c == '\n':
			dst = append(dst, '\\', 'n')
		case c == '\r':
			dst = append(dst, '\\', 'r')
		case c == '\t':
			dst = append(dst, '\\', 't')
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
		default:
			dst = append(dst, c)
		}
		i++
	}
	return append(dst, '"')
}

// appendKey appends a canonical encoding of v used to tell GROUP BY groups
// apart: equal values (1 and 1.0, "a" and "\u0061") encode the same.
func appendKey(dst []byte, v Value) []byte {
	dst = append(dst, byte('0'+v.kind))
	switch v.kind {
	case kBool, kNumber, kString, kNull:
		v.raw = nil
		return appendJSON(dst, v)
	case kArray, kObject:
		return appendJSON(dst, v)
	}
	return dst
}

// StringValue is the string s as a Value; the Value aliases s.
func StringValue(s []byte) Value { return Value{kind: kString, str: s} }
