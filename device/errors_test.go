// SPDX-License-Identifier: MIT

package device

import (
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestNewStatusError(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
		want   *Error
	}{
		{
			name:   "hub error body",
			status: 400,
			// Shape parsed by the C# v2 SDK (IotHubClientErrorResponseMessage.cs).
			body: `{"errorCode":400004,"trackingId":"t1","message":"bad key","timestampUtc":"2024-01-01T00:00:00Z"}`,
			want: &Error{Status: 400, Code: 400004, Message: "bad key", TrackingID: "t1"},
		},
		{
			name:   "string error code",
			status: 409,
			body:   `{"errorCode":"409002","message":"Conflict"}`,
			want:   &Error{Status: 409, Code: 409002, Message: "Conflict"},
		},
		{name: "empty body", status: 429, body: "", want: &Error{Status: 429, Message: "Too Many Requests"}},
		{name: "not json", status: 500, body: "oops", want: &Error{Status: 500, Message: "Internal Server Error"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := newStatusError(tt.status, []byte(tt.body))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("newStatusError mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestErrorIs(t *testing.T) {
	tests := []struct {
		name   string
		err    error
		target error
		want   bool
	}{
		{name: "401", err: &Error{Status: 401}, target: ErrUnauthorized, want: true},
		{name: "404", err: &Error{Status: 404}, target: ErrNotFound, want: true},
		{name: "412", err: &Error{Status: 412}, target: ErrPreconditionFailed, want: true},
		{name: "429 wrapped", err: fmt.Errorf("get twin: %w", &Error{Status: 429}), target: ErrThrottled, want: true},
		{name: "429 is not 401", err: &Error{Status: 429}, target: ErrUnauthorized, want: false},
		{name: "connack 5", err: connackError(5, errors.New("not authorised")), target: ErrUnauthorized, want: true},
		{name: "connack 4", err: connackError(4, errors.New("bad password")), target: ErrUnauthorized, want: true},
		{name: "connack 3", err: connackError(3, errors.New("unavailable")), target: ErrUnauthorized, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := errors.Is(tt.err, tt.target); got != tt.want {
				t.Errorf("errors.Is(%v, %v) = %v, want %v", tt.err, tt.target, got, tt.want)
			}
		})
	}
	var e *Error
	if !errors.As(fmt.Errorf("x: %w", &Error{Status: 400, Code: 400004}), &e) || e.Code != 400004 {
		t.Errorf("errors.As did not find the *Error; got %v", e)
	}
}

func TestExponentialBackoff(t *testing.T) {
	b := ExponentialBackoff{Initial: 100e6, Max: 1e9, Jitter: 0.25, MaxFailures: 6}
	tests := []struct {
		failures int
		base     float64 // seconds before jitter
		ok       bool
	}{
		{1, 0.1, true}, {2, 0.2, true}, {3, 0.4, true}, {4, 0.8, true}, {5, 1, true}, {6, 0, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.failures), func(t *testing.T) {
			for range 50 {
				d, ok := b.Delay(tt.failures, nil)
				if ok != tt.ok {
					t.Fatalf("Delay(%d) ok = %v, want %v", tt.failures, ok, tt.ok)
				}
				if !ok {
					return
				}
				lo, hi := tt.base*0.75, tt.base*1.25
				if s := d.Seconds(); s < lo || s > hi {
					t.Fatalf("Delay(%d) = %v, want within [%vs, %vs]", tt.failures, d, lo, hi)
				}
			}
		})
	}
	if _, ok := NoRetry.Delay(1, nil); ok {
		t.Error("NoRetry.Delay ok = true, want false")
	}
}

// TestExponentialBackoffStopsOnUnauthorized checks that the default policy
// gives up on a refused CONNECT for credentials (Node's DefaultErrorFilter
// has UnauthorizedError false) and goes on after other failures.
func TestExponentialBackoffStopsOnUnauthorized(t *testing.T) {
	tests := []struct {
		name string
		err  error
		ok   bool
	}{
		{name: "connack 5", err: connackError(5, errors.New("not authorized")), ok: false},
		{name: "connack 4 wrapped", err: fmt.Errorf("device: connect: %w", connackError(4, errors.New("bad password"))), ok: false},
		{name: "connack 3", err: connackError(3, errors.New("unavailable")), ok: true},
		{name: "network", err: errors.New("connection reset"), ok: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, ok := (ExponentialBackoff{}).Delay(1, tt.err); ok != tt.ok {
				t.Errorf("Delay(1, %v) ok = %v, want %v", tt.err, ok, tt.ok)
			}
		})
	}
}
