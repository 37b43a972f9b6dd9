// SPDX-License-Identifier: MIT

package twin

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestParseServiceUpdate(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		want    ServiceUpdate
		wantErr error
	}{
		{
			name: "full twin body with identity fields",
			body: `{"deviceId":"dev1","etag":"AAAAAAAAAAM=","version":6,"status":"enabled","tags":{"site":{"floor":"3"}},"properties":{"desired":{"fanSpeed":4,"schedule":null,"f":2.50},"reported":{"x":1}}}`,
			want: ServiceUpdate{Tags: []byte(`{"site":{"floor":"3"}}`), Desired: []byte(`{"fanSpeed":4,"schedule":null,"f":2.50}`)},
		},
		{name: "tags only", body: `{"tags":{}}`, want: ServiceUpdate{Tags: []byte(`{}`)}},
		{name: "desired only", body: `{"properties":{"desired":{"a":1}}}`, want: ServiceUpdate{Desired: []byte(`{"a":1}`)}},
		{name: "null sections clear them", body: `{"tags":null,"properties":{"desired":null}}`,
			want: ServiceUpdate{Tags: []byte(`{}`), Desired: []byte(`{}`), ClearTags: true, ClearDesired: true}},
		{name: "null properties", body: `{"properties":null}`},
		{name: "reported ignored whatever its type", body: `{"properties":{"reported":"nonsense"}}`},
		{name: "empty object", body: `{}`},
		{name: "desired without the properties wrapper", body: `{"desired":{"a":1}}`, wantErr: ErrInvalid},
		{name: "reported without the properties wrapper", body: `{"reported":{"a":1}}`, wantErr: ErrInvalid},
		{name: "tags not an object", body: `{"tags":5}`, wantErr: ErrInvalid},
		{name: "properties not an object", body: `{"properties":[]}`, wantErr: ErrInvalid},
		{name: "desired not an object", body: `{"properties":{"desired":"x"}}`, wantErr: ErrInvalid},
		{name: "body not an object", body: `[]`, wantErr: ErrInvalid},
		{name: "malformed JSON", body: `{"tags":`, wantErr: ErrInvalid},
		{name: "empty body", body: ``, wantErr: ErrInvalid},
		{name: "echoed desired metadata and version skipped", body: `{"properties":{"desired":{"a":1,"$metadata":{"a":{"$lastUpdated":"x"}},"$version":3}}}`,
			want: ServiceUpdate{Desired: []byte(`{"a":1}`)}},
		{name: "desired outside the wrapper refused however deep", body: `{"desired":` + strings.Repeat("[", 15) + strings.Repeat("]", 15) + `}`, wantErr: ErrInvalid},
		{name: "content rules checked", body: `{"tags":{"bad key":1}}`, wantErr: ErrInvalid},
		{name: "content rules checked in desired", body: `{"properties":{"desired":{"a":[null]}}}`, wantErr: ErrInvalid},
		{name: "nesting past the parser's limit in an ignored section", body: `{"properties":{"reported":` + strings.Repeat("[", 30) + strings.Repeat("]", 30) + `}}`, wantErr: ErrInvalid},
		{name: "more values than the parser keeps", body: `{"tags":{"a":[` + strings.Repeat("1,", maxParseValues) + `1]}}`, wantErr: ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseServiceUpdate([]byte(tt.body))
			if !errors.Is(err, tt.wantErr) || (err != nil) != (tt.wantErr != nil) {
				t.Fatalf("error: got %v, want %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty(), cmpopts.IgnoreUnexported(ServiceUpdate{})); diff != "" {
				t.Errorf("update (-want +got):\n%s", diff)
			}
		})
	}
}

// TestPatchTwinNullClearsSection: a PATCH whose tags or properties.desired
// is null removes every member of that section; desired gets a new
// $version and a notification that deletes each former member.
func TestPatchTwinNullClearsSection(t *testing.T) {
	d := build(t, op{"tags", `{"site":"B7","floor":3}`}, op{"desired", `{"fanSpeed":3,"schedule":{"night":true}}`})
	v := d.Version()
	n, err := d.PatchTwin([]byte(`{"tags":null,"properties":{"desired":null}}`), at(5))
	if err != nil {
		t.Fatalf("PatchTwin: %v", err)
	}
	if got, want := string(n), `{"fanSpeed":null,"schedule":null,"$version":3}`; got != want {
		t.Errorf("notification: got %s, want %s", got, want)
	}
	if got := string(d.Tags()); got != `{}` {
		t.Errorf("tags: got %s, want {}", got)
	}
	if got, want := string(d.DeviceView()), `{"desired":{"$version":3},"reported":{"$version":1}}`; got != want {
		t.Errorf("device view: got %s, want %s", got, want)
	}
	if d.Version() != v+1 {
		t.Errorf("twin version: got %d, want %d", d.Version(), v+1)
	}
	// Clearing an already empty desired section still counts as a write.
	if n, err = d.PatchTwin([]byte(`{"properties":{"desired":null}}`), at(6)); err != nil || string(n) != `{"$version":4}` {
		t.Errorf("clearing empty desired: got %s, %v; want {\"$version\":4}", n, err)
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
