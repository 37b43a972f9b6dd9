// SPDX-License-Identifier: MIT

package twin

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestMarshalFormat(t *testing.T) {
	d := build(t,
		op{"tags", `{"site":"B7"}`},
		op{"desired", `{"fan":{"speed":3}}`},
		op{"reported", `{"fw":"1.0"}`},
	)
	want := `{"format":1,"version":5,"etag":3,"tags":{"site":"B7"},` +
		`"desired":{"fan":{"speed":3},"$metadata":{"$lastUpdated":"` + ts(2) + `","$lastUpdatedVersion":2,` +
		`"fan":{"$lastUpdated":"` + ts(2) + `","$lastUpdatedVersion":2,"speed":{"$lastUpdated":"` + ts(2) + `","$lastUpdatedVersion":2}}},"$version":2},` +
		`"reported":{"fw":"1.0","$metadata":{"$lastUpdated":"` + ts(3) + `","fw":{"$lastUpdated":"` + ts(3) + `"}},"$version":2}}`
	if diff := cmp.Diff(want, stored(t, d)); diff != "" {
		t.Errorf("Marshal (-want +got):\n%s", diff)
	}
}

func TestStorageRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		ops  []op
	}{
		{name: "new twin"},
		{
			name: "everything",
			ops: []op{
				{"tags", `{"site":{"building":"B7","floor":3},"owner":"ÅSA \"q\" \\ \n"}`},
				{"desired", `{"fan":{"speed":3,"curve":[1.0,2.50,{"x":-0}]},"big":4503599627370495,"tiny":1e-300}`},
				{"desired", `{"fan":{"speed":null},"mode":"eco"}`},
				{"reported", `{"net":{"ip":"10.0.0.2"},"sensors":[[1,2],[true]],"日本":"語"}`},
				{"reported", `{"net":null}`},
				{"replaceTags", `{"z":{}}`},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := build(t, tt.ops...)
			b := stored(t, d)
			u, err := Unmarshal([]byte(b))
			if err != nil {
				t.Fatalf("Unmarshal: %v", err)
			}
			if got := stored(t, u); got != b {
				t.Fatalf("round trip:\ngot  %s\nwant %s", got, b)
			}
			checkSameDoc(t, u, d)
			// The copy must behave like the original, metadata included.
			next := []op{{"desired", `{"fan":{"speed":5}}`}, {"reported", `{"sensors":null}`}, {"tags", `{"z":{"a":1}}`}}
			for _, o := range next {
				nu, erru := do(u, o, at(20))
				nd, errd := do(d, o, at(20))
				if erru != nil || errd != nil {
					t.Fatalf("%s: errors %v / %v", o.kind, erru, errd)
				}
				if string(nu) != string(nd) {
					t.Errorf("%s notification: got %s, want %s", o.kind, nu, nd)
				}
			}
			checkSameDoc(t, u, d)
		})
	}
}

// checkSameDoc compares every view of got and want.
func checkSameDoc(t *testing.T, got, want *Doc) {
	t.Helper()
	if diff := cmp.Diff(stored(t, want), stored(t, got)); diff != "" {
		t.Errorf("Marshal (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(string(want.Properties()), string(got.Properties())); diff != "" {
		t.Errorf("Properties (-want +got):\n%s", diff)
	}
	if g, w := got.ETag(), want.ETag(); g != w {
		t.Errorf("ETag: got %s, want %s", g, w)
	}
	if g, w := got.Version(), want.Version(); g != w {
		t.Errorf("Version: got %d, want %d", g, w)
	}
}

func TestUnmarshalCorrupt(t *testing.T) {
	const meta = `"$metadata":{"$lastUpdated":"2024-05-02T09:10:00.0000000Z"}`
	good := `{"format":1,"version":2,"etag":1,"tags":{},"desired":{` + meta + `,"$version":1},"reported":{` + meta + `,"$version":1}}`
	if _, err := Unmarshal([]byte(good)); err != nil {
		t.Fatalf("Unmarshal(good): %v", err)
	}
	tests := []struct {
		name string
		b    string
	}{
		{name: "not JSON", b: `nope`},
		{name: "not an object", b: `[]`},
		{name: "no format", b: `{"version":2}`},
		{name: "unknown format", b: `{"format":2,"version":2,"etag":1}`},
		{name: "version not a number", b: `{"format":1,"version":"2","etag":1}`},
		{name: "etag not an integer", b: `{"format":1,"version":2,"etag":1.5}`},
		{name: "tags missing", b: `{"format":1,"version":2,"etag":1,"desired":{` + meta + `,"$version":1},"reported":{` + meta + `,"$version":1}}`},
		{name: "reported missing", b: `{"format":1,"version":2,"etag":1,"tags":{},"desired":{` + meta + `,"$version":1}}`},
		{name: "section without $version", b: `{"format":1,"version":2,"etag":1,"tags":{},"desired":{` + meta + `},"reported":{` + meta + `,"$version":1}}`},
		{name: "section without $metadata", b: `{"format":1,"version":2,"etag":1,"tags":{},"desired":{"$version":1},"reported":{` + meta + `,"$version":1}}`},
		{name: "member without metadata", b: `{"format":1,"version":2,"etag":1,"tags":{},"desired":{"a":1,` + meta + `,"$version":1},"reported":{` + meta + `,"$version":1}}`},
		{name: "bad time", b: `{"format":1,"version":2,"etag":1,"tags":{},"desired":{"$metadata":{"$lastUpdated":"yesterday"},"$version":1},"reported":{` + meta + `,"$version":1}}`},
		{name: "bad lastUpdatedVersion", b: `{"format":1,"version":2,"etag":1,"tags":{},"desired":{"$metadata":{"$lastUpdated":"2024-05-02T09:10:00Z","$lastUpdatedVersion":"x"},"$version":1},"reported":{` + meta + `,"$version":1}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := Unmarshal([]byte(tt.b))
			if !errors.Is(err, errCorrupt) {
				t.Errorf("got (%v, %v), want an error wrapping %v", d, err, errCorrupt)
			}
		})
	}
}
