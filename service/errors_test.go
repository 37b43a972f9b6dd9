// SPDX-License-Identifier: MIT

package service

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// TestParseError checks that an *Error carries everything the shared
// parser read (internal/wire tests the body forms themselves).
func TestParseError(t *testing.T) {
	tests := []struct {
		name   string
		status int
		header http.Header
		body   string
		want   Error
	}{
		{
			name:   "form A with header",
			status: 404,
			header: http.Header{"Iothub-Errorcode": {"DeviceNotFound"}},
			body:   `{"Message":"ErrorCode:DeviceNotFound;Device dev9 is not registered","ExceptionMessage":"Tracking ID:3f1c-G:4-TimeStamp:05/02/2024 09:20:11"}`,
			want: Error{StatusCode: 404, Code: 404001, CodeName: "DeviceNotFound", Message: "Device dev9 is not registered",
				TrackingID: "3f1c-G:4-TimeStamp:05/02/2024 09:20:11"},
		},
		{
			name:   "form B",
			status: 404,
			body:   `{"Message":"{\"errorCode\":404103,\"trackingId\":\"b1f0-G:10\",\"message\":\"Timed out waiting for device to connect.\",\"info\":{\"timeout\":\"00:00:00\"},\"timestampUtc\":\"2024-05-02T09:21:00.1234567Z\"}","ExceptionMessage":""}`,
			want: Error{StatusCode: 404, Code: 404103, CodeName: "DeviceNotOnline", Message: "Timed out waiting for device to connect.",
				TrackingID: "b1f0-G:10", Info: json.RawMessage(`{"timeout":"00:00:00"}`)},
		},
		{
			name:   "plain text from a proxy",
			status: 502,
			body:   "<html>\n  Bad   gateway\n</html>",
			want:   Error{StatusCode: 502, Message: "<html> Bad gateway </html>"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := parseError(tt.status, tt.header, []byte(tt.body))
			if diff := cmp.Diff(&tt.want, got, cmpopts.IgnoreFields(Error{}, "Body")); diff != "" {
				t.Errorf("parseError mismatch (-want +got):\n%s", diff)
			}
			if string(got.Body) != tt.body {
				t.Errorf("Body = %q, want %q", got.Body, tt.body)
			}
		})
	}
}

func TestErrorString(t *testing.T) {
	e := &Error{Op: "GetDevice", StatusCode: 404, Code: 404001, CodeName: "DeviceNotFound", Message: "Device dev9 is not registered"}
	want := "service: GetDevice: 404 DeviceNotFound (404001): Device dev9 is not registered"
	if got := e.Error(); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// sentinels lists every sentinel a hub answer can match.
var sentinels = []error{
	ErrBadRequest, ErrUnauthorized, ErrForbidden, ErrNotFound, ErrDeviceNotOnline, ErrAlreadyExists,
	ErrPreconditionFailed, ErrMessageTooLarge, ErrThrottled, ErrTimeout, ErrServerError, ErrServiceUnavailable,
}

func TestErrorIs(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want error // the one sentinel err matches; nil for none
	}{
		{"device not found", &Error{StatusCode: 404, Code: 404001}, ErrNotFound},
		{"module not found", &Error{StatusCode: 404, Code: 404010}, ErrNotFound},
		{"device not online", &Error{StatusCode: 404, Code: 404103}, ErrDeviceNotOnline},
		{"exists", &Error{StatusCode: 409, Code: 409001}, ErrAlreadyExists},
		{"etag", &Error{StatusCode: 412, Code: 412001}, ErrPreconditionFailed},
		{"too large", &Error{StatusCode: 413, Code: 413001}, ErrMessageTooLarge},
		{"throttled", &Error{StatusCode: 429}, ErrThrottled},
		{"unauthorized", &Error{StatusCode: 401}, ErrUnauthorized},
		{"quota", &Error{StatusCode: 403, Code: 403002}, ErrForbidden},
		{"bad request", &Error{StatusCode: 400}, ErrBadRequest},
		{"method timeout", &Error{StatusCode: 504, Code: 504101}, ErrTimeout},
		{"server error", &Error{StatusCode: 500, Code: 500001}, ErrServerError},
		{"unavailable", &Error{StatusCode: 503}, ErrServiceUnavailable},
		{"bad gateway", &Error{StatusCode: 502}, nil},
		{"wrapped", fmt.Errorf("outer: %w", &Error{StatusCode: 409}), ErrAlreadyExists},
		{"own timeout", fmt.Errorf("service: InvokeMethod: %w", ErrTimeout), ErrTimeout},
		{"not an *Error", errors.New("boom"), nil},
		{"nil", nil, nil},
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
}

// TestDeprecatedClassifiers checks that the old Is... helpers still answer
// as before.
func TestDeprecatedClassifiers(t *testing.T) {
	helpers := []struct {
		name     string
		f        func(error) bool
		sentinel error
	}{
		{"IsNotFound", IsNotFound, ErrNotFound}, {"IsAlreadyExists", IsAlreadyExists, ErrAlreadyExists},
		{"IsPreconditionFailed", IsPreconditionFailed, ErrPreconditionFailed}, {"IsThrottled", IsThrottled, ErrThrottled},
		{"IsUnauthorized", IsUnauthorized, ErrUnauthorized}, {"IsForbidden", IsForbidden, ErrForbidden},
		{"IsBadRequest", IsBadRequest, ErrBadRequest}, {"IsDeviceNotOnline", IsDeviceNotOnline, ErrDeviceNotOnline},
	}
	errs := []error{
		&Error{StatusCode: 404, Code: 404001}, &Error{StatusCode: 404, Code: 404103}, &Error{StatusCode: 409},
		&Error{StatusCode: 412}, &Error{StatusCode: 429}, &Error{StatusCode: 401}, &Error{StatusCode: 403},
		&Error{StatusCode: 400}, &Error{StatusCode: 504, Code: 504101}, errors.New("boom"), nil,
	}
	for _, h := range helpers {
		for _, err := range errs {
			if got, want := h.f(err), errors.Is(err, h.sentinel); got != want {
				t.Errorf("%s(%v) = %v, want %v", h.name, err, got, want)
			}
		}
	}
	if !IsGatewayTimeout(&Error{StatusCode: 504, Code: 504101}) || !IsGatewayTimeout(&Error{StatusCode: 504}) ||
		IsGatewayTimeout(fmt.Errorf("x: %w", ErrTimeout)) || IsGatewayTimeout(&Error{StatusCode: 500}) {
		t.Error("IsGatewayTimeout: want true for hub 504s only")
	}
}

// TestErrorsEndToEnd checks that both error forms come back from real calls
// as *Error with the request's own Request-Id.
func TestErrorsEndToEnd(t *testing.T) {
	hub := newFakeHub(t, func(w http.ResponseWriter, r *http.Request, n int) {
		switch {
		case r.URL.Path == "/devices/dev9":
			replyFormA(w, 404, "DeviceNotFound", "Device dev9 is not registered")
		case strings.HasSuffix(r.URL.Path, "/methods") && strings.Contains(r.URL.Path, "offline"):
			replyFormB(w, 404, 404103, "Timed out waiting for device to connect.", `{"timeout":"00:00:00"}`)
		case strings.HasSuffix(r.URL.Path, "/methods"):
			replyFormB(w, 504, 504101, "Timed out waiting for the response from device.", `{}`)
		}
	})
	// Retries are on: neither a 404 nor a method timeout may be repeated.
	c, _ := hub.client(t, WithRetryPolicy(ExponentialBackoff{}))
	ctx := testContext(t)

	_, err := c.GetDevice(ctx, "dev9")
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("got %T %v, want *Error", err, err)
	}
	if e.Op != "GetDevice" || e.Code != CodeDeviceNotFound || !errors.Is(err, ErrNotFound) {
		t.Errorf("got %+v, want GetDevice DeviceNotFound", e)
	}
	if got := hub.requests()[0].Header.Get("Request-Id"); e.RequestID != got {
		t.Errorf("RequestID = %q, want the sent Request-Id %q", e.RequestID, got)
	}

	_, err = c.InvokeMethod(ctx, "offline", MethodCall{Name: "m"})
	if !errors.Is(err, ErrDeviceNotOnline) || errors.Is(err, ErrNotFound) {
		t.Errorf("got %v, want ErrDeviceNotOnline and not ErrNotFound", err)
	}
	_, err = c.InvokeMethod(ctx, "slow", MethodCall{Name: "m"})
	if !errors.Is(err, ErrTimeout) {
		t.Errorf("got %v, want ErrTimeout", err)
	}
	if n := len(hub.requests()); n != 3 {
		t.Errorf("got %d requests, want 3 (no retries)", n)
	}
}
