// SPDX-License-Identifier: MIT

package twin

import (
	"testing"
	"time"
)

// BenchmarkUnmarshalStored decodes a stored twin with a few reported and
// desired properties, as every twin write does; parse=token is the
// json.Decoder parser it replaced, for comparison in the same run.
func BenchmarkUnmarshalStored(b *testing.B) {
	d := New(time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC))
	p, err := ParseReportedPatch([]byte(`{"fw":"1.2.3","battery":87,"location":{"lat":47.6,"lon":-122.3},"sensors":["t","h","p"]}`))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := d.ApplyReported(p, time.Now()); err != nil {
		b.Fatal(err)
	}
	stored, err := d.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	b.Run("parse=fast", func(b *testing.B) {
		b.SetBytes(int64(len(stored)))
		for b.Loop() {
			if _, err := fastParse(stored); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parse=token", func(b *testing.B) {
		b.SetBytes(int64(len(stored)))
		for b.Loop() {
			if _, err := parse(stored); err != nil {
				b.Fatal(err)
			}
		}
	})
}
