// SPDX-License-Identifier: MIT

package codec

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"
)

// Decoder reads AMQP values from a byte slice. Binary values it returns are
// copies, so the input may be reused afterwards.
type Decoder struct {
	buf   []byte
	off   int
	end   int // the current compound's end; reads never pass it
	depth int
	lim   Limits
}

// NewDecoder returns a decoder over buf with the given limits (zero fields
// take DefaultLimits).
func NewDecoder(buf []byte, lim Limits) *Decoder {
	return &Decoder{buf: buf, end: len(buf), lim: lim.withDefaults()}
}

// Unmarshal decodes exactly one value that must fill buf.
func Unmarshal(buf []byte, lim Limits) (any, error) {
	d := NewDecoder(buf, lim)
	v, err := d.Any()
	if err != nil {
		return nil, err
	}
	if d.off != len(buf) {
		return nil, d.errf("%d bytes after the value", len(buf)-d.off)
	}
	return v, nil
}

// Offset returns how many bytes have been consumed.
func (d *Decoder) Offset() int { return d.off }

// Len returns how many bytes remain.
func (d *Decoder) Len() int { return d.end - d.off }

// Peek returns the next format code without consuming it.
func (d *Decoder) Peek() (byte, bool) {
	if d.off >= d.end {
		return 0, false
	}
	return d.buf[d.off], true
}

func (d *Decoder) errf(format string, args ...any) error {
	return &DecodeError{Offset: d.off, Msg: fmt.Sprintf(format, args...)}
}

func (d *Decoder) take(n int) ([]byte, error) {
	if n < 0 || n > d.end-d.off {
		return nil, ErrTruncated
	}
	b := d.buf[d.off : d.off+n]
	d.off += n
	return b, nil
}

func (d *Decoder) byte1() (byte, error) {
	if d.off >= d.end {
		return 0, ErrTruncated
	}
	c := d.buf[d.off]
	d.off++
	return c, nil
}

// Any decodes the next value into its generic Go form (see the package doc).
func (d *Decoder) Any() (any, error) {
	code, err := d.byte1()
	if err != nil {
		return nil, err
	}
	if code == codeDescribed {
		return d.described()
	}
	return d.payload(code)
}

func (d *Decoder) enter() error {
	d.depth++
	if d.depth > d.lim.MaxDepth {
		return d.errf("nesting deeper than %d", d.lim.MaxDepth)
	}
	return nil
}

func (d *Decoder) described() (any, error) {
	if err := d.enter(); err != nil {
		return nil, err
	}
	defer func() { d.depth-- }()
	desc, err := d.Any()
	if err != nil {
		return nil, err
	}
	val, err := d.Any()
	if err != nil {
		return nil, err
	}
	return &Described{Descriptor: desc, Value: val}, nil
}

// fixedWidth returns the payload width of a fixed-width format code, or -1
// for variable-width and compound codes (section 1.2, the subcategory nibble).
func fixedWidth(code byte) int {
	switch code >> 4 {
	case 0x4:
		return 0
	case 0x5:
		return 1
	case 0x6:
		return 2
	case 0x7:
		return 4
	case 0x8:
		return 8
	case 0x9:
		return 16
	}
	return -1
}

// minWidth is the least number of bytes any value with this code occupies
// after its constructor; it bounds element counts against the input size.
func minWidth(code byte) int {
	if w := fixedWidth(code); w >= 0 {
		return w
	}
	switch code >> 4 {
	case 0xa:
		return 1
	case 0xb:
		return 4
	case 0xc, 0xe:
		return 2
	case 0xd, 0xf:
		return 8
	}
	return 1
}

// payload decodes the bytes that follow the format code.
func (d *Decoder) payload(code byte) (any, error) {
	switch code {
	case codeNull:
		return nil, nil
	case codeTrue:
		return true, nil
	case codeFalse:
		return false, nil
	case codeBool:
		c, err := d.byte1()
		if err != nil {
			return nil, err
		}
		// Section 1.6.2 defines 0x00 and 0x01; any other byte reads as true,
		// as go-amqp and other decoders read it.
		return c != 0, nil
	case codeUint0:
		return uint32(0), nil
	case codeUlong0:
		return uint64(0), nil
	case codeList0:
		return []any{}, nil
	case codeUbyte:
		c, err := d.byte1()
		return c, err
	case codeByte:
		c, err := d.byte1()
		return int8(c), err
	case codeSmallUint:
		c, err := d.byte1()
		return uint32(c), err
	case codeSmallUlong:
		c, err := d.byte1()
		return uint64(c), err
	case codeSmallInt:
		c, err := d.byte1()
		return int32(int8(c)), err
	case codeSmallLong:
		c, err := d.byte1()
		return int64(int8(c)), err
	case codeUshort, codeShort:
		b, err := d.take(2)
		if err != nil {
			return nil, err
		}
		v := binary.BigEndian.Uint16(b)
		if code == codeShort {
			return int16(v), nil
		}
		return v, nil
	case codeUint, codeInt, codeFloat, codeChar, codeDecimal32:
		b, err := d.take(4)
		if err != nil {
			return nil, err
		}
		v := binary.BigEndian.Uint32(b)
		switch code {
		case codeUint:
			return v, nil
		case codeInt:
			return int32(v), nil
		case codeFloat:
			return math.Float32frombits(v), nil
		case codeChar:
			return Char(v), nil
		}
		return Decimal32(b), nil
	case codeUlong, codeLong, codeDouble, codeTimestamp, codeDecimal64:
		b, err := d.take(8)
		if err != nil {
			return nil, err
		}
		v := binary.BigEndian.Uint64(b)
		switch code {
		case codeUlong:
			return v, nil
		case codeLong:
			return int64(v), nil
		case codeDouble:
			return math.Float64frombits(v), nil
		case codeTimestamp:
			return time.UnixMilli(int64(v)).UTC(), nil
		}
		return Decimal64(b), nil
	case codeUUID, codeDecimal128:
		b, err := d.take(16)
		if err != nil {
			return nil, err
		}
		if code == codeUUID {
			return UUID(b), nil
		}
		return Decimal128(b), nil
	case codeVbin8, codeStr8, codeSym8, codeVbin32, codeStr32, codeSym32:
		var n int
		if code>>4 == 0xa {
			c, err := d.byte1()
			if err != nil {
				return nil, err
			}
			n = int(c)
		} else {
			b, err := d.take(4)
			if err != nil {
				return nil, err
			}
			n64 := binary.BigEndian.Uint32(b)
			if uint64(n64) > uint64(d.end-d.off) {
				return nil, ErrTruncated
			}
			n = int(n64)
		}
		b, err := d.take(n)
		if err != nil {
			return nil, err
		}
		switch code {
		case codeVbin8, codeVbin32:
			return append(make([]byte, 0, n), b...), nil
		case codeStr8, codeStr32:
			// Kept byte for byte, invalid UTF-8 included, so that what a peer
			// sends is what it gets back (go-amqp does the same).
			return string(b), nil
		}
		return Symbol(b), nil
	case codeList8, codeList32, codeMap8, codeMap32:
		return d.compound(code)
	case codeArray8, codeArray32:
		return d.array(code)
	}
	return nil, d.errf("unknown format code %#02x", code)
}

// sizeCount reads the size and count of a compound or array and checks them
// against the input before anything is allocated (section 1.6.22-25).
func (d *Decoder) sizeCount(wide bool) (end, count int, err error) {
	var size, cnt uint64
	if wide {
		b, err := d.take(8)
		if err != nil {
			return 0, 0, err
		}
		size, cnt = uint64(binary.BigEndian.Uint32(b)), uint64(binary.BigEndian.Uint32(b[4:]))
		if size < 4 {
			return 0, 0, d.errf("size %d smaller than its count field", size)
		}
		size -= 4
	} else {
		b, err := d.take(2)
		if err != nil {
			return 0, 0, err
		}
		size, cnt = uint64(b[0]), uint64(b[1])
		if size < 1 {
			return 0, 0, d.errf("size %d smaller than its count field", size)
		}
		size--
	}
	if size > uint64(d.end-d.off) {
		return 0, 0, ErrTruncated
	}
	if cnt > uint64(d.lim.MaxElements) {
		return 0, 0, d.errf("%d elements exceed the limit of %d", cnt, d.lim.MaxElements)
	}
	return d.off + int(size), int(cnt), nil
}

func (d *Decoder) compound(code byte) (any, error) {
	end, count, err := d.sizeCount(code == codeList32 || code == codeMap32)
	if err != nil {
		return nil, err
	}
	if count > end-d.off { // every element takes at least one byte
		return nil, d.errf("%d elements cannot fit in %d bytes", count, end-d.off)
	}
	if err := d.enter(); err != nil {
		return nil, err
	}
	outer := d.end
	d.end = end
	defer func() { d.depth--; d.end = outer }()

	var v any
	if code == codeList8 || code == codeList32 {
		list := make([]any, count)
		for i := range list {
			if list[i], err = d.Any(); err != nil {
				return nil, err
			}
		}
		v = list
	} else {
		if count%2 != 0 {
			return nil, d.errf("map with an odd element count %d", count)
		}
		if v, err = d.mapEntries(count / 2); err != nil {
			return nil, err
		}
	}
	if d.off != end {
		return nil, d.errf("%d bytes left inside a compound value", end-d.off)
	}
	return v, nil
}

func (d *Decoder) mapEntries(n int) (any, error) {
	keys := make([]any, n)
	vals := make([]any, n)
	allStr, allSym := n > 0, n > 0
	for i := 0; i < n; i++ {
		k, err := d.Any()
		if err != nil {
			return nil, err
		}
		switch kt := k.(type) {
		case []byte:
			k = BinaryKey(kt)
		case *Described:
			k = *kt // by value: equal described keys are one key
		}
		if !comparableKey(k) {
			return nil, d.errf("map key of type %T is not supported", k)
		}
		v, err := d.Any()
		if err != nil {
			return nil, err
		}
		keys[i], vals[i] = k, v
		_, s := k.(string)
		_, y := k.(Symbol)
		allStr = allStr && s
		allSym = allSym && y
	}
	switch {
	case allStr:
		m := make(map[string]any, n)
		for i, k := range keys {
			m[k.(string)] = vals[i]
		}
		return m, nil
	case allSym:
		m := make(map[Symbol]any, n)
		for i, k := range keys {
			m[k.(Symbol)] = vals[i]
		}
		return m, nil
	}
	m := make(map[any]any, n)
	for i, k := range keys {
		m[k] = vals[i]
	}
	return m, nil
}

// comparableKey reports whether k can be a Go map key without a panic.
func comparableKey(k any) bool {
	switch t := k.(type) {
	case []byte, []any, map[string]any, map[Symbol]any, map[any]any, Array:
		return false
	case *Described:
		return false // pointer identity would make equal keys distinct
	case Described:
		return comparableKey(t.Descriptor) && comparableKey(t.Value)
	case float32:
		return !math.IsNaN(float64(t)) // a NaN key could never be looked up
	case float64:
		return !math.IsNaN(t)
	}
	switch k.(type) {
	case []string, []Symbol, []int32, []int64, []uint32, []uint64, []int16, []uint16,
		[]int8, []bool, []float32, []float64, []time.Time, []UUID, [][]byte, []Char:
		return false
	}
	return true
}

func (d *Decoder) array(code byte) (any, error) {
	end, count, err := d.sizeCount(code == codeArray32)
	if err != nil {
		return nil, err
	}
	if err := d.enter(); err != nil {
		return nil, err
	}
	outer := d.end
	d.end = end
	defer func() { d.depth--; d.end = outer }()

	elem, err := d.byte1()
	if err != nil {
		return nil, err
	}
	var desc any
	if elem == codeDescribed {
		if desc, err = d.Any(); err != nil {
			return nil, err
		}
		if elem, err = d.byte1(); err != nil {
			return nil, err
		}
		if elem == codeDescribed {
			return nil, d.errf("nested described array constructors are not supported")
		}
	}
	if w := minWidth(elem); w > 0 && count > (end-d.off)/w {
		return nil, d.errf("%d array elements cannot fit in %d bytes", count, end-d.off)
	}
	vals := make([]any, count)
	for i := range vals {
		v, err := d.payload(elem)
		if err != nil {
			return nil, err
		}
		if desc != nil {
			v = &Described{Descriptor: desc, Value: v}
		}
		vals[i] = v
	}
	if d.off != end {
		return nil, d.errf("%d bytes left inside an array", end-d.off)
	}
	if desc != nil {
		return Array(vals), nil
	}
	return typedArray(elem, vals), nil
}

func typedArray(code byte, vals []any) any {
	switch code {
	case codeStr8, codeStr32:
		return typed[string](vals)
	case codeSym8, codeSym32:
		return typed[Symbol](vals)
	case codeInt, codeSmallInt:
		return typed[int32](vals)
	case codeLong, codeSmallLong:
		return typed[int64](vals)
	case codeUint, codeSmallUint, codeUint0:
		return typed[uint32](vals)
	case codeUlong, codeSmallUlong, codeUlong0:
		return typed[uint64](vals)
	case codeShort:
		return typed[int16](vals)
	case codeUshort:
		return typed[uint16](vals)
	case codeByte:
		return typed[int8](vals)
	case codeBool, codeTrue, codeFalse:
		return typed[bool](vals)
	case codeFloat:
		return typed[float32](vals)
	case codeDouble:
		return typed[float64](vals)
	case codeTimestamp:
		return typed[time.Time](vals)
	case codeUUID:
		return typed[UUID](vals)
	case codeVbin8, codeVbin32:
		return typed[[]byte](vals)
	case codeChar:
		return typed[Char](vals)
	}
	return Array(vals)
}

func typed[T any](vals []any) []T {
	out := make([]T, len(vals))
	for i, v := range vals {
		out[i] = v.(T)
	}
	return out
}
