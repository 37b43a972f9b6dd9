// SPDX-License-Identifier: MIT

package restapi

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/iothubemulator/iothub/emulator/internal/hub"
)

func TestMethodArgumentErrors(t *testing.T) {
	e := newEnv(t)
	e.createDevice("d1")
	e.createModule("d1", "m1")
	ok := map[string]any{"methodName": "reboot", "payload": nil, "responseTimeoutInSeconds": 30, "connectTimeoutInSeconds": 0}
	with := func(k string, v any) map[string]any {
		m := map[string]any{}
		for k, v := range ok {
			m[k] = v
		}
		m[k] = v
		return m
	}
	tests := []struct {
		name    string
		path    string
		body    any
		status  int
		code    int
		message string
	}{
		{"registered but offline", "/twins/d1/methods", ok, 404, 404103, "Timed out waiting for device to connect."},
		{"module offline", "/twins/d1/modules/m1/methods", ok, 404, 404103, ""},
		{"response timeout 3", "/twins/d1/methods", with("responseTimeoutInSeconds", 3), 400, 400004, "responseTimeoutInSeconds must be within [5; 300]."},
		{"response timeout 301", "/twins/d1/methods", with("responseTimeoutInSeconds", 301), 400, 400004, "responseTimeoutInSeconds must be within [5; 300]."},
		{"response timeout 0", "/twins/d1/methods", with("responseTimeoutInSeconds", 0), 400, 400004, ""},
		{"connect timeout 301", "/twins/d1/methods", with("connectTimeoutInSeconds", 301), 400, 400004, ""},
		{"empty method name", "/twins/d1/methods", with("methodName", ""), 400, 400004, ""},
		{"blank method name", "/twins/d1/methods", with("methodName", "  "), 400, 400004, ""},
		{"method name too long", "/twins/d1/methods", with("methodName", strings.Repeat("m", 101)), 400, 400004, ""},
		{"missing method name", "/twins/d1/methods", map[string]any{"payload": 1}, 400, 400004, ""},
		{"bad JSON", "/twins/d1/methods", `{"methodName":`, 400, 400004, ""},
		// Timeouts that wrap around when multiplied into a duration, to
		// land inside the range if the check came after the conversion.
		{"response timeout that wraps to 5 s", "/twins/d1/methods", with("responseTimeoutInSeconds", int64(18446744079)), 400, 400004, "responseTimeoutInSeconds must be within [5; 300]."},
		{"negative response timeout that wraps", "/twins/d1/methods", with("responseTimeoutInSeconds", int64(-18446744068)), 400, 400004, "responseTimeoutInSeconds must be within [5; 300]."},
		{"connect timeout that wraps", "/twins/d1/methods", with("connectTimeoutInSeconds", int64(18446744079)), 400, 400004, "connectTimeoutInSeconds must be within [0; 300]."},
		{"negative connect timeout that wraps", "/twins/d1/methods", with("connectTimeoutInSeconds", int64(-18446744068)), 400, 400004, "connectTimeoutInSeconds must be within [0; 300]."},
		{"response timeout beyond int64", "/twins/d1/methods", `{"methodName":"m","responseTimeoutInSeconds":99999999999999999999}`, 400, 400004, ""},
		{"fractional response timeout", "/twins/d1/methods", `{"methodName":"m","responseTimeoutInSeconds":30.5}`, 400, 400004, ""},
		{"string response timeout", "/twins/d1/methods", `{"methodName":"m","responseTimeoutInSeconds":"30"}`, 400, 400004, ""},
		// The name becomes an MQTT topic segment [MQTT-1.5.3-2].
		{"method name with NUL", "/twins/d1/methods", with("methodName", "re\x00boot"), 400, 400004, ""},
		{"method name with a line feed", "/twins/d1/methods", with("methodName", "re\nboot"), 400, 400004, ""},
		{"method name with DEL", "/twins/d1/methods", with("methodName", "re\x7fboot"), 400, 400004, ""},
		{"method name with a C1 control", "/twins/d1/methods", with("methodName", "re\u0085boot"), 400, 400004, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := e.in(t)
			inner := checkFormB(t, "POST", e.owner("POST", tc.path, tc.body), tc.status, tc.code)
			if tc.message != "" && inner.Message != tc.message {
				t.Errorf("got message %q, want %q", inner.Message, tc.message)
			}
		})
	}
	t.Run("offline info", func(t *testing.T) {
		e := e.in(t)
		inner := checkFormB(t, "POST", e.owner("POST", "/twins/d1/methods", ok), 404, 404103)
		if diff := cmp.Diff(map[string]any{"timeout": "00:00:00"}, inner.Info); diff != "" {
			t.Errorf("info (-want +got):\n%s", diff)
		}
	})
	t.Run("unknown device", func(t *testing.T) {
		e := e.in(t)
		checkFormA(t, "POST", e.owner("POST", "/twins/ghost/methods", ok), http.StatusNotFound, "DeviceNotFound")
	})
	t.Run("unknown module", func(t *testing.T) {
		e := e.in(t)
		checkFormA(t, "POST", e.owner("POST", "/twins/d1/modules/ghost/methods", ok), http.StatusNotFound, "ModuleNotFound")
	})
}

// TestMethodRoundTrip invokes a method on a connected identity and checks
// the envelope the service gets (iothub-protocol.md §4).
func TestMethodRoundTrip(t *testing.T) {
	e := newEnv(t)
	e.createDevice("d1")
	e.createModule("d1", "m1")
	type call struct {
		name    string
		payload string
	}
	calls := make(chan call, 4)
	answer := func(status int, body string) func(c *hub.Conn, rid, name string, payload []byte) {
		return func(c *hub.Conn, rid, name string, payload []byte) {
			calls <- call{name, string(payload)}
			c.ResolveMethod(rid, status, []byte(body))
		}
	}
	e.connect(hub.Identity{DeviceID: "d1"}, answer(200, `{"applied":true}`))
	e.connect(hub.Identity{DeviceID: "d1", ModuleID: "m1"}, answer(500, ``))

	tests := []struct {
		name        string
		path        string
		body        map[string]any
		want        string
		wantName    string
		wantPayload string
	}{
		{"device", "/twins/d1/methods", map[string]any{"methodName": "setFan", "payload": map[string]any{"speed": 3}, "responseTimeoutInSeconds": 5},
			`{"status":200,"payload":{"applied":true}}`, "setFan", `{"speed":3}`},
		{"null payload reaches the device as null", "/twins/d1/methods", map[string]any{"methodName": "reboot", "payload": nil},
			`{"status":200,"payload":{"applied":true}}`, "reboot", `null`},
		{"omitted payload reaches the device empty", "/twins/d1/methods", map[string]any{"methodName": "reboot"},
			`{"status":200,"payload":{"applied":true}}`, "reboot", ``},
		{"empty string payload", "/twins/d1/methods", map[string]any{"methodName": "echo", "payload": ""},
			`{"status":200,"payload":{"applied":true}}`, "echo", `""`},
		{"module answers with an empty body", "/twins/d1/modules/m1/methods", map[string]any{"methodName": "m", "payload": "x"},
			`{"status":500,"payload":null}`, "m", `"x"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := e.in(t)
			r := e.owner("POST", tc.path, tc.body)
			wantStatus(t, "POST", r, http.StatusOK)
			var got, want any
			if err := json.Unmarshal(r.body, &got); err != nil {
				t.Fatalf("answer %s is not JSON: %v", r.body, err)
			}
			_ = json.Unmarshal([]byte(tc.want), &want)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("answer (-want +got):\n%s", diff)
			}
			c := <-calls
			if c.name != tc.wantName || c.payload != tc.wantPayload {
				t.Errorf("device got %q %q, want %q %q", c.name, c.payload, tc.wantName, tc.wantPayload)
			}
		})
	}
}
