// SPDX-License-Identifier: MIT

package restapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/clock"
	"github.com/iothubemulator/iothub/emulator/internal/hub"
	"github.com/iothubemulator/iothub/emulator/internal/store"
	"github.com/iothubemulator/iothub/internal/testutil"
)

// newJobEnv is newEnv with a hub that allows limit active jobs.
func newJobEnv(t *testing.T, limit int) *env {
	t.Helper()
	db, err := store.OpenTemp()
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	h, err := hub.New(db, hub.Config{
		HostName:      testHost,
		Policies:      hub.DefaultPolicies(ownerKey),
		Clock:         clock.FromFunc(func() time.Time { return testNow }),
		MaxActiveJobs: limit,
	})
	if err != nil {
		db.Close()
		t.Fatalf("new hub: %v", err)
	}
	srv := httptest.NewUnstartedServer(New(Options{Hub: h}))
	srv.StartTLS()
	client := srv.Client()
	client.Timeout = 20 * time.Second
	t.Cleanup(func() {
		srv.Close()
		h.Close()
		if err := db.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return &env{t: t, hub: h, srv: srv, client: client}
}

// waitJob polls GET /jobs/v2/{id} until ok accepts the job: jobs run on
// their own goroutines once the test has moved the hub's clock.
func (e *env) waitJob(id, what string, ok func(hub.Job) bool) hub.Job {
	e.t.Helper()
	var last hub.Job
	testutil.Eventually(e.t, "job "+id+" to reach "+what, func() bool {
		r := e.owner("GET", "/jobs/v2/"+id, nil)
		wantStatus(e.t, "GET job", r, http.StatusOK)
		last = decode[hub.Job](e.t, r)
		return ok(last)
	})
	return last
}

// nodeTwinJob is the body Node's JobClient.scheduleTwinUpdate sends.
func nodeTwinJob(id, cond string, start time.Time, patch map[string]any) map[string]any {
	return map[string]any{
		"jobId": id, "type": "scheduleUpdateTwin", "updateTwin": patch, "queryCondition": cond,
		"startTime": start.UTC().Format("2006-01-02T15:04:05.000Z"), "maxExecutionTimeInSeconds": 3600,
	}
}

// nodeMethodJob is the body Node's JobClient.scheduleDeviceMethod sends.
func nodeMethodJob(id, cond string, start time.Time, method string, payload any) map[string]any {
	return map[string]any{
		"jobId": id, "type": "scheduleDeviceMethod", "queryCondition": cond,
		"cloudToDeviceMethod": map[string]any{"methodName": method, "payload": payload, "responseTimeoutInSeconds": 30},
		"startTime":           start.UTC().Format("2006-01-02T15:04:05.000Z"), "maxExecutionTimeInSeconds": 3600,
	}
}

// TestJobRoutes drives the four Jobs v2 routes with the bodies the official
// SDKs send: a twin update scheduled an hour ahead runs when the clock gets
// there, a method job runs at once, and both show up in /jobs/v2/query and
// in devices.jobs.
func TestJobRoutes(t *testing.T) {
	e := newEnv(t)
	e.createDevice("b7-1")
	e.createDevice("b7-2")
	e.createDevice("other")
	for _, id := range []string{"b7-1", "b7-2"} {
		wantStatus(t, "tag", e.ownerIf("PATCH", "/twins/"+id, "*", map[string]any{"tags": map[string]any{"site": "B7"}}), 200)
	}

	start := testNow.Add(time.Hour)
	r := e.owner("PUT", "/jobs/v2/twin-1", nodeTwinJob("twin-1", "tags.site = 'B7'", start,
		map[string]any{"etag": "*", "tags": map[string]any{"floor": 3}, "properties": map[string]any{"desired": map[string]any{"fw": "2.0"}, "reported": map[string]any{}}}))
	wantStatus(t, "PUT twin job", r, http.StatusOK)
	if ct := r.header.Get("Content-Type"); !strings.Contains(ct, "application/json") {
		t.Errorf("Content-Type: got %q", ct)
	}
	// The hub answers the id, type and status only.
	var created map[string]any
	if err := json.Unmarshal(r.body, &created); err != nil {
		t.Fatal(err)
	}
	if want := map[string]any{"jobId": "twin-1", "type": "scheduleUpdateTwin", "status": "queued"}; !mapsEqual(created, want) {
		t.Errorf("PUT answer: got %s, want %v", r.body, want)
	}

	j := e.waitJob("twin-1", "scheduled", func(j hub.Job) bool { return j.Status == hub.JobScheduled })
	if j.QueryCondition != "tags.site = 'B7'" || !j.StartTime.Equal(start) || !j.CreatedTime.Equal(testNow) ||
		j.MaxExecutionTimeInSeconds != 3600 || j.DeviceJobStatistics == nil || !j.EndTime.IsZero() ||
		!strings.Contains(string(j.UpdateTwin), `"etag":"*"`) || j.CloudToDeviceMethod != nil {
		t.Errorf("GET scheduled job: got %+v", j)
	}
	var raw map[string]json.RawMessage
	json.Unmarshal(e.owner("GET", "/jobs/v2/twin-1", nil).body, &raw)
	for _, k := range []string{"jobId", "queryCondition", "createdTime", "startTime", "maxExecutionTimeInSeconds", "type", "updateTwin", "status", "deviceJobStatistics"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("GET job lacks %q: %v", k, raw)
		}
	}
	if _, ok := raw["endTime"]; ok {
		t.Errorf("a job that has not ended has an endTime: %s", raw["endTime"])
	}

	e.hub.Clock().FastForward(time.Hour)
	j = e.waitJob("twin-1", "completed", func(j hub.Job) bool { return j.Status == hub.JobCompleted })
	if s := j.DeviceJobStatistics; s == nil || *s != (hub.JobStatistics{DeviceCount: 2, SucceededCount: 2}) || !j.EndTime.Equal(start) {
		t.Errorf("completed job: got %+v %+v", j, s)
	}
	tw := decode[hub.Twin](t, e.owner("GET", "/twins/b7-2", nil))
	if !strings.Contains(string(tw.Tags), `"floor":3`) || !strings.Contains(string(tw.Properties.Desired), `"fw":"2.0"`) {
		t.Errorf("twin after the job: tags %s desired %s", tw.Tags, tw.Properties.Desired)
	}

	// A method job over two devices, one answering.
	e.connect(hub.Identity{DeviceID: "b7-1"}, func(c *hub.Conn, rid, name string, payload []byte) {
		c.ResolveMethod(rid, 200, []byte(`{"method":"`+name+`","got":`+string(payload)+`}`))
	})
	r = e.owner("PUT", "/jobs/v2/method-1", nodeMethodJob("method-1", "deviceId IN ['b7-1', 'b7-2']", e.hub.Now(), "reboot", map[string]any{"delay": 5}))
	wantStatus(t, "PUT method job", r, http.StatusOK)
	j = e.waitJob("method-1", "completed", func(j hub.Job) bool { return j.Status == hub.JobCompleted })
	if s := j.DeviceJobStatistics; s == nil || *s != (hub.JobStatistics{DeviceCount: 2, SucceededCount: 1, FailedCount: 1}) {
		t.Errorf("method job statistics: got %+v", s)
	}

	// Per-device records through the query route.
	r = e.owner("POST", "/devices/query", map[string]string{"query": "SELECT * FROM devices.jobs WHERE devices.jobs.jobId = 'method-1'"})
	wantStatus(t, "devices.jobs", r, http.StatusOK)
	if it := r.header.Get("x-ms-item-type"); it != "DeviceJob" {
		t.Errorf("x-ms-item-type: got %q, want DeviceJob", it)
	}
	rows := decode[[]hub.DeviceJob](t, r)
	if len(rows) != 2 {
		t.Fatalf("devices.jobs rows: got %s", r.body)
	}
	byID := map[string]hub.DeviceJob{rows[0].DeviceID: rows[0], rows[1].DeviceID: rows[1]}
	ok := byID["b7-1"]
	if ok.Status != "completed" || ok.JobType != "scheduleDeviceMethod" || ok.Outcome == nil || ok.Outcome.DeviceMethodResponse == nil ||
		ok.Outcome.DeviceMethodResponse.Status != 200 || string(ok.Outcome.DeviceMethodResponse.Payload) != `{"method":"reboot","got":{"delay":5}}` {
		t.Errorf("answering device: got %+v", ok)
	}
	if off := byID["b7-2"]; off.Status != "failed" || off.Error == nil || off.Error.Code != "DeviceNotOnline" {
		t.Errorf("offline device: got %+v", off)
	}

	// Both jobs in /jobs/v2/query, oldest first.
	r = e.owner("GET", "/jobs/v2/query", nil)
	wantStatus(t, "query jobs", r, http.StatusOK)
	if it := r.header.Get("x-ms-item-type"); it != "JobResponse" {
		t.Errorf("x-ms-item-type: got %q, want JobResponse", it)
	}
	if c := r.header.Get("x-ms-continuation"); c != "" {
		t.Errorf("a single page has a continuation %q", c)
	}
	jobs := decode[[]hub.Job](t, r)
	if len(jobs) != 2 || jobs[0].JobID != "twin-1" || jobs[1].JobID != "method-1" {
		t.Errorf("jobs: got %s", r.body)
	}

	// Cancel a scheduled one.
	wantStatus(t, "PUT", e.owner("PUT", "/jobs/v2/cancel-me", nodeTwinJob("cancel-me", "*", testNow.Add(5*time.Hour), map[string]any{"etag": "*"})), 200)
	r = e.owner("POST", "/jobs/v2/cancel-me/cancel", nil)
	wantStatus(t, "cancel", r, http.StatusOK)
	if j := decode[hub.Job](t, r); j.Status != "cancelled" || j.JobID != "cancel-me" || j.EndTime.IsZero() {
		t.Errorf("cancel answer: got %s", r.body)
	}
}

func mapsEqual(a, b map[string]any) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range b {
		if a[k] != v {
			return false
		}
	}
	return true
}

// TestJobErrors: every refused job request gets the hub's status, code
// name (form A, iothub-errorcode) and changes nothing.
func TestJobErrors(t *testing.T) {
	e := newEnv(t)
	e.createDevice("d1")
	twin := func(id string) map[string]any {
		return nodeTwinJob(id, "*", testNow.Add(time.Hour), map[string]any{"etag": "*"})
	}
	wantStatus(t, "first job", e.owner("PUT", "/jobs/v2/first", twin("first")), 200)
	cases := []struct {
		name   string
		method string
		path   string
		body   any
		header map[string]string
		status int
		code   string
	}{
		{"empty body", "PUT", "/jobs/v2/j1", "", nil, 400, "ArgumentNull"},
		{"malformed body", "PUT", "/jobs/v2/j1", `{"type":`, nil, 400, "ArgumentInvalid"},
		{"body of the wrong shape", "PUT", "/jobs/v2/j1", `{"type":1}`, nil, 400, "ArgumentInvalid"},
		{"start time that is not a time", "PUT", "/jobs/v2/j1", `{"type":"scheduleUpdateTwin","queryCondition":"*","updateTwin":{"etag":"*"},"startTime":"tomorrow"}`, nil, 400, "ArgumentInvalid"},
		{"job type of the old docs", "PUT", "/jobs/v2/j1", map[string]any{"type": "scheduleDirectRequest", "queryCondition": "*"}, nil, 400, "GenericBadRequest"},
		{"id with a character the hub refuses", "PUT", "/jobs/v2/j%2B1", twin("j+1"), nil, 400, "ArgumentInvalid"},
		{"body id differs", "PUT", "/jobs/v2/j1", twin("j2"), nil, 400, "ArgumentInvalid"},
		{"condition that does not parse", "PUT", "/jobs/v2/j1", nodeTwinJob("j1", "tags.site = ", testNow, map[string]any{"etag": "*"}), nil, 400, "ArgumentInvalid"},
		{"no condition", "PUT", "/jobs/v2/j1", nodeTwinJob("j1", "", testNow, map[string]any{"etag": "*"}), nil, 400, "ArgumentNull"},
		{"twin patch without etag", "PUT", "/jobs/v2/j1", nodeTwinJob("j1", "*", testNow, map[string]any{"tags": map[string]any{"a": 1}}), nil, 412, "PreconditionFailed"},
		{"method name missing", "PUT", "/jobs/v2/j1", nodeMethodJob("j1", "*", testNow, "", nil), nil, 400, "ArgumentInvalid"},
		{"duplicate id", "PUT", "/jobs/v2/first", twin("first"), nil, 409, "JobAlreadyExists"},
		{"over the active job limit", "PUT", "/jobs/v2/j1", twin("j1"), nil, 429, "ThrottlingMaxActiveJobCountExceeded"},
		{"get unknown", "GET", "/jobs/v2/nope", nil, nil, 404, "JobNotFound"},
		{"cancel unknown", "POST", "/jobs/v2/nope/cancel", nil, nil, 404, "JobNotFound"},
		{"query with an unknown type", "GET", "/jobs/v2/query?jobType=reboot", nil, nil, 400, "GenericBadRequest"},
		{"query with an unknown status", "GET", "/jobs/v2/query?jobStatus=done", nil, nil, 400, "GenericBadRequest"},
		{"query with a bad page size", "GET", "/jobs/v2/query", nil, map[string]string{"x-ms-max-item-count": "0"}, 400, "ArgumentInvalid"},
		{"query with a bad continuation", "GET", "/jobs/v2/query", nil, map[string]string{"x-ms-continuation": "x"}, 400, "ArgumentInvalid"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := e.in(t)
			r := e.do(request{method: tc.method, path: tc.path, auth: e.token(hub.OwnerPolicy), body: tc.body, header: tc.header})
			checkFormA(t, tc.method+" "+tc.path, r, tc.status, tc.code)
		})
	}
	jobs := decode[[]hub.Job](t, e.owner("GET", "/jobs/v2/query", nil))
	if len(jobs) != 1 || jobs[0].JobID != "first" || jobs[0].Status != hub.JobScheduled && jobs[0].Status != hub.JobQueued {
		t.Errorf("after the refused requests: got %+v, want only the first job, untouched", jobs)
	}
}

// TestJobQueryPaging pages /jobs/v2/query with x-ms-max-item-count and
// x-ms-continuation, the way Node's and C#'s JobClient do, and filters with
// the C# SDK's enum spellings.
func TestJobQueryPaging(t *testing.T) {
	e := newJobEnv(t, 10)
	var want []string
	for _, id := range []string{"a1", "a2", "a3", "a4", "a5"} {
		wantStatus(t, "PUT "+id, e.owner("PUT", "/jobs/v2/"+id, nodeTwinJob(id, "*", testNow.Add(time.Hour), map[string]any{"etag": "*"})), 200)
		want = append(want, id)
	}
	wantStatus(t, "PUT m1", e.owner("PUT", "/jobs/v2/m1", nodeMethodJob("m1", "*", testNow.Add(time.Hour), "m", nil)), 200)
	wantStatus(t, "cancel a3", e.owner("POST", "/jobs/v2/a3/cancel", nil), 200)

	walk := func(query string, size string) ([]string, int) {
		t.Helper()
		var got []string
		tok, pages := "", 0
		for {
			h := map[string]string{"x-ms-max-item-count": size}
			if tok != "" {
				h["x-ms-continuation"] = tok
			}
			r := e.do(request{method: "GET", path: "/jobs/v2/query" + query, auth: e.token(hub.OwnerPolicy), header: h})
			wantStatus(t, "page", r, 200)
			pages++
			for _, j := range decode[[]hub.Job](t, r) {
				got = append(got, j.JobID)
			}
			if tok = r.header.Get("x-ms-continuation"); tok == "" {
				return got, pages
			}
			if pages > 10 {
				t.Fatal("paging does not end")
			}
		}
	}
	got, pages := walk("?jobType=ScheduleUpdateTwin", "2")
	if !slices.Equal(got, want) || pages != 3 {
		t.Errorf("twin jobs by 2: got %v in %d pages, want %v in 3", got, pages, want)
	}
	got, pages = walk("?jobType=scheduleUpdateTwin&jobStatus=Cancelled", "1")
	if !slices.Equal(got, []string{"a3"}) || pages != 1 {
		t.Errorf("cancelled twin jobs: got %v in %d pages", got, pages)
	}
	got, _ = walk("?jobType=scheduleDeviceMethod", "100")
	if !slices.Equal(got, []string{"m1"}) {
		t.Errorf("method jobs: got %v", got)
	}
	// Node puts jobStatus before jobType; the order does not matter.
	got, _ = walk("?jobStatus=cancelled&jobType=scheduleUpdateTwin", "5")
	if !slices.Equal(got, []string{"a3"}) {
		t.Errorf("status first: got %v", got)
	}
}

// TestJobRouteRights: the job routes need ServiceConnect (§2.4).
func TestJobRouteRights(t *testing.T) {
	e := newEnv(t)
	paths := map[string]string{
		"GET /jobs/v2/query":           "/jobs/v2/query",
		"PUT /jobs/v2/{jobId}":         "/jobs/v2/r1",
		"GET /jobs/v2/{jobId}":         "/jobs/v2/r1",
		"POST /jobs/v2/{jobId}/cancel": "/jobs/v2/r1/cancel",
	}
	for _, rt := range jobRoutes() {
		key := rt.method + " " + rt.path
		path, ok := paths[key]
		if !ok {
			t.Errorf("route %s is not in this test", key)
			continue
		}
		for _, p := range []string{"registryRead", "registryReadWrite", "device"} {
			r := e.do(request{method: rt.method, path: path, auth: e.token(p), body: nodeTwinJob("r1", "*", testNow, map[string]any{"etag": "*"})})
			checkFormA(t, p+" "+key, r, http.StatusUnauthorized, "IotHubUnauthorizedAccess")
		}
	}
	// The service policy may: create, read, list, cancel.
	for _, step := range []struct{ method, path string }{{"PUT", "/jobs/v2/r1"}, {"GET", "/jobs/v2/r1"}, {"GET", "/jobs/v2/query"}, {"POST", "/jobs/v2/r1/cancel"}} {
		r := e.do(request{method: step.method, path: step.path, auth: e.token("service"), body: nodeTwinJob("r1", "*", testNow.Add(time.Hour), map[string]any{"etag": "*"})})
		wantStatus(t, "service "+step.method+" "+step.path, r, http.StatusOK)
	}
}
