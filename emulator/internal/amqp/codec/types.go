// SPDX-License-Identifier: MIT

// Package codec encodes and decodes the AMQP 1.0 type system (OASIS AMQP 1.0
// part 1, "Types"). It keeps AMQP types exact in both directions, because the
// official SDKs type-assert what they receive: an AMQP int decodes to int32
// and an int32 encodes as an AMQP int, a []string encodes as an array of str
// (never a list), []any as a list, time.Time as a timestamp.
//
// Go mapping (decode produces exactly these; encode accepts them):
//
//	null                    nil
//	boolean                 bool
//	ubyte ushort uint ulong uint8 uint16 uint32 uint64
//	byte short int long     int8 int16 int32 int64 (encode also takes int as long, uint as ulong)
//	float double            float32 float64
//	decimal32/64/128        Decimal32 Decimal64 Decimal128 (opaque bytes)
//	char                    Char
//	timestamp               time.Time (UTC, millisecond precision)
//	uuid                    UUID
//	binary                  []byte
//	string                  string
//	symbol                  Symbol
//	list                    []any
//	map                     map[string]any when every key is a str, map[Symbol]any when every key
//	                        is a symbol, else map[any]any (encode takes all three); a binary
//	                        key becomes BinaryKey, a described key a Described (by value)
//	array                   []string []Symbol []int32 []int64 []uint32 []uint64 []int16 []uint16
//	                        []int8 []bool []float32 []float64 []time.Time []UUID [][]byte []Char,
//	                        or Array for any other element type (ubyte, list, map, described, ...)
//	described               *Described
//
// Decoding enforces Limits before it allocates: a declared size or count that
// the remaining input cannot hold is an error, never an allocation.
package codec

import (
	"encoding/hex"
	"errors"
	"fmt"
)

// Symbol is an AMQP symbol: ASCII text from a constrained domain (section 1.6.21).
type Symbol string

// UUID is an AMQP uuid (RFC 4122 bytes, section 1.6.18).
type UUID [16]byte

// String formats the UUID in the canonical 8-4-4-4-12 hex form.
func (u UUID) String() string {
	var b [36]byte
	hex.Encode(b[0:8], u[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], u[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], u[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], u[8:10])
	b[23] = '-'
	hex.Encode(b[24:], u[10:])
	return string(b[:])
}

// ParseUUID parses the canonical 8-4-4-4-12 form (case-insensitive).
func ParseUUID(s string) (UUID, bool) {
	var u UUID
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return u, false
	}
	h := s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:]
	if _, err := hex.Decode(u[:], []byte(h)); err != nil {
		return u, false
	}
	return u, true
}

// Char is an AMQP char: one UTF-32BE code point (section 1.6.16).
type Char rune

// Decimal32 is an IEEE 754 decimal32 kept as its 4 wire bytes.
type Decimal32 [4]byte

// Decimal64 is an IEEE 754 decimal64 kept as its 8 wire bytes.
type Decimal64 [8]byte

// Decimal128 is an IEEE 754 decimal128 kept as its 16 wire bytes.
type Decimal128 [16]byte

// Described is a described type (section 1.2): a descriptor (uint64 code or
// Symbol name) and a value.
type Described struct {
	Descriptor any // uint64 or Symbol (any other type decodes too, as found)
	Value      any
}

// BinaryKey is a binary map key: Go cannot key a map by []byte, so a
// binary key decodes to (and BinaryKey encodes as) AMQP binary. Delivery
// tags key the unsettled map of an attach this way.
type BinaryKey string

// Array is an AMQP array whose element type has no typed Go slice in this
// package (ubyte, list, map, described, ...). Every element must encode with
// the same constructor; the first element decides it.
type Array []any

// Limits bounds what a decoder accepts, so hostile input cannot make it
// allocate or recurse without bound.
type Limits struct {
	MaxDepth    int // nesting of compound and described values; default 32
	MaxElements int // elements in one list, map (counting keys and values) or array; default 1<<18
}

// DefaultLimits returns the limits used when a zero Limits is given.
func DefaultLimits() Limits { return Limits{MaxDepth: 32, MaxElements: 1 << 18} }

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxDepth <= 0 {
		l.MaxDepth = d.MaxDepth
	}
	if l.MaxElements <= 0 {
		l.MaxElements = d.MaxElements
	}
	return l
}

// ErrTruncated reports input that ends inside a value.
var ErrTruncated = errors.New("amqp codec: truncated input")

// DecodeError describes input that is not valid AMQP (or exceeds Limits).
type DecodeError struct {
	Offset int
	Msg    string
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("amqp codec: at byte %d: %s", e.Offset, e.Msg)
}

// EncodeError reports a Go value that has no AMQP encoding.
type EncodeError struct{ Msg string }

func (e *EncodeError) Error() string { return "amqp codec: " + e.Msg }

// Format codes (part 1, section 1.6).
const (
	codeDescribed  = 0x00
	codeNull       = 0x40
	codeTrue       = 0x41
	codeFalse      = 0x42
	codeUint0      = 0x43
	codeUlong0     = 0x44
	codeList0      = 0x45
	codeUbyte      = 0x50
	codeByte       = 0x51
	codeSmallUint  = 0x52
	codeSmallUlong = 0x53
	codeSmallInt   = 0x54
	codeSmallLong  = 0x55
	codeBool       = 0x56
	codeUshort     = 0x60
	codeShort      = 0x61
	codeUint       = 0x70
	codeInt        = 0x71
	codeFloat      = 0x72
	codeChar       = 0x73
	codeDecimal32  = 0x74
	codeUlong      = 0x80
	codeLong       = 0x81
	codeDouble     = 0x82
	codeTimestamp  = 0x83
	codeDecimal64  = 0x84
	codeDecimal128 = 0x94
	codeUUID       = 0x98
	codeVbin8      = 0xa0
	codeStr8       = 0xa1
	codeSym8       = 0xa3
	codeVbin32     = 0xb0
	codeStr32      = 0xb1
	codeSym32      = 0xb3
	codeList8      = 0xc0
	codeMap8       = 0xc1
	codeList32     = 0xd0
	codeMap32      = 0xd1
	codeArray8     = 0xe0
	codeArray32    = 0xf0
)
