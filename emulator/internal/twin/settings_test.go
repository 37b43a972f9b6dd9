// SPDX-License-Identifier: MIT

package twin

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func setting(path []string, value string) DesiredSetting {
	return DesiredSetting{Path: path, Value: json.RawMessage(value)}
}

// desiredOf returns the desired members of d without $metadata/$version.
func desiredOf(t *testing.T, d *Doc) map[string]any {
	t.Helper()
	des, _ := d.DeviceSections()
	var m map[string]any
	if err := json.Unmarshal(des, &m); err != nil {
		t.Fatal(err)
	}
	delete(m, "$version")
	return m
}

func TestSetDesired(t *testing.T) {
	tests := []struct {
		name       string
		before     string // desired patch applied first
		settings   []DesiredSetting
		want       map[string]any
		wantNotify string // "" for no notification
	}{
		{
			name:       "new section",
			settings:   []DesiredSetting{setting([]string{"chiller"}, `{"temp":38,"pressure":78}`)},
			want:       map[string]any{"chiller": map[string]any{"temp": 38.0, "pressure": 78.0}},
			wantNotify: `{"chiller":{"temp":38,"pressure":78},"$version":2}`,
		},
		{
			name:       "a setting replaces its section: members it lacks go",
			before:     `{"chiller":{"temp":1,"mode":"eco"},"other":1}`,
			settings:   []DesiredSetting{setting([]string{"chiller"}, `{"temp":38}`)},
			want:       map[string]any{"chiller": map[string]any{"temp": 38.0}, "other": 1.0},
			wantNotify: `{"chiller":{"temp":38,"mode":null},"$version":3}`,
		},
		{
			name:     "nothing to change",
			before:   `{"chiller":{"temp":38}}`,
			settings: []DesiredSetting{setting([]string{"chiller"}, `{"temp":38}`)},
			want:     map[string]any{"chiller": map[string]any{"temp": 38.0}},
		},
		{
			name:       "a later setting overrides an overlapping earlier one",
			settings:   []DesiredSetting{setting([]string{"a", "b"}, `1`), setting([]string{"a"}, `{"c":2}`)},
			want:       map[string]any{"a": map[string]any{"c": 2.0}},
			wantNotify: `{"a":{"c":2},"$version":2}`,
		},
		{
			name:       "null removes, then a value comes back",
			before:     `{"a":{"x":1}}`,
			settings:   []DesiredSetting{setting([]string{"a"}, `null`), setting([]string{"a"}, `{"y":2}`)},
			want:       map[string]any{"a": map[string]any{"y": 2.0}},
			wantNotify: `{"a":{"y":2,"x":null},"$version":3}`,
		},
		{
			name:       "whole section",
			before:     `{"a":1,"b":{"c":1}}`,
			settings:   []DesiredSetting{setting(nil, `{"b":{"d":2},"e":3}`)},
			want:       map[string]any{"b": map[string]any{"d": 2.0}, "e": 3.0},
			wantNotify: `{"b":{"d":2,"c":null},"e":3,"a":null,"$version":3}`,
		},
		{
			name:       "scalar replaces object and the reverse",
			before:     `{"a":{"x":1},"b":5}`,
			settings:   []DesiredSetting{setting([]string{"a"}, `"s"`), setting([]string{"b", "c"}, `true`)},
			want:       map[string]any{"a": "s", "b": map[string]any{"c": true}},
			wantNotify: `{"a":"s","b":{"c":true},"$version":3}`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := New(t0)
			if tc.before != "" {
				if _, err := d.PatchDesired([]byte(tc.before), at(1)); err != nil {
					t.Fatal(err)
				}
			}
			version := d.DesiredVersion()
			notify, err := d.SetDesired(tc.settings, at(2))
			if err != nil {
				t.Fatalf("SetDesired: %v", err)
			}
			if string(notify) != tc.wantNotify {
				t.Errorf("notification: got %s, want %s", notify, tc.wantNotify)
			}
			if tc.wantNotify == "" && d.DesiredVersion() != version {
				t.Errorf("desired $version moved from %d to %d without a change", version, d.DesiredVersion())
			}
			if diff := cmp.Diff(tc.want, desiredOf(t, d)); diff != "" {
				t.Errorf("desired (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSetDesiredInvalid(t *testing.T) {
	for name, settings := range map[string][]DesiredSetting{
		"malformed value":       {setting([]string{"a"}, `{`)},
		"section not an object": {setting(nil, `3`)},
		"bad key in value":      {setting([]string{"a"}, `{"b.c":1}`)},
		"string too long":       {setting([]string{"a"}, `"`+strings.Repeat("x", MaxStringBytes+1)+`"`)},
	} {
		d := New(t0)
		before := stored(t, d)
		if _, err := d.SetDesired(settings, at(1)); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: got %v, want ErrInvalid", name, err)
		}
		if stored(t, d) != before {
			t.Errorf("%s: the twin changed on a rejected write", name)
		}
		if err := CheckDesiredSettings(settings); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: CheckDesiredSettings: got %v, want ErrInvalid", name, err)
		}
	}
	if err := CheckDesiredSettings([]DesiredSetting{setting([]string{"a$b"}, `null`)}); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad path segment: got %v, want ErrInvalid", err)
	}
	if err := CheckDesiredSettings([]DesiredSetting{setting([]string{"a", "b"}, `{"c":[1,2]}`)}); err != nil {
		t.Errorf("valid settings: %v", err)
	}
}
