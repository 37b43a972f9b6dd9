// SPDX-License-Identifier: MIT

package twin

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// bigObject returns {"k0":"xxx…","k1":…} with n members whose string values
// are size bytes long.
func bigObject(n, size int) string {
	var b strings.Builder
	b.WriteByte('{')
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%q:%q", fmt.Sprintf("k%d", i), strings.Repeat("x", size))
	}
	b.WriteByte('}')
	return b.String()
}

// nest wraps inner in n objects, the outermost being the body itself:
// nest(2, "1") is {"a":{"a":1}}, one level below the root.
func nest(n int, inner string) string {
	return strings.Repeat(`{"a":`, n) + inner + strings.Repeat("}", n)
}

// strMember returns {"k":"…"} with a string of n bytes made of c.
func strMember(k string, n int, c string) string {
	return fmt.Sprintf("{%q:%q}", k, strings.Repeat(c, n/len(c)))
}

// fill returns an object with eight 3-byte keys and 4093-byte strings:
// 8 × 4096 = 32768 quota bytes, the reported and desired limit; extra adds
// to the last string.
func fill(members, extra int) string {
	var b strings.Builder
	b.WriteByte('{')
	for i := range members {
		if i > 0 {
			b.WriteByte(',')
		}
		n := 4093
		if i == members-1 {
			n += extra
		}
		fmt.Fprintf(&b, `"k%02d":%q`, i, strings.Repeat("v", n))
	}
	b.WriteByte('}')
	return b.String()
}

func TestLimits(t *testing.T) {
	tests := []struct {
		name     string
		kind     string // op kind
		base     []op   // applied first
		body     string
		wantErr  error  // nil, ErrInvalid or ErrTooLarge
		wantPath string // Error.Path when wantErr != nil
		wantIn   string // substring of the message
	}{
		// Bodies.
		{name: "malformed", kind: "reported", body: `{"a":`, wantErr: ErrInvalid, wantIn: "malformed JSON"},
		{name: "trailing data", kind: "reported", body: `{} {}`, wantErr: ErrInvalid},
		{name: "trailing comma", kind: "reported", body: `{"a":1,}`, wantErr: ErrInvalid},
		{name: "empty body", kind: "reported", body: ``, wantErr: ErrInvalid},
		{name: "array body", kind: "reported", body: `[1]`, wantErr: ErrInvalid, wantIn: "must be a JSON object"},
		{name: "null body", kind: "desired", body: `null`, wantErr: ErrInvalid},
		{name: "string body", kind: "tags", body: `"s"`, wantErr: ErrInvalid},

		// Keys.
		{name: "key 1024 bytes", kind: "reported", body: strMember(strings.Repeat("k", 1024), 1, "v")},
		{name: "key 1025 bytes", kind: "reported", body: strMember(strings.Repeat("k", 1025), 1, "v"), wantErr: ErrInvalid, wantPath: "properties.reported", wantIn: "maximum is 1024"},
		{name: "key 1024 bytes multibyte", kind: "desired", body: strMember(strings.Repeat("é", 512), 1, "v")},
		{name: "key 1026 bytes multibyte", kind: "desired", body: strMember(strings.Repeat("é", 513), 1, "v"), wantErr: ErrInvalid, wantIn: "1026 bytes"},
		{name: "key with dot", kind: "reported", body: `{"o":{"a.b":1}}`, wantErr: ErrInvalid, wantPath: "properties.reported.o", wantIn: `"a.b"`},
		{name: "key with dollar", kind: "reported", body: `{"$version":1}`, wantErr: ErrInvalid, wantPath: "properties.reported"},
		{name: "key with hash", kind: "tags", body: `{"a#b":1}`, wantErr: ErrInvalid, wantPath: "tags"},
		{name: "key with space", kind: "desired", body: `{"a b":1}`, wantErr: ErrInvalid},
		{name: "key with tab", kind: "desired", body: `{"a\tb":1}`, wantErr: ErrInvalid},
		{name: "key with C0 control", kind: "desired", body: `{"a\u0001":1}`, wantErr: ErrInvalid},
		{name: "key with C1 control", kind: "desired", body: `{"a\u0085":1}`, wantErr: ErrInvalid},
		{name: "key with DEL", kind: "desired", body: `{"a\u007f":1}`, wantErr: ErrInvalid},
		{name: "key with no-break space", kind: "desired", body: `{"a\u00a0":1}`, wantErr: ErrInvalid},
		{name: "empty key", kind: "reported", body: `{"":1}`, wantErr: ErrInvalid},
		{name: "key inside array object", kind: "reported", body: `{"l":[{"a.b":1}]}`, wantErr: ErrInvalid, wantPath: "properties.reported.l[0]"},
		{name: "dollar in tags not echo-exempt", kind: "tags", body: `{"$metadata":{}}`, wantErr: ErrInvalid},
		{name: "unicode key accepted", kind: "reported", body: `{"température-Ω_1":1}`},

		// Strings.
		{name: "string 4096 bytes", kind: "desired", body: strMember("s", 4096, "x")},
		{name: "string 4097 bytes", kind: "desired", body: `{"o":` + strMember("s", 4097, "x") + `}`, wantErr: ErrInvalid, wantPath: "properties.desired.o.s", wantIn: "maximum 4096 bytes"},
		{name: "string 4096 bytes multibyte", kind: "reported", body: strMember("s", 4096, "é")},
		{name: "string 4098 bytes multibyte", kind: "reported", body: strMember("s", 4098, "é"), wantErr: ErrInvalid},
		{name: "string in array too long", kind: "reported", body: `{"l":["` + strings.Repeat("x", 4097) + `"]}`, wantErr: ErrInvalid, wantPath: "properties.reported.l[0]"},

		// Numbers.
		{name: "max integer", kind: "reported", body: `{"n":4503599627370495}`},
		{name: "max integer + 1", kind: "reported", body: `{"n":4503599627370496}`, wantErr: ErrInvalid, wantPath: "properties.reported.n", wantIn: "4503599627370495"},
		{name: "min integer", kind: "reported", body: `{"n":-4503599627370496}`},
		{name: "min integer - 1", kind: "reported", body: `{"n":-4503599627370497}`, wantErr: ErrInvalid},
		{name: "integer beyond int64", kind: "tags", body: `{"n":99999999999999999999}`, wantErr: ErrInvalid},
		{name: "large float accepted", kind: "reported", body: `{"n":4503599627370496.0,"m":1e300,"s":1e-400}`},
		{name: "float overflow", kind: "reported", body: `{"n":1e400}`, wantErr: ErrInvalid, wantPath: "properties.reported.n"},
		{name: "integer in array out of range", kind: "reported", body: `{"l":[1,4503599627370496]}`, wantErr: ErrInvalid, wantPath: "properties.reported.l[1]"},

		// Depth.
		{name: "10 levels below the root", kind: "reported", body: nest(11, `1`)},
		{name: "11 levels below the root", kind: "reported", body: nest(12, `1`), wantErr: ErrInvalid, wantIn: "maximum depth of 10"},
		{name: "10 levels in tags", kind: "tags", body: nest(10, `{}`)},
		{name: "11 levels in tags", kind: "tags", body: nest(11, `{}`), wantErr: ErrInvalid, wantPath: "tags.a.a.a.a.a.a.a.a.a.a.a"},
		{name: "10 nested arrays", kind: "desired", body: `{"a":` + strings.Repeat("[", 10) + `1` + strings.Repeat("]", 10) + `}`},
		{name: "11 nested arrays", kind: "desired", body: `{"a":` + strings.Repeat("[", 11) + `1` + strings.Repeat("]", 11) + `}`, wantErr: ErrInvalid, wantPath: "properties.desired.a[0][0][0][0][0][0][0][0][0][0]"},
		{name: "array at depth 10", kind: "reported", body: nest(10, `[1]`)},
		{name: "array at depth 11", kind: "reported", body: nest(11, `[1]`), wantErr: ErrInvalid},
		{name: "object in array at depth 11", kind: "reported", body: nest(10, `[{}]`), wantErr: ErrInvalid},

		// Nulls.
		{name: "null member deletes", kind: "reported", body: `{"a":null}`},
		{name: "null in array", kind: "reported", body: `{"l":[1,null]}`, wantErr: ErrInvalid, wantPath: "properties.reported.l[1]", wantIn: "must not contain null"},
		{name: "null in nested array", kind: "desired", body: `{"l":[[null]]}`, wantErr: ErrInvalid},
		{name: "null member of object in array", kind: "desired", body: `{"l":[{"a":null}]}`, wantErr: ErrInvalid, wantPath: "properties.desired.l[0].a"},

		// Section sizes.
		{name: "reported at 32768", kind: "reported", body: fill(8, 0)},
		{name: "reported at 32769", kind: "reported", body: fill(8, 1), wantErr: ErrTooLarge, wantPath: "properties.reported", wantIn: "'Properties.Reported' size should be at most 32768 bytes; this update would make it 32769"},
		{name: "desired at 32768", kind: "desired", body: fill(8, 0)},
		{name: "desired at 32769", kind: "desired", body: fill(8, 1), wantErr: ErrTooLarge, wantPath: "properties.desired"},
		{name: "desired replacement at 32769", kind: "replaceDesired", body: fill(8, 1), wantErr: ErrTooLarge},
		{name: "tags at 8192", kind: "tags", body: fill(2, 0)},
		{name: "tags at 8193", kind: "tags", body: fill(2, 1), wantErr: ErrTooLarge, wantPath: "tags", wantIn: "8192"},
		{name: "tags replacement at 8193", kind: "replaceTags", body: fill(2, 1), wantErr: ErrTooLarge},
		{
			name: "control characters not counted", kind: "reported",
			body: strings.ReplaceAll(fill(8, 0), `"k07":"vvv`, `"k07":"\u0001\u0002\u0003vvv`),
		},
		{
			name: "existing content counts", kind: "reported", base: []op{{"reported", fill(7, 0)}},
			body: `{"k07":"` + strings.Repeat("v", 4094) + `"}`, wantErr: ErrTooLarge,
		},
		{
			name: "deleted content is freed", kind: "reported", base: []op{{"reported", fill(8, 0)}},
			body: `{"k00":null,"new":"` + strings.Repeat("v", 4093) + `"}`,
		},
		{
			name: "replaced value counts once", kind: "reported", base: []op{{"reported", fill(8, 0)}},
			body: `{"k03":"` + strings.Repeat("w", 4093) + `"}`,
		},
		{
			name: "numbers count 8 and booleans 4", kind: "tags", base: []op{{"tags", fill(2, -12)}},
			body: `{"n":1,"b":true}`, wantErr: ErrTooLarge, wantIn: "8194",
		},
		{
			name: "replacement ignores old content", kind: "replaceDesired", base: []op{{"desired", fill(8, 0)}},
			body: fill(8, 0),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := build(t, tt.base...)
			before := stored(t, d)
			_, err := do(d, op{tt.kind, tt.body}, at(9))
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("got error %v, want success", err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error: got %v, want %v", err, tt.wantErr)
			}
			var te *Error
			if !errors.As(err, &te) {
				t.Fatalf("error %T is not a *Error", err)
			}
			if tt.wantPath != "" && te.Path != tt.wantPath {
				t.Errorf("Path: got %q, want %q", te.Path, tt.wantPath)
			}
			if !strings.Contains(te.Error(), tt.wantIn) {
				t.Errorf("message: got %q, want it to contain %q", te.Error(), tt.wantIn)
			}
			if got := stored(t, d); got != before {
				t.Errorf("doc changed by a failed write:\ngot  %.300s\nwant %.300s", got, before)
			}
		})
	}
}

func TestSize(t *testing.T) {
	tests := []struct {
		name string
		body string
		want int
	}{
		{name: "number", body: `{"a":1}`, want: 1 + 8},
		{name: "float", body: `{"a":1.5e10}`, want: 1 + 8},
		{name: "boolean", body: `{"a":true}`, want: 1 + 4},
		{name: "string", body: `{"ab":"xyz"}`, want: 2 + 3},
		{name: "multibyte counts bytes", body: `{"é":"日"}`, want: 2 + 3},
		{name: "control characters skipped", body: `{"s":"a\u0001b\n\u0085"}`, want: 1 + 2},
		{name: "nested object", body: `{"o":{"a":1,"b":"cd"}}`, want: 1 + (1 + 8) + (1 + 2)},
		{name: "array sums elements", body: `{"l":[1,"ab",true,{"c":false}]}`, want: 1 + 8 + 2 + 4 + (1 + 4)},
		{name: "null members count nothing", body: `{"gone":null,"a":1}`, want: 1 + 8},
		{name: "empty", body: `{}`, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := parse([]byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if got := n.size(); got != tt.want {
				t.Errorf("size: got %d, want %d", got, tt.want)
			}
			if got := mergedSize(newObject(), n); got != tt.want {
				t.Errorf("mergedSize into empty: got %d, want %d", got, tt.want)
			}
		})
	}
}
