// SPDX-License-Identifier: MIT

package hub

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
)

// BenchmarkRegistryWrites measures device creates and updates from 64
// concurrent writers, each waiting for its write to be durable, as a fleet
// set-up or a registry sync tool makes them. With -cpuprofile it shows how
// much of the store's commit goroutine the registry's own decoding and
// encoding takes beside bbolt's commit.
func BenchmarkRegistryWrites(b *testing.B) {
	ctx := context.Background()
	b.Run("create", func(b *testing.B) {
		h := newDurableBenchHub(b)
		var n atomic.Int64
		b.SetParallelism(32) // 64 writers on 2 cores
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				id := fmt.Sprintf("dev-%07d", n.Add(1))
				if _, err := h.PutDevice(ctx, &Device{DeviceID: id}, ""); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("update", func(b *testing.B) {
		h := newDurableBenchHub(b)
		const devices = 64
		for i := range devices {
			if _, err := h.PutDevice(ctx, &Device{DeviceID: fmt.Sprintf("dev-%02d", i)}, ""); err != nil {
				b.Fatal(err)
			}
		}
		var n atomic.Int64
		b.SetParallelism(32)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				i := n.Add(1)
				reason := fmt.Sprintf("maintenance %d", i)
				in := &Device{DeviceID: fmt.Sprintf("dev-%02d", i%devices), StatusReason: &reason}
				if _, err := h.PutDevice(ctx, in, "*"); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
