// SPDX-License-Identifier: MIT

package e2e

import (
	"context"
	"testing"
)

// BenchmarkStartup measures process start until /health answers 200.
// "fresh" starts on an empty data dir (the CA and server certificate are
// generated and the database created); "existing" reuses one.
func BenchmarkStartup(b *testing.B) {
	benchmarks := []struct {
		name  string
		fresh bool
	}{
		{name: "fresh", fresh: true},
		{name: "existing", fresh: false},
	}
	for _, bm := range benchmarks {
		b.Run(bm.name, func(b *testing.B) {
			emulatorBinary(b) // build outside the measurement
			dir := b.TempDir()
			if !bm.fresh {
				startEmulator(b, procConfig{dataDir: dir}).stop(b)
			}
			for b.Loop() {
				if bm.fresh {
					b.StopTimer()
					dir = b.TempDir()
					b.StartTimer()
				}
				p := launch(b, procConfig{dataDir: dir})
				ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
				err := p.waitReady(ctx)
				cancel()
				b.StopTimer()
				if err != nil {
					b.Fatalf("not ready: %v\n%s", err, p.output())
				}
				p.stop(b)
				b.StartTimer()
			}
		})
	}
}
