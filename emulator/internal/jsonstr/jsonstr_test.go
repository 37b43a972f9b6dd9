// SPDX-License-Identifier: MIT

package jsonstr

import (
	"encoding/json"
	"testing"
	"unicode/utf8"
)

// FuzzAppend: AppendGo writes what encoding/json writes; Append writes a
// string encoding/json reads back as s, escaping nothing beyond what JSON
// requires.
func FuzzAppend(f *testing.F) {
	for _, s := range []string{"", "plain", "<a href=\"x\">&amp;</a>", "tab\tnl\nnul\x00\x1f\x7f", "\u2028\u2029é😀", "bad \xff\xfe utf8", `back\slash`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := AppendGo(nil, s); string(got) != string(want) {
			t.Errorf("AppendGo(%q) = %s, want %s", s, got, want)
		}
		if !utf8.ValidString(s) {
			return // Append's input is valid UTF-8
		}
		got := Append(nil, s)
		var back string
		if err := json.Unmarshal(got, &back); err != nil || back != s {
			t.Errorf("Append(%q) = %s, reads back as %q (%v)", s, got, back, err)
		}
		plain := true
		for _, c := range []byte(s) {
			plain = plain && c >= 0x20 && c != '"' && c != '\\'
		}
		if plain && string(got) != `"`+s+`"` {
			t.Errorf("Append(%q) = %s: escaped what JSON does not require", s, got)
		}
	})
}
