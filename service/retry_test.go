// SPDX-License-Identifier: MIT

package service

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// retryPolicy is fast and deterministic enough to check the recorded waits.
var retryPolicy = ExponentialBackoff{MaxFailures: 4, Initial: 100 * time.Millisecond, Max: time.Second, Jitter: 0.25}

func TestRetryHonoursRetryAfter(t *testing.T) {
	hub := newFakeHub(t, func(w http.ResponseWriter, r *http.Request, n int) {
		switch n {
		case 0:
			replyFormA(w, 503, "ServiceUnavailable", "try later")
		case 1:
			w.Header().Set("Retry-After", "2")
			replyFormA(w, 429, "ThrottlingException", "slow down")
		default:
			reply(w, 200, deviceJSON)
		}
	})
	c, rec := hub.client(t, WithRetryPolicy(retryPolicy))
	d, err := c.GetDevice(testContext(t), "dev1")
	if err != nil {
		t.Fatalf("GetDevice: %v", err)
	}
	if d.DeviceID != "dev1" {
		t.Errorf("got device %q, want dev1", d.DeviceID)
	}
	waits := rec.get()
	if len(waits) != 2 {
		t.Fatalf("got waits %v, want 2", waits)
	}
	// First retry: the initial wait ±25%.
	if waits[0] < 75*time.Millisecond || waits[0] > 125*time.Millisecond {
		t.Errorf("first wait %v, want within [75ms, 125ms]", waits[0])
	}
	if waits[1] != 2*time.Second {
		t.Errorf("second wait %v, want the 2s Retry-After", waits[1])
	}
	reqs := hub.requests()
	if len(reqs) != 3 {
		t.Fatalf("got %d requests, want 3", len(reqs))
	}
	ids := map[string]bool{}
	for _, r := range reqs {
		ids[r.Header.Get("Request-Id")] = true
	}
	if len(ids) != 3 {
		t.Errorf("got %d distinct Request-Ids over 3 attempts, want 3", len(ids))
	}
}

func TestRetryAfterHTTPDate(t *testing.T) {
	now := time.Date(2024, 5, 2, 9, 0, 0, 0, time.UTC)
	hub := newFakeHub(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 0 {
			w.Header().Set("Retry-After", now.Add(3*time.Second).Format(http.TimeFormat))
			replyFormA(w, 429, "ThrottlingException", "slow down")
			return
		}
		reply(w, 200, `{}`)
	})
	c, rec := hub.client(t, WithRetryPolicy(retryPolicy))
	c.now = func() time.Time { return now }
	if err := c.DeleteDevice(testContext(t), "dev1", ""); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]time.Duration{3 * time.Second}, rec.get()); diff != "" {
		t.Errorf("waits mismatch (-want +got):\n%s", diff)
	}
}

func TestRetryGivesUpAfterMaxAttempts(t *testing.T) {
	hub := newFakeHub(t, func(w http.ResponseWriter, r *http.Request, n int) {
		replyFormA(w, 500, "ServerError", "broken")
	})
	c, rec := hub.client(t, WithRetryPolicy(retryPolicy))
	_, err := c.GetTwin(testContext(t), "dev1")
	var e *Error
	if !errors.As(err, &e) || e.StatusCode != 500 {
		t.Fatalf("got %v, want the last 500 *Error", err)
	}
	if n := len(hub.requests()); n != retryPolicy.MaxFailures {
		t.Errorf("got %d requests, want %d", n, retryPolicy.MaxFailures)
	}
	waits := rec.get()
	if len(waits) != 3 {
		t.Fatalf("got waits %v, want 3", waits)
	}
	// Exponential: each step doubles, capped at Max, then ±25% jitter.
	for i, w := range waits {
		step := min(retryPolicy.Initial<<i, retryPolicy.Max)
		if lo, hi := step*3/4, step*5/4; w < lo || w > hi {
			t.Errorf("wait %d = %v, want within [%v, %v]", i, w, lo, hi)
		}
	}
}

// TestRetryOnlySafeCalls checks that calls that may have taken effect are
// sent once, whatever the failure, and that safe ones are repeated.
func TestRetryOnlySafeCalls(t *testing.T) {
	tests := []struct {
		name      string
		status    int
		call      func(ctx context.Context, c *Client) error
		wantTries int
	}{
		{"CreateDevice 429", 429, func(ctx context.Context, c *Client) error {
			_, err := c.CreateDevice(ctx, &Device{DeviceID: "d"})
			return err
		}, 1},
		{"CreateModule 503", 503, func(ctx context.Context, c *Client) error {
			_, err := c.CreateModule(ctx, &Module{DeviceID: "d", ModuleID: "m"})
			return err
		}, 1},
		{"UpdateTwin PATCH 503", 503, func(ctx context.Context, c *Client) error {
			_, err := c.UpdateTwin(ctx, "d", &Twin{}, "*")
			return err
		}, 1},
		{"InvokeMethod 503", 503, func(ctx context.Context, c *Client) error {
			_, err := c.InvokeMethod(ctx, "d", MethodCall{Name: "m"})
			return err
		}, 1},
		{"InvokeMethod 429", 429, func(ctx context.Context, c *Client) error {
			_, err := c.InvokeModuleMethod(ctx, "d", "m", MethodCall{Name: "m"})
			return err
		}, 1},
		{"Bulk 500", 500, func(ctx context.Context, c *Client) error {
			_, err := c.BulkRegistryOperation(ctx, []ExportImportDevice{{ID: "a", ImportMode: ImportCreate}})
			return err
		}, 1},
		{"GetDevice 404", 404, func(ctx context.Context, c *Client) error {
			_, err := c.GetDevice(ctx, "d")
			return err
		}, 1},
		{"UpdateDevice 412", 412, func(ctx context.Context, c *Client) error {
			_, err := c.UpdateDevice(ctx, &Device{DeviceID: "d", ETag: "MQ=="})
			return err
		}, 1},
		{"UpdateDevice PUT with If-Match 503", 503, func(ctx context.Context, c *Client) error {
			_, err := c.UpdateDevice(ctx, &Device{DeviceID: "d", ETag: "MQ=="})
			return err
		}, 2},
		{"ReplaceTwin PUT 502", 502, func(ctx context.Context, c *Client) error {
			_, err := c.ReplaceTwin(ctx, "d", &Twin{}, "")
			return err
		}, 2},
		{"DeleteModule 504", 504, func(ctx context.Context, c *Client) error {
			return c.DeleteModule(ctx, "d", "m", "")
		}, 2},
		{"Query 429", 429, func(ctx context.Context, c *Client) error {
			_, err := c.Query("SELECT * FROM devices", 0).NextPage(ctx)
			return err
		}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hub := newFakeHub(t, func(w http.ResponseWriter, r *http.Request, n int) {
				replyFormA(w, tt.status, "Whatever", "failure")
			})
			c, _ := hub.client(t, WithRetryPolicy(ExponentialBackoff{MaxFailures: 2, Initial: time.Millisecond}))
			err := tt.call(testContext(t), c)
			if e := asError(err); e == nil || e.StatusCode != tt.status {
				t.Fatalf("got %v, want a %d *Error", err, tt.status)
			}
			if n := len(hub.requests()); n != tt.wantTries {
				t.Errorf("got %d attempts, want %d", n, tt.wantTries)
			}
		})
	}
}

// TestRetryStopsBeforeDeadline checks that a Retry-After longer than the
// caller's remaining time returns the hub's error at once instead of
// sleeping into a deadline error.
func TestRetryStopsBeforeDeadline(t *testing.T) {
	hub := newFakeHub(t, func(w http.ResponseWriter, r *http.Request, n int) {
		w.Header().Set("Retry-After", "60")
		replyFormA(w, 429, "ThrottlingException", "slow down")
	})
	c, rec := hub.client(t, WithRetryPolicy(retryPolicy))
	ctx, cancel := context.WithTimeout(testContext(t), 5*time.Second)
	defer cancel()
	_, err := c.GetDevice(ctx, "dev1")
	if !errors.Is(err, ErrThrottled) {
		t.Fatalf("got %v, want the 429", err)
	}
	if w := rec.get(); len(w) != 0 {
		t.Errorf("got waits %v, want none", w)
	}
	if n := len(hub.requests()); n != 1 {
		t.Errorf("got %d requests, want 1", n)
	}
}

func TestRetryAfterParsing(t *testing.T) {
	now := time.Date(2024, 5, 2, 9, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		header http.Header
		want   time.Duration
		wantOK bool
	}{
		{"none", http.Header{}, 0, false},
		{"seconds", http.Header{"Retry-After": {"7"}}, 7 * time.Second, true},
		{"zero", http.Header{"Retry-After": {"0"}}, 0, true},
		{"date", http.Header{"Retry-After": {now.Add(90 * time.Second).Format(http.TimeFormat)}}, 90 * time.Second, true},
		{"past date", http.Header{"Retry-After": {now.Add(-time.Hour).Format(http.TimeFormat)}}, 0, true},
		{"garbage", http.Header{"Retry-After": {"soon"}}, 0, false},
		{"negative", http.Header{"Retry-After": {"-3"}}, 0, false},
		{"milliseconds", http.Header{"Retry-After-Ms": {"1500"}}, 1500 * time.Millisecond, true},
		{"x-ms milliseconds wins", http.Header{"X-Ms-Retry-After-Ms": {"20"}, "Retry-After": {"9"}}, 20 * time.Millisecond, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := retryAfter(tt.header, now)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("got %v %v, want %v %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestRetryableStatus(t *testing.T) {
	tests := []struct {
		status, code int
		want         bool
	}{
		{429, 429001, true}, {500, 0, true}, {502, 0, true}, {503, 503001, true},
		{504, 0, true}, {504, 504101, false},
		{400, 0, false}, {401, 0, false}, {404, 404001, false}, {409, 0, false}, {412, 0, false}, {501, 0, false},
	}
	for _, tt := range tests {
		if got := retryableStatus(&Error{StatusCode: tt.status, Code: tt.code}); got != tt.want {
			t.Errorf("retryableStatus(%d, %d) = %v, want %v", tt.status, tt.code, got, tt.want)
		}
	}
}

func TestExponentialBackoffDefaults(t *testing.T) {
	var b ExponentialBackoff // the default policy
	for failures := 1; failures <= 3; failures++ {
		step := min(250*time.Millisecond<<(failures-1), 10*time.Second)
		d, ok := b.Delay(failures, nil)
		if !ok || d < step*3/4 || d > step*5/4 {
			t.Errorf("Delay(%d) = %v, %v; want within [%v, %v] and true", failures, d, ok, step*3/4, step*5/4)
		}
	}
	if _, ok := b.Delay(4, nil); ok {
		t.Error("Delay(4) ok = true, want false: the default allows 4 attempts")
	}
	if _, ok := (noRetry{}).Delay(1, nil); ok {
		t.Error("noRetry.Delay ok = true, want false")
	}
}

// policyFunc is a RetryPolicy of the test's own.
type policyFunc func(failures int, err error) (time.Duration, bool)

func (f policyFunc) Delay(failures int, err error) (time.Duration, bool) { return f(failures, err) }

// TestRetryPolicyConsulted checks that the client asks the policy after
// each retryable failure, with the failure count and the hub's error, and
// stops when the policy says so; and that WithoutRetries makes one attempt.
func TestRetryPolicyConsulted(t *testing.T) {
	hub := newFakeHub(t, func(w http.ResponseWriter, r *http.Request, n int) {
		replyFormA(w, 503, "ServiceUnavailable", "busy")
	})
	var asked []int
	c, rec := hub.client(t, WithRetryPolicy(policyFunc(func(failures int, err error) (time.Duration, bool) {
		asked = append(asked, failures)
		if !errors.Is(err, ErrServiceUnavailable) {
			t.Errorf("policy got %v, want the 503", err)
		}
		return time.Duration(failures) * time.Millisecond, failures < 3
	})))
	if _, err := c.GetDevice(testContext(t), "d"); !errors.Is(err, ErrServiceUnavailable) {
		t.Fatalf("got %v, want the 503", err)
	}
	if diff := cmp.Diff([]int{1, 2, 3}, asked); diff != "" {
		t.Errorf("policy asked with failures (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]time.Duration{time.Millisecond, 2 * time.Millisecond}, rec.get()); diff != "" {
		t.Errorf("waits (-want +got):\n%s", diff)
	}
	if n := len(hub.requests()); n != 3 {
		t.Errorf("got %d requests, want 3", n)
	}

	one, _ := hub.client(t, WithoutRetries())
	before := len(hub.requests())
	if _, err := one.GetDevice(testContext(t), "d"); !errors.Is(err, ErrServiceUnavailable) {
		t.Fatalf("WithoutRetries: got %v, want the 503", err)
	}
	if n := len(hub.requests()) - before; n != 1 {
		t.Errorf("WithoutRetries: got %d requests, want 1", n)
	}
}

// TestRetryNetworkErrors drops the connection of the first request: a read
// is repeated, a direct method is not.
func TestRetryNetworkErrors(t *testing.T) {
	tests := []struct {
		name      string
		call      func(ctx context.Context, c *Client) error
		wantTries int
		wantErr   bool
	}{
		{"GetDevice retried", func(ctx context.Context, c *Client) error {
			_, err := c.GetDevice(ctx, "d")
			return err
		}, 2, false},
		{"InvokeMethod not retried", func(ctx context.Context, c *Client) error {
			_, err := c.InvokeMethod(ctx, "d", MethodCall{Name: "m"})
			return err
		}, 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hub := newFakeHub(t, func(w http.ResponseWriter, r *http.Request, n int) {
				if n == 0 {
					conn, _, err := http.NewResponseController(w).Hijack()
					if err == nil {
						conn.Close()
					}
					return
				}
				reply(w, 200, `{}`)
			})
			c, rec := hub.client(t, WithRetryPolicy(retryPolicy))
			err := tt.call(testContext(t), c)
			if (err != nil) != tt.wantErr {
				t.Errorf("got error %v, want error %v", err, tt.wantErr)
			}
			if n := len(hub.requests()); n != tt.wantTries {
				t.Errorf("got %d requests, want %d", n, tt.wantTries)
			}
			if w := rec.get(); len(w) != tt.wantTries-1 {
				t.Errorf("got waits %v, want %d", w, tt.wantTries-1)
			}
		})
	}
}

// dropConnection closes the connection of the request being served without
// an answer, as a network failure after the hub acted would look.
func dropConnection(w http.ResponseWriter) {
	if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
		conn.Close()
	}
}

// TestRetryConditionalWrites checks that a write carrying a specific etag
// is not repeated after a failure that may have followed the write (the
// repeat would fail with 412 although the write succeeded), but is after
// 429 and 503, which the hub answers before doing anything; and that the
// same writes with If-Match "*" are repeated after a network error.
func TestRetryConditionalWrites(t *testing.T) {
	writes := []struct {
		name string
		call func(ctx context.Context, c *Client, etag string) error
	}{
		{"UpdateDevice", func(ctx context.Context, c *Client, etag string) error {
			_, err := c.UpdateDevice(ctx, &Device{DeviceID: "d", ETag: etag})
			return err
		}},
		{"UpdateModule", func(ctx context.Context, c *Client, etag string) error {
			_, err := c.UpdateModule(ctx, &Module{DeviceID: "d", ModuleID: "m", ETag: etag})
			return err
		}},
		{"ReplaceTwin", func(ctx context.Context, c *Client, etag string) error {
			_, err := c.ReplaceTwin(ctx, "d", &Twin{}, etag)
			return err
		}},
		{"ReplaceModuleTwin", func(ctx context.Context, c *Client, etag string) error {
			_, err := c.ReplaceModuleTwin(ctx, "d", "m", &Twin{}, etag)
			return err
		}},
		{"DeleteDevice", func(ctx context.Context, c *Client, etag string) error {
			return c.DeleteDevice(ctx, "d", etag)
		}},
		{"DeleteModule", func(ctx context.Context, c *Client, etag string) error {
			return c.DeleteModule(ctx, "d", "m", etag)
		}},
	}
	failures := []struct {
		name      string
		etag      string
		fail      func(w http.ResponseWriter)
		acted     bool // the first attempt took effect before failing
		wantTries int
	}{
		{"etag, network error", "MQ==", dropConnection, true, 1},
		{"etag, 500", "MQ==", func(w http.ResponseWriter) { replyFormA(w, 500, "ServerError", "broken") }, true, 1},
		{"etag, 504", "MQ==", func(w http.ResponseWriter) { reply(w, 504, "upstream timed out") }, true, 1},
		{"etag, 503", "MQ==", func(w http.ResponseWriter) { replyFormA(w, 503, "ServiceUnavailable", "busy") }, false, 2},
		{"etag, 429", "MQ==", func(w http.ResponseWriter) { replyFormA(w, 429, "ThrottlingException", "slow down") }, false, 2},
		{"no etag, network error", "", dropConnection, true, 2},
		{"star, network error", "*", dropConnection, true, 2},
	}
	for _, wr := range writes {
		for _, f := range failures {
			t.Run(wr.name+"/"+f.name, func(t *testing.T) {
				// A retry after a first attempt that took effect meets a
				// changed etag: a conditional one gets 412.
				hub := newFakeHub(t, func(w http.ResponseWriter, r *http.Request, n int) {
					switch {
					case n == 0:
						f.fail(w)
					case f.acted && r.Header.Get("If-Match") != `"*"`:
						replyFormA(w, 412, "PreconditionFailed", "etag mismatch")
					case r.Method == http.MethodDelete:
						reply(w, 204, "")
					default:
						reply(w, 200, `{}`)
					}
				})
				c, _ := hub.client(t, WithRetryPolicy(ExponentialBackoff{MaxFailures: 3, Initial: time.Millisecond}))
				err := wr.call(testContext(t), c, f.etag)
				if errors.Is(err, ErrPreconditionFailed) || (f.wantTries > 1) != (err == nil) {
					t.Errorf("got %v, want success after a retry: %v", err, f.wantTries > 1)
				}
				if n := len(hub.requests()); n != f.wantTries {
					t.Errorf("got %d attempts, want %d", n, f.wantTries)
				}
			})
		}
	}
}

// TestRetriedDeleteAlreadyGone checks that an unconditional delete whose
// first attempt may have succeeded reports success when the retry finds
// the target gone, and that a 404 still fails the call when no earlier
// attempt can have deleted it.
func TestRetriedDeleteAlreadyGone(t *testing.T) {
	gone := func(w http.ResponseWriter, name string) { replyFormA(w, 404, name, "not registered") }
	tests := []struct {
		name     string
		first    func(w http.ResponseWriter) // the first attempt; later ones get 404
		delete   func(ctx context.Context, c *Client) error
		notFound string // the 404's code name
		wantErr  bool
	}{
		{"device after network error", dropConnection, func(ctx context.Context, c *Client) error {
			return c.DeleteDevice(ctx, "d", "")
		}, "DeviceNotFound", false},
		{"device after 502", func(w http.ResponseWriter) { reply(w, 502, "bad gateway") }, func(ctx context.Context, c *Client) error {
			return c.DeleteDevice(ctx, "d", "")
		}, "DeviceNotFound", false},
		{"module after network error", dropConnection, func(ctx context.Context, c *Client) error {
			return c.DeleteModule(ctx, "d", "m", "*")
		}, "ModuleNotFound", false},
		{"module whose device is gone", dropConnection, func(ctx context.Context, c *Client) error {
			return c.DeleteModule(ctx, "d", "m", "")
		}, "DeviceNotFound", true},
		{"device after 429", func(w http.ResponseWriter) { replyFormA(w, 429, "ThrottlingException", "slow down") }, func(ctx context.Context, c *Client) error {
			return c.DeleteDevice(ctx, "d", "")
		}, "DeviceNotFound", true},
		{"device on the first attempt", func(w http.ResponseWriter) { gone(w, "DeviceNotFound") }, func(ctx context.Context, c *Client) error {
			return c.DeleteDevice(ctx, "d", "")
		}, "DeviceNotFound", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hub := newFakeHub(t, func(w http.ResponseWriter, r *http.Request, n int) {
				if n == 0 {
					tt.first(w)
					return
				}
				gone(w, tt.notFound)
			})
			c, _ := hub.client(t, WithRetryPolicy(ExponentialBackoff{MaxFailures: 3, Initial: time.Millisecond}))
			err := tt.delete(testContext(t), c)
			if tt.wantErr != errors.Is(err, ErrNotFound) || (!tt.wantErr && err != nil) {
				t.Errorf("got %v, want not-found error %v", err, tt.wantErr)
			}
		})
	}
}
