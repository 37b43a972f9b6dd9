// SPDX-License-Identifier: MIT

package twin

import (
	"encoding/json"
	"errors"
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
		if _, err := parse(data); (err == nil) != json.Valid(data) {
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
