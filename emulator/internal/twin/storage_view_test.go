// SPDX-License-Identifier: MIT

package twin

import (
	"bytes"
	"testing"
	"time"
)

// TestReadViewMatchesDoc: the fast path gives exactly what a Doc renders.
func TestReadViewMatchesDoc(t *testing.T) {
	now := time.Date(2024, 5, 2, 9, 10, 0, 0, time.UTC)
	d := New(now)
	if err := d.PatchTags([]byte(`{"site":{"building":"B7"},"n":1.0}`), now); err != nil {
		t.Fatal(err)
	}
	if _, err := d.PatchDesired([]byte(`{"fan":3,"list":[1,2]}`), now); err != nil {
		t.Fatal(err)
	}
	if _, err := d.PatchReported([]byte(`{"fw":"1.4.0","nested":{"a":"x y"}}`), now); err != nil {
		t.Fatal(err)
	}
	b, _ := d.Marshal()
	v, err := ReadView(b)
	if err != nil {
		t.Fatal(err)
	}
	if v.Version != d.Version() || v.ETag != d.ETag() || !bytes.Equal(v.Tags, d.Tags()) || !bytes.Equal(v.Properties, d.Properties()) {
		t.Fatalf("ReadView differs from the Doc:\nview  %d %s %s %s\ndoc   %d %s %s %s",
			v.Version, v.ETag, v.Tags, v.Properties, d.Version(), d.ETag(), d.Tags(), d.Properties())
	}
	for _, bad := range []string{``, `{}`, `{"format":2,"tags":{},"desired":{},"reported":{}}`, `[1]`} {
		if _, err := ReadView([]byte(bad)); err == nil {
			t.Errorf("ReadView(%q) accepted a corrupt twin", bad)
		}
	}
}
