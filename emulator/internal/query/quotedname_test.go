// SPDX-License-Identifier: MIT

package query

import (
	"encoding/json"
	"slices"
	"testing"
)

// TestQuotedName covers [[name]] members, which the hub's configuration
// metric queries use for configuration ids that are not bare names.
func TestQuotedName(t *testing.T) {
	docs := [][]byte{
		[]byte(`{"deviceId":"a","configurations":{"fw-update":{"status":"Applied"},"other":{"status":"Targeted"}}}`),
		[]byte(`{"deviceId":"b","configurations":{"fw-update":{"status":"Targeted"}}}`),
		[]byte(`{"deviceId":"c","tags":{"x.y":1}}`),
	}
	tests := []struct {
		query string
		want  []string
	}{
		{"SELECT deviceId FROM devices WHERE configurations.[[fw-update]].status = 'Applied'", []string{"a"}},
		{"select deviceId from devices where configurations.[[fw-update]].status = 'Targeted'", []string{"b"}},
		{"SELECT deviceId FROM devices WHERE Configurations.[[other]].status = 'Targeted'", []string{"a"}},
		{"SELECT deviceId FROM devices WHERE configurations.[[fw-update]] .status = 'Applied' OR tags.[[x.y]] = 1", []string{"a", "c"}},
		{"SELECT deviceId FROM devices WHERE IS_DEFINED(configurations.[[nope]])", []string{}},
	}
	for _, tc := range tests {
		q, err := Parse(tc.query)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tc.query, err)
		}
		items, err := q.Execute(slices.Values(docs))
		if err != nil {
			t.Fatalf("Execute(%q): %v", tc.query, err)
		}
		got := []string{}
		for _, it := range items {
			var row struct {
				DeviceID string `json:"deviceId"`
			}
			if err := json.Unmarshal(it, &row); err != nil {
				t.Fatal(err)
			}
			got = append(got, row.DeviceID)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.query, got, tc.want)
		}
	}
}

func TestQuotedNameErrors(t *testing.T) {
	for _, q := range []string{
		"SELECT * FROM devices WHERE configurations.[[fw-update].status = 'Applied'",
		"SELECT * FROM devices WHERE configurations.[[]].status = 'Applied'",
		"SELECT * FROM devices WHERE [[fw]].status = 'Applied'",
	} {
		if _, err := Parse(q); err == nil {
			t.Errorf("Parse(%q) succeeded; want a syntax error", q)
		}
	}
	c, err := ParseCondition("configurations.[[a-b]].status = 'Applied'")
	if err != nil {
		t.Fatal(err)
	}
	if !c.Match(RawDocument(`{"configurations":{"a-b":{"status":"Applied"}}}`)) {
		t.Error("ParseCondition with [[a-b]] did not match")
	}
}
