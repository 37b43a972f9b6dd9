// SPDX-License-Identifier: MIT

package service

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// Wire tests of the emulator-only API against the fake hub: what goes out,
// how answers are read, and how a hub without /emulator routes is reported.

// emulatorOps calls each emulator-only operation once.
var emulatorOps = []struct {
	name string
	call func(c *Client, t *testing.T) error
}{
	{"ReadTelemetry", func(c *Client, t *testing.T) error {
		_, err := c.ReadTelemetry(testContext(t), TelemetryFilter{Wait: time.Second})
		return err
	}},
	{"C2DFeedback", func(c *Client, t *testing.T) error {
		_, err := c.C2DFeedback(testContext(t))
		return err
	}},
	{"TelemetryHead", func(c *Client, t *testing.T) error {
		_, err := c.TelemetryHead(testContext(t))
		return err
	}},
}

// TestEmulatorOnlyOnRealHub stands in for a real hub, which has no
// /emulator routes and answers 404 in whatever form: each operation must
// fail with ErrEmulatorOnly, once, and not look like a missing device.
func TestEmulatorOnlyOnRealHub(t *testing.T) {
	answers := []struct {
		name  string
		reply func(w http.ResponseWriter)
	}{
		{"plain text", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte("404 page not found"))
		}},
		{"empty body", func(w http.ResponseWriter) { w.WriteHeader(http.StatusNotFound) }},
		{"hub error body", func(w http.ResponseWriter) {
			replyFormA(w, http.StatusNotFound, "InvalidOperation", "The route does not exist on this hub.")
		}},
		{"hub error without code", func(w http.ResponseWriter) {
			reply(w, http.StatusNotFound, `{"Message":"Not found","ExceptionMessage":""}`)
		}},
	}
	for _, a := range answers {
		for _, op := range emulatorOps {
			t.Run(a.name+"/"+op.name, func(t *testing.T) {
				hub := newFakeHub(t, func(w http.ResponseWriter, r *http.Request, n int) {
					if !strings.HasPrefix(r.URL.Path, "/emulator/") {
						t.Errorf("request to %s, want an /emulator route", r.URL.Path)
					}
					a.reply(w)
				})
				// Retries on: a 404 must not be repeated.
				c, _ := hub.client(t, WithRetryPolicy(ExponentialBackoff{}))
				err := op.call(c, t)
				if !errors.Is(err, ErrEmulatorOnly) {
					t.Fatalf("got %v, want ErrEmulatorOnly", err)
				}
				if errors.Is(err, ErrNotFound) {
					t.Errorf("errors.Is(%v, ErrNotFound) = true, want false: the route is missing, not a device", err)
				}
				if msg := err.Error(); !strings.Contains(msg, op.name) || !strings.Contains(msg, hub.host()) {
					t.Errorf("error %q, want it to name %s and the host %s", msg, op.name, hub.host())
				}
				if n := len(hub.requests()); n != 1 {
					t.Errorf("got %d requests, want 1", n)
				}
			})
		}
	}
}

// TestEmulatorOnlyKeepsHubErrors checks that errors from an emulator, which
// has the routes, pass through unchanged.
func TestEmulatorOnlyKeepsHubErrors(t *testing.T) {
	tests := []struct {
		name  string
		reply func(w http.ResponseWriter)
		want  error
	}{
		{"device not found", func(w http.ResponseWriter) {
			replyFormA(w, http.StatusNotFound, "DeviceNotFound", "Device dev1 is not registered")
		}, ErrNotFound},
		{"module not found", func(w http.ResponseWriter) {
			replyFormA(w, http.StatusNotFound, "ModuleNotFound", "Module m1 is not registered")
		}, ErrNotFound},
		{"unauthorized", func(w http.ResponseWriter) {
			replyFormA(w, http.StatusUnauthorized, "IotHubUnauthorizedAccess", "Unauthorized")
		}, ErrUnauthorized},
		{"queue full", func(w http.ResponseWriter) {
			replyFormA(w, http.StatusForbidden, "DeviceMaximumQueueDepthExceeded", "Queue full")
		}, ErrForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hub := newFakeHub(t, func(w http.ResponseWriter, r *http.Request, n int) { tt.reply(w) })
			c, _ := hub.client(t)
			_, err := c.ReadTelemetry(testContext(t), TelemetryFilter{DeviceID: "dev1"})
			if !errors.Is(err, tt.want) || errors.Is(err, ErrEmulatorOnly) {
				t.Errorf("got %v, want %v and not ErrEmulatorOnly", err, tt.want)
			}
		})
	}
}

func TestReadTelemetryWire(t *testing.T) {
	tests := []struct {
		name string
		f    TelemetryFilter
		want url.Values
	}{
		{"zero filter", TelemetryFilter{}, url.Values{"api-version": {APIVersion}}},
		{"every field", TelemetryFilter{DeviceID: "dev 1+", ModuleID: "m&1", Since: 7, Limit: 5, Wait: 1500 * time.Millisecond},
			url.Values{"api-version": {APIVersion}, "deviceId": {"dev 1+"}, "moduleId": {"m&1"}, "since": {"7"}, "limit": {"5"}, "wait": {"1.5"}}},
		{"wait capped", TelemetryFilter{Wait: 5 * time.Minute}, url.Values{"api-version": {APIVersion}, "wait": {"60"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hub := newFakeHub(t, func(w http.ResponseWriter, r *http.Request, n int) { reply(w, http.StatusOK, `[]`) })
			c, _ := hub.client(t)
			ms, err := c.ReadTelemetry(testContext(t), tt.f)
			if err != nil {
				t.Fatalf("ReadTelemetry: %v", err)
			}
			if ms == nil || len(ms) != 0 {
				t.Errorf("got %v, want an empty, non-nil slice", ms)
			}
			r := hub.requests()[0]
			u, err := url.Parse(r.RequestURI)
			if err != nil {
				t.Fatal(err)
			}
			if r.Method != http.MethodGet || u.Path != "/emulator/messages" {
				t.Errorf("got %s %s, want GET /emulator/messages", r.Method, u.Path)
			}
			if diff := cmp.Diff(tt.want, u.Query()); diff != "" {
				t.Errorf("query (-want +got):\n%s", diff)
			}
			checkCommonHeaders(t, r, hub.host())
		})
	}
}

func TestReadTelemetryInvalid(t *testing.T) {
	hub := newFakeHub(t, func(w http.ResponseWriter, r *http.Request, n int) { reply(w, http.StatusOK, `[]`) })
	c, _ := hub.client(t)
	for _, f := range []TelemetryFilter{{Limit: -1}, {Wait: -time.Second}} {
		if _, err := c.ReadTelemetry(testContext(t), f); err == nil || !strings.Contains(err.Error(), "must not be negative") {
			t.Errorf("ReadTelemetry(%+v) = %v, want a negative-value error", f, err)
		}
	}
	if n := len(hub.requests()); n != 0 {
		t.Errorf("sent %d requests, want none", n)
	}
}

// TestReadTelemetryDecodes reads the emulator's message shape, with the
// body as base64, and retries a 503 since reading is idempotent.
func TestReadTelemetryDecodes(t *testing.T) {
	hub := newFakeHub(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 0 {
			replyFormA(w, http.StatusServiceUnavailable, "ServiceUnavailable", "try later")
			return
		}
		reply(w, http.StatusOK, `[{"sequenceNumber":12,"enqueuedTime":"2024-05-02T09:20:11.5Z","deviceId":"dev1","moduleId":"m1",
			"connectionAuthMethod":"sas","transport":"mqtt","messageId":"42","correlationId":"c1","userId":"u1","to":"/x",
			"contentType":"application/json","contentEncoding":"utf-8","creationTimeUtc":"2024-05-02T09:20:10Z",
			"expiryTimeUtc":"2024-05-03T00:00:00Z","outputName":"out","messageSchema":"s","componentName":"thermostat1",
			"interfaceId":"i","properties":{"alert":"high"},"body":"eyJ0IjoxfQ=="}]`)
	})
	c, rec := hub.client(t, WithRetryPolicy(ExponentialBackoff{}))
	got, err := c.ReadTelemetry(testContext(t), TelemetryFilter{})
	if err != nil {
		t.Fatalf("ReadTelemetry: %v", err)
	}
	want := []*TelemetryMessage{{
		SequenceNumber: 12, EnqueuedTime: time.Date(2024, 5, 2, 9, 20, 11, 500e6, time.UTC), DeviceID: "dev1", ModuleID: "m1",
		ConnectionAuthMethod: "sas", Transport: "mqtt", MessageID: "42", CorrelationID: "c1", UserID: "u1", To: "/x",
		ContentType: "application/json", ContentEncoding: "utf-8", CreationTime: "2024-05-02T09:20:10Z",
		ExpiryTime: "2024-05-03T00:00:00Z", OutputName: "out", MessageSchema: "s", ComponentName: "thermostat1",
		InterfaceID: "i", Properties: map[string]string{"alert": "high"}, Body: []byte(`{"t":1}`),
	}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ReadTelemetry mismatch (-want +got):\n%s", diff)
	}
	if n := len(hub.requests()); n != 2 || len(rec.get()) != 1 {
		t.Errorf("got %d requests and %d waits, want 2 and 1", n, len(rec.get()))
	}
}

func TestC2DFeedbackDecodes(t *testing.T) {
	hub := newFakeHub(t, func(w http.ResponseWriter, r *http.Request, n int) {
		reply(w, http.StatusOK, `[{"originalMessageId":"m1","deviceGenerationId":"638500000000000000","deviceId":"dev1",
			"enqueuedTimeUtc":"2024-05-02T09:20:11Z","statusCode":"Expired","description":"Message expired"}]`)
	})
	c, _ := hub.client(t)
	got, err := c.C2DFeedback(testContext(t))
	if err != nil {
		t.Fatalf("C2DFeedback: %v", err)
	}
	want := []Feedback{{
		OriginalMessageID: "m1", DeviceGenerationID: "638500000000000000", DeviceID: "dev1",
		EnqueuedTimeUTC: time.Date(2024, 5, 2, 9, 20, 11, 0, time.UTC), StatusCode: FeedbackExpired, Description: "Message expired",
	}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("C2DFeedback mismatch (-want +got):\n%s", diff)
	}
	r := hub.requests()[0]
	if want := "/emulator/feedback?api-version=" + APIVersion; r.Method != http.MethodGet || r.RequestURI != want {
		t.Errorf("got %s %s, want GET %s", r.Method, r.RequestURI, want)
	}
}
