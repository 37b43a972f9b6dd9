// SPDX-License-Identifier: MIT

package hub

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/iothubemulator/iothub/emulator/internal/store"
)

// BenchmarkHubQuery measures a WHERE query through the hub (the engine
// reads the stored records; only the page's rows are rendered) over 10,000
// devices, one page of 100 matches.
func BenchmarkHubQuery(b *testing.B) {
	h := newBenchHub(b)
	ctx := context.Background()
	for i := range 10000 {
		id := fmt.Sprintf("dev%05d", i)
		if _, err := h.PutDevice(ctx, &Device{DeviceID: id}, ""); err != nil {
			b.Fatal(err)
		}
		site := "B7"
		if i%10 != 0 {
			site = "B8"
		}
		if _, err := h.UpdateTwin(ctx, Identity{DeviceID: id}, []byte(`{"tags":{"site":"`+site+`"}}`), "", false); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for range b.N {
		p, err := h.Query(ctx, "SELECT * FROM devices WHERE tags.site = 'B7'", 100, "")
		if err != nil || len(p.Items) != 100 {
			b.Fatalf("%v %d", err, len(p.Items))
		}
	}
	b.ReportMetric(float64(10000*b.N)/b.Elapsed().Seconds(), "twins/s")
}

func newBenchHub(b *testing.B) *Hub {
	b.Helper()
	db, err := store.OpenTemp()
	if err != nil {
		b.Fatal(err)
	}
	h, err := New(db, Config{HostName: "bench.example", Policies: DefaultPolicies(regOwnerKey)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { h.Close(); db.Close() })
	return h
}

// newDurableBenchHub is newBenchHub over a store that fsyncs every commit,
// as the emulator's does, for benchmarks of writes.
func newDurableBenchHub(b *testing.B) *Hub {
	b.Helper()
	db, err := store.Open(filepath.Join(b.TempDir(), "hub.db"), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	h, err := New(db, Config{HostName: "bench.example", Policies: DefaultPolicies(regOwnerKey)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { h.Close(); db.Close() })
	return h
}
