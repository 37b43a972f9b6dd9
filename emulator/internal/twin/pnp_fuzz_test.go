// SPDX-License-Identifier: MIT

package twin

import (
	"encoding/json"
	"errors"
	"testing"
)

// FuzzDigitalTwinPatch feeds arbitrary bytes to the JSON Patch translation
// and to settings: either an ErrInvalid with the twin untouched, or a
// desired patch that the twin accepts (or refuses as invalid or too large)
// and a digital twin view that is valid JSON.
func FuzzDigitalTwinPatch(f *testing.F) {
	for _, s := range []string{
		`[{"op":"add","path":"/a","value":1}]`,
		`[{"op":"add","path":"/c1","value":{"p":1,"$metadata":{}}},{"op":"remove","path":"/c1/p"}]`,
		`[{"op":"replace","path":"/thermostat1/targetTemperature","value":{"x":null}}]`,
		`[{"op":"remove","path":"/a~1b"}]`, `[]`, `{}`, `[{"op":"add"}]`, `[null]`,
	} {
		f.Add([]byte(s))
	}
	base := build(f,
		op{"desired", `{"a":1,"thermostat1":{"__t":"c","targetTemperature":20}}`},
		op{"reported", `{"thermostat2":{"__t":"c","t":{"value":1,"ac":200,"av":1}},"obj":{"k":1}}`},
	)
	f.Fuzz(func(t *testing.T, data []byte) {
		d := base.Clone()
		before := stored(t, d)
		patch, err := d.DigitalTwinPatch(data)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v is not ErrInvalid", err)
			}
			if stored(t, d) != before {
				t.Fatal("a refused patch changed the doc")
			}
		} else {
			if !json.Valid(patch) {
				t.Fatalf("patch is not JSON: %s", patch)
			}
			if _, err := d.PatchDesired(patch, at(30)); err != nil && !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("PatchDesired(%s): %v", patch, err)
			}
		}
		if v := d.DigitalTwin("d", "dtmi:x;1"); !json.Valid(v) {
			t.Fatalf("digital twin is not JSON: %s", v)
		}
		if _, err := d.SetDesired([]DesiredSetting{{Path: []string{"s"}, Value: data}}, at(31)); err != nil && !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrTooLarge) {
			t.Fatalf("SetDesired: %v", err)
		}
	})
}
