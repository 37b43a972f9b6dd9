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

func TestParseError(t *testing.T) {
	tests := []struct {
		name   string
		status int
		header http.Header
		body   string
		want   Error
	}{
		{
			// Form A as the hub sends it for registry errors (§6.1).
			name:   "form A DeviceNotFound",
			status: 404,
			body:   `{"Message":"ErrorCode:DeviceNotFound;Device dev9 is not registered","ExceptionMessage":"Tracking ID:3f1c0e2a9b7d4e55-G:4-TimeStamp:05/02/2024 09:20:11"}`,
			want: Error{StatusCode: 404, Code: 404001, CodeName: "DeviceNotFound", Message: "Device dev9 is not registered",
				TrackingID: "3f1c0e2a9b7d4e55-G:4-TimeStamp:05/02/2024 09:20:11"},
		},
		{
			name:   "form A message with semicolons",
			status: 400,
			body:   `{"Message":"ErrorCode:ArgumentInvalid;Property or Tag value should be maximum 4096 bytes; Error in Property/Tag x","ExceptionMessage":""}`,
			want: Error{StatusCode: 400, Code: 400004, CodeName: "ArgumentInvalid",
				Message: "Property or Tag value should be maximum 4096 bytes; Error in Property/Tag x"},
		},
		{
			name:   "form A without message part",
			status: 400,
			body:   `{"Message":"ErrorCode:InvalidProtocolVersion;BadRequest","ExceptionMessage":"Tracking ID:abc"}`,
			want:   Error{StatusCode: 400, Code: 400001, CodeName: "InvalidProtocolVersion", Message: "BadRequest", TrackingID: "abc"},
		},
		{
			name:   "form A unknown code name kept",
			status: 409,
			body:   `{"Message":"ErrorCode:SomethingNew;it happened","ExceptionMessage":""}`,
			want:   Error{StatusCode: 409, CodeName: "SomethingNew", Message: "it happened"},
		},
		{
			// Form B as direct methods return it (§4).
			name:   "form B DeviceNotOnline",
			status: 404,
			body:   `{"Message":"{\"errorCode\":404103,\"trackingId\":\"b1f0-G:10\",\"message\":\"Timed out waiting for device to connect.\",\"info\":{\"timeout\":\"00:00:00\"},\"timestampUtc\":\"2024-05-02T09:21:00.1234567Z\"}","ExceptionMessage":""}`,
			want: Error{StatusCode: 404, Code: 404103, CodeName: "DeviceNotOnline", Message: "Timed out waiting for device to connect.",
				TrackingID: "b1f0-G:10", Info: json.RawMessage(`{"timeout":"00:00:00"}`)},
		},
		{
			name:   "form B GatewayTimeout empty info",
			status: 504,
			body:   `{"Message":"{\"errorCode\":504101,\"trackingId\":\"t\",\"message\":\"Timed out waiting for the response from device.\",\"info\":{},\"timestampUtc\":\"2024-05-02T09:21:00Z\"}","ExceptionMessage":""}`,
			want: Error{StatusCode: 504, Code: 504101, CodeName: "GatewayTimeout", Message: "Timed out waiting for the response from device.",
				TrackingID: "t", Info: json.RawMessage(`{}`)},
		},
		{
			name:   "form B code as string",
			status: 400,
			body:   `{"Message":"{\"errorCode\":\"400004\",\"message\":\"responseTimeoutInSeconds must be within [5; 300].\"}","ExceptionMessage":""}`,
			want:   Error{StatusCode: 400, Code: 400004, CodeName: "ArgumentInvalid", Message: "responseTimeoutInSeconds must be within [5; 300]."},
		},
		{
			name:   "form B object at top level",
			status: 429,
			body:   `{"errorCode":429001,"trackingId":"x","message":"Throttled","timestampUtc":"2024-05-02T09:21:00Z"}`,
			want:   Error{StatusCode: 429, Code: 429001, CodeName: "ThrottlingException", Message: "Throttled", TrackingID: "x"},
		},
		{
			name:   "header only",
			status: 412,
			header: http.Header{"Iothub-Errorcode": {"PreconditionFailed"}},
			want:   Error{StatusCode: 412, Code: 412001, CodeName: "PreconditionFailed", Message: "Precondition Failed"},
		},
		{
			name:   "numeric header",
			status: 404,
			header: http.Header{"Iothub-Errorcode": {"404010"}},
			body:   `{"Message":"module m not found"}`,
			want:   Error{StatusCode: 404, Code: 404010, CodeName: "ModuleNotFound", Message: "module m not found"},
		},
		{
			name:   "body code wins over header",
			status: 404,
			header: http.Header{"Iothub-Errorcode": {"ModuleNotFound"}},
			body:   `{"Message":"ErrorCode:DeviceNotFound;gone"}`,
			want:   Error{StatusCode: 404, Code: 404001, CodeName: "DeviceNotFound", Message: "gone"},
		},
		{
			name:   "lower-case message key",
			status: 401,
			body:   `{"message":"ErrorCode:IotHubUnauthorizedAccess;Unauthorized"}`,
			want:   Error{StatusCode: 401, Code: 401002, CodeName: "IotHubUnauthorizedAccess", Message: "Unauthorized"},
		},
		{
			name:   "plain text from a proxy",
			status: 502,
			body:   "<html>\n  Bad   gateway\n</html>",
			want:   Error{StatusCode: 502, Message: "<html> Bad gateway </html>"},
		},
		{
			name:   "empty body",
			status: 503,
			want:   Error{StatusCode: 503, Message: "Service Unavailable"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.header
			if h == nil {
				h = http.Header{}
			}
			got := parseError(tt.status, h, []byte(tt.body))
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

func TestErrorClassifiers(t *testing.T) {
	type classifier struct {
		name string
		f    func(error) bool
	}
	all := []classifier{
		{"IsNotFound", IsNotFound}, {"IsAlreadyExists", IsAlreadyExists},
		{"IsPreconditionFailed", IsPreconditionFailed}, {"IsThrottled", IsThrottled},
		{"IsUnauthorized", IsUnauthorized}, {"IsForbidden", IsForbidden},
		{"IsBadRequest", IsBadRequest}, {"IsDeviceNotOnline", IsDeviceNotOnline},
		{"IsGatewayTimeout", IsGatewayTimeout},
	}
	tests := []struct {
		name string
		err  error
		want []string // classifiers that must be true; all others false
	}{
		{"device not found", &Error{StatusCode: 404, Code: 404001}, []string{"IsNotFound"}},
		{"module not found", &Error{StatusCode: 404, Code: 404010}, []string{"IsNotFound"}},
		{"device not online", &Error{StatusCode: 404, Code: 404103}, []string{"IsDeviceNotOnline"}},
		{"exists", &Error{StatusCode: 409, Code: 409001}, []string{"IsAlreadyExists"}},
		{"etag", &Error{StatusCode: 412, Code: 412001}, []string{"IsPreconditionFailed"}},
		{"throttled", &Error{StatusCode: 429}, []string{"IsThrottled"}},
		{"unauthorized", &Error{StatusCode: 401}, []string{"IsUnauthorized"}},
		{"quota", &Error{StatusCode: 403, Code: 403002}, []string{"IsForbidden"}},
		{"bad request", &Error{StatusCode: 400}, []string{"IsBadRequest"}},
		{"method timeout", &Error{StatusCode: 504, Code: 504101}, []string{"IsGatewayTimeout"}},
		{"wrapped", fmt.Errorf("outer: %w", &Error{StatusCode: 409}), []string{"IsAlreadyExists"}},
		{"not an *Error", errors.New("boom"), nil},
		{"nil", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, c := range all {
				want := false
				for _, w := range tt.want {
					want = want || w == c.name
				}
				if got := c.f(tt.err); got != want {
					t.Errorf("%s = %v, want %v", c.name, got, want)
				}
			}
		})
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
	c, _ := hub.client(t, WithRetryPolicy(DefaultRetryPolicy()))
	ctx := testContext(t)

	_, err := c.GetDevice(ctx, "dev9")
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("got %T %v, want *Error", err, err)
	}
	if e.Op != "GetDevice" || e.Code != CodeDeviceNotFound || !IsNotFound(err) {
		t.Errorf("got %+v, want GetDevice DeviceNotFound", e)
	}
	if got := hub.requests()[0].Header.Get("Request-Id"); e.RequestID != got {
		t.Errorf("RequestID = %q, want the sent Request-Id %q", e.RequestID, got)
	}

	_, err = c.InvokeMethod(ctx, "offline", MethodCall{Name: "m"})
	if !IsDeviceNotOnline(err) || IsNotFound(err) {
		t.Errorf("got %v, want DeviceNotOnline and not IsNotFound", err)
	}
	_, err = c.InvokeMethod(ctx, "slow", MethodCall{Name: "m"})
	if !IsGatewayTimeout(err) {
		t.Errorf("got %v, want GatewayTimeout", err)
	}
	if n := len(hub.requests()); n != 3 {
		t.Errorf("got %d requests, want 3 (no retries)", n)
	}
}

// FuzzParseError feeds arbitrary bodies and headers to the error parser,
// which faces the network.
func FuzzParseError(f *testing.F) {
	f.Add(404, "", `{"Message":"ErrorCode:DeviceNotFound;Device dev9 is not registered","ExceptionMessage":"Tracking ID:x"}`)
	f.Add(404, "", `{"Message":"{\"errorCode\":404103,\"trackingId\":\"t\",\"message\":\"m\",\"info\":{}}","ExceptionMessage":""}`)
	f.Add(429, "ThrottlingException", `{"errorCode":"429001"}`)
	f.Add(500, "500001", "<html>oops</html>")
	f.Add(400, "", `{"Message":"ErrorCode:;"}`)
	f.Fuzz(func(t *testing.T, status int, header, body string) {
		h := http.Header{}
		if header != "" {
			h.Set(errorCodeHeader, header)
		}
		e := parseError(status, h, []byte(body))
		if e.StatusCode != status {
			t.Errorf("StatusCode = %d, want %d", e.StatusCode, status)
		}
		if len(e.Body) > maxErrorBody {
			t.Errorf("kept %d body bytes, want at most %d", len(e.Body), maxErrorBody)
		}
		if e.Error() == "" {
			t.Errorf("empty Error()")
		}
		if name, ok := codeNames[e.Code]; ok && e.CodeName == "" {
			t.Errorf("code %d known as %s but CodeName empty", e.Code, name)
		}
	})
}
