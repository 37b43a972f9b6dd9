// SPDX-License-Identifier: MIT

package twin

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestVersionsAndETag(t *testing.T) {
	desired := op{"desired", `{"fanSpeed":3}`}
	tests := []struct {
		name                 string
		ops                  []op
		wantVersion          int64
		wantETag             string
		wantDesired, wantRep int64
	}{
		{name: "new twin", wantVersion: 2, wantETag: "AAAAAAAAAAE=", wantDesired: 1, wantRep: 1},
		{
			// azure-docs #22361: desired 4 + reported 1 + one tags write.
			name:        "desired 4, reported 1, one tags write",
			ops:         []op{desired, desired, desired, {"tags", `{"site":"B7"}`}},
			wantVersion: 6, wantETag: "AAAAAAAAAAU=", wantDesired: 4, wantRep: 1,
		},
		{
			// azure-iot-explorer #563: desired 26, reported 1, no tags.
			name:        "desired 26",
			ops:         repeat(desired, 25),
			wantVersion: 27, wantETag: "AAAAAAAAABo=", wantDesired: 26, wantRep: 1,
		},
		{
			name:        "reported writes leave the etag",
			ops:         repeat(op{"reported", `{"t":1}`}, 3),
			wantVersion: 5, wantETag: "AAAAAAAAAAE=", wantDesired: 1, wantRep: 4,
		},
		{
			name: "writes that change nothing count nothing",
			ops: []op{
				{"tags", `{"x":null}`}, {"desired", `{"x":null}`}, {"reported", `{"x":null}`},
				{"patchTwin", `{"tags":{},"properties":{"desired":{}}}`},
			},
			wantVersion: 2, wantETag: "AAAAAAAAAAE=", wantDesired: 1, wantRep: 1,
		},
		{
			name:        "replacements always count",
			ops:         []op{{"replaceTags", `{}`}, {"replaceDesired", `{}`}},
			wantVersion: 4, wantETag: "AAAAAAAAAAM=", wantDesired: 2, wantRep: 1,
		},
		{
			name:        "combined tags and desired write counts once",
			ops:         []op{{"patchTwin", `{"tags":{"a":1},"properties":{"desired":{"b":2}}}`}},
			wantVersion: 3, wantETag: "AAAAAAAAAAI=", wantDesired: 2, wantRep: 1,
		},
		{
			name:        "combined write changing tags only",
			ops:         []op{{"patchTwin", `{"tags":{"a":1},"properties":{"desired":{"b":null}}}`}},
			wantVersion: 3, wantETag: "AAAAAAAAAAI=", wantDesired: 1, wantRep: 1,
		},
		{
			name:        "etag counter above one byte",
			ops:         repeat(desired, 299),
			wantVersion: 301, wantETag: "AAAAAAAAASw=", wantDesired: 300, wantRep: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := build(t, tt.ops...)
			if got := d.Version(); got != tt.wantVersion {
				t.Errorf("Version: got %d, want %d", got, tt.wantVersion)
			}
			if got := d.ETag(); got != tt.wantETag {
				t.Errorf("ETag: got %s, want %s", got, tt.wantETag)
			}
			if got := d.DesiredVersion(); got != tt.wantDesired {
				t.Errorf("DesiredVersion: got %d, want %d", got, tt.wantDesired)
			}
			if got := d.ReportedVersion(); got != tt.wantRep {
				t.Errorf("ReportedVersion: got %d, want %d", got, tt.wantRep)
			}
		})
	}
}

func repeat(o op, n int) []op {
	out := make([]op, n)
	for i := range out {
		out[i] = o
	}
	return out
}

func TestViews(t *testing.T) {
	tests := []struct {
		name           string
		ops            []op
		wantDevice     string
		wantTags       string
		wantProperties string
	}{
		{
			name:           "new twin",
			wantDevice:     `{"desired":{"$version":1},"reported":{"$version":1}}`,
			wantTags:       `{}`,
			wantProperties: `{"desired":{"$metadata":{"$lastUpdated":"` + ts(0) + `"},"$version":1},"reported":{"$metadata":{"$lastUpdated":"` + ts(0) + `"},"$version":1}}`,
		},
		{
			name: "all sections written",
			ops: []op{
				{"tags", `{"site":{"building":"B7"}}`},
				{"desired", `{"fanSpeed":3}`},
				{"reported", `{"fanSpeed":2,"firmware":"1.4.0"}`},
			},
			wantDevice: `{"desired":{"fanSpeed":3,"$version":2},"reported":{"fanSpeed":2,"firmware":"1.4.0","$version":2}}`,
			wantTags:   `{"site":{"building":"B7"}}`,
			wantProperties: `{"desired":{"fanSpeed":3,"$metadata":{"$lastUpdated":"` + ts(2) + `","$lastUpdatedVersion":2,` +
				`"fanSpeed":{"$lastUpdated":"` + ts(2) + `","$lastUpdatedVersion":2}},"$version":2},` +
				`"reported":{"fanSpeed":2,"firmware":"1.4.0","$metadata":{"$lastUpdated":"` + ts(3) + `",` +
				`"fanSpeed":{"$lastUpdated":"` + ts(3) + `"},"firmware":{"$lastUpdated":"` + ts(3) + `"}},"$version":2}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := build(t, tt.ops...)
			if diff := cmp.Diff(tt.wantDevice, string(d.DeviceView())); diff != "" {
				t.Errorf("DeviceView (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantTags, string(d.Tags())); diff != "" {
				t.Errorf("Tags (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantProperties, string(d.Properties())); diff != "" {
				t.Errorf("Properties (-want +got):\n%s", diff)
			}
		})
	}
}

func TestClone(t *testing.T) {
	d := build(t,
		op{"tags", `{"a":{"b":1}}`},
		op{"desired", `{"c":{"d":[1,{"e":2}]}}`},
		op{"reported", `{"f":{"g":true}}`},
	)
	before := stored(t, d)
	c := d.Clone()
	if got := stored(t, c); got != before {
		t.Fatalf("clone: got %s, want %s", got, before)
	}
	for _, o := range []op{
		{"tags", `{"a":{"b":2,"x":1}}`},
		{"desired", `{"c":{"d":null,"y":1}}`},
		{"reported", `{"f":{"g":null}}`},
	} {
		if _, err := do(c, o, at(9)); err != nil {
			t.Fatalf("%s on clone: %v", o.kind, err)
		}
	}
	if got := stored(t, d); got != before {
		t.Errorf("original changed by writes to its clone: got %s, want %s", got, before)
	}
}

func TestReplace(t *testing.T) {
	base := []op{
		{"tags", `{"old":1}`},
		{"desired", `{"a":1,"b":{"c":2}}`},
	}
	tests := []struct {
		name        string
		o           op
		wantNotify  string
		wantTags    string
		wantDevice  string
		wantMetaVer string // desired $metadata after the write
	}{
		{
			name:       "desired replaced, removed keys notified as null",
			o:          op{"replaceDesired", `{"b":{"d":3},"e":null,"n":[1]}`},
			wantNotify: `{"b":{"d":3},"n":[1],"a":null,"$version":3}`,
			wantTags:   `{"old":1}`,
			wantDevice: `{"desired":{"b":{"d":3},"n":[1],"$version":3},"reported":{"$version":1}}`,
			wantMetaVer: `{"$lastUpdated":"` + ts(9) + `","$lastUpdatedVersion":3,` +
				`"b":{"$lastUpdated":"` + ts(9) + `","$lastUpdatedVersion":3,"d":{"$lastUpdated":"` + ts(9) + `","$lastUpdatedVersion":3}},` +
				`"n":{"$lastUpdated":"` + ts(9) + `","$lastUpdatedVersion":3}}`,
		},
		{
			name:        "null member of a replacement is a removal",
			o:           op{"replaceDesired", `{"a":null,"b":{"c":2,"x":null}}`},
			wantNotify:  `{"b":{"c":2},"a":null,"$version":3}`,
			wantTags:    `{"old":1}`,
			wantDevice:  `{"desired":{"b":{"c":2},"$version":3},"reported":{"$version":1}}`,
			wantMetaVer: `{"$lastUpdated":"` + ts(9) + `","$lastUpdatedVersion":3,"b":{"$lastUpdated":"` + ts(9) + `","$lastUpdatedVersion":3,"c":{"$lastUpdated":"` + ts(9) + `","$lastUpdatedVersion":3}}}`,
		},
		{
			name:        "desired emptied",
			o:           op{"replaceDesired", `{}`},
			wantNotify:  `{"a":null,"b":null,"$version":3}`,
			wantTags:    `{"old":1}`,
			wantDevice:  `{"desired":{"$version":3},"reported":{"$version":1}}`,
			wantMetaVer: `{"$lastUpdated":"` + ts(9) + `","$lastUpdatedVersion":3}`,
		},
		{
			name:        "identical desired still notifies in full",
			o:           op{"replaceDesired", `{"a":1,"b":{"c":2}}`},
			wantNotify:  `{"a":1,"b":{"c":2},"$version":3}`,
			wantTags:    `{"old":1}`,
			wantDevice:  `{"desired":{"a":1,"b":{"c":2},"$version":3},"reported":{"$version":1}}`,
			wantMetaVer: `{"$lastUpdated":"` + ts(9) + `","$lastUpdatedVersion":3,"a":{"$lastUpdated":"` + ts(9) + `","$lastUpdatedVersion":3},"b":{"$lastUpdated":"` + ts(9) + `","$lastUpdatedVersion":3,"c":{"$lastUpdated":"` + ts(9) + `","$lastUpdatedVersion":3}}}`,
		},
		{
			name:       "echoed $metadata and $version ignored",
			o:          op{"replaceDesired", `{"a":5,"$metadata":{"$lastUpdated":"2020-01-01T00:00:00Z"},"$version":2}`},
			wantNotify: `{"a":5,"b":null,"$version":3}`,
			wantTags:   `{"old":1}`,
			wantDevice: `{"desired":{"a":5,"$version":3},"reported":{"$version":1}}`,
			wantMetaVer: `{"$lastUpdated":"` + ts(9) + `","$lastUpdatedVersion":3,` +
				`"a":{"$lastUpdated":"` + ts(9) + `","$lastUpdatedVersion":3}}`,
		},
		{
			name:       "tags replaced",
			o:          op{"replaceTags", `{"new":{"x":1},"dropped":null}`},
			wantTags:   `{"new":{"x":1}}`,
			wantDevice: `{"desired":{"a":1,"b":{"c":2},"$version":2},"reported":{"$version":1}}`,
			wantMetaVer: `{"$lastUpdated":"` + ts(2) + `","$lastUpdatedVersion":2,"a":{"$lastUpdated":"` + ts(2) + `","$lastUpdatedVersion":2},` +
				`"b":{"$lastUpdated":"` + ts(2) + `","$lastUpdatedVersion":2,"c":{"$lastUpdated":"` + ts(2) + `","$lastUpdatedVersion":2}}}`,
		},
		{
			name:        "PUT replaces both sections present",
			o:           op{"replaceTwin", `{"deviceId":"dev1","etag":"AAAAAAAAAAM=","tags":{"t":1},"properties":{"desired":{"z":true},"reported":{"r":1}}}`},
			wantNotify:  `{"z":true,"a":null,"b":null,"$version":3}`,
			wantTags:    `{"t":1}`,
			wantDevice:  `{"desired":{"z":true,"$version":3},"reported":{"$version":1}}`,
			wantMetaVer: `{"$lastUpdated":"` + ts(9) + `","$lastUpdatedVersion":3,"z":{"$lastUpdated":"` + ts(9) + `","$lastUpdatedVersion":3}}`,
		},
		{
			name:       "PUT without desired leaves it alone",
			o:          op{"replaceTwin", `{"tags":{"t":1}}`},
			wantTags:   `{"t":1}`,
			wantDevice: `{"desired":{"a":1,"b":{"c":2},"$version":2},"reported":{"$version":1}}`,
			wantMetaVer: `{"$lastUpdated":"` + ts(2) + `","$lastUpdatedVersion":2,"a":{"$lastUpdated":"` + ts(2) + `","$lastUpdatedVersion":2},` +
				`"b":{"$lastUpdated":"` + ts(2) + `","$lastUpdatedVersion":2,"c":{"$lastUpdated":"` + ts(2) + `","$lastUpdatedVersion":2}}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := build(t, base...)
			n, err := do(d, tt.o, at(9))
			if err != nil {
				t.Fatalf("%s(%s): %v", tt.o.kind, tt.o.body, err)
			}
			if got := string(n); got != tt.wantNotify {
				t.Errorf("notification: got %q, want %q", got, tt.wantNotify)
			}
			if got := string(d.Tags()); got != tt.wantTags {
				t.Errorf("tags: got %s, want %s", got, tt.wantTags)
			}
			if diff := cmp.Diff(tt.wantDevice, string(d.DeviceView())); diff != "" {
				t.Errorf("DeviceView (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantMetaVer, string(appendMeta(nil, d.desired))); diff != "" {
				t.Errorf("desired $metadata (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPatchDesiredNotification(t *testing.T) {
	tests := []struct {
		name  string
		patch string
		want  string
	}{
		{name: "as sent plus version", patch: `{"fanSpeed":4,"schedule":null}`, want: `{"fanSpeed":4,"schedule":null,"$version":3}`},
		{name: "unchanged values still sent", patch: `{"fanSpeed":3}`, want: `{"fanSpeed":3,"$version":3}`},
		{name: "nested, order and numbers kept", patch: `{"z":{"b":1.50,"a":null},"y":[1,2]}`, want: `{"z":{"b":1.50,"a":null},"y":[1,2],"$version":3}`},
		{name: "echoed fields dropped", patch: `{"$version":7,"x":1,"$metadata":{"x":{}}}`, want: `{"x":1,"$version":3}`},
		{name: "only absent deletes: no notification", patch: `{"nope":null}`, want: ``},
		{name: "empty patch: no notification", patch: `{}`, want: ``},
		{name: "only echoed fields: no notification", patch: `{"$version":2}`, want: ``},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := build(t, op{"desired", `{"fanSpeed":3,"schedule":"x"}`})
			n, err := d.PatchDesired([]byte(tt.patch), at(5))
			if err != nil {
				t.Fatalf("PatchDesired(%s): %v", tt.patch, err)
			}
			if got := string(n); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			wantVersion := int64(2)
			if tt.want != "" {
				wantVersion = 3
			}
			if got := d.DesiredVersion(); got != wantVersion {
				t.Errorf("DesiredVersion: got %d, want %d", got, wantVersion)
			}
			if tt.want != "" && !strings.HasSuffix(string(d.DeviceView()), `"$version":3},"reported":{"$version":1}}`) {
				t.Errorf("DeviceView does not show desired $version 3: %s", d.DeviceView())
			}
		})
	}
}
