// SPDX-License-Identifier: MIT

package query

import (
	"encoding/json"
	"testing"
)

func TestValueOf(t *testing.T) {
	tests := []struct {
		name string
		in   any
		want string // JSON; "" for undefined
	}{
		{"nil", nil, "null"},
		{"bool", true, "true"},
		{"float", 2.5, "2.5"},
		{"int", 7, "7"},
		{"int64", int64(-7), "-7"},
		{"json number keeps text", json.Number("1.50"), "1.50"},
		{"bad json number", json.Number("x"), ""},
		{"string", "a\"b", `"a\"b"`},
		{"array", []any{1.0, "x"}, `[1,"x"]`},
		{"object", map[string]any{"b": 1.0, "a": nil}, `{"a":null,"b":1}`},
		{"unsupported type", struct{}{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := ValueOf(tt.in)
			got := ""
			if v.defined() {
				got = string(appendJSON(nil, v))
			}
			if got != tt.want {
				t.Errorf("ValueOf(%#v) encodes to %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestMinMaxAcrossTypes(t *testing.T) {
	vals := []Value{
		RawValue([]byte(`"b"`)), RawValue([]byte(`3`)), RawValue([]byte(`null`)),
		RawValue([]byte(`true`)), RawValue([]byte(`{"x":1}`)), RawValue([]byte(`"a"`)),
		RawValue([]byte(`-1`)), {},
	}
	tests := []struct {
		agg  aggKind
		want string
	}{
		{aggMin, "true"},
		{aggMax, `"b"`},
		{aggSum, "2"},
		{aggAvg, "1"},
	}
	for _, tt := range tests {
		var s aggState
		for _, v := range vals {
			s.add(tt.agg, v)
		}
		if got := string(appendJSON(nil, s.result(tt.agg))); got != tt.want {
			t.Errorf("aggregate %d = %s, want %s", tt.agg, got, tt.want)
		}
	}
}

// fixedDoc is a Document built from Values, as a caller with its own
// storage format would write one.
type fixedDoc map[string]Value

func (d fixedDoc) Lookup(p Path) (Value, bool) {
	v, ok := d[p.String()]
	return v, ok
}

func TestCustomDocument(t *testing.T) {
	doc := fixedDoc{
		"deviceId":                      ValueOf("d1"),
		"tags.site":                     RawValue([]byte(`{"building":"B7"}`)),
		"properties.reported.levels":    RawValue([]byte(`[1, 2]`)),
		"properties.reported.levels[0]": ValueOf(1.0),
	}
	tests := []struct {
		cond string
		want bool
	}{
		{"DeviceId = 'd1'", true},
		{"IS_OBJECT(tags.site) AND NOT IS_DEFINED(tags.site.building)", true},
		{"2 IN properties.reported.levels AND properties.reported.levels[0] = 1", true},
		{"deviceId = 'd2'", false},
	}
	for _, tt := range tests {
		t.Run(tt.cond, func(t *testing.T) {
			c, err := ParseCondition(tt.cond)
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Match(doc); got != tt.want {
				t.Errorf("Match = %v, want %v", got, tt.want)
			}
		})
	}
}
