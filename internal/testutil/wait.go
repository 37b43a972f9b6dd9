// SPDX-License-Identifier: MIT

// Package testutil holds what the module's tests share: waiting for a
// condition instead of sleeping, and the test certificates.
package testutil

import (
	"testing"
	"time"
)

// WaitTimeout bounds Eventually: long enough for a loaded CI machine, and
// only ever reached when the test fails.
const WaitTimeout = 10 * time.Second

// Eventually polls cond until it holds, failing the test after WaitTimeout.
// It is for conditions the code under test reaches on its own goroutines;
// it never stands in for a deadline the test asserts.
func Eventually(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	EventuallyWithin(tb, WaitTimeout, what, cond)
}

// EventuallyWithin is Eventually with another bound.
func EventuallyWithin(tb testing.TB, d time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	pause := time.Millisecond
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("waited %v for %s", d, what)
		}
		time.Sleep(pause)
		pause = min(2*pause, 20*time.Millisecond)
	}
}
