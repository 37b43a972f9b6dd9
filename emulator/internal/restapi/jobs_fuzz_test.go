// SPDX-License-Identifier: MIT

package restapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/clock"
	"github.com/iothubemulator/iothub/emulator/internal/hub"
	"github.com/iothubemulator/iothub/emulator/internal/store"
	"github.com/iothubemulator/iothub/internal/sas"
)

// FuzzJobRequests sends arbitrary job ids, bodies, query parameters and
// continuation tokens to the job routes: every answer must be a success or
// a catalogue error as JSON, never a 5xx or a panic.
func FuzzJobRequests(f *testing.F) {
	f.Add(uint8(0), "j1", `{"jobId":"j1","type":"scheduleUpdateTwin","updateTwin":{"etag":"*","tags":{"a":1}},"queryCondition":"*","startTime":"2024-05-02T00:00:00.000Z","maxExecutionTimeInSeconds":3600}`, "")
	f.Add(uint8(0), "j2", `{"type":"scheduleDeviceMethod","cloudToDeviceMethod":{"methodName":"m","payload":null,"responseTimeoutInSeconds":30},"queryCondition":"deviceId IN ['a','b']","startTime":"2030-01-01T00:00:00Z"}`, "")
	f.Add(uint8(0), "j3", `{"type":"ScheduleUpdateTwin","updateTwin":{"etag":"*","properties":{"desired":null}},"queryCondition":"tags.x = 1 AND NOT IS_DEFINED(tags.y)","startTime":null,"maxExecutionTimeInSeconds":0}`, "")
	f.Add(uint8(0), "j4", `{"type":"scheduleUpdateTwin","updateTwin":{"desired":{}},"queryCondition":"x ="}`, "")
	f.Add(uint8(1), "completed", "scheduleUpdateTwin", "am9iczoxOjA")
	f.Add(uint8(1), "Cancelled", "", "not base64 !")
	f.Add(uint8(1), "", "", "")
	f.Add(uint8(2), "j1", "", "")
	f.Add(uint8(3), "j2", "", "")

	db, err := store.OpenTemp()
	if err != nil {
		f.Fatal(err)
	}
	now := time.Date(2024, 5, 2, 0, 0, 0, 0, time.UTC)
	h, err := hub.New(db, hub.Config{HostName: testHost, Policies: hub.DefaultPolicies(ownerKey),
		Clock: clock.At(now), MaxActiveJobs: 100})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { h.Close(); db.Close() })
	handler := New(Options{Hub: h})
	tok, err := sas.NewToken(testHost, hub.OwnerPolicy, ownerKey, now.Add(time.Hour))
	if err != nil {
		f.Fatal(err)
	}

	f.Fuzz(func(t *testing.T, route uint8, id, body, extra string) {
		var method, path string
		switch route % 4 {
		case 0:
			method, path = "PUT", "/jobs/v2/"+escapeSegment(id)
		case 1:
			method, path = "GET", "/jobs/v2/query"
		case 2:
			method, path = "GET", "/jobs/v2/"+escapeSegment(id)
		default:
			method, path = "POST", "/jobs/v2/"+escapeSegment(id)+"/cancel"
		}
		if id == "" && route%4 != 1 {
			return // /jobs/v2/ and /jobs/v2//cancel are other routes
		}
		target := "https://" + testHost + path + "?api-version=" + testAPIVersion
		if route%4 == 1 {
			// For the list: body is the jobType filter, id the jobStatus.
			target += "&" + url.Values{"jobType": {body}, "jobStatus": {id}}.Encode()
		}
		var reqBody *strings.Reader
		if method == "PUT" {
			reqBody = strings.NewReader(body)
		} else {
			reqBody = strings.NewReader("")
		}
		req := httptest.NewRequest(method, target, reqBody)
		req.Header.Set("Authorization", tok)
		req.Header.Set("Content-Type", "application/json")
		if extra != "" && !strings.ContainsAny(extra, "\r\n\x00") {
			req.Header.Set("x-ms-continuation", extra)
		}
		w := httptest.NewRecorder()
		handler.ServeHTTP(w, req)
		if w.Code >= 500 {
			t.Fatalf("%s %s with %q: got %d %s", method, target, body, w.Code, w.Body.Bytes())
		}
		if ct := w.Header().Get("Content-Type"); !strings.Contains(ct, "application/json") {
			t.Fatalf("%s %s: got Content-Type %q", method, target, ct)
		}
		if !json.Valid(w.Body.Bytes()) {
			t.Fatalf("%s %s with %q: body is not JSON: %s", method, target, body, w.Body.Bytes())
		}
		if w.Code == http.StatusOK && method == "PUT" {
			var j map[string]any
			if json.Unmarshal(w.Body.Bytes(), &j) != nil || j["status"] != "queued" || len(j) != 3 {
				t.Fatalf("PUT answer: %s", w.Body.Bytes())
			}
		}
	})
}
