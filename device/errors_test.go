// SPDX-License-Identifier: MIT

package device

import (
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestTwinError(t *testing.T) {
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
			want: &Error{Op: "GetTwin", StatusCode: 400, Code: 400004, CodeName: "ArgumentInvalid", Message: "bad key", TrackingID: "t1", RequestID: "r1"},
		},
		{
			name:   "string error code",
			status: 409,
			body:   `{"errorCode":"409002","message":"Conflict"}`,
			want:   &Error{Op: "GetTwin", StatusCode: 409, Code: 409002, Message: "Conflict", RequestID: "r1"},
		},
		{
			// The REST form, should a gateway relay it.
			name:   "form A",
			status: 404,
			body:   `{"Message":"ErrorCode:DeviceNotFound;Device dev9 is not registered","ExceptionMessage":"Tracking ID:x"}`,
			want:   &Error{Op: "GetTwin", StatusCode: 404, Code: 404001, CodeName: "DeviceNotFound", Message: "Device dev9 is not registered", TrackingID: "x", RequestID: "r1"},
		},
		{name: "empty body (edgeHub)", status: 429, body: "", want: &Error{Op: "GetTwin", StatusCode: 429, Message: "Too Many Requests", RequestID: "r1"}},
		{name: "not json", status: 500, body: "oops", want: &Error{Op: "GetTwin", StatusCode: 500, Message: "oops", RequestID: "r1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := twinError("GetTwin", "r1", tt.status, []byte(tt.body))
			if diff := cmp.Diff(tt.want, got, cmpopts.IgnoreFields(Error{}, "Body")); diff != "" {
				t.Errorf("twinError mismatch (-want +got):\n%s", diff)
			}
			if string(got.Body) != tt.body {
				t.Errorf("Body = %q, want %q", got.Body, tt.body)
			}
		})
	}
}

func TestErrorString(t *testing.T) {
	e := twinError("UpdateReportedProperties", "r", 400, []byte(`{"errorCode":400004,"message":"bad key"}`))
	if got, want := e.Error(), "device: UpdateReportedProperties: 400 ArgumentInvalid (400004): bad key"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// sentinels lists every sentinel a hub answer can match.
var sentinels = []error{
	ErrBadRequest, ErrUnauthorized, ErrForbidden, ErrNotFound, ErrPreconditionFailed, ErrMessageTooLarge,
	ErrThrottled, ErrTimeout, ErrServerError, ErrServiceUnavailable,
}

func TestErrorIs(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want error // the one sentinel err matches; nil for none
	}{
		{name: "400", err: &Error{StatusCode: 400, Code: 400004}, want: ErrBadRequest},
		{name: "401", err: &Error{StatusCode: 401}, want: ErrUnauthorized},
		{name: "403", err: &Error{StatusCode: 403, Code: 403002}, want: ErrForbidden},
		{name: "404", err: &Error{StatusCode: 404}, want: ErrNotFound},
		{name: "412", err: &Error{StatusCode: 412}, want: ErrPreconditionFailed},
		{name: "413", err: &Error{StatusCode: 413, Code: 413001}, want: ErrMessageTooLarge},
		{name: "429 wrapped", err: fmt.Errorf("get twin: %w", &Error{StatusCode: 429}), want: ErrThrottled},
		{name: "504", err: &Error{StatusCode: 504}, want: ErrTimeout},
		{name: "500", err: &Error{StatusCode: 500}, want: ErrServerError},
		{name: "503", err: &Error{StatusCode: 503}, want: ErrServiceUnavailable},
		{name: "409", err: &Error{StatusCode: 409, Code: 409002}, want: nil},
		{name: "status not a number", err: twinError("GetTwin", "r", 0, []byte(`{"errorCode":429001}`)), want: ErrThrottled},
		{name: "connack 1", err: connackError(1, errors.New("unacceptable protocol version")), want: ErrBadRequest},
		{name: "connack 2", err: connackError(2, errors.New("identifier rejected")), want: ErrUnauthorized},
		{name: "connack 3", err: connackError(3, errors.New("unavailable")), want: ErrServiceUnavailable},
		{name: "connack 4", err: connackError(4, errors.New("bad password")), want: ErrUnauthorized},
		{name: "connack 5", err: connackError(5, errors.New("not authorised")), want: ErrUnauthorized},
		{name: "local timeout", err: fmt.Errorf("%w after 1s", ErrTimeout), want: ErrTimeout},
		{name: "local size limit", err: fmt.Errorf("%w: 300000 bytes", ErrMessageTooLarge), want: ErrMessageTooLarge},
		{name: "not a hub error", err: errors.New("boom"), want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, s := range sentinels {
				if got := errors.Is(tt.err, s); got != (s == tt.want) {
					t.Errorf("errors.Is(%v, %v) = %v, want %v", tt.err, s, got, s == tt.want)
				}
			}
		})
	}
	var e *Error
	if !errors.As(fmt.Errorf("x: %w", connackError(5, errors.New("no"))), &e) || e.Op != "Connect" || e.StatusCode != 401 {
		t.Errorf("errors.As did not find the CONNACK *Error; got %+v", e)
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
	if _, ok := (noRetry{}).Delay(1, nil); ok {
		t.Error("noRetry.Delay ok = true, want false")
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

// TestDeprecatedNoRetry checks that the old spelling still selects the
// policy WithoutRetries sets, which the supervisor recognises by its type
// to skip even the immediate first reconnection attempt.
func TestDeprecatedNoRetry(t *testing.T) {
	for name, opt := range map[string]Option{"WithoutRetries": WithoutRetries(), "WithRetryPolicy(NoRetry)": WithRetryPolicy(NoRetry)} {
		s, err := newSettings([]Option{opt})
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := s.retry.(noRetry); !ok {
			t.Errorf("%s: policy %T, want noRetry", name, s.retry)
		}
	}
	if _, err := newSettings([]Option{WithRetryPolicy(nil)}); err == nil {
		t.Error("WithRetryPolicy(nil): no error")
	}
}
