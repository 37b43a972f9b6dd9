// SPDX-License-Identifier: MIT

package wire

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// TestParseError covers the answers the hub sends, written by hand from the
// protocol notes (iothub-protocol.md §3.8, §4, §6.1); the clients' tests
// check the same parser against the emulator's real answers.
func TestParseError(t *testing.T) {
	tests := []struct {
		name   string
		status int
		header http.Header
		body   string
		want   HubError
	}{
		{
			// Form A as the hub sends it for registry errors.
			name:   "form A DeviceNotFound",
			status: 404,
			body:   `{"Message":"ErrorCode:DeviceNotFound;Device dev9 is not registered","ExceptionMessage":"Tracking ID:3f1c0e2a9b7d4e55-G:4-TimeStamp:05/02/2024 09:20:11"}`,
			want: HubError{StatusCode: 404, Code: 404001, CodeName: "DeviceNotFound", Message: "Device dev9 is not registered",
				TrackingID: "3f1c0e2a9b7d4e55-G:4-TimeStamp:05/02/2024 09:20:11"},
		},
		{
			name:   "form A message with semicolons",
			status: 400,
			body:   `{"Message":"ErrorCode:ArgumentInvalid;Property or Tag value should be maximum 4096 bytes; Error in Property/Tag x","ExceptionMessage":""}`,
			want: HubError{StatusCode: 400, Code: 400004, CodeName: "ArgumentInvalid",
				Message: "Property or Tag value should be maximum 4096 bytes; Error in Property/Tag x"},
		},
		{
			name:   "form A without message part",
			status: 400,
			body:   `{"Message":"ErrorCode:InvalidProtocolVersion;BadRequest","ExceptionMessage":"Tracking ID:abc"}`,
			want:   HubError{StatusCode: 400, Code: 400001, CodeName: "InvalidProtocolVersion", Message: "BadRequest", TrackingID: "abc"},
		},
		{
			name:   "form A unknown code name kept",
			status: 409,
			body:   `{"Message":"ErrorCode:SomethingNew;it happened","ExceptionMessage":""}`,
			want:   HubError{StatusCode: 409, CodeName: "SomethingNew", Message: "it happened"},
		},
		{
			name:   "form A numeric code",
			status: 404,
			body:   `{"Message":"ErrorCode:404010;module m1 not found","ExceptionMessage":""}`,
			want:   HubError{StatusCode: 404, Code: 404010, CodeName: "ModuleNotFound", Message: "module m1 not found"},
		},
		{
			name:   "form A exception message only",
			status: 500,
			body:   `{"Message":"","ExceptionMessage":"something broke"}`,
			want:   HubError{StatusCode: 500, Message: "something broke"},
		},
		{
			// Form B as direct methods return it (§4).
			name:   "form B DeviceNotOnline",
			status: 404,
			body:   `{"Message":"{\"errorCode\":404103,\"trackingId\":\"b1f0-G:10\",\"message\":\"Timed out waiting for device to connect.\",\"info\":{\"timeout\":\"00:00:00\"},\"timestampUtc\":\"2024-05-02T09:21:00.1234567Z\"}","ExceptionMessage":""}`,
			want: HubError{StatusCode: 404, Code: 404103, CodeName: "DeviceNotOnline", Message: "Timed out waiting for device to connect.",
				TrackingID: "b1f0-G:10", Info: json.RawMessage(`{"timeout":"00:00:00"}`)},
		},
		{
			name:   "form B GatewayTimeout empty info",
			status: 504,
			body:   `{"Message":"{\"errorCode\":504101,\"trackingId\":\"t\",\"message\":\"Timed out waiting for the response from device.\",\"info\":{},\"timestampUtc\":\"2024-05-02T09:21:00Z\"}","ExceptionMessage":""}`,
			want: HubError{StatusCode: 504, Code: 504101, CodeName: "GatewayTimeout", Message: "Timed out waiting for the response from device.",
				TrackingID: "t", Info: json.RawMessage(`{}`)},
		},
		{
			name:   "form B code as string",
			status: 400,
			body:   `{"Message":"{\"errorCode\":\"400004\",\"message\":\"responseTimeoutInSeconds must be within [5; 300].\"}","ExceptionMessage":""}`,
			want:   HubError{StatusCode: 400, Code: 400004, CodeName: "ArgumentInvalid", Message: "responseTimeoutInSeconds must be within [5; 300]."},
		},
		{
			name:   "form B null info dropped",
			status: 404,
			body:   `{"Message":"{\"errorCode\":404103,\"message\":\"m\",\"info\":null}"}`,
			want:   HubError{StatusCode: 404, Code: 404103, CodeName: "DeviceNotOnline", Message: "m"},
		},
		{
			// The object at top level: REST from some paths, and every twin
			// reply over MQTT (C# v2 IotHubClientErrorResponseMessage.cs).
			name:   "top-level object on a twin reply",
			status: 400,
			body:   `{"errorCode":400004,"trackingId":"t1","message":"bad key","timestampUtc":"2024-01-01T00:00:00Z"}`,
			want:   HubError{StatusCode: 400, Code: 400004, CodeName: "ArgumentInvalid", Message: "bad key", TrackingID: "t1"},
		},
		{
			name:   "twin reply with a string code (some gateways)",
			status: 409,
			body:   `{"errorCode":"409002","message":"Conflict"}`,
			want:   HubError{StatusCode: 409, Code: 409002, Message: "Conflict"},
		},
		{
			name:   "top-level object throttled",
			status: 429,
			body:   `{"errorCode":429001,"trackingId":"x","message":"Throttled","timestampUtc":"2024-05-02T09:21:00Z"}`,
			want:   HubError{StatusCode: 429, Code: 429001, CodeName: "ThrottlingException", Message: "Throttled", TrackingID: "x"},
		},
		{
			name:   "header only",
			status: 412,
			header: http.Header{"Iothub-Errorcode": {"PreconditionFailed"}},
			want:   HubError{StatusCode: 412, Code: 412001, CodeName: "PreconditionFailed", Message: "Precondition Failed"},
		},
		{
			name:   "numeric header",
			status: 404,
			header: http.Header{"Iothub-Errorcode": {"404010"}},
			body:   `{"Message":"module m not found"}`,
			want:   HubError{StatusCode: 404, Code: 404010, CodeName: "ModuleNotFound", Message: "module m not found"},
		},
		{
			name:   "body code wins over header",
			status: 404,
			header: http.Header{"Iothub-Errorcode": {"ModuleNotFound"}},
			body:   `{"Message":"ErrorCode:DeviceNotFound;gone"}`,
			want:   HubError{StatusCode: 404, Code: 404001, CodeName: "DeviceNotFound", Message: "gone"},
		},
		{
			name:   "header name in other case",
			status: 429,
			header: http.Header{"Iothub-Errorcode": {"throttlingexception"}},
			want:   HubError{StatusCode: 429, Code: 429001, CodeName: "throttlingexception", Message: "Too Many Requests"},
		},
		{
			name:   "lower-case message key",
			status: 401,
			body:   `{"message":"ErrorCode:IotHubUnauthorizedAccess;Unauthorized"}`,
			want:   HubError{StatusCode: 401, Code: 401002, CodeName: "IotHubUnauthorizedAccess", Message: "Unauthorized"},
		},
		{
			name:   "plain text from a proxy",
			status: 502,
			body:   "<html>\n  Bad   gateway\n</html>",
			want:   HubError{StatusCode: 502, Message: "<html> Bad gateway </html>"},
		},
		{
			// edgeHub answers twin errors with an empty payload.
			name:   "empty body",
			status: 503,
			want:   HubError{StatusCode: 503, Message: "Service Unavailable"},
		},
		{
			name:   "JSON that is not an object",
			status: 500,
			body:   `["oops"]`,
			want:   HubError{StatusCode: 500, Message: `["oops"]`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ParseError(tt.status, tt.header, []byte(tt.body))
			if diff := cmp.Diff(tt.want, got, cmpopts.IgnoreFields(HubError{}, "Body")); diff != "" {
				t.Errorf("ParseError mismatch (-want +got):\n%s", diff)
			}
			if string(got.Body) != tt.body {
				t.Errorf("Body = %q, want %q", got.Body, tt.body)
			}
		})
	}
}

func TestParseErrorBoundsBody(t *testing.T) {
	body := []byte(`{"Message":"ErrorCode:ArgumentInvalid;` + strings.Repeat("x", 2*MaxErrorBody) + `"}`)
	got := ParseError(400, nil, body)
	if len(got.Body) != MaxErrorBody {
		t.Errorf("kept %d body bytes, want %d", len(got.Body), MaxErrorBody)
	}
	if got.Message == "" || len(got.Message) > 600 {
		t.Errorf("message of %d bytes, want a short non-empty one", len(got.Message))
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		status, code int
		want         Class
	}{
		{400, CodeArgumentInvalid, BadRequest},
		{401, CodeIotHubUnauthorizedAccess, Unauthorized},
		{401, 0, Unauthorized},
		{403, CodeIotHubQuotaExceeded, Forbidden},
		{403, CodeDeviceMaximumQueueDepth, Forbidden},
		{404, CodeDeviceNotFound, NotFound},
		{404, CodeModuleNotFound, NotFound},
		{404, 0, NotFound},
		{404, CodeDeviceNotOnline, DeviceNotOnline},
		{409, CodeDeviceAlreadyExists, AlreadyExists},
		{412, CodePreconditionFailed, PreconditionFailed},
		{413, CodeMessageTooLarge, MessageTooLarge},
		{429, CodeThrottlingException, Throttled},
		{429, CodeThrottleBacklogLimit, Throttled},
		{408, 0, Timeout},
		{504, CodeGatewayTimeout, Timeout},
		{504, 0, Timeout},
		{500, CodeServerError, ServerError},
		{503, CodeServiceUnavailable, ServiceUnavailable},
		{502, 0, Unclassified},
		{418, 0, Unclassified},
		{0, CodeDeviceNotFound, NotFound},        // twin reply whose status is not a number
		{0, CodeThrottlingException, Throttled},  // likewise
		{0, 42, Unclassified},                    // no status, no usable code
		{404, CodeThrottlingException, NotFound}, // the status decides
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.status, "/", tt.code), func(t *testing.T) {
			if got := Classify(tt.status, tt.code); got != tt.want {
				t.Errorf("Classify(%d, %d) = %d, want %d", tt.status, tt.code, got, tt.want)
			}
		})
	}
}

// TestCodeNamesMatchStatus checks the catalogue: every code's first three
// digits are its HTTP status, and names and codes map both ways.
func TestCodeNamesMatchStatus(t *testing.T) {
	for code, name := range codeNames {
		if http.StatusText(code/1000) == "" {
			t.Errorf("code %d (%s) does not start with an HTTP status", code, name)
		}
		if got := CodeOf(strings.ToUpper(name)); got != code {
			t.Errorf("CodeOf(%q) = %d, want %d", name, got, code)
		}
		if got := CodeName(code); got != name {
			t.Errorf("CodeName(%d) = %q, want %q", code, got, name)
		}
	}
}

func TestFormatError(t *testing.T) {
	tests := []struct {
		op, name, message string
		status, code      int
		want              string
	}{
		{"GetDevice", "DeviceNotFound", "Device dev9 is not registered", 404, 404001, "service: GetDevice: 404 DeviceNotFound (404001): Device dev9 is not registered"},
		{"", "", "Too Many Requests", 429, 0, "service: 429: Too Many Requests"},
		{"Query", "", "", 500, 0, "service: Query: 500"},
	}
	for _, tt := range tests {
		if got := FormatError("service", tt.op, tt.status, tt.code, tt.name, tt.message); got != tt.want {
			t.Errorf("got %q, want %q", got, tt.want)
		}
	}
}

func TestBackoff(t *testing.T) {
	tests := []struct {
		failures     int
		initial, max time.Duration
		jitter       float64
		base         time.Duration // before jitter
	}{
		{1, 100 * time.Millisecond, time.Second, 0.25, 100 * time.Millisecond},
		{2, 100 * time.Millisecond, time.Second, 0.25, 200 * time.Millisecond},
		{4, 100 * time.Millisecond, time.Second, 0.25, 800 * time.Millisecond},
		{5, 100 * time.Millisecond, time.Second, 0.25, time.Second},
		{500, 100 * time.Millisecond, time.Second, 0.25, time.Second},
		{3, time.Second, time.Millisecond, 0, time.Second}, // limit below initial
		{70, time.Hour, time.Duration(1<<63 - 1), 0, time.Duration(1<<63 - 1)},
		{1, 0, time.Second, 0.5, 0},
		{2, 10 * time.Millisecond, time.Second, 7, 20 * time.Millisecond}, // jitter clamped to 1
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.failures, tt.initial, tt.max, tt.jitter), func(t *testing.T) {
			j := min(max(tt.jitter, 0), 1)
			lo, hi := time.Duration(float64(tt.base)*(1-j)), time.Duration(float64(tt.base)*(1+j))
			if tt.base == time.Duration(1<<63-1) {
				hi = tt.base
			}
			for range 50 {
				if d := Backoff(tt.failures, tt.initial, tt.max, tt.jitter); d < lo || d > hi {
					t.Fatalf("Backoff = %v, want within [%v, %v]", d, lo, hi)
				}
			}
		})
	}
}

// FuzzParseError feeds arbitrary statuses, headers and bodies to the error
// parser, which faces the network.
func FuzzParseError(f *testing.F) {
	f.Add(404, "", `{"Message":"ErrorCode:DeviceNotFound;Device dev9 is not registered","ExceptionMessage":"Tracking ID:x"}`)
	f.Add(404, "", `{"Message":"{\"errorCode\":404103,\"trackingId\":\"t\",\"message\":\"m\",\"info\":{}}","ExceptionMessage":""}`)
	f.Add(400, "", `{"errorCode":400004,"trackingId":"t1","message":"bad key","timestampUtc":"2024-01-01T00:00:00Z"}`)
	f.Add(429, "ThrottlingException", `{"errorCode":"429001"}`)
	f.Add(500, "500001", "<html>oops</html>")
	f.Add(400, "", `{"Message":"ErrorCode:;"}`)
	f.Add(0, "", `{"errorCode":1e400}`)
	f.Fuzz(func(t *testing.T, status int, header, body string) {
		h := http.Header{}
		if header != "" {
			h.Set(ErrorCodeHeader, header)
		}
		e := ParseError(status, h, []byte(body))
		if e.StatusCode != status {
			t.Errorf("StatusCode = %d, want %d", e.StatusCode, status)
		}
		if len(e.Body) > MaxErrorBody {
			t.Errorf("kept %d body bytes, want at most %d", len(e.Body), MaxErrorBody)
		}
		if name, ok := codeNames[e.Code]; ok && e.CodeName == "" {
			t.Errorf("code %d known as %s but CodeName empty", e.Code, name)
		}
		_ = Classify(e.StatusCode, e.Code)
		if s := FormatError("p", "op", e.StatusCode, e.Code, e.CodeName, e.Message); s == "" {
			t.Error("empty message")
		}
	})
}

func TestCodeText(t *testing.T) {
	tests := []struct{ raw, want string }{
		{`409001`, "409001"},
		{`"409001"`, "409001"},
		{`"DeviceAlreadyExists"`, "DeviceAlreadyExists"},
		{`null`, ""},
		{``, ""},
		{`{}`, ""},
	}
	for _, tt := range tests {
		if got := CodeText(json.RawMessage(tt.raw)); got != tt.want {
			t.Errorf("CodeText(%s) = %q, want %q", tt.raw, got, tt.want)
		}
	}
}
