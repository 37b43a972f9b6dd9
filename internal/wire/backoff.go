// SPDX-License-Identifier: MIT

package wire

import (
	"math/rand/v2"
	"time"
)

// Backoff returns the wait after the given number of failed attempts (1
// after the first): initial doubled for each further failure up to limit,
// then spread at random over ±jitter of itself so that many clients failed
// together (a hub restart, a throttled burst) do not retry in lockstep.
// initial <= 0 means no wait; limit < initial means initial; jitter is
// clamped to [0, 1].
func Backoff(failures int, initial, limit time.Duration, jitter float64) time.Duration {
	if initial <= 0 {
		return 0
	}
	if limit < initial {
		limit = initial
	}
	d := initial
	for i := 1; i < failures && d < limit; i++ {
		if d > limit/2 {
			d = limit // doubling would pass the limit, or overflow
			break
		}
		d *= 2
	}
	jitter = min(max(jitter, 0), 1)
	spread := float64(d) * jitter
	return time.Duration(float64(d) - spread + rand.Float64()*2*spread)
}
