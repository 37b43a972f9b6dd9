// SPDX-License-Identifier: MIT

package service

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"
)

// blockingHub answers nothing until the test ends, and signals each request
// on arrived. It deliberately ignores r.Context(): under -race and load the
// Go 1.26 HTTP/1.1 server was seen to cancel a request context on its own
// (an i/o timeout in the connection's background read), which would let
// the handler answer 200 early.
func blockingHub(t *testing.T) (*fakeHub, chan struct{}) {
	t.Helper()
	arrived := make(chan struct{}, 8)
	done := make(chan struct{})
	hub := newFakeHub(t, func(w http.ResponseWriter, r *http.Request, n int) {
		arrived <- struct{}{}
		<-done
	})
	// Registered after the server's Close so that it runs first: Close
	// waits for the handlers.
	t.Cleanup(func() { close(done) })
	return hub, arrived
}

// waitErr returns the error from errc, failing the test if the call does not end.
func waitErr(t *testing.T, errc <-chan error) error {
	t.Helper()
	select {
	case err := <-errc:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("call did not return after its context was cancelled")
		return nil
	}
}

func TestCancelInFlight(t *testing.T) {
	tests := []struct {
		name string
		call func(ctx context.Context, c *Client) error
	}{
		{"GetDevice", func(ctx context.Context, c *Client) error { _, err := c.GetDevice(ctx, "d"); return err }},
		{"InvokeMethod", func(ctx context.Context, c *Client) error {
			_, err := c.InvokeMethod(ctx, "d", MethodCall{Name: "m", ResponseTimeout: 300 * time.Second})
			return err
		}},
		{"Query", func(ctx context.Context, c *Client) error {
			_, err := c.Query("SELECT * FROM devices", 0).NextPage(ctx)
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hub, arrived := blockingHub(t)
			c, _ := hub.client(t, WithRetryPolicy(ExponentialBackoff{}))
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			errc := make(chan error, 1)
			go func() { errc <- tt.call(ctx, c) }()
			<-arrived
			cancel()
			if err := waitErr(t, errc); !errors.Is(err, context.Canceled) {
				t.Errorf("got %v, want context.Canceled", err)
			}
			if n := len(hub.requests()); n != 1 {
				t.Errorf("got %d requests, want 1 (no retry after cancel)", n)
			}
		})
	}
}

// TestCancelDuringBackoff uses the real timer wait: cancelling during a
// 30 s Retry-After ends the call with both the cancellation and the hub's
// last error in the chain.
func TestCancelDuringBackoff(t *testing.T) {
	hub := newFakeHub(t, func(w http.ResponseWriter, r *http.Request, n int) {
		w.Header().Set("Retry-After", "30")
		replyFormA(w, 503, "ServiceUnavailable", "busy")
	})
	c, _ := hub.client(t, WithRetryPolicy(retryPolicy))
	waiting := make(chan time.Duration, 1)
	c.sleep = func(ctx context.Context, d time.Duration) error {
		waiting <- d
		return sleepContext(ctx, d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() { _, err := c.GetDevice(ctx, "d"); errc <- err }()
	if d := <-waiting; d != 30*time.Second {
		t.Errorf("waiting %v, want the 30s Retry-After", d)
	}
	cancel()
	err := waitErr(t, errc)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
	if e := asError(err); e == nil || e.StatusCode != 503 {
		t.Errorf("got %v, want the last 503 in the chain", err)
	}
	if n := len(hub.requests()); n != 1 {
		t.Errorf("got %d requests, want 1", n)
	}
}

func TestCancelledBeforeStart(t *testing.T) {
	hub := newFakeHub(t, func(w http.ResponseWriter, r *http.Request, n int) { reply(w, 200, `{}`) })
	c, _ := hub.client(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.GetDevice(ctx, "d"); !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
	if n := len(hub.requests()); n != 0 {
		t.Errorf("got %d requests, want 0", n)
	}
}

// TestAttemptTimeout checks the per-attempt limit InvokeMethod relies on:
// it ends the request with a clear error and is never retried.
func TestAttemptTimeout(t *testing.T) {
	hub, _ := blockingHub(t)
	c, rec := hub.client(t, WithRetryPolicy(retryPolicy))
	_, err := c.do(testContext(t), &call{op: "Probe", method: http.MethodGet, path: "/devices/d", idempotent: true, timeout: 50 * time.Millisecond}, nil)
	if !errors.Is(err, ErrTimeout) || asError(err) != nil {
		t.Errorf("got %v, want ErrTimeout from the client, not a hub *Error", err)
	}
	if got, want := fmt.Sprint(err), "service: Probe: no answer within 50ms (service: timed out)"; got != want {
		t.Errorf("message %q, want %q", got, want)
	}
	// No wait before a second attempt was scheduled. On a loaded machine
	// the limit may pass before the request even reaches the handler, so
	// the handler's count is only an upper bound.
	if w := rec.get(); len(w) != 0 {
		t.Errorf("got waits %v, want none: the call must not be retried", w)
	}
	if n := len(hub.requests()); n > 1 {
		t.Errorf("got %d requests, want at most 1", n)
	}
}

func TestMethodHTTPTimeout(t *testing.T) {
	// The per-attempt timeout InvokeMethod derives from the call: response
	// plus connect seconds plus the wire margin.
	tests := []struct {
		name string
		m    MethodCall
		want time.Duration
	}{
		{"defaults", MethodCall{Name: "m"}, 30*time.Second + methodWireMargin},
		{"both", MethodCall{Name: "m", ResponseTimeout: 10 * time.Second, ConnectTimeout: 20 * time.Second}, 30*time.Second + methodWireMargin},
		{"rounded up", MethodCall{Name: "m", ResponseTimeout: 5500 * time.Millisecond}, 6*time.Second + methodWireMargin},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hub := newFakeHub(t, func(w http.ResponseWriter, r *http.Request, n int) {
				reply(w, 200, `{"status":200,"payload":null}`)
			})
			c, _ := hub.client(t)
			var seen time.Duration
			c.http.Transport = deadlineSpy{next: c.http.Transport, seen: &seen}
			// No deadline on ctx, so the one on the request is the call's own.
			if _, err := c.InvokeMethod(context.Background(), "d", tt.m); err != nil {
				t.Fatal(err)
			}
			if seen > tt.want || seen < tt.want-5*time.Second {
				t.Errorf("request deadline in %v, want about %v", seen, tt.want)
			}
		})
	}
}

// deadlineSpy records how far away the request context's deadline is.
type deadlineSpy struct {
	next http.RoundTripper
	seen *time.Duration
}

func (d deadlineSpy) RoundTrip(r *http.Request) (*http.Response, error) {
	if dl, ok := r.Context().Deadline(); ok {
		*d.seen = time.Until(dl)
	}
	return d.next.RoundTrip(r)
}
