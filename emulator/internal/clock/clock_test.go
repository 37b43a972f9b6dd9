// SPDX-License-Identifier: MIT

package clock

import (
	"sync/atomic"
	"testing"
	"time"
)

var epoch = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func fired(t *Timer) bool {
	select {
	case <-t.C:
		return true
	default:
		return false
	}
}

func TestFrozenClockMovesOnlyByJumps(t *testing.T) {
	c := New()
	c.Set(epoch)
	if got := c.Now(); !got.Equal(epoch) {
		t.Fatalf("Now after Set: got %v, want %v", got, epoch)
	}
	tm := c.NewTimer(30 * time.Second)
	time.Sleep(20 * time.Millisecond)
	if fired(tm) || !c.Now().Equal(epoch) {
		t.Fatal("a frozen clock moved or fired a timer on its own")
	}
	c.FastForward(29 * time.Second)
	if fired(tm) {
		t.Fatal("timer fired 1 s before its deadline")
	}
	c.FastForward(time.Second)
	select {
	case got := <-tm.C:
		if want := epoch.Add(30 * time.Second); !got.Equal(want) {
			t.Errorf("timer sent %v, want %v", got, want)
		}
	default:
		t.Fatal("timer did not fire when the clock reached its deadline")
	}
	if n := c.Pending(); n != 0 {
		t.Errorf("Pending after firing: got %d, want 0", n)
	}
}

func TestSetPastDeadlineFiresAfterFunc(t *testing.T) {
	c := New()
	c.Set(epoch)
	done := make(chan struct{})
	c.AfterFunc(time.Hour, func() { close(done) })
	c.Set(epoch.Add(2 * time.Hour))
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("AfterFunc did not run when Set passed its deadline")
	}
}

func TestRealClockTimerFiresInWallTime(t *testing.T) {
	c := New()
	tm := c.NewTimer(10 * time.Millisecond)
	select {
	case <-tm.C:
	case <-time.After(5 * time.Second):
		t.Fatal("timer on a running clock did not fire")
	}
}

func TestFastForwardOnRunningClock(t *testing.T) {
	c := New()
	before := time.Now()
	tm := c.NewTimer(time.Hour)
	c.FastForward(time.Hour)
	select {
	case <-tm.C:
	default:
		t.Fatal("FastForward past the deadline did not fire the timer")
	}
	if got := c.Now().Sub(before); got < time.Hour {
		t.Errorf("Now moved %v after FastForward(1h); want at least 1h", got)
	}
	c.Real()
	if d := time.Since(c.Now()); d > time.Minute || d < -time.Minute {
		t.Errorf("Real did not return to wall time: off by %v", d)
	}
}

func TestSettingBackDelaysTimer(t *testing.T) {
	c := New()
	c.SetFunc(func() time.Time { return time.Now().Add(-time.Hour) })
	tm := c.NewTimer(20 * time.Millisecond)
	// Its wall-time wake-up still comes after 20 ms, but the deadline is in
	// clock time, now an hour away.
	c.FastForward(-time.Hour)
	time.Sleep(100 * time.Millisecond)
	if fired(tm) {
		t.Fatal("timer fired although the clock was set back an hour")
	}
	c.FastForward(time.Hour)
	select {
	case <-tm.C:
	case <-time.After(5 * time.Second):
		t.Fatal("timer did not fire once the clock caught up")
	}
}

func TestStopAndReset(t *testing.T) {
	c := New()
	c.Set(epoch)
	var runs atomic.Int32
	f := c.AfterFunc(time.Minute, func() { runs.Add(1) })
	if !f.Stop() {
		t.Error("Stop of a pending timer reported false")
	}
	if f.Stop() {
		t.Error("second Stop reported true")
	}
	c.FastForward(time.Hour)
	time.Sleep(20 * time.Millisecond)
	if runs.Load() != 0 {
		t.Fatal("stopped AfterFunc ran")
	}

	tm := c.NewTimer(time.Second)
	c.FastForward(time.Second) // fires; value left unread
	tm.Reset(time.Minute)
	if fired(tm) {
		t.Fatal("Reset kept the stale value of the earlier firing")
	}
	c.FastForward(time.Minute)
	if !fired(tm) {
		t.Fatal("reset timer did not fire at its new deadline")
	}
}

func TestZeroDurationFiresAtOnce(t *testing.T) {
	c := New()
	c.Set(epoch)
	if !fired(c.NewTimer(0)) {
		t.Fatal("NewTimer(0) did not fire at once")
	}
}

// TestStandingFunctionDoesNotSpin: a function base that never moves leaves
// a timer pending without waking it more than every minRecheck.
func TestStandingFunctionDoesNotSpin(t *testing.T) {
	c := New()
	var calls atomic.Int64
	c.SetFunc(func() time.Time { calls.Add(1); return epoch })
	tm := c.NewTimer(time.Nanosecond)
	time.Sleep(100 * time.Millisecond)
	if fired(tm) {
		t.Fatal("timer fired although the clock stood still")
	}
	// About 10 checks in 100 ms; a spin makes millions.
	if n := calls.Load(); n > 1000 {
		t.Fatalf("the clock was read %d times in 100 ms: the timer spins", n)
	}
	c.FastForward(time.Nanosecond)
	if !fired(tm) {
		t.Fatal("timer did not fire when the clock moved past it")
	}
}
