// SPDX-License-Identifier: MIT

package hub

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// When most of a large fleet has disconnected, the hub returns memory once
// the burst of disconnects has been quiet for releaseQuiet, and shrinks its
// connection table; fewer disconnects, or a small fleet, cost nothing.
func TestMemoryReleasedAfterMassDisconnect(t *testing.T) {
	h := newRegHub(t)
	var calls atomic.Int32
	h.mu.Lock()
	h.mem.free = func() { calls.Add(1) }
	h.mu.Unlock()
	const fleet = releaseMinDrop + 200
	conns := make([]*Conn, fleet)
	for i := range conns {
		conns[i] = h.Connect(Identity{DeviceID: fmt.Sprintf("d%04d", i)}, &regSession{}, ConnectInfo{})
	}
	pending := func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.mem.timer != nil
	}
	released := func(want int32) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for calls.Load() < want && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if got := calls.Load(); got != want {
			t.Fatalf("%d releases, want %d", got, want)
		}
	}

	for _, c := range conns[:fleet/2-1] { // more than half still connected
		c.Disconnect()
	}
	if pending() {
		t.Fatal("a release is pending with more than half of the fleet connected")
	}
	for _, c := range conns[fleet/2-1 : fleet-100] {
		c.Disconnect()
	}
	if !pending() {
		t.Fatal("no release pending after all but 100 of the fleet disconnected")
	}
	h.Clock().FastForward(releaseQuiet / 2)
	conns[fleet-100].Disconnect() // the burst goes on: the release waits again
	h.Clock().FastForward(releaseQuiet/2 + time.Millisecond)
	time.Sleep(20 * time.Millisecond)
	if calls.Load() != 0 {
		t.Fatal("memory released before the burst had been quiet for releaseQuiet")
	}
	h.Clock().FastForward(releaseQuiet / 2)
	released(1)
	h.mu.Lock()
	left, peak := len(h.conns), h.mem.peak
	h.mu.Unlock()
	if left != 99 || peak != 99 {
		t.Fatalf("after the release: %d connections, peak %d; want 99 and 99", left, peak)
	}

	for _, c := range conns[fleet-99:] { // the rest: far fewer than releaseMinDrop
		c.Disconnect()
	}
	if pending() {
		t.Fatal("a release is pending after only 99 disconnects")
	}
	h.Clock().FastForward(2 * releaseQuiet)
	time.Sleep(20 * time.Millisecond)
	released(1)
}
