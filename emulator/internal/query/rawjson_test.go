// SPDX-License-Identifier: MIT

package query

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// decoded turns a value into comparable Go data by encoding and decoding
// it, so that a raw and a map value compare equal when they hold the same
// JSON (object key order and string escapes aside).
func decoded(tb testing.TB, v Value) any {
	tb.Helper()
	if !v.defined() {
		return "<undefined>"
	}
	d := json.NewDecoder(bytes.NewReader(appendJSON(nil, v)))
	d.UseNumber()
	var out any
	if err := d.Decode(&out); err != nil {
		tb.Fatalf("value encodes to invalid JSON %q: %v", appendJSON(nil, v), err)
	}
	return out
}

// allPaths lists every path in a decoded tree, plus a missing sibling of
// each, which the two Document implementations must agree on.
func allPaths(v any, prefix Path, out *[]Path) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			p := append(prefix[:len(prefix):len(prefix)], Step{Name: k})
			*out = append(*out, p)
			allPaths(e, p, out)
		}
		*out = append(*out, append(prefix[:len(prefix):len(prefix)], Step{Name: "missing"}))
	case []any:
		for i, e := range x {
			p := append(prefix[:len(prefix):len(prefix)], Step{Index: i, IsIndex: true})
			*out = append(*out, p)
			allPaths(e, p, out)
		}
		*out = append(*out, append(prefix[:len(prefix):len(prefix)], Step{Index: len(x), IsIndex: true}))
	default:
		*out = append(*out, append(prefix[:len(prefix):len(prefix)], Step{Name: "below"}))
	}
}

func TestRawDocumentAgreesWithMapDocument(t *testing.T) {
	for _, dir := range []string{"devices", "modules", "jobs"} {
		for _, doc := range loadFleet(t, dir) {
			m := decodeMap(t, doc)
			var paths []Path
			allPaths(map[string]any(m), nil, &paths)
			for _, p := range paths {
				rv, rok := RawDocument(doc).Lookup(p)
				mv, mok := m.Lookup(p)
				if rok != mok || rv.kind != mv.kind {
					t.Errorf("%s: raw (%v, kind %d), map (%v, kind %d)", p, rok, rv.kind, mok, mv.kind)
					continue
				}
				if diff := cmp.Diff(decoded(t, mv), decoded(t, rv)); diff != "" {
					t.Errorf("%s: value (-map +raw):\n%s", p, diff)
				}
			}
		}
	}
}

func TestRawDocumentLookup(t *testing.T) {
	tests := []struct {
		name   string
		doc    string
		path   string
		want   string // JSON of the value; "" when undefined
		wantOK bool
	}{
		{"whitespace everywhere", " { \"a\" :\n { \"b\"\t: 1 } } ", "a.b", "1", true},
		{"escaped key", `{"a\u0062":1}`, "ab", "1", true},
		{"escaped quote before target", `{"x":"say \"}\" ok","y":2}`, "y", "2", true},
		{"brackets in skipped strings", `{"x":{"s":"]}[{"},"y":[1,"]",{"z":"}"}],"t":true}`, "t", "true", true},
		{"escaped backslash ends string", `{"x":"a\\","y":3}`, "y", "3", true},
		{"string value with escapes", `{"s":"caf\u00e9 \"n\" \\ \/ \t"}`, "s", `"café \"n\" \\ / \t"`, true},
		{"surrogate pair", `{"s":"\ud83d\ude00"}`, "s", `"😀"`, true},
		{"lone surrogate", `{"s":"a\ud83d"}`, "s", "\"a\uFFFD\"", true},
		{"number text kept", `{"n":1.50e2}`, "n", "1.50e2", true},
		{"negative number", `{"n":-12}`, "n", "-12", true},
		{"null", `{"n":null}`, "n", "null", true},
		{"false", `{"n":false}`, "n", "false", true},
		{"nested array element", `{"a":[[1,2],[3,{"b":4}]]}`, "a[1][1].b", "4", true},
		{"object is compacted", `{"o":{ "k" : [ 1 , 2 ] }}`, "o", `{"k":[1,2]}`, true},
		{"first duplicate wins", `{"k":1,"k":2}`, "k", "1", true},
		{"member of a string", `{"a":"x"}`, "a.b", "", false},
		{"index of an object", `{"a":{"0":1}}`, "a[0]", "", false},
		{"member of an array", `{"a":[1]}`, "a.b", "", false},
		{"empty object", `{}`, "a", "", false},
		{"empty array", `{"a":[]}`, "a[0]", "", false},
		{"truncated document", `{"a":{"b":1`, "a.c", "", false},
		{"truncated string", `{"a":"abc`, "a", "", false},
		{"truncated key", `{"a`, "a", "", false},
		{"missing colon", `{"a" 1}`, "a", "", false},
		{"garbage value", `{"a":@,"b":1}`, "b", "", false},
		{"bad literal", `{"a":tru}`, "a", "", false},
		{"not an object", `[1,2]`, "a", "", false},
		{"empty input", ``, "a", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := testPath(t, tt.path)
			v, ok := RawDocument(tt.doc).Lookup(p)
			if ok != tt.wantOK {
				t.Fatalf("Lookup(%s) ok = %v, want %v", tt.path, ok, tt.wantOK)
			}
			got := ""
			if ok {
				if v.kind == kString {
					v.raw = nil // encode the decoded string, not the text as found
				}
				got = string(appendJSON(nil, v))
			}
			if got != tt.want {
				t.Errorf("Lookup(%s) = %s, want %s", tt.path, got, tt.want)
			}
		})
	}
}

// testPath parses a path with the query parser.
func testPath(tb testing.TB, s string) Path {
	tb.Helper()
	toks, err := lex(s)
	if err != nil {
		tb.Fatalf("lex %q: %v", s, err)
	}
	p := &parser{toks: toks}
	pe, perr := p.parsePath(p.next())
	if perr != nil {
		tb.Fatalf("path %q: %v", s, perr)
	}
	return pe.path
}

// TestRawDocumentOddNames uses names the query syntax cannot write but a
// Document caller can pass.
func TestRawDocumentOddNames(t *testing.T) {
	tests := []struct {
		name   string
		doc    string
		member string
		wantOK bool
	}{
		{"name spanning a key and a value", `{"a":"b","c":1}`, `a":"b`, false},
		{"name matching an escaped key", `{"a\"b":1}`, `a"b`, true},
		{"raw escape text is not the name", `{"a\"b":1}`, `a\"b`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ok := RawDocument(tt.doc).Lookup(Path{{Name: tt.member}})
			if ok != tt.wantOK {
				t.Errorf("Lookup(%q) ok = %v, want %v", tt.member, ok, tt.wantOK)
			}
		})
	}
}

func TestRawValue(t *testing.T) {
	tests := []struct {
		in   string
		want string
	}{
		{`"x"`, `"x"`},
		{` [1, "a"] `, `[1,"a"]`},
		{`12`, `12`},
		{`{"a":1} x`, ``},
		{`nul`, ``},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			v := RawValue([]byte(tt.in))
			got := ""
			if v.defined() {
				got = string(appendJSON(nil, v))
			}
			if got != tt.want {
				t.Errorf("RawValue(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// hasDuplicateKeys reports whether any object in doc repeats a name, where
// the raw scanner (first wins) and encoding/json (last wins) differ.
func hasDuplicateKeys(doc []byte) bool {
	d := json.NewDecoder(bytes.NewReader(doc))
	type frame struct {
		obj  bool
		seen map[string]bool
		key  bool // next string token is a key
	}
	var stack []*frame
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			return false
		}
		if err != nil {
			return true
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.obj && top.key {
			if k, ok := tok.(string); ok {
				if top.seen[k] {
					return true
				}
				top.seen[k] = true
				top.key = false
				continue
			}
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{obj: true, seen: map[string]bool{}, key: true})
			continue
		case json.Delim('['):
			stack = append(stack, &frame{})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		if len(stack) > 0 && stack[len(stack)-1].obj {
			stack[len(stack)-1].key = true
		}
	}
}

// fuzzPath turns fuzz text into a path: '.'-separated names, "[n]" for an
// index.
func fuzzPath(s string) Path {
	var p Path
	for _, part := range strings.Split(s, ".") {
		if strings.HasPrefix(part, "[") && strings.HasSuffix(part, "]") {
			if n, err := strconv.Atoi(part[1 : len(part)-1]); err == nil {
				p = append(p, Step{Index: n, IsIndex: true})
				continue
			}
		}
		p = append(p, Step{Name: part})
	}
	return p
}

func FuzzRawDocument(f *testing.F) {
	for _, d := range loadFleet(f, "devices") {
		f.Add(d, "properties.reported.telemetryConfig.status")
	}
	f.Add([]byte(`{"a":[1,{"b":"x\"y"}]}`), "a.[1].b")
	f.Add([]byte(`{"a\u0062":{"c":null}}`), "ab.c")
	f.Fuzz(func(t *testing.T, doc []byte, path string) {
		p := fuzzPath(path)
		rv, rok := RawDocument(doc).Lookup(p)
		if rok && !json.Valid(appendJSON(nil, rv)) && json.Valid(doc) {
			t.Fatalf("value of a valid document encodes to invalid JSON: %q", appendJSON(nil, rv))
		}
		if !json.Valid(doc) || hasDuplicateKeys(doc) {
			return
		}
		dec := json.NewDecoder(bytes.NewReader(doc))
		dec.UseNumber()
		var m map[string]any
		if dec.Decode(&m) != nil {
			return
		}
		mv, mok := MapDocument(m).Lookup(p)
		if rok != mok || rv.kind != mv.kind {
			t.Fatalf("%s: raw (%v, kind %d), map (%v, kind %d)", p, rok, rv.kind, mok, mv.kind)
		}
		if diff := cmp.Diff(decoded(t, mv), decoded(t, rv)); diff != "" {
			t.Fatalf("%s: value (-map +raw):\n%s", p, diff)
		}
	})
}
