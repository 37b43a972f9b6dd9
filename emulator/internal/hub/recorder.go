// SPDX-License-Identifier: MIT

package hub

import "sync"

// Bounds of each in-memory recording (method calls, twin changes); the
// oldest entries go first. Both count: a method call may carry 256 KB of
// payloads, so 10,000 of them would be 2.5 GB.
const (
	maxRecords     = 10000
	maxRecordBytes = 32 << 20
)

// recordOverhead is what an entry costs besides its variable parts.
const recordOverhead = 128

// recording is a bounded log of entries, newest last.
type recording[T any] struct {
	items []T
	sizes []int
	start int // items before start are dropped
	bytes int // sum of sizes[start:]
	// Limits; zero means maxRecords and maxRecordBytes. Tests lower them.
	maxItems, maxBytes int
}

// add appends v, which costs size bytes, and drops the oldest entries
// while either bound is exceeded; the newest entry always stays. Dropped
// entries are released, and the slices compacted once half is dropped,
// so each add is amortised O(1).
func (r *recording[T]) add(v T, size int) {
	maxItems, maxBytes := r.maxItems, r.maxBytes
	if maxItems <= 0 {
		maxItems = maxRecords
	}
	if maxBytes <= 0 {
		maxBytes = maxRecordBytes
	}
	r.items = append(r.items, v)
	r.sizes = append(r.sizes, size)
	r.bytes += size
	for n := len(r.items) - r.start; n > 1 && (n > maxItems || r.bytes > maxBytes); n-- {
		var zero T
		r.items[r.start] = zero
		r.bytes -= r.sizes[r.start]
		r.start++
	}
	if r.start > 0 && r.start >= len(r.items)/2 {
		r.items = append(make([]T, 0, 2*(len(r.items)-r.start)), r.items[r.start:]...)
		r.sizes = append(make([]int, 0, cap(r.items)), r.sizes[r.start:]...)
		r.start = 0
	}
}

// all returns the kept entries, oldest first; the caller must not keep
// the slice past the recorder's lock.
func (r *recording[T]) all() []T { return r.items[r.start:] }

// recorder holds the emulator-only recordings.
type recorder struct {
	mu      sync.Mutex
	methods recording[MethodCall]
	twins   recording[TwinChange]
}

func (r *recorder) method(c MethodCall) {
	size := recordOverhead + len(c.DeviceID) + len(c.ModuleID) + len(c.MethodName) + len(c.Payload) + len(c.ResponsePayload)
	r.mu.Lock()
	r.methods.add(c, size)
	r.mu.Unlock()
}

func (r *recorder) twin(c TwinChange) {
	size := recordOverhead + len(c.DeviceID) + len(c.ModuleID) + len(c.Section) + len(c.Patch)
	r.mu.Lock()
	r.twins.add(c, size)
	r.mu.Unlock()
}

// reset drops every recording, keeping the limits.
func (r *recorder) reset() {
	r.mu.Lock()
	r.methods = recording[MethodCall]{maxItems: r.methods.maxItems, maxBytes: r.methods.maxBytes}
	r.twins = recording[TwinChange]{maxItems: r.twins.maxItems, maxBytes: r.twins.maxBytes}
	r.mu.Unlock()
}
