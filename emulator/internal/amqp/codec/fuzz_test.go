// SPDX-License-Identifier: MIT

package codec

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// FuzzDecode: any input either fails to decode or decodes to a value whose
// re-encoding decodes to the same value (the encoder picks compact forms, so
// bytes may differ but values may not).
func FuzzDecode(f *testing.F) {
	seeds := []string{
		"40", "41", "56 01", "52 05", "80 0000000000000005", "55 fb", "83 0000018bcfe5687b",
		"98 000102030405060708090a0b0c0d0e0f", "a1 02 6869", "b3 00000001 61",
		"c0 03 02 41 43", "d1 0000000a 00000002 a3 01 6b a1 01 76", "c1 08 04 a1 01 61 40 53 01 40",
		"e0 06 02 a1 01 30 01 31", "e0 05 01 00 53 07 45", "00 53 24 45", "f0 00000005 80000000 40",
		"e0 04 02 50 01 02", "74 01020304", "73 000000e9", "e0 02 02 41",
	}
	for _, s := range seeds {
		f.Add(mustHex(f, s))
	}
	opts := []cmp.Option{cmpopts.EquateNaNs(), cmpopts.EquateEmpty()}
	f.Fuzz(func(t *testing.T, in []byte) {
		v, err := Unmarshal(in, Limits{MaxDepth: 16, MaxElements: 4096})
		if err != nil {
			return
		}
		b, err := Marshal(v)
		if err != nil {
			t.Fatalf("re-encoding %#v: %v", v, err)
		}
		v2, err := Unmarshal(b, Limits{MaxDepth: 16, MaxElements: 4096})
		if err != nil {
			t.Fatalf("decoding our own encoding % x of %#v: %v", b, v, err)
		}
		if diff := cmp.Diff(v, v2, opts...); diff != "" {
			t.Fatalf("round trip changed the value (-first +second)\n%s", diff)
		}
	})
}
