// SPDX-License-Identifier: MIT

package twin

import (
	"errors"
	"testing"
)

func TestParseServiceUpdate(t *testing.T) {
	tests := []struct {
		name                   string
		body                   string
		wantTags, wantDesired  string
		wantHasTags, wantHasDs bool
		wantErr                error
	}{
		{
			name:     "full twin body with identity fields",
			body:     `{"deviceId":"dev1","etag":"AAAAAAAAAAM=","version":6,"status":"enabled","tags":{"site":{"floor":"3"}},"properties":{"desired":{"fanSpeed":4,"schedule":null,"f":2.50},"reported":{"x":1}}}`,
			wantTags: `{"site":{"floor":"3"}}`, wantHasTags: true,
			wantDesired: `{"fanSpeed":4,"schedule":null,"f":2.50}`, wantHasDs: true,
		},
		{name: "tags only", body: `{"tags":{}}`, wantTags: `{}`, wantHasTags: true},
		{name: "desired only", body: `{"properties":{"desired":{"a":1}}}`, wantDesired: `{"a":1}`, wantHasDs: true},
		{name: "null sections count as absent", body: `{"tags":null,"properties":{"desired":null}}`},
		{name: "null properties", body: `{"properties":null}`},
		{name: "reported ignored whatever its type", body: `{"properties":{"reported":"nonsense"}}`},
		{name: "empty object", body: `{}`},
		{name: "tags not an object", body: `{"tags":5}`, wantErr: ErrInvalid},
		{name: "properties not an object", body: `{"properties":[]}`, wantErr: ErrInvalid},
		{name: "desired not an object", body: `{"properties":{"desired":"x"}}`, wantErr: ErrInvalid},
		{name: "body not an object", body: `[]`, wantErr: ErrInvalid},
		{name: "malformed JSON", body: `{"tags":`, wantErr: ErrInvalid},
		{name: "empty body", body: ``, wantErr: ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tags, desired, hasTags, hasDesired, err := ParseServiceUpdate([]byte(tt.body))
			if !errors.Is(err, tt.wantErr) || (err != nil) != (tt.wantErr != nil) {
				t.Fatalf("error: got %v, want %v", err, tt.wantErr)
			}
			if string(tags) != tt.wantTags || hasTags != tt.wantHasTags {
				t.Errorf("tags: got %s (present %t), want %s (present %t)", tags, hasTags, tt.wantTags, tt.wantHasTags)
			}
			if string(desired) != tt.wantDesired || hasDesired != tt.wantHasDs {
				t.Errorf("desired: got %s (present %t), want %s (present %t)", desired, hasDesired, tt.wantDesired, tt.wantHasDs)
			}
		})
	}
}

func TestPatchTwin(t *testing.T) {
	d := build(t, op{"tags", `{"site":{"building":"B7"}}`}, op{"desired", `{"fanSpeed":3,"schedule":"night"}`})
	n, err := d.PatchTwin([]byte(`{"tags":{"site":{"floor":"3"}},"properties":{"desired":{"fanSpeed":4,"schedule":null}}}`), at(5))
	if err != nil {
		t.Fatalf("PatchTwin: %v", err)
	}
	if got, want := string(n), `{"fanSpeed":4,"schedule":null,"$version":3}`; got != want {
		t.Errorf("notification: got %s, want %s", got, want)
	}
	if got, want := string(d.Tags()), `{"site":{"building":"B7","floor":"3"}}`; got != want {
		t.Errorf("tags: got %s, want %s", got, want)
	}
	if got, want := string(d.DeviceView()), `{"desired":{"fanSpeed":4,"$version":3},"reported":{"$version":1}}`; got != want {
		t.Errorf("DeviceView: got %s, want %s", got, want)
	}
}

// TestServiceWriteAtomic checks that a body whose second section is bad
// writes neither section.
func TestServiceWriteAtomic(t *testing.T) {
	tests := []struct {
		name    string
		o       op
		wantErr error
	}{
		{name: "PATCH bad desired", o: op{"patchTwin", `{"tags":{"ok":1},"properties":{"desired":{"bad.key":1}}}`}, wantErr: ErrInvalid},
		{name: "PATCH bad tags", o: op{"patchTwin", `{"tags":{"$bad":1},"properties":{"desired":{"ok":1}}}`}, wantErr: ErrInvalid},
		{name: "PUT desired too large", o: op{"replaceTwin", `{"tags":{"ok":1},"properties":{"desired":` + bigObject(9, 4000) + `}}`}, wantErr: ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := build(t, op{"tags", `{"t":1}`}, op{"desired", `{"d":1}`})
			before := stored(t, d)
			n, err := do(d, tt.o, at(5))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error: got %v, want %v", err, tt.wantErr)
			}
			if n != nil {
				t.Errorf("notification on error: got %s, want none", n)
			}
			if got := stored(t, d); got != before {
				t.Errorf("doc changed by a failed write:\ngot  %s\nwant %s", got, before)
			}
		})
	}
}
