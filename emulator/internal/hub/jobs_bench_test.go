// SPDX-License-Identifier: MIT

package hub

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/clock"
	"github.com/iothubemulator/iothub/emulator/internal/store"
)

// The cost of a twin update job per device, against the same updates made
// directly by as many concurrent callers as a job has workers. Both run on
// a store that fsyncs, as the emulator's does; a job writes each device's
// record twice (running, then its outcome) beside the twin itself.
//
//	go test -run '^$' -bench 'TwinJob|TwinUpdatesDirect' ./emulator/internal/hub

const benchJobDevices = 200

func newSyncedBenchHub(b *testing.B) *Hub {
	b.Helper()
	db, err := store.Open(filepath.Join(b.TempDir(), "hub.db"), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	h, err := New(db, Config{HostName: "bench.example", Policies: DefaultPolicies(regOwnerKey),
		Clock: clock.At(regNow), MaxActiveJobs: 1})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { h.Close(); db.Close() })
	ctx := context.Background()
	for i := range benchJobDevices {
		if _, err := h.PutDevice(ctx, &Device{DeviceID: fmt.Sprintf("dev%04d", i)}, ""); err != nil {
			b.Fatal(err)
		}
	}
	return h
}

func BenchmarkTwinJob(b *testing.B) {
	h := newSyncedBenchHub(b)
	ctx := context.Background()
	b.ResetTimer()
	for n := range b.N {
		id := fmt.Sprintf("bench-%d", n)
		st := Time{regNow}
		if _, err := h.CreateJob(ctx, id, &JobRequest{Type: JobTypeUpdateTwin, QueryCondition: "*", StartTime: &st,
			UpdateTwin: []byte(fmt.Sprintf(`{"etag":"*","tags":{"n":%d}}`, n))}); err != nil {
			b.Fatal(err)
		}
		for {
			j, err := h.GetJob(ctx, id)
			if err != nil {
				b.Fatal(err)
			}
			if j.Status == JobCompleted {
				if j.DeviceJobStatistics.SucceededCount != benchJobDevices {
					b.Fatalf("got %+v", j.DeviceJobStatistics)
				}
				break
			}
			time.Sleep(time.Millisecond)
		}
	}
	b.ReportMetric(float64(benchJobDevices*b.N)/b.Elapsed().Seconds(), "devices/s")
}

func BenchmarkTwinUpdatesDirect(b *testing.B) {
	h := newSyncedBenchHub(b)
	ctx := context.Background()
	b.ResetTimer()
	for n := range b.N {
		var wg sync.WaitGroup
		next := make(chan int)
		for range jobWorkers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range next {
					if _, err := h.UpdateTwin(ctx, Identity{DeviceID: fmt.Sprintf("dev%04d", i)}, []byte(fmt.Sprintf(`{"tags":{"n":%d}}`, n)), "*", false); err != nil {
						b.Error(err)
					}
				}
			}()
		}
		for i := range benchJobDevices {
			next <- i
		}
		close(next)
		wg.Wait()
	}
	b.ReportMetric(float64(benchJobDevices*b.N)/b.Elapsed().Seconds(), "devices/s")
}
