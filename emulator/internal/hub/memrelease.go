// SPDX-License-Identifier: MIT

package hub

import (
	"runtime/debug"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/clock"
)

// Memory after a fleet disconnects. The Go runtime keeps the heap and the
// goroutine stacks a fleet of connections used, and returns them to the
// system only as its background scavenger gets to them, which after a
// test suite's thousands of devices go can take minutes; maps keep their
// size for good. When most of the connections are gone, the hub waits for
// the burst of disconnects to end, shrinks its connection table, and asks
// the runtime to return what is free.
const (
	// releaseMinDrop is how many connections must have gone since the
	// most the hub held: a few hundred devices cost a few MB, not worth a
	// collection.
	releaseMinDrop = 1000
	// releaseQuiet is how long after the last disconnect of the burst the
	// memory is returned: by then the connections' goroutines have ended.
	releaseQuiet = 2 * time.Second
)

// memRelease is guarded by h.mu.
type memRelease struct {
	peak  int          // the most live connections since the last release
	timer *clock.Timer // armed while a release waits for the burst to end
	// free returns free memory to the system; tests count its calls.
	free func()
}

// noteConnectedLocked records a connection's arrival; h.mu is held.
func (h *Hub) noteConnectedLocked() {
	h.mem.peak = max(h.mem.peak, len(h.conns))
}

// noteDisconnectedLocked records a connection's end and, once at most
// half of the peak is left and releaseMinDrop have gone, (re)arms the
// release for releaseQuiet from now; h.mu is held.
func (h *Hub) noteDisconnectedLocked() {
	n := len(h.conns)
	if h.mem.peak-n < releaseMinDrop || n > h.mem.peak/2 {
		return
	}
	if h.mem.timer == nil {
		h.mem.timer = h.clk.AfterFunc(releaseQuiet, h.releaseMemory)
	} else {
		h.mem.timer.Reset(releaseQuiet)
	}
}

// releaseMemory copies the connection table into a map sized for what is
// left, the old one with room for the peak becoming garbage, and returns
// free memory to the system.
func (h *Hub) releaseMemory() {
	h.mu.Lock()
	h.mem.timer = nil
	h.mem.peak = len(h.conns)
	conns := make(map[Identity]*Conn, len(h.conns))
	for id, c := range h.conns {
		conns[id] = c
	}
	h.conns = conns
	free := h.mem.free
	h.mu.Unlock()
	if free == nil {
		free = debug.FreeOSMemory
	}
	h.log.Debug("returning memory after disconnects", "connections", len(conns))
	free()
}

// stopMemRelease cancels a pending release (Close).
func (h *Hub) stopMemRelease() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.mem.timer != nil {
		h.mem.timer.Stop()
		h.mem.timer = nil
	}
}
