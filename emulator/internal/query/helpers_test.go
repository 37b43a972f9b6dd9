// SPDX-License-Identifier: MIT

package query

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// loadFleet reads testdata/<dir>/*.json in file-name order.
func loadFleet(tb testing.TB, dir string) [][]byte {
	tb.Helper()
	names, err := filepath.Glob(filepath.Join("testdata", dir, "*.json"))
	if err != nil || len(names) == 0 {
		tb.Fatalf("no fleet in testdata/%s: %v", dir, err)
	}
	slices.Sort(names)
	var docs [][]byte
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			tb.Fatal(err)
		}
		docs = append(docs, b)
	}
	return docs
}

// decodeMap decodes a document the way a MapDocument expects it.
func decodeMap(tb testing.TB, b []byte) MapDocument {
	tb.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		tb.Fatalf("decode: %v", err)
	}
	return m
}

// ids names result twins as deviceId or deviceId/moduleId, or for job
// records deviceId:jobId.
func ids(tb testing.TB, items []json.RawMessage) []string {
	tb.Helper()
	out := []string{}
	for _, it := range items {
		var t struct {
			DeviceID string `json:"deviceId"`
			ModuleID string `json:"moduleId"`
			JobID    string `json:"jobId"`
		}
		if err := json.Unmarshal(it, &t); err != nil {
			tb.Fatalf("result item is not JSON: %v: %s", err, it)
		}
		id := t.DeviceID
		if t.ModuleID != "" {
			id += "/" + t.ModuleID
		}
		if t.JobID != "" {
			id += ":" + t.JobID
		}
		out = append(out, id)
	}
	return out
}

func mustParse(tb testing.TB, q string) *Query {
	tb.Helper()
	parsed, err := Parse(q)
	if err != nil {
		tb.Fatalf("Parse(%q): %v", q, err)
	}
	return parsed
}
