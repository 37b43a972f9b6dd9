// SPDX-License-Identifier: MIT

package twin

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// dumpNode writes n's whole tree: kinds, texts, member order.
func dumpNode(b *strings.Builder, n *node) {
	switch n.kind {
	case kindNull:
		b.WriteString("null")
	case kindBool:
		fmt.Fprint(b, n.truth)
	case kindNumber:
		b.WriteString("n:" + n.text)
	case kindString:
		fmt.Fprintf(b, "s:%q", n.text)
	case kindArray:
		b.WriteString("[")
		for _, e := range n.elems {
			dumpNode(b, e)
			b.WriteString(",")
		}
		b.WriteString("]")
	case kindObject:
		b.WriteString("{")
		if len(n.keys) != len(n.kids) {
			b.WriteString("!keys")
		}
		for _, k := range n.keys {
			fmt.Fprintf(b, "%q:", k)
			dumpNode(b, n.kids[k])
			b.WriteString(",")
		}
		b.WriteString("}")
	}
}

// FuzzFastParse: fastParse accepts what parse accepts, builds the same
// tree, and refuses what parse refuses.
func FuzzFastParse(f *testing.F) {
	d := New(time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC))
	stored, err := d.Marshal()
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{
		string(stored),
		`{"a":1,"b":[true,false,null,-0.5e+10,"x\u00e9\ud83d\ude00\n"],"a":{"c":{}}}`,
		`{"k":"\ud800x","l":"\udc00\ud800\udc00","m":"\ud800\u0041"}`,
		"{\"bad utf8\":\"\xff\xfe\"}", `[1,2,]`, `{"a":01}`, `{"a" 1}`, `"\u12"`, `[1e]`, `-`, ` [ ] `, `{} x`,
		strings.Repeat("[", 100) + strings.Repeat("]", 100),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		agree(t, b, "stored", parse, fastParse)
		// The limits of a body from the network, and small ones that the
		// fuzzer reaches.
		for _, l := range [][2]int{{maxParseDepth, maxParseValues}, {3, 7}} {
			agree(t, b, fmt.Sprint(l), func(b []byte) (*node, error) {
				p := newParser(b, l[0], l[1])
				n, err := p.value()
				if err == nil {
					err = p.end()
				}
				return n, err
			}, func(b []byte) (*node, error) { return fastParseLimited(b, l[0], l[1]) })
		}
	})
}

// agree fails unless both parsers accept b and build the same tree, or
// both refuse it.
func agree(t *testing.T, b []byte, limits string, parse, fast func([]byte) (*node, error)) {
	t.Helper()
	want, werr := parse(b)
	got, gerr := fast(b)
	if (werr == nil) != (gerr == nil) {
		t.Fatalf("limits %s: parse error %v, fastParse error %v for %q", limits, werr, gerr, b)
	}
	if werr != nil {
		return
	}
	var w, g strings.Builder
	dumpNode(&w, want)
	dumpNode(&g, got)
	if w.String() != g.String() {
		t.Fatalf("limits %s, for %q:\nparse     %s\nfastParse %s", limits, b, w.String(), g.String())
	}
}
