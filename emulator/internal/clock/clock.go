// SPDX-License-Identifier: MIT

// Package clock is the emulator's one source of time. Everything that
// depends on time in the hub (timestamps, SAS expiry, method timeouts,
// long-polls, fault delays, C2D TTLs and locks, cache lifetimes) reads Now
// and arms its timers here, so that a test which sets or fast-forwards the
// clock moves every deadline with it: a 30-second method timeout fires at
// once after FastForward(30*time.Second).
//
// A Clock follows wall time until told otherwise. Set freezes it at an
// instant (as miniredis's SetTime does: nothing moves until the test says
// so); SetFunc hands it to a function; FastForward adds to whatever the
// base is. Timers fire when the clock reaches their deadline, whether it got
// there by waiting or by a jump.
package clock

import (
	"sync"
	"time"
)

// Clock is a settable time source with timers that follow it. The zero
// value is not usable; use New.
type Clock struct {
	mu     sync.Mutex
	base   func() time.Time // nil: wall time
	fixed  bool             // base never moves on its own (Set)
	offset time.Duration    // added by FastForward
	timers map[*Timer]struct{}
}

// New returns a clock that follows wall time.
func New() *Clock { return &Clock{timers: map[*Timer]struct{}{}} }

// Now is the clock's current time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nowLocked()
}

func (c *Clock) nowLocked() time.Time {
	if c.base == nil {
		return time.Now().Add(c.offset)
	}
	return c.base().Add(c.offset)
}

// Since is Now().Sub(t).
func (c *Clock) Since(t time.Time) time.Duration { return c.Now().Sub(t) }

// Set freezes the clock at t: it stays there until Set, FastForward,
// SetFunc or Real moves it. Timers that t reaches fire.
func (c *Clock) Set(t time.Time) {
	c.jump(func() { c.base, c.fixed, c.offset = func() time.Time { return t }, true, 0 })
}

// SetFunc makes f the clock's base (nil: wall time). The clock cannot see
// f move, so timers are checked against it at least once per remaining
// duration of wall time, and at every jump.
func (c *Clock) SetFunc(f func() time.Time) {
	c.jump(func() { c.base, c.fixed, c.offset = f, false, 0 })
}

// Real returns the clock to wall time.
func (c *Clock) Real() { c.SetFunc(nil) }

// FastForward moves the clock d forward (a negative d moves it back) and
// fires the timers it reaches.
func (c *Clock) FastForward(d time.Duration) {
	c.jump(func() { c.offset += d })
}

// jump changes the time base and re-evaluates every timer against it.
func (c *Clock) jump(change func()) {
	c.mu.Lock()
	change()
	now := c.nowLocked()
	var due []*Timer
	for t := range c.timers {
		if !t.when.After(now) {
			due = append(due, t)
		} else {
			c.armLocked(t, now)
		}
	}
	for _, t := range due {
		c.removeLocked(t)
	}
	c.mu.Unlock()
	for _, t := range due {
		t.fire(now)
	}
}

// Timer fires once when the clock reaches its deadline: it sends the time
// on C, or runs its function on a goroutine of its own.
type Timer struct {
	// C receives the clock's time when the timer fires (nil for AfterFunc
	// timers). It has room for one value, like time.Timer's.
	C <-chan time.Time

	c    chan time.Time
	f    func()
	clk  *Clock
	when time.Time
	real *time.Timer // wakes us up in wall time; nil while the clock is frozen
}

// NewTimer returns a timer that fires after d of clock time.
func (c *Clock) NewTimer(d time.Duration) *Timer {
	ch := make(chan time.Time, 1)
	t := &Timer{C: ch, c: ch, clk: c}
	c.start(t, d)
	return t
}

// AfterFunc runs f on its own goroutine after d of clock time.
func (c *Clock) AfterFunc(d time.Duration, f func()) *Timer {
	t := &Timer{f: f, clk: c}
	c.start(t, d)
	return t
}

func (c *Clock) start(t *Timer, d time.Duration) {
	c.mu.Lock()
	now := c.nowLocked()
	t.when = now.Add(d)
	if d <= 0 {
		c.mu.Unlock()
		t.fire(now)
		return
	}
	c.timers[t] = struct{}{}
	c.armLocked(t, now)
	c.mu.Unlock()
}

// armLocked sets the wall-time wake-up of a pending timer. A frozen clock
// moves only by jumps, which check every timer, so it needs none.
func (c *Clock) armLocked(t *Timer, now time.Time) {
	if t.real != nil {
		t.real.Stop()
		t.real = nil
	}
	if c.fixed {
		return
	}
	d := t.when.Sub(now)
	if c.base != nil && d < minRecheck {
		// A function base may move slower than wall time, or not at all:
		// checking it again at once would spin.
		d = minRecheck
	}
	t.real = time.AfterFunc(d, func() { c.wake(t) })
}

// minRecheck is how often, at most, a timer re-checks a function base that
// has not reached its deadline.
const minRecheck = 10 * time.Millisecond

// wake runs when a timer's wall-time wake-up fires. The clock may have
// been set back meanwhile, or be driven by a function that moved less than
// wall time: then the timer waits again.
func (c *Clock) wake(t *Timer) {
	c.mu.Lock()
	if _, ok := c.timers[t]; !ok {
		c.mu.Unlock()
		return
	}
	now := c.nowLocked()
	if t.when.After(now) {
		c.armLocked(t, now)
		c.mu.Unlock()
		return
	}
	c.removeLocked(t)
	c.mu.Unlock()
	t.fire(now)
}

func (c *Clock) removeLocked(t *Timer) {
	delete(c.timers, t)
	if t.real != nil {
		t.real.Stop()
		t.real = nil
	}
}

func (t *Timer) fire(now time.Time) {
	if t.f != nil {
		go t.f()
		return
	}
	select {
	case t.c <- now:
	default:
	}
}

// Stop prevents the timer from firing. It reports whether it stopped a
// pending timer (false: it had fired or been stopped already).
func (t *Timer) Stop() bool {
	c := t.clk
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.timers[t]; !ok {
		return false
	}
	c.removeLocked(t)
	return true
}

// Reset re-arms the timer to fire after d of clock time from now. A value
// the timer sent earlier and nobody read is discarded first, so C carries
// only the new firing.
func (t *Timer) Reset(d time.Duration) {
	t.Stop()
	if t.c != nil {
		select {
		case <-t.c:
		default:
		}
	}
	t.clk.start(t, d)
}

// Pending is the number of timers waiting to fire, for tests that must know
// a deadline is armed before they move the clock past it.
func (c *Clock) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

// FromFunc returns a clock whose base is f (nil: wall time).
func FromFunc(f func() time.Time) *Clock {
	c := New()
	c.base = f
	return c
}

// At returns a clock frozen at t (see Set).
func At(t time.Time) *Clock {
	c := New()
	c.Set(t)
	return c
}
