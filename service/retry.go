// SPDX-License-Identifier: MIT

package service

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/iothubemulator/iothub/internal/wire"
)

// RetryPolicy decides whether and when the client repeats a failed call.
// The device package's RetryPolicy has the same method, so one policy value
// can serve both clients.
//
// The client consults the policy only about failures that are safe to
// repeat, whatever the policy: only reads (GET, and the query and
// configuration testQueries POSTs, which change nothing), DELETE, and PUT
// requests carrying If-Match are retried. Creates, twin PATCHes, bulk operations and direct methods are
// never retried, because the first attempt may already have taken effect.
// Retried failures are 429, 500, 502, 503 and 504 (but never 504101, a
// device that did not answer a method) and network errors, except those
// that a repeat cannot mend: a certificate that cannot be verified, a host
// name that does not resolve, and a refused connection to a host other
// than this machine (one on this machine may be an emulator starting). A Retry-After
// header longer than the policy's delay wins. The caller's context bounds
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
type RetryPolicy interface {
	// Delay returns the wait before the next attempt, given the number of
	// failed attempts so far (1 after the first) and the error of the
	// last one. ok false ends the call with that error.
	Delay(failures int, err error) (d time.Duration, ok bool)
}

// ExponentialBackoff doubles the wait after each failed attempt, up to Max,
// and randomises it by ±Jitter so that clients throttled together do not
// retry in lockstep. Zero fields take the defaults noted below, so the zero
// value is the default policy: at most 4 attempts, waits from 250ms
// doubling up to 10s.
type ExponentialBackoff struct {
	Initial     time.Duration // wait after the first failure; default 250ms
	Max         time.Duration // upper bound on the wait before jitter; default 10s
	Jitter      float64       // relative randomisation in (0, 1]; default 0.25
	MaxFailures int           // give up after this many failed attempts; default 4
}

// Delay implements RetryPolicy.
func (b ExponentialBackoff) Delay(failures int, _ error) (time.Duration, bool) {
	maxFailures := b.MaxFailures
	if maxFailures <= 0 {
		maxFailures = 4
	}
	if failures >= maxFailures {
		return 0, false
	}
	initial, limit, jitter := b.Initial, b.Max, b.Jitter
	if initial <= 0 {
		initial = 250 * time.Millisecond
	}
	if limit <= 0 {
		limit = 10 * time.Second
	}
	if jitter <= 0 || jitter > 1 {
		jitter = 0.25
	}
	return wire.Backoff(failures, initial, limit, jitter), true
}

// noRetry is the policy of WithoutRetries.
type noRetry struct{}

func (noRetry) Delay(int, error) (time.Duration, bool) { return 0, false }

// DefaultRetryPolicy returns the policy used when no WithRetryPolicy option
// is given.
//
// Deprecated: the default is ExponentialBackoff{}.
func DefaultRetryPolicy() RetryPolicy { return ExponentialBackoff{} }

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
