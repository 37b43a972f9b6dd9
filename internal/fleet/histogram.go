// SPDX-License-Identifier: MIT

package fleet

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// Histogram counts latencies in log-linear buckets: 16 per power of two of
// microseconds, so a percentile is within about 6% of the true value.
// Record is lock-free; the zero value is ready to use.
type Histogram struct {
	buckets [64 * 16]atomic.Uint64
	count   atomic.Uint64
	sum     atomic.Uint64 // microseconds
}

func bucketOf(us uint64) int {
	if us < 16 {
		return int(us)
	}
	e := bits.Len64(us) - 5 // us >> e is in [16, 32)
	return (e+1)*16 + int(us>>e) - 16
}

// bucketValue is the upper bound of bucket i in microseconds.
func bucketValue(i int) uint64 {
	if i < 16 {
		return uint64(i)
	}
	e := i/16 - 1
	return (uint64(i%16+16)+1)<<e - 1
}

// Record adds one latency.
func (h *Histogram) Record(d time.Duration) {
	us := uint64(max(d.Microseconds(), 0))
	h.buckets[min(bucketOf(us), len(h.buckets)-1)].Add(1)
	h.count.Add(1)
	h.sum.Add(us)
}

// Count is the number of latencies recorded.
func (h *Histogram) Count() uint64 { return h.count.Load() }

// Snapshot copies the counts, so that percentiles of an interval can be
// taken as the difference of two snapshots.
func (h *Histogram) Snapshot() HistogramSnapshot {
	var s HistogramSnapshot
	s.counts = make([]uint64, len(h.buckets))
	for i := range h.buckets {
		s.counts[i] = h.buckets[i].Load()
		s.Count += s.counts[i]
	}
	s.sum = h.sum.Load()
	return s
}

// HistogramSnapshot is a histogram's counts at one moment.
type HistogramSnapshot struct {
	Count  uint64
	sum    uint64
	counts []uint64
}

// Sub is the histogram of what was recorded between old and s.
func (s HistogramSnapshot) Sub(old HistogramSnapshot) HistogramSnapshot {
	out := HistogramSnapshot{Count: s.Count - old.Count, sum: s.sum - old.sum, counts: make([]uint64, len(s.counts))}
	for i := range s.counts {
		out.counts[i] = s.counts[i]
		if i < len(old.counts) {
			out.counts[i] -= old.counts[i]
		}
	}
	return out
}

// Percentile returns the latency below which p (0 to 100) percent of the
// recorded ones fall; 0 when nothing was recorded.
func (s HistogramSnapshot) Percentile(p float64) time.Duration {
	if s.Count == 0 {
		return 0
	}
	rank := uint64(p / 100 * float64(s.Count))
	if rank >= s.Count {
		rank = s.Count - 1
	}
	var seen uint64
	for i, c := range s.counts {
		seen += c
		if seen > rank {
			return time.Duration(bucketValue(i)) * time.Microsecond
		}
	}
	return 0
}

// Mean is the average latency.
func (s HistogramSnapshot) Mean() time.Duration {
	if s.Count == 0 {
		return 0
	}
	return time.Duration(s.sum/s.Count) * time.Microsecond
}
