// SPDX-License-Identifier: MIT

package codec

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"sort"
	"time"
)

// Marshaler is implemented by composite types (performatives, terminuses,
// errors, message sections) that encode themselves. A nil receiver must
// encode as null.
type Marshaler interface {
	AppendAMQP(b []byte) ([]byte, error)
}

// Append appends the AMQP encoding of v to b, choosing the most compact
// form the spec allows (section 1.6: uint0, smalluint, str8, list0, ...).
func Append(b []byte, v any) ([]byte, error) { return appendValue(b, v, compact) }

// mode selects the encoding forms: the most compact per value, or one fixed
// form per type so array elements share a constructor (section 1.6.25).
type mode uint8

const (
	compact  mode = iota
	wide          // fixed-width forms, 32-bit sizes
	wideVar8      // like wide, but str8/sym8/vbin8 (every element is short)
)

// Marshal returns the AMQP encoding of v.
func Marshal(v any) ([]byte, error) { return Append(nil, v) }

// AppendDescribedList appends a described list with a ulong descriptor, as
// every composite type of the spec is encoded (section 1.4). Trailing nil
// fields are omitted, which the spec allows and peers expect.
func AppendDescribedList(b []byte, code uint64, fields ...any) ([]byte, error) {
	n := len(fields)
	for n > 0 && fields[n-1] == nil {
		n--
	}
	b = append(b, codeDescribed)
	b = appendUlong(b, code)
	return appendList(b, fields[:n], false)
}

func appendUlong(b []byte, v uint64) []byte {
	switch {
	case v == 0:
		return append(b, codeUlong0)
	case v < 256:
		return append(b, codeSmallUlong, byte(v))
	}
	b = append(b, codeUlong)
	return binary.BigEndian.AppendUint64(b, v)
}

func appendValue(b []byte, v any, m mode) ([]byte, error) {
	isWide := m != compact
	switch t := v.(type) {
	case nil:
		return append(b, codeNull), nil
	case Marshaler:
		return t.AppendAMQP(b)
	case bool:
		if isWide {
			if t {
				return append(b, codeBool, 1), nil
			}
			return append(b, codeBool, 0), nil
		}
		if t {
			return append(b, codeTrue), nil
		}
		return append(b, codeFalse), nil
	case uint8:
		return append(b, codeUbyte, t), nil
	case uint16:
		return binary.BigEndian.AppendUint16(append(b, codeUshort), t), nil
	case uint32:
		if !isWide {
			if t == 0 {
				return append(b, codeUint0), nil
			}
			if t < 256 {
				return append(b, codeSmallUint, byte(t)), nil
			}
		}
		return binary.BigEndian.AppendUint32(append(b, codeUint), t), nil
	case uint64:
		if isWide {
			return binary.BigEndian.AppendUint64(append(b, codeUlong), t), nil
		}
		return appendUlong(b, t), nil
	case uint:
		return appendValue(b, uint64(t), m)
	case int8:
		return append(b, codeByte, byte(t)), nil
	case int16:
		return binary.BigEndian.AppendUint16(append(b, codeShort), uint16(t)), nil
	case int32:
		if !isWide && t >= -128 && t <= 127 {
			return append(b, codeSmallInt, byte(int8(t))), nil
		}
		return binary.BigEndian.AppendUint32(append(b, codeInt), uint32(t)), nil
	case int64:
		if !isWide && t >= -128 && t <= 127 {
			return append(b, codeSmallLong, byte(int8(t))), nil
		}
		return binary.BigEndian.AppendUint64(append(b, codeLong), uint64(t)), nil
	case int:
		return appendValue(b, int64(t), m)
	case float32:
		return binary.BigEndian.AppendUint32(append(b, codeFloat), math.Float32bits(t)), nil
	case float64:
		return binary.BigEndian.AppendUint64(append(b, codeDouble), math.Float64bits(t)), nil
	case Decimal32:
		return append(append(b, codeDecimal32), t[:]...), nil
	case Decimal64:
		return append(append(b, codeDecimal64), t[:]...), nil
	case Decimal128:
		return append(append(b, codeDecimal128), t[:]...), nil
	case Char:
		return binary.BigEndian.AppendUint32(append(b, codeChar), uint32(t)), nil
	case time.Time:
		return binary.BigEndian.AppendUint64(append(b, codeTimestamp), uint64(t.UnixMilli())), nil
	case UUID:
		return append(append(b, codeUUID), t[:]...), nil
	case []byte:
		return appendVariable(b, t, codeVbin8, codeVbin32, m == wide), nil
	case BinaryKey:
		return appendVariable(b, []byte(t), codeVbin8, codeVbin32, m == wide), nil
	case string:
		return appendVariable(b, []byte(t), codeStr8, codeStr32, m == wide), nil
	case Symbol:
		return appendVariable(b, []byte(t), codeSym8, codeSym32, m == wide), nil
	case *Described:
		if t == nil {
			return append(b, codeNull), nil
		}
		b = append(b, codeDescribed)
		b, err := appendValue(b, t.Descriptor, compact)
		if err != nil {
			return b, err
		}
		return appendValue(b, t.Value, m)
	case Described:
		return appendValue(b, &t, m)
	case []any:
		return appendList(b, t, isWide)
	case map[string]any:
		return appendMap(b, len(t), isWide, func(yield func(k, v any) error) error {
			keys := make([]string, 0, len(t))
			for k := range t {
				keys = append(keys, k)
			}
			sort.Strings(keys) // a stable encoding makes tests and traces reproducible
			for _, k := range keys {
				if err := yield(k, t[k]); err != nil {
					return err
				}
			}
			return nil
		})
	case map[Symbol]any:
		return appendMap(b, len(t), isWide, func(yield func(k, v any) error) error {
			keys := make([]Symbol, 0, len(t))
			for k := range t {
				keys = append(keys, k)
			}
			sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
			for _, k := range keys {
				if err := yield(k, t[k]); err != nil {
					return err
				}
			}
			return nil
		})
	case map[any]any:
		return appendMap(b, len(t), isWide, func(yield func(k, v any) error) error {
			type kv struct {
				enc []byte
				k   any
			}
			keys := make([]kv, 0, len(t))
			for k := range t {
				enc, err := Append(nil, k)
				if err != nil {
					return err
				}
				keys = append(keys, kv{enc, k})
			}
			sort.Slice(keys, func(i, j int) bool { return bytes.Compare(keys[i].enc, keys[j].enc) < 0 })
			for _, k := range keys {
				if err := yield(k.k, t[k.k]); err != nil {
					return err
				}
			}
			return nil
		})
	case []string:
		return appendTypedArray(b, len(t), zeroOf(t), func(i int) any { return t[i] })
	case []Symbol:
		return appendTypedArray(b, len(t), zeroOf(t), func(i int) any { return t[i] })
	case []int32:
		return appendTypedArray(b, len(t), zeroOf(t), func(i int) any { return t[i] })
	case []int64:
		return appendTypedArray(b, len(t), zeroOf(t), func(i int) any { return t[i] })
	case []uint32:
		return appendTypedArray(b, len(t), zeroOf(t), func(i int) any { return t[i] })
	case []uint64:
		return appendTypedArray(b, len(t), zeroOf(t), func(i int) any { return t[i] })
	case []int16:
		return appendTypedArray(b, len(t), zeroOf(t), func(i int) any { return t[i] })
	case []uint16:
		return appendTypedArray(b, len(t), zeroOf(t), func(i int) any { return t[i] })
	case []int8:
		return appendTypedArray(b, len(t), zeroOf(t), func(i int) any { return t[i] })
	case []bool:
		return appendTypedArray(b, len(t), zeroOf(t), func(i int) any { return t[i] })
	case []float32:
		return appendTypedArray(b, len(t), zeroOf(t), func(i int) any { return t[i] })
	case []float64:
		return appendTypedArray(b, len(t), zeroOf(t), func(i int) any { return t[i] })
	case []time.Time:
		return appendTypedArray(b, len(t), zeroOf(t), func(i int) any { return t[i] })
	case []UUID:
		return appendTypedArray(b, len(t), zeroOf(t), func(i int) any { return t[i] })
	case [][]byte:
		return appendTypedArray(b, len(t), zeroOf(t), func(i int) any { return t[i] })
	case []Char:
		return appendTypedArray(b, len(t), zeroOf(t), func(i int) any { return t[i] })
	case Array:
		return appendTypedArray(b, len(t), nil, func(i int) any { return t[i] })
	}
	return b, &EncodeError{fmt.Sprintf("no AMQP encoding for Go type %T", v)}
}

func appendVariable(b, data []byte, code8, code32 byte, force32 bool) []byte {
	if !force32 && len(data) < 256 {
		b = append(b, code8, byte(len(data)))
	} else {
		b = binary.BigEndian.AppendUint32(append(b, code32), uint32(len(data)))
	}
	return append(b, data...)
}

// appendList writes list0/list8/list32 (section 1.6.22). wide forces list32,
// which array elements need so that all share one constructor.
func appendList(b []byte, items []any, wide bool) ([]byte, error) {
	if len(items) == 0 && !wide {
		return append(b, codeList0), nil
	}
	return appendCompound(b, codeList8, codeList32, len(items), wide, func(b []byte) ([]byte, error) {
		var err error
		for _, it := range items {
			if b, err = appendValue(b, it, compact); err != nil {
				return b, err
			}
		}
		return b, nil
	})
}

func appendMap(b []byte, n int, wide bool, each func(yield func(k, v any) error) error) ([]byte, error) {
	return appendCompound(b, codeMap8, codeMap32, 2*n, wide, func(b []byte) ([]byte, error) {
		err := each(func(k, v any) error {
			var err error
			if b, err = appendValue(b, k, compact); err != nil {
				return err
			}
			b, err = appendValue(b, v, compact)
			return err
		})
		return b, err
	})
}

// appendCompound writes the size and count header of a list or map
// (section 1.6.22-24): it reserves the 32-bit form, then shrinks to the
// 8-bit form when both size and count fit.
func appendCompound(b []byte, code8, code32 byte, count int, wide bool, body func([]byte) ([]byte, error)) ([]byte, error) {
	start := len(b)
	b = append(b, code32, 0, 0, 0, 0, 0, 0, 0, 0)
	b, err := body(b)
	if err != nil {
		return b, err
	}
	bodyLen := len(b) - start - 9
	if !wide && bodyLen+1 < 256 && count < 256 {
		b[start] = code8
		b[start+1] = byte(bodyLen + 1)
		b[start+2] = byte(count)
		copy(b[start+3:], b[start+9:])
		return b[:len(b)-6], nil
	}
	binary.BigEndian.PutUint32(b[start+1:], uint32(bodyLen+4))
	binary.BigEndian.PutUint32(b[start+5:], uint32(count))
	return b, nil
}

// appendTypedArray writes array8/array32 (section 1.6.25). Every element is
// encoded in its wide form so they share one constructor; the constructor of
// the first element is written once and checked against the others.
func appendTypedArray(b []byte, n int, zero any, at func(int) any) ([]byte, error) {
	start := len(b)
	b = append(b, codeArray32, 0, 0, 0, 0, 0, 0, 0, 0)
	m := wideVar8
	for i := 0; i < n && m == wideVar8; i++ {
		if !fitsVar8(at(i)) {
			m = wide
		}
	}
	var ctor []byte
	if n == 0 {
		// An empty array still carries its element constructor, so that a
		// typed empty slice keeps its type (null for an untyped Array).
		var err error
		elemStart := len(b)
		if b, err = appendValue(b, zero, wideVar8); err != nil {
			return b, err
		}
		b = b[:elemStart+1]
	}
	for i := 0; i < n; i++ {
		elemStart := len(b)
		var err error
		if b, err = appendValue(b, at(i), m); err != nil {
			return b, err
		}
		cl, err := constructorLen(b[elemStart:])
		if err != nil {
			return b, err
		}
		if i == 0 {
			ctor = append([]byte(nil), b[elemStart:elemStart+cl]...)
			continue
		}
		if !bytes.Equal(ctor, b[elemStart:elemStart+cl]) {
			return b, &EncodeError{fmt.Sprintf("array element %d has a different AMQP type than element 0", i)}
		}
		b = append(b[:elemStart], b[elemStart+cl:]...)
	}
	bodyLen := len(b) - start - 9
	if bodyLen+1 < 256 && n < 256 {
		b[start] = codeArray8
		b[start+1] = byte(bodyLen + 1)
		b[start+2] = byte(n)
		copy(b[start+3:], b[start+9:])
		return b[:len(b)-6], nil
	}
	binary.BigEndian.PutUint32(b[start+1:], uint32(bodyLen+4))
	binary.BigEndian.PutUint32(b[start+5:], uint32(n))
	return b, nil
}

// constructorLen returns the length of the constructor at the start of an
// encoded value: one format code, or 0x00, a descriptor and a constructor.
func constructorLen(enc []byte) (int, error) {
	if len(enc) == 0 {
		return 0, &EncodeError{"empty element"}
	}
	if enc[0] != codeDescribed {
		return 1, nil
	}
	d := NewDecoder(enc[1:], Limits{})
	if _, err := d.Any(); err != nil {
		return 0, &EncodeError{"bad descriptor: " + err.Error()}
	}
	inner, err := constructorLen(enc[1+d.Offset():])
	if err != nil {
		return 0, err
	}
	return 1 + d.Offset() + inner, nil
}

// fitsVar8 reports whether v, if it is a string, symbol or binary (possibly
// described), is short enough for the 8-bit size form.
func fitsVar8(v any) bool {
	switch t := v.(type) {
	case string:
		return len(t) < 256
	case Symbol:
		return len(t) < 256
	case []byte:
		return len(t) < 256
	case *Described:
		return t == nil || fitsVar8(t.Value)
	case Described:
		return fitsVar8(t.Value)
	}
	return true
}

// zeroOf returns the zero element of a typed slice, whose constructor an
// empty array still carries.
func zeroOf[T any](_ []T) any {
	var z T
	return z
}
