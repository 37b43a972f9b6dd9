// SPDX-License-Identifier: MIT

package service

import (
	"context"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// RetryPolicy says how the client retries a failed call. Only calls that
// are safe to repeat are retried: reads (GET, and the query POST, which
// changes nothing), DELETE, and PUT requests carrying If-Match. Creates,
// twin PATCHes, bulk operations and direct methods are never retried,
// because the first attempt may already have taken effect. Retried
// failures are 429, 500, 502, 503 and 504 (but never 504101, a device that
// did not answer a method) and network errors. The caller's context bounds
// the whole sequence.
//
// Writes conditional on a specific etag (UpdateDevice, UpdateModule,
// ReplaceTwin, ReplaceModuleTwin, DeleteDevice and DeleteModule given an
// etag) are retried only after 429 and 503, which the hub answers before
// doing anything: after a network error, 500, 502 or 504 the write may
// have happened, changing the etag, and a repeat would report 412 (or 404)
// for a write that succeeded. An unconditional delete retried after such a
// failure treats DeviceNotFound (ModuleNotFound for DeleteModule) as the
// earlier attempt's success.
type RetryPolicy struct {
	MaxAttempts int           // total attempts including the first; 1 or less disables retries
	BaseDelay   time.Duration // backoff before the first retry; doubled for each further retry
	MaxDelay    time.Duration // cap on the computed backoff (a Retry-After header may ask for more)
}

// DefaultRetryPolicy returns the policy used when no WithRetryPolicy option
// is given: 4 attempts, backoff from 250ms doubling up to 10s, with jitter.
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{MaxAttempts: 4, BaseDelay: 250 * time.Millisecond, MaxDelay: 10 * time.Second}
}

// backoff returns the wait before retry number n (1 for the first retry):
// "equal jitter", a random point in the upper half of the exponential step,
// so that clients throttled together do not retry in lockstep.
func (p RetryPolicy) backoff(n int) time.Duration {
	d := p.BaseDelay
	if d <= 0 {
		return 0
	}
	for i := 1; i < n && (p.MaxDelay <= 0 || d < p.MaxDelay); i++ {
		d *= 2
	}
	if p.MaxDelay > 0 && d > p.MaxDelay {
		d = p.MaxDelay
	}
	half := d / 2
	return half + rand.N(d-half+1)
}

// retryableStatus reports whether a failed response may succeed if the same
// request is sent again.
func retryableStatus(e *Error) bool {
	switch e.StatusCode {
	case http.StatusTooManyRequests, http.StatusInternalServerError,
		http.StatusBadGateway, http.StatusServiceUnavailable:
		return true
	case http.StatusGatewayTimeout:
		// 504101 means the device was reached and did not answer in time;
		// repeating the request would run the method again.
		return e.Code != CodeGatewayTimeout
	}
	return false
}

// retryAfter reads how long the server asked us to wait: Retry-After in
// seconds or as an HTTP date, or the Azure variants in milliseconds.
func retryAfter(h http.Header, now time.Time) (time.Duration, bool) {
	for _, name := range []string{"Retry-After-Ms", "X-Ms-Retry-After-Ms"} {
		if v := strings.TrimSpace(h.Get(name)); v != "" {
			if ms, err := strconv.ParseInt(v, 10, 64); err == nil && ms >= 0 {
				return time.Duration(ms) * time.Millisecond, true
			}
		}
	}
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil && s >= 0 {
		return time.Duration(s) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// sleepContext waits for d or until ctx is done.
func sleepContext(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
