// SPDX-License-Identifier: MIT

package twin

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// FuzzPatch feeds arbitrary bytes to every write. Each write must either
// fail with ErrInvalid or ErrTooLarge and leave the twin as it was, or
// succeed with a twin whose views are valid JSON and whose storage form
// round-trips.
func FuzzPatch(f *testing.F) {
	for _, s := range []string{
		`{"a":1}`, `{"a":null}`, `{"o":{"x":[1,{"y":"z"}]}}`, `{"$version":1}`, `[]`, `{`,
		`{"a":1e400}`, `{"l":[null]}`, `{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":1}}}}}}}}}}}`,
		`{"tags":{"t":1},"properties":{"desired":{"d":null}}}`, `{"a":"\u0000\ud800"}`, `{"a":1,"a":null}`,
	} {
		f.Add([]byte(s))
	}
	base := build(f,
		op{"tags", `{"t":{"u":1}}`},
		op{"desired", `{"d":{"e":[1,2]},"a":"x"}`},
		op{"reported", `{"r":{"s":true},"a":1.5}`},
	)
	kinds := []string{"tags", "replaceTags", "desired", "replaceDesired", "reported", "patchTwin", "replaceTwin"}
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, err := parse(data); (err == nil) != json.Valid(data) && !errors.Is(err, errTooDeep) {
			t.Fatalf("parse error %v, but json.Valid = %t", err, json.Valid(data))
		}
		for _, kind := range kinds {
			d := base.Clone()
			before := stored(t, d)
			n, err := do(d, op{kind, string(data)}, at(30))
			if err != nil {
				if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrTooLarge) {
					t.Fatalf("%s: error %v is neither ErrInvalid nor ErrTooLarge", kind, err)
				}
				if got := stored(t, d); got != before {
					t.Fatalf("%s: failed write changed the doc:\ngot  %s\nwant %s", kind, got, before)
				}
				continue
			}
			if n != nil && !json.Valid(n) {
				t.Fatalf("%s: notification is not JSON: %s", kind, n)
			}
			for name, v := range map[string][]byte{"DeviceView": d.DeviceView(), "Properties": d.Properties(), "Tags": d.Tags()} {
				if !json.Valid(v) {
					t.Fatalf("%s: %s is not JSON: %s", kind, name, v)
				}
			}
			b := stored(t, d)
			u, err := Unmarshal([]byte(b))
			if err != nil {
				t.Fatalf("%s: Unmarshal of Marshal output: %v\n%s", kind, err, b)
			}
			if got := stored(t, u); got != b {
				t.Fatalf("%s: round trip:\ngot  %s\nwant %s", kind, got, b)
			}
		}
	})
}

// FuzzParsedWrites checks the twin-patch path as the hub runs it: the body
// is parsed and checked once, outside any transaction, and applied inside
// one, possibly more than once (the store retries a group of updates). For
// any input: parsing either fails with ErrInvalid or ErrTooLarge, or
// yields an update whose application gives the same twin as the one-step
// write; applying it twice, to two copies, gives the same twin twice (it
// is not consumed); and a body nested deeper than the parser's limit never
// parses.
func FuzzParsedWrites(f *testing.F) {
	for _, s := range []string{
		`{"a":1}`, `{"a":null}`, `{"o":{"x":[1,{"y":"z"}]}}`, `{"tags":{"t":1},"properties":{"desired":{"d":null,"$metadata":{}}}}`,
		`{"properties":{"reported":` + strings.Repeat("[", 40) + `}}`, `{"a":` + strings.Repeat("[", 40),
		`{"deviceId":"x","properties":{"desired":{"a":{"b":2}},"reported":{"r":[1,2,3]}}}`,
	} {
		f.Add([]byte(s))
	}
	base := build(f,
		op{"tags", `{"t":{"u":1}}`},
		op{"desired", `{"d":{"e":[1,2]},"a":"x"}`},
		op{"reported", `{"r":{"s":true},"a":1.5}`},
	)
	f.Fuzz(func(t *testing.T, data []byte) {
		kindOK := func(err error) bool { return errors.Is(err, ErrInvalid) || errors.Is(err, ErrTooLarge) }
		deep := nesting(data) > maxParseDepth

		p, err := ParseReportedPatch(data)
		if err != nil {
			if !kindOK(err) {
				t.Fatalf("ParseReportedPatch: %v is neither ErrInvalid nor ErrTooLarge", err)
			}
		} else {
			if deep {
				t.Fatalf("a patch nested %d levels deep parsed", nesting(data))
			}
			oneStep := base.Clone()
			_, want := oneStep.PatchReported(data, at(30))
			for range 2 {
				d := base.Clone()
				_, err := d.ApplyReported(p, at(30))
				if (err == nil) != (want == nil) || stored(t, d) != stored(t, oneStep) {
					t.Fatalf("ApplyReported gave %v and\n%s\nthe one-step write %v and\n%s", err, stored(t, d), want, stored(t, oneStep))
				}
			}
		}

		u, err := ParseServiceUpdate(data)
		if err != nil {
			if !kindOK(err) {
				t.Fatalf("ParseServiceUpdate: %v is neither ErrInvalid nor ErrTooLarge", err)
			}
			return
		}
		if deep {
			t.Fatalf("a service body nested %d levels deep parsed", nesting(data))
		}
		for _, replace := range []bool{false, true} {
			var got []string
			for range 2 {
				d := base.Clone()
				err := d.ApplyTags(&u, replace, at(30))
				if err == nil {
					_, err = d.ApplyDesired(&u, replace, at(30))
				}
				if err != nil && !errors.Is(err, ErrTooLarge) {
					t.Fatalf("applying a parsed update: %v; only a size quota may fail it", err)
				}
				got = append(got, stored(t, d))
			}
			if got[0] != got[1] {
				t.Fatalf("the same update applied twice gave\n%s\n%s", got[0], got[1])
			}
		}
	})
}

// nesting returns the deepest nesting of brackets and braces outside
// strings in b.
func nesting(b []byte) int {
	depth, deepest, inString, escaped := 0, 0, false, false
	for _, c := range b {
		switch {
		case inString && escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case inString:
			inString = c != '"'
		case c == '"':
			inString = true
		case c == '[' || c == '{':
			depth++
			deepest = max(deepest, depth)
		case c == ']' || c == '}':
			depth--
		}
	}
	return deepest
}
