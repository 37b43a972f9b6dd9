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
	w := d.View()
	if v.Version != w.Version || v.ETag != w.ETag || !bytes.Equal(v.Tags, w.Tags) || !bytes.Equal(v.Desired, w.Desired) || !bytes.Equal(v.Reported, w.Reported) {
		t.Fatalf("ReadView differs from the Doc:\nview  %d %s %s %s %s\ndoc   %d %s %s %s %s",
			v.Version, v.ETag, v.Tags, v.Desired, v.Reported, w.Version, w.ETag, w.Tags, w.Desired, w.Reported)
	}
	props := append(append(append(append([]byte(`{"desired":`), w.Desired...), `,"reported":`...), w.Reported...), '}')
	if !bytes.Equal(props, d.Properties()) {
		t.Fatalf("View sections %s differ from Properties %s", props, d.Properties())
	}
	for _, bad := range []string{``, `{}`, `{"format":2,"tags":{},"desired":{},"reported":{}}`, `[1]`} {
		if _, err := ReadView([]byte(bad)); err == nil {
			t.Errorf("ReadView(%q) accepted a corrupt twin", bad)
		}
	}
}
