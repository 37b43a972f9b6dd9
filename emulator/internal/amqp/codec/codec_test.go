// SPDX-License-Identifier: MIT

package codec

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The exact bytes the spec prescribes for each Go value, compact forms
// included (part 1, section 1.6).
func TestEncodeExactForms(t *testing.T) {
	ts := time.UnixMilli(1700000000123).UTC()
	u := UUID{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}
	tests := []struct {
		name string
		v    any
		want string
	}{
		{"null", nil, "40"},
		{"true", true, "41"},
		{"false", false, "42"},
		{"ubyte", uint8(7), "50 07"},
		{"ushort", uint16(0x1234), "60 1234"},
		{"uint0", uint32(0), "43"},
		{"smalluint", uint32(200), "52 c8"},
		{"uint", uint32(0x10000), "70 00010000"},
		{"ulong0", uint64(0), "44"},
		{"smallulong", uint64(255), "53 ff"},
		{"ulong", uint64(256), "80 0000000000000100"},
		{"byte", int8(-2), "51 fe"},
		{"short", int16(-2), "61 fffe"},
		{"smallint", int32(-128), "54 80"},
		{"int", int32(200), "71 000000c8"},
		{"int32 status 200 stays an int", int32(200), "71 000000c8"},
		{"smalllong", int64(127), "55 7f"},
		{"long", int64(-129), "81 ffffffffffffff7f"},
		{"go int is long", 5, "55 05"},
		{"float", float32(1), "72 3f800000"},
		{"double", float64(1), "82 3ff0000000000000"},
		{"char", Char('é'), "73 000000e9"},
		{"timestamp", ts, "83 0000018bcfe5687b"},
		{"uuid", u, "98 000102030405060708090a0b0c0d0e0f"},
		{"decimal32", Decimal32{1, 2, 3, 4}, "74 01020304"},
		{"decimal64", Decimal64{1, 2, 3, 4, 5, 6, 7, 8}, "84 0102030405060708"},
		{"decimal128", Decimal128{15: 9}, "94 00000000000000000000000000000009"},
		{"vbin8", []byte{1, 2}, "a0 02 0102"},
		{"str8", "hi", "a1 02 6869"},
		{"sym8", Symbol("ab"), "a3 02 6162"},
		{"list0", []any{}, "45"},
		{"list8", []any{true, uint32(0)}, "c0 03 02 41 43"},
		{"map8 str keys", map[string]any{"a": int32(1)}, "c1 06 02 a1 01 61 54 01"},
		{"map8 sym keys", map[Symbol]any{"a": nil}, "c1 05 02 a3 01 61 40"},
		{"array of str", []string{"0", "1"}, "e0 06 02 a1 01 30 01 31"},
		{"array of sym", []Symbol{"x"}, "e0 04 01 a3 01 78"},
		{"array of int", []int32{1}, "e0 06 01 71 00000001"},
		{"empty array keeps its type", []string{}, "e0 02 00 a1"},
		{"empty untyped array", Array{}, "e0 02 00 40"},
		{"described", &Described{Descriptor: uint64(0x24), Value: []any{}}, "00 53 24 45"},
		{"described symbol", &Described{Descriptor: Symbol("a:b"), Value: "x"}, "00 a3 03 613a62 a1 01 78"},
		{"array of described", Array{&Described{Descriptor: uint64(1), Value: "a"}, &Described{Descriptor: uint64(1), Value: "b"}},
			"e0 09 02 00 53 01 a1 01 61 01 62"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Marshal(tc.v)
			if err != nil {
				t.Fatal(err)
			}
			if want := mustHex(t, tc.want); !bytes.Equal(got, want) {
				t.Fatalf("got % x, want % x", got, want)
			}
		})
	}
}

func TestEncodeLargeFormsSwitchTo32Bit(t *testing.T) {
	long := strings.Repeat("x", 300)
	b, _ := Marshal(long)
	if b[0] != codeStr32 || len(b) != 305 {
		t.Fatalf("got code %#x len %d, want str32 len 305", b[0], len(b))
	}
	list := make([]any, 300)
	b, _ = Marshal(list)
	if b[0] != codeList32 {
		t.Fatalf("got code %#x, want list32", b[0])
	}
	v, err := Unmarshal(b, Limits{})
	if err != nil || len(v.([]any)) != 300 {
		t.Fatalf("got %v, %v", v, err)
	}
}

func TestEncodeRejects(t *testing.T) {
	for _, v := range []any{struct{}{}, Array{int32(1), "x"}, map[string]any{"a": struct{}{}}} {
		if _, err := Marshal(v); err == nil {
			t.Errorf("Marshal(%#v) succeeded, want an error", v)
		}
	}
}

// Every compact and wide form decodes to the same exact Go type.
func TestDecodeForms(t *testing.T) {
	tests := []struct {
		in   string
		want any
	}{
		{"56 01", true},
		{"56 00", false},
		{"56 02", true},
		{"43", uint32(0)},
		{"52 05", uint32(5)},
		{"70 00000005", uint32(5)},
		{"44", uint64(0)},
		{"53 05", uint64(5)},
		{"80 0000000000000005", uint64(5)},
		{"54 fb", int32(-5)},
		{"71 fffffffb", int32(-5)},
		{"55 fb", int64(-5)},
		{"81 fffffffffffffffb", int64(-5)},
		{"b0 00000001 ff", []byte{0xff}},
		{"b1 00000001 61", "a"},
		{"b3 00000001 61", Symbol("a")},
		{"d0 00000005 00000001 41", []any{true}},
		{"d1 0000000a 00000002 a3 01 6b a1 01 76", map[Symbol]any{"k": "v"}},
		{"c1 08 04 a1 01 61 40 53 01 40", map[any]any{"a": nil, uint64(1): nil}},
		{"c1 01 00", map[any]any{}},
		{"f0 00000007 00000002 52 01 02", []uint32{1, 2}},
		{"e0 02 02 41", []bool{true, true}},
		{"e0 04 02 56 01 00", []bool{true, false}},
		{"e0 0b 02 b1 00000001 61 00000000", []string{"a", ""}},
		{"e0 04 02 50 01 02", Array{uint8(1), uint8(2)}},
		{"e0 05 01 00 53 07 45", Array{&Described{Descriptor: uint64(7), Value: []any{}}}},
		{"a1 02 ff 61", "\xffa"},
		{"c1 05 02 a0 01 00 40", map[any]any{BinaryKey("\x00"): nil}},
	}
	for _, tc := range tests {
		got, err := Unmarshal(mustHex(t, tc.in), Limits{})
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%s: (-want +got)\n%s", tc.in, diff)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	ts := time.UnixMilli(-5).UTC()
	vals := []any{
		nil, true, uint8(1), uint16(2), uint32(3), uint64(1 << 40), int8(-1), int16(-2), int32(-3), int64(-1 << 40),
		float32(1.5), math.Inf(-1), Char('x'), ts, UUID{1}, []byte{}, "", Symbol(""),
		[]any{[]any{map[string]any{"x": []string{"a"}}}},
		map[any]any{int32(1): "a", Symbol("b"): []any{}},
		[]int64{1, -1}, []uint64{0, 1 << 63}, []int16{-1}, []uint16{1}, []int8{-1}, []float32{1}, []float64{2},
		[]time.Time{ts}, []UUID{{2}}, [][]byte{{1}, {}}, []Char{'a'}, []Symbol{"a", "b"},
		&Described{Descriptor: Symbol("x"), Value: map[Symbol]any{"a": uint32(1)}},
	}
	for _, v := range vals {
		b, err := Marshal(v)
		if err != nil {
			t.Fatalf("Marshal(%#v): %v", v, err)
		}
		got, err := Unmarshal(b, Limits{})
		if err != nil {
			t.Fatalf("Unmarshal(% x): %v", b, err)
		}
		if diff := cmp.Diff(v, got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("round trip of %#v: (-want +got)\n%s", v, diff)
		}
	}
}

func TestDecodeMalformed(t *testing.T) {
	tests := []struct {
		name string
		in   string
	}{
		{"empty", ""},
		{"unknown code", "ff"},
		{"reserved code", "57"},
		{"truncated uint", "70 0000"},
		{"truncated str8", "a1 05 61"},
		{"str32 longer than input", "b1 7fffffff 61"},
		{"list8 size beyond input", "c0 10 01 41"},
		{"list8 zero size", "c0 00 00"},
		{"list32 size below 4", "d0 00000003 00000000"},
		{"list count beyond bytes", "c0 02 05 41"},
		{"list bytes left over", "c0 03 01 41 41"},
		{"odd map", "c1 02 01 41"},
		{"list map key", "c1 03 02 45 40"},
		{"array count beyond bytes", "e0 03 05 70 00"},
		{"array element truncated", "e0 04 01 70 0000"},
		{"array bad element code", "e0 02 01 ff"},
		{"described truncated", "00 53 24"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if v, err := Unmarshal(mustHex(t, tc.in), Limits{}); err == nil {
				t.Fatalf("decoded %#v, want an error", v)
			}
		})
	}
}

// A 4-byte count of 2^31 must be refused from the header, never allocated.
func TestDecodeHugeCountsDoNotAllocate(t *testing.T) {
	tests := []string{
		"d0 00000008 80000000 41414141",       // list32 claiming 2^31 elements
		"d1 00000008 80000000 41414141",       // map32
		"f0 00000005 80000000 40",             // array32 of 2^31 zero-width nulls
		"f0 00000005 80000000 41",             // array32 of 2^31 zero-width trues
		"f0 00000008 7fffffff 70 000000",      // array32 of uint, too few bytes
		"b0 ffffffff",                         // vbin32 of 4 GiB
		"d0 ffffffff 00000001 40",             // list32 of 4 GiB
		"f0 00000009 7fffffff 00 53 01 40 40", // described zero-width elements
	}
	for _, in := range tests {
		allocs := testing.AllocsPerRun(5, func() {
			_, _ = Unmarshal(mustHex(t, in), Limits{})
		})
		var err error
		_, err = Unmarshal(mustHex(t, in), Limits{})
		if err == nil {
			t.Errorf("%s: decoded, want an error", in)
		}
		if allocs > 20 {
			t.Errorf("%s: %v allocations", in, allocs)
		}
	}
}

func TestDecodeLimits(t *testing.T) {
	// 40 nested lists exceed the default depth of 32.
	v := any([]any{})
	for i := 0; i < 40; i++ {
		v = []any{v}
	}
	b, err := Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var de *DecodeError
	if _, err := Unmarshal(b, Limits{}); !errors.As(err, &de) || !strings.Contains(de.Msg, "nesting") {
		t.Fatalf("got %v, want a nesting error", err)
	}
	if _, err := Unmarshal(b, Limits{MaxDepth: 50}); err != nil {
		t.Fatalf("with MaxDepth 50: %v", err)
	}
	list := make([]any, 100)
	b, _ = Marshal(list)
	if _, err := Unmarshal(b, Limits{MaxElements: 99}); err == nil {
		t.Fatal("100 elements decoded under a limit of 99")
	}
	if _, err := Unmarshal(b, Limits{MaxElements: 100}); err != nil {
		t.Fatal(err)
	}
}

func TestUUIDString(t *testing.T) {
	u, ok := ParseUUID("0123ABCD-0000-4000-8000-0000000000ff")
	if !ok || u.String() != "0123abcd-0000-4000-8000-0000000000ff" {
		t.Fatalf("got %v %v", u, ok)
	}
	for _, s := range []string{"", "0123abcd00004000800000000000000000ff", "0123abcd-0000-4000-8000-0000000000fg"} {
		if _, ok := ParseUUID(s); ok {
			t.Errorf("ParseUUID(%q) succeeded", s)
		}
	}
}
