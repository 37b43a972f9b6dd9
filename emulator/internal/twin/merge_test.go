// SPDX-License-Identifier: MIT

package twin

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestPatchReportedMerge(t *testing.T) {
	tests := []struct {
		name        string
		base        []string // reported patches applied first
		patch       string
		want        string // reported members after the patch
		wantChanged bool
	}{
		{name: "add to empty", patch: `{"a":1}`, want: `{"a":1}`, wantChanged: true},
		{name: "untouched members stay", base: []string{`{"a":1,"b":2}`}, patch: `{"b":3,"c":4}`, want: `{"a":1,"b":3,"c":4}`, wantChanged: true},
		{name: "null deletes", base: []string{`{"a":1,"b":2}`}, patch: `{"a":null}`, want: `{"b":2}`, wantChanged: true},
		{name: "deleting an absent key changes nothing", base: []string{`{"a":1}`}, patch: `{"z":null}`, want: `{"a":1}`},
		{name: "empty patch changes nothing", base: []string{`{"a":1}`}, patch: `{}`, want: `{"a":1}`},
		{name: "same value still counts", base: []string{`{"a":1}`}, patch: `{"a":1}`, want: `{"a":1}`, wantChanged: true},
		{name: "nested merge", base: []string{`{"o":{"x":1,"y":2}}`}, patch: `{"o":{"y":3,"z":{"k":true}}}`, want: `{"o":{"x":1,"y":3,"z":{"k":true}}}`, wantChanged: true},
		{name: "nested delete", base: []string{`{"o":{"x":1,"y":2}}`}, patch: `{"o":{"x":null}}`, want: `{"o":{"y":2}}`, wantChanged: true},
		{name: "nested delete of absent key changes nothing", base: []string{`{"o":{"x":1}}`}, patch: `{"o":{"q":null}}`, want: `{"o":{"x":1}}`},
		{name: "delete subtree", base: []string{`{"o":{"x":{"y":1}},"k":1}`}, patch: `{"o":null}`, want: `{"k":1}`, wantChanged: true},
		{name: "nested create drops nulls", patch: `{"o":{"a":{"b":1,"c":null}}}`, want: `{"o":{"a":{"b":1}}}`, wantChanged: true},
		{name: "empty object created", patch: `{"o":{}}`, want: `{"o":{}}`, wantChanged: true},
		{name: "empty object over object changes nothing", base: []string{`{"o":{"a":1}}`}, patch: `{"o":{}}`, want: `{"o":{"a":1}}`},
		{name: "object replaces scalar", base: []string{`{"o":1}`}, patch: `{"o":{"a":1,"b":null}}`, want: `{"o":{"a":1}}`, wantChanged: true},
		{name: "scalar replaces object", base: []string{`{"o":{"a":1}}`}, patch: `{"o":"s"}`, want: `{"o":"s"}`, wantChanged: true},
		{name: "array replaced whole", base: []string{`{"l":[1,2,3]}`}, patch: `{"l":[4]}`, want: `{"l":[4]}`, wantChanged: true},
		{name: "array of objects and arrays", patch: `{"l":[{"a":[1,2]},[true,"x"],[]]}`, want: `{"l":[{"a":[1,2]},[true,"x"],[]]}`, wantChanged: true},
		{name: "first-appearance order kept", base: []string{`{"b":1,"a":2}`}, patch: `{"c":3,"b":4}`, want: `{"b":4,"a":2,"c":3}`, wantChanged: true},
		{name: "deleted then re-added goes last", base: []string{`{"a":1,"b":2}`, `{"a":null}`}, patch: `{"a":3}`, want: `{"b":2,"a":3}`, wantChanged: true},
		{name: "numbers kept literally", patch: `{"f":1.0,"e":1E3,"big":4503599627370495,"neg":-0.50,"z":-0}`, want: `{"f":1.0,"e":1E3,"big":4503599627370495,"neg":-0.50,"z":-0}`, wantChanged: true},
		{name: "strings re-escaped minimally", patch: `{"s":"a\"b\\c\n\u0001\u00e9\/<>&\u2028"}`, want: "{\"s\":\"a\\\"b\\\\c\\n\\u0001é/<>&\u2028\"}", wantChanged: true},
		{name: "repeated key: last value, first position", patch: `{"a":1,"b":2,"a":3}`, want: `{"a":3,"b":2}`, wantChanged: true},
		{name: "repeated key ending in null deletes", base: []string{`{"a":1}`}, patch: `{"a":2,"a":null}`, want: `{}`, wantChanged: true},
		{name: "whitespace in body", patch: " {\n \"a\" : [ 1 , 2 ] }\n", want: `{"a":[1,2]}`, wantChanged: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := New(t0)
			for _, p := range tt.base {
				if _, err := d.PatchReported([]byte(p), at(1)); err != nil {
					t.Fatalf("base patch %s: %v", p, err)
				}
			}
			before := d.ReportedVersion()
			v, err := d.PatchReported([]byte(tt.patch), at(2))
			if err != nil {
				t.Fatalf("PatchReported(%s): %v", tt.patch, err)
			}
			if got := string(appendValue(nil, d.reported)); got != tt.want {
				t.Errorf("reported: got %s, want %s", got, tt.want)
			}
			wantV := before
			if tt.wantChanged {
				wantV++
			}
			if v != wantV || d.ReportedVersion() != wantV {
				t.Errorf("version: got %d (ReportedVersion %d), want %d", v, d.ReportedVersion(), wantV)
			}
		})
	}
}

func TestDesiredMetadata(t *testing.T) {
	d := New(t0)
	steps := []struct {
		patch      string
		wantNotify string // "" for none
	}{
		{`{"fan":{"speed":3,"mode":"auto"},"led":true}`, `{"fan":{"speed":3,"mode":"auto"},"led":true,"$version":2}`},
		{`{"fan":{"speed":4}}`, `{"fan":{"speed":4},"$version":3}`},
		{`{"led":null,"gone":null}`, `{"led":null,"gone":null,"$version":4}`},
		{`{"fan":{"ghost":null}}`, ""},
	}
	for i, s := range steps {
		n, err := d.PatchDesired([]byte(s.patch), at(i+1))
		if err != nil {
			t.Fatalf("step %d PatchDesired(%s): %v", i+1, s.patch, err)
		}
		if string(n) != s.wantNotify {
			t.Errorf("step %d notification: got %q, want %q", i+1, n, s.wantNotify)
		}
	}
	want := `{"desired":{"fan":{"speed":4,"mode":"auto"},"$metadata":{` +
		`"$lastUpdated":"` + ts(3) + `","$lastUpdatedVersion":4,` +
		`"fan":{"$lastUpdated":"` + ts(2) + `","$lastUpdatedVersion":3,` +
		`"speed":{"$lastUpdated":"` + ts(2) + `","$lastUpdatedVersion":3},` +
		`"mode":{"$lastUpdated":"` + ts(1) + `","$lastUpdatedVersion":2}}},"$version":4},` +
		`"reported":{"$metadata":{"$lastUpdated":"` + ts(0) + `"},"$version":1}}`
	if diff := cmp.Diff(want, string(d.Properties())); diff != "" {
		t.Errorf("Properties mismatch (-want +got):\n%s", diff)
	}
}

func TestReportedMetadata(t *testing.T) {
	d := build(t,
		op{"reported", `{"net":{"ip":"10.0.0.2","rssi":-60},"fw":"1.0","sensors":[{"id":1}]}`},
		op{"reported", `{"net":{"rssi":-55}}`},
		op{"reported", `{"fw":null}`},
	)
	want := `{"net":{"ip":"10.0.0.2","rssi":-55},"sensors":[{"id":1}],"$metadata":{` +
		`"$lastUpdated":"` + ts(3) + `",` +
		`"net":{"$lastUpdated":"` + ts(2) + `",` +
		`"ip":{"$lastUpdated":"` + ts(1) + `"},` +
		`"rssi":{"$lastUpdated":"` + ts(2) + `"}},` +
		`"sensors":{"$lastUpdated":"` + ts(1) + `"}},"$version":4}`
	got := string(appendSection(nil, d.reported, d.reportedVersion, true))
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("reported section mismatch (-want +got):\n%s", diff)
	}
}

func TestMetadataTime(t *testing.T) {
	tests := []struct {
		name string
		now  string
		want string
	}{
		{name: "UTC whole second", now: "2024-05-02T09:10:00Z", want: "2024-05-02T09:10:00.0000000Z"},
		{name: "offset converted to UTC", now: "2024-05-02T11:10:00.5+02:00", want: "2024-05-02T09:10:00.5000000Z"},
		{name: "nanoseconds truncated to 100ns", now: "2024-05-02T09:10:00.123456789Z", want: "2024-05-02T09:10:00.1234567Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now, err := time.Parse(time.RFC3339Nano, tt.now)
			if err != nil {
				t.Fatal(err)
			}
			d := New(now)
			want := `{"desired":{"$metadata":{"$lastUpdated":"` + tt.want + `"},"$version":1},` +
				`"reported":{"$metadata":{"$lastUpdated":"` + tt.want + `"},"$version":1}}`
			if got := string(d.Properties()); got != want {
				t.Errorf("got %s, want %s", got, want)
			}
		})
	}
}
