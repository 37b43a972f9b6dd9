// SPDX-License-Identifier: MIT

package twin

import (
	"fmt"
	"testing"
	"time"
)

// t0 is the creation time of every test twin.
var t0 = time.Date(2024, 5, 2, 9, 10, 0, 0, time.UTC)

// at returns t0 plus sec seconds.
func at(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }

// ts renders at(sec) as $metadata shows it.
func ts(sec int) string { return at(sec).Format(timeLayout) }

// op is one write in a test sequence.
type op struct {
	kind string // tags, replaceTags, desired, replaceDesired, reported, patchTwin, replaceTwin
	body string
}

// do applies o to d at now and returns the desired notification, if any.
func do(d *Doc, o op, now time.Time) ([]byte, error) {
	b := []byte(o.body)
	switch o.kind {
	case "tags":
		return nil, d.PatchTags(b, now)
	case "replaceTags":
		return nil, d.ReplaceTags(b, now)
	case "desired":
		return d.PatchDesired(b, now)
	case "replaceDesired":
		return d.ReplaceDesired(b, now)
	case "reported":
		_, err := d.PatchReported(b, now)
		return nil, err
	case "patchTwin":
		return d.PatchTwin(b, now)
	case "replaceTwin":
		return d.ReplaceTwin(b, now)
	}
	panic(fmt.Sprintf("unknown op kind %q", o.kind))
}

// build returns a twin created at t0 with ops applied at at(1), at(2), ...
func build(t testing.TB, ops ...op) *Doc {
	t.Helper()
	d := New(t0)
	for i, o := range ops {
		if _, err := do(d, o, at(i+1)); err != nil {
			t.Fatalf("setup %s %s: %v", o.kind, o.body, err)
		}
	}
	return d
}

// stored returns d's storage bytes as a string.
func stored(t testing.TB, d *Doc) string {
	t.Helper()
	b, err := d.Marshal()
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	return string(b)
}
