// SPDX-License-Identifier: MIT

package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/iothubemulator/iothub/emulator/internal/clock"
	"github.com/iothubemulator/iothub/emulator/internal/huberr"
	"github.com/iothubemulator/iothub/emulator/internal/store"
	"github.com/iothubemulator/iothub/internal/testutil"
)

// jobHub is a hub on a frozen clock (regNow) whose store lives in dir, so
// that a test can close it and open another hub on the same file.
type jobHub struct {
	*Hub
	db  *store.DB
	clk *clock.Clock
}

func openJobHub(t *testing.T, dir string, limit int, clk *clock.Clock) *jobHub {
	t.Helper()
	db, err := store.Open(filepath.Join(dir, "hub.db"), store.Options{NoSync: true})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	h, err := New(db, Config{HostName: "myhub.example", Policies: DefaultPolicies(regOwnerKey), Clock: clk, MaxActiveJobs: limit})
	if err != nil {
		db.Close()
		t.Fatalf("new hub: %v", err)
	}
	jh := &jobHub{Hub: h, db: db, clk: clk}
	t.Cleanup(jh.close)
	return jh
}

func newJobHub(t *testing.T, limit int) *jobHub {
	t.Helper()
	return openJobHub(t, t.TempDir(), limit, clock.At(regNow))
}

// close stops the hub and its store; a second call does nothing.
func (h *jobHub) close() {
	h.Hub.Close()
	h.db.Close()
}

// waitJob waits until ok accepts the job: the runner works on its own
// goroutines, and the tests move the clock, never sleep for it.
func (h *jobHub) waitJob(t *testing.T, id string, what string, ok func(*Job) bool) *Job {
	t.Helper()
	var last *Job
	testutil.Eventually(t, "job "+id+" to reach "+what, func() bool {
		j, err := h.GetJob(context.Background(), id)
		if err != nil {
			t.Fatalf("GetJob(%s): %v", id, err)
		}
		last = j
		return ok(j)
	})
	return last
}

// waitTimers waits until at least n clock timers are armed, so that moving
// the clock reaches them.
func (h *jobHub) waitTimers(t *testing.T, n int) {
	t.Helper()
	testutil.Eventually(t, fmt.Sprintf("%d armed timers", n), func() bool { return h.clk.Pending() >= n })
}

func (h *jobHub) waitStatus(t *testing.T, id, status string) *Job {
	t.Helper()
	return h.waitJob(t, id, "status "+status, func(j *Job) bool { return j.Status == status })
}

// deviceJobs returns a job's rows of devices.jobs, by device id.
func (h *jobHub) deviceJobs(t *testing.T, jobID string) map[string]DeviceJob {
	t.Helper()
	p, err := h.Query(context.Background(), "SELECT * FROM devices.jobs WHERE devices.jobs.jobId = '"+jobID+"'", 0, "")
	if err != nil {
		t.Fatalf("query devices.jobs: %v", err)
	}
	if p.ItemType != "DeviceJob" {
		t.Errorf("item type: got %q, want DeviceJob", p.ItemType)
	}
	out := map[string]DeviceJob{}
	for _, it := range p.Items {
		var d DeviceJob
		if err := json.Unmarshal(it, &d); err != nil {
			t.Fatalf("decode %s: %v", it, err)
		}
		out[d.DeviceID] = d
	}
	return out
}

func twinJob(cond string, start time.Time, patch string) *JobRequest {
	st := Time{start}
	return &JobRequest{Type: JobTypeUpdateTwin, QueryCondition: cond, StartTime: &st, UpdateTwin: json.RawMessage(patch)}
}

func methodJob(cond string, start time.Time, name string, timeout int64) *JobRequest {
	st := Time{start}
	return &JobRequest{Type: JobTypeDeviceMethod, QueryCondition: cond, StartTime: &st,
		CloudToDeviceMethod: &JobMethodRequest{MethodName: name, Payload: json.RawMessage(`{"n":1}`), ResponseTimeoutInSeconds: &timeout}}
}

func tagged(t *testing.T, h *jobHub, id, site string) {
	t.Helper()
	regDevice(t, h.Hub, Device{DeviceID: id})
	if _, err := h.UpdateTwin(context.Background(), Identity{DeviceID: id}, []byte(`{"tags":{"site":"`+site+`"}}`), "*", false); err != nil {
		t.Fatalf("tag %s: %v", id, err)
	}
}

func stats(j *Job) JobStatistics {
	if j.DeviceJobStatistics == nil {
		return JobStatistics{}
	}
	return *j.DeviceJobStatistics
}

// TestCreateJobRefusesBadInput: every bad request gets the hub's error and
// leaves no job behind.
func TestCreateJobRefusesBadInput(t *testing.T) {
	h := newJobHub(t, 1)
	now := regNow
	big := `"` + strings.Repeat("x", MaxMethodPayload) + `"`
	i64 := func(n int64) *int64 { return &n }
	cases := []struct {
		name string
		id   string
		req  *JobRequest
		code int
	}{
		{"id with a space", "a b", twinJob("*", now, `{"etag":"*"}`), 400004},
		{"id with an underscore", "a_b", twinJob("*", now, `{"etag":"*"}`), 400004},
		{"id over 64 characters", strings.Repeat("j", 65), twinJob("*", now, `{"etag":"*"}`), 400004},
		{"body id differs from the path", "j1", &JobRequest{JobID: "other", Type: JobTypeUpdateTwin, QueryCondition: "*", UpdateTwin: json.RawMessage(`{"etag":"*"}`)}, 400004},
		{"no type", "j1", &JobRequest{QueryCondition: "*"}, 400005},
		{"unknown type", "j1", &JobRequest{Type: "scheduleDirectMethod", QueryCondition: "*"}, 400000},
		{"a type that is not a v2 job", "j1", &JobRequest{Type: "export", QueryCondition: "*"}, 400000},
		{"no condition", "j1", twinJob(" ", now, `{"etag":"*"}`), 400005},
		{"condition that does not parse", "j1", twinJob("deviceId = ", now, `{"etag":"*"}`), 400004},
		{"a whole query as condition", "j1", twinJob("SELECT * FROM devices", now, `{"etag":"*"}`), 400004},
		{"method job without a method", "j1", &JobRequest{Type: JobTypeDeviceMethod, QueryCondition: "*"}, 400005},
		{"empty method name", "j1", methodJob("*", now, "", 30), 400004},
		{"response timeout below 5 s", "j1", methodJob("*", now, "m", 4), 400004},
		{"response timeout above 300 s", "j1", methodJob("*", now, "m", 301), 400004},
		{"response timeout that wraps a duration", "j1", methodJob("*", now, "m", 18446744079), 400004},
		{"connect timeout that wraps a duration", "j1", &JobRequest{Type: JobTypeDeviceMethod, QueryCondition: "*",
			CloudToDeviceMethod: &JobMethodRequest{MethodName: "m", ConnectTimeoutInSeconds: i64(-18446744068)}}, 400004},
		{"control character in the method name", "j1", methodJob("*", now, "re\x01boot", 30), 400004},
		{"payload over 128 KB", "j1", &JobRequest{Type: JobTypeDeviceMethod, QueryCondition: "*",
			CloudToDeviceMethod: &JobMethodRequest{MethodName: "m", Payload: json.RawMessage(big)}}, 413001},
		{"twin job without a patch", "j1", &JobRequest{Type: JobTypeUpdateTwin, QueryCondition: "*"}, 400005},
		{"twin job with a null patch", "j1", &JobRequest{Type: JobTypeUpdateTwin, QueryCondition: "*", UpdateTwin: json.RawMessage(`null`)}, 400005},
		{"patch without etag", "j1", twinJob("*", now, `{"tags":{"a":1}}`), 412001},
		{"patch with a twin's etag", "j1", twinJob("*", now, `{"etag":"AAAAAAAAAAE=","tags":{"a":1}}`), 412001},
		{"desired outside properties", "j1", twinJob("*", now, `{"etag":"*","desired":{"a":1}}`), 400004},
		{"patch that is not an object", "j1", twinJob("*", now, `[1]`), 400004},
		{"patch with a $ key", "j1", twinJob("*", now, `{"etag":"*","tags":{"$a":1}}`), 400004},
		{"negative execution time", "j1", &JobRequest{Type: JobTypeUpdateTwin, QueryCondition: "*", UpdateTwin: json.RawMessage(`{"etag":"*"}`), MaxExecutionTimeInSeconds: i64(-1)}, 400004},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := h.CreateJob(context.Background(), tc.id, tc.req)
			wantCode(t, "CreateJob", err, tc.code)
			var he *huberr.Error
			if errors.As(err, &he) && he.Form != huberr.FormA {
				t.Errorf("got form %v, want form A", he.Form)
			}
		})
	}
	page, err := h.ListJobs(context.Background(), "", "", 0, "")
	if err != nil || len(page.Items) != 0 {
		t.Fatalf("after refused requests: got %d jobs, %v; want none", len(page.Items), err)
	}
	if _, err := h.GetJob(context.Background(), "j1"); !errors.Is(err, huberr.JobNotFound("")) {
		t.Fatalf("GetJob(j1): got %v, want JobNotFound", err)
	}
}

// TestTwinJobRunsAtItsStartTime schedules a twin update an hour ahead: it
// waits as queued then scheduled, runs when the clock reaches its start,
// updates exactly the matched twins (notifying a connected device) and
// reports its devices.
func TestTwinJobRunsAtItsStartTime(t *testing.T) {
	h := newJobHub(t, 1)
	tagged(t, h, "b7-1", "B7")
	tagged(t, h, "b7-2", "B7")
	tagged(t, h, "b8-1", "B8")
	s := &methodSession{}
	c := h.Connect(Identity{DeviceID: "b7-1"}, s, ConnectInfo{AuthMethod: "sas"})
	c.SubscribeDesired()
	t.Cleanup(c.Disconnect)

	start := regNow.Add(time.Hour)
	j, err := h.CreateJob(context.Background(), "twin-b7", twinJob("tags.site = 'B7'", start,
		`{"etag":"*","tags":{"floor":3},"properties":{"desired":{"fw":"2.0"},"reported":{"ignored":true}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if j.Status != JobQueued || j.Type != JobTypeUpdateTwin || !j.StartTime.Equal(start) || j.MaxExecutionTimeInSeconds != 3600 {
		t.Fatalf("created: got %+v", j)
	}
	j = h.waitStatus(t, "twin-b7", JobScheduled)
	if got := stats(j); got != (JobStatistics{}) {
		t.Errorf("statistics before the start: got %+v, want zeros", got)
	}
	tw, _ := h.GetTwin(context.Background(), Identity{DeviceID: "b7-1"})
	if strings.Contains(string(tw.Properties.Desired), "fw") {
		t.Fatalf("twin changed before the start time: %s", tw.Properties.Desired)
	}

	h.clk.FastForward(time.Hour - time.Second)
	if j, _ := h.GetJob(context.Background(), "twin-b7"); j.Status != JobScheduled {
		t.Fatalf("a second before the start: got status %s, want scheduled", j.Status)
	}
	h.clk.FastForward(time.Second)
	j = h.waitStatus(t, "twin-b7", JobCompleted)
	if want := (JobStatistics{DeviceCount: 2, SucceededCount: 2}); stats(j) != want {
		t.Errorf("statistics: got %+v, want %+v", stats(j), want)
	}
	if !j.EndTime.Equal(start) {
		t.Errorf("endTime: got %v, want %v (the clock did not move while it ran)", j.EndTime, start)
	}
	for _, id := range []string{"b7-1", "b7-2"} {
		tw, _ := h.GetTwin(context.Background(), Identity{DeviceID: id})
		if !strings.Contains(string(tw.Tags), `"floor":3`) || !strings.Contains(string(tw.Tags), `"site":"B7"`) ||
			!strings.Contains(string(tw.Properties.Desired), `"fw":"2.0"`) {
			t.Errorf("%s: got tags %s desired %s", id, tw.Tags, tw.Properties.Desired)
		}
	}
	tw, _ = h.GetTwin(context.Background(), Identity{DeviceID: "b8-1"})
	if strings.Contains(string(tw.Tags), "floor") {
		t.Errorf("b8-1 is not in the job but its tags changed: %s", tw.Tags)
	}
	testutil.Eventually(t, "the connected device's desired notification", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.desired == 1
	})

	rows := h.deviceJobs(t, "twin-b7")
	if len(rows) != 2 {
		t.Fatalf("devices.jobs: got %v, want b7-1 and b7-2", rows)
	}
	want := DeviceJob{DeviceID: "b7-1", JobID: "twin-b7", JobType: JobTypeUpdateTwin, Status: DeviceJobCompleted,
		StartTimeUTC: Time{start}, EndTimeUTC: Time{start.Add(time.Hour)}, CreatedDateTimeUTC: Time{start},
		LastUpdatedDateTimeUTC: Time{start}, Outcome: &DeviceJobOutcome{}}
	if diff := cmp.Diff(want, rows["b7-1"]); diff != "" {
		t.Errorf("devices.jobs row (-want +got):\n%s", diff)
	}
	raw, _ := json.Marshal(rows["b7-1"])
	if !strings.Contains(string(raw), `"outcome":{"deviceMethodResponse":null}`) {
		t.Errorf("a twin job's outcome: got %s, want deviceMethodResponse null (the query-jobs doc's example)", raw)
	}
}

// TestMethodJob calls a method on every matched device through the direct
// method path: an answering device completes with its answer, one that is
// not connected fails with the hub's DeviceNotOnline.
func TestMethodJob(t *testing.T) {
	h := newJobHub(t, 1)
	tagged(t, h, "on", "B7")
	tagged(t, h, "off", "B7")
	connectMethods(t, h.Hub, Identity{DeviceID: "on"}, &methodSession{answer: func(c *Conn, rid string) {
		c.ResolveMethod(rid, 201, []byte(`{"rebooted":true}`))
	}})
	if _, err := h.CreateJob(context.Background(), "reboot", methodJob("tags.site = 'B7'", regNow.Add(-time.Minute), "reboot", 30)); err != nil {
		t.Fatal(err)
	}
	j := h.waitStatus(t, "reboot", JobCompleted)
	if want := (JobStatistics{DeviceCount: 2, SucceededCount: 1, FailedCount: 1}); stats(j) != want {
		t.Errorf("statistics: got %+v, want %+v", stats(j), want)
	}
	if j.CloudToDeviceMethod == nil || j.CloudToDeviceMethod.MethodName != "reboot" || string(j.CloudToDeviceMethod.Payload) != `{"n":1}` ||
		j.CloudToDeviceMethod.ResponseTimeoutInSeconds != 30 || j.CloudToDeviceMethod.ConnectTimeoutInSeconds != 0 {
		t.Errorf("cloudToDeviceMethod: got %+v", j.CloudToDeviceMethod)
	}
	rows := h.deviceJobs(t, "reboot")
	on, off := rows["on"], rows["off"]
	if on.Status != DeviceJobCompleted || on.Outcome == nil || on.Outcome.DeviceMethodResponse == nil ||
		on.Outcome.DeviceMethodResponse.Status != 201 || string(on.Outcome.DeviceMethodResponse.Payload) != `{"rebooted":true}` || on.Error != nil {
		t.Errorf("answering device: got %+v", on)
	}
	if off.Status != DeviceJobFailed || off.Error == nil || off.Error.Code != "DeviceNotOnline" || off.Outcome != nil {
		t.Errorf("offline device: got %+v", off)
	}
	calls := h.MethodCalls("on")
	if len(calls) != 1 || calls[0].MethodName != "reboot" || string(calls[0].Payload) != `{"n":1}` {
		t.Errorf("recorded calls: got %+v", calls)
	}
}

// TestJobExecutionWindow: a device that does not answer before the job's
// maxExecutionTimeInSeconds runs out fails, and the job completes.
func TestJobExecutionWindow(t *testing.T) {
	h := newJobHub(t, 1)
	tagged(t, h, "mute", "B7")
	connectMethods(t, h.Hub, Identity{DeviceID: "mute"}, &methodSession{}) // never answers
	req := methodJob("deviceId = 'mute'", regNow, "m", 300)
	ten := int64(10)
	req.MaxExecutionTimeInSeconds = &ten
	if _, err := h.CreateJob(context.Background(), "window", req); err != nil {
		t.Fatal(err)
	}
	h.waitJob(t, "window", "its device running", func(j *Job) bool { return stats(j).RunningCount == 1 })
	h.clk.FastForward(9 * time.Second)
	if j, _ := h.GetJob(context.Background(), "window"); j.Status != JobRunning {
		t.Fatalf("before the window ends: got %s, want running", j.Status)
	}
	h.clk.FastForward(time.Second)
	j := h.waitStatus(t, "window", JobCompleted)
	if want := (JobStatistics{DeviceCount: 1, FailedCount: 1}); stats(j) != want {
		t.Errorf("statistics: got %+v, want %+v", stats(j), want)
	}
	d := h.deviceJobs(t, "window")["mute"]
	if d.Status != DeviceJobFailed || d.Error == nil || d.Error.Code != "GatewayTimeout" || !strings.Contains(d.Error.Description, "maxExecutionTimeInSeconds") {
		t.Errorf("device: got %+v", d)
	}
	if !d.EndTimeUTC.Equal(regNow.Add(10 * time.Second)) {
		t.Errorf("endTimeUtc: got %v, want the end of the window", d.EndTimeUTC)
	}
}

// TestCancelJob cancels a scheduled job (it never runs), a running one
// (devices not started are canceled, calls in flight finish), an ended one
// (unchanged) and an unknown one (404).
func TestCancelJob(t *testing.T) {
	h := newJobHub(t, 1)
	tagged(t, h, "d0", "B7")
	if _, err := h.CreateJob(context.Background(), "later", twinJob("*", regNow.Add(time.Hour), `{"etag":"*","tags":{"x":1}}`)); err != nil {
		t.Fatal(err)
	}
	j, err := h.CancelJob(context.Background(), "later")
	if err != nil || j.Status != JobCancelled || !j.EndTime.Equal(regNow) {
		t.Fatalf("cancel scheduled: got %+v, %v", j, err)
	}
	h.clk.FastForward(2 * time.Hour)
	if j, _ := h.GetJob(context.Background(), "later"); j.Status != JobCancelled || stats(j).DeviceCount != 0 {
		t.Fatalf("after its start time: got %+v, want cancelled and never run", j)
	}
	if tw, _ := h.GetTwin(context.Background(), Identity{DeviceID: "d0"}); strings.Contains(string(tw.Tags), `"x"`) {
		t.Fatalf("a cancelled job changed a twin: %s", tw.Tags)
	}
	again, err := h.CancelJob(context.Background(), "later")
	if err != nil || again.Status != JobCancelled || !again.EndTime.Equal(j.EndTime.Time) {
		t.Fatalf("second cancel: got %+v, %v; want the job unchanged", again, err)
	}
	if _, err := h.CancelJob(context.Background(), "nope"); !errors.Is(err, huberr.JobNotFound("")) {
		t.Fatalf("cancel unknown: got %v, want JobNotFound", err)
	}

	// A running job over more devices than run at once.
	n := jobWorkers + 2
	for i := 1; i <= n; i++ {
		id := fmt.Sprintf("m%02d", i)
		tagged(t, h, id, "mute")
		connectMethods(t, h.Hub, Identity{DeviceID: id}, &methodSession{}) // never answers
	}
	if _, err := h.CreateJob(context.Background(), "busy", methodJob("tags.site = 'mute'", h.Now(), "m", 5)); err != nil {
		t.Fatal(err)
	}
	h.waitJob(t, "busy", "every worker busy", func(j *Job) bool { return stats(j).RunningCount == jobWorkers })
	j, err = h.CancelJob(context.Background(), "busy")
	if err != nil || j.Status != JobCancelled {
		t.Fatalf("cancel running: got %+v, %v", j, err)
	}
	if want := (JobStatistics{DeviceCount: n, RunningCount: jobWorkers}); stats(j) != want {
		t.Errorf("statistics at cancel: got %+v, want %+v", stats(j), want)
	}
	// The calls in flight time out and record it; nothing else starts.
	// Each call arms its response timer after its device shows as
	// running: wait for those timers (and the job's window) first.
	h.waitTimers(t, jobWorkers+1)
	h.clk.FastForward(5 * time.Second)
	j = h.waitJob(t, "busy", "its calls ended", func(j *Job) bool { return stats(j).RunningCount == 0 })
	if want := (JobStatistics{DeviceCount: n, FailedCount: jobWorkers}); stats(j) != want || j.Status != JobCancelled {
		t.Errorf("after the calls ended: got %s %+v, want cancelled %+v", j.Status, stats(j), want)
	}
	canceled := 0
	for _, d := range h.deviceJobs(t, "busy") {
		switch {
		case d.Status == DeviceJobCanceled:
			canceled++
		case d.Status != DeviceJobFailed || d.Error == nil || d.Error.Code != "GatewayTimeout":
			t.Errorf("device %s: got %+v", d.DeviceID, d)
		}
	}
	if canceled != n-jobWorkers {
		t.Errorf("canceled devices: got %d, want %d", canceled, n-jobWorkers)
	}
}

// TestJobLimitAndDuplicates: a hub at its active-job limit refuses another
// job with 429004, a used id is refused with 409 even after its job ended,
// and a refused job changes nothing.
func TestJobLimitAndDuplicates(t *testing.T) {
	h := newJobHub(t, 1)
	if _, err := h.CreateJob(context.Background(), "first", twinJob("*", regNow.Add(time.Hour), `{"etag":"*"}`)); err != nil {
		t.Fatal(err)
	}
	_, err := h.CreateJob(context.Background(), "second", twinJob("*", regNow, `{"etag":"*"}`))
	wantCode(t, "a second active job", err, 429004)
	if he := huberr.As(err); he.Status != 429 || he.Name != "ThrottlingMaxActiveJobCountExceeded" {
		t.Errorf("got %+v", he)
	}
	_, err = h.CreateJob(context.Background(), "first", twinJob("*", regNow, `{"etag":"*"}`))
	wantCode(t, "the same id", err, 409000)
	if _, err := h.GetJob(context.Background(), "second"); !errors.Is(err, huberr.JobNotFound("")) {
		t.Fatalf("refused job stored: %v", err)
	}
	if _, err := h.CancelJob(context.Background(), "first"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.CreateJob(context.Background(), "second", twinJob("*", regNow, `{"etag":"*"}`)); err != nil {
		t.Fatalf("after the first was cancelled: %v", err)
	}
	h.waitStatus(t, "second", JobCompleted)
	_, err = h.CreateJob(context.Background(), "second", twinJob("*", regNow, `{"etag":"*"}`))
	wantCode(t, "reusing a finished job's id", err, 409000)
}

// TestListJobs filters by type and status (in any letter case, as the C#
// SDK sends its enum names) and pages in creation order.
func TestListJobs(t *testing.T) {
	h := newJobHub(t, 10)
	later := regNow.Add(time.Hour)
	for i, typ := range []string{JobTypeUpdateTwin, JobTypeDeviceMethod, JobTypeUpdateTwin, JobTypeUpdateTwin, JobTypeDeviceMethod} {
		req := twinJob("*", later, `{"etag":"*"}`)
		if typ == JobTypeDeviceMethod {
			req = methodJob("*", later, "m", 30)
		}
		if _, err := h.CreateJob(context.Background(), fmt.Sprintf("job-%d", i), req); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := h.CancelJob(context.Background(), "job-2"); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if i != 2 {
			h.waitStatus(t, fmt.Sprintf("job-%d", i), JobScheduled)
		}
	}
	ids := func(typ, status string, size int) []string {
		t.Helper()
		var out []string
		tok := ""
		for range 10 {
			p, err := h.ListJobs(context.Background(), typ, status, size, tok)
			if err != nil {
				t.Fatalf("ListJobs(%q, %q): %v", typ, status, err)
			}
			if size > 0 && len(p.Items) > size {
				t.Fatalf("page of %d items, want at most %d", len(p.Items), size)
			}
			for _, j := range p.Items {
				out = append(out, j.JobID)
			}
			if tok = p.Continuation; tok == "" {
				return out
			}
		}
		t.Fatal("paging does not end")
		return nil
	}
	cases := []struct {
		typ, status string
		size        int
		want        []string
	}{
		{"", "", 0, []string{"job-0", "job-1", "job-2", "job-3", "job-4"}},
		{"", "", 2, []string{"job-0", "job-1", "job-2", "job-3", "job-4"}},
		{"", "", 5, []string{"job-0", "job-1", "job-2", "job-3", "job-4"}},
		{"scheduleUpdateTwin", "", 1, []string{"job-0", "job-2", "job-3"}},
		{"ScheduleDeviceMethod", "", 0, []string{"job-1", "job-4"}},
		{"", "Cancelled", 0, []string{"job-2"}},
		{"scheduleupdatetwin", "scheduled", 0, []string{"job-0", "job-3"}},
		{"", "running", 0, nil},
		{"export", "", 0, nil},
		{"", "Enqueued", 0, nil},
	}
	for _, tc := range cases {
		if got := ids(tc.typ, tc.status, tc.size); !cmp.Equal(got, tc.want) {
			t.Errorf("type %q status %q size %d: got %v, want %v", tc.typ, tc.status, tc.size, got, tc.want)
		}
	}
	_, err := h.ListJobs(context.Background(), "reboot", "", 0, "")
	wantCode(t, "unknown type filter", err, 400000)
	_, err = h.ListJobs(context.Background(), "", "done", 0, "")
	wantCode(t, "unknown status filter", err, 400000)
	_, err = h.ListJobs(context.Background(), "", "", 0, "garbage")
	wantCode(t, "bad continuation", err, 400004)
	p, err := h.ListJobs(context.Background(), "", "", 1, "")
	if err != nil || p.Continuation == "" {
		t.Fatalf("first page: %v %+v", err, p)
	}
	_, err = h.ListJobs(context.Background(), JobTypeUpdateTwin, "", 1, p.Continuation)
	wantCode(t, "a token used with other filters", err, 400004)
}

// TestJobStartInThePast: the SDKs send "now", which is past when the
// request arrives; the job runs at once and keeps the start time given.
func TestJobStartInThePast(t *testing.T) {
	h := newJobHub(t, 1)
	tagged(t, h, "d1", "B7")
	past := regNow.Add(-24 * time.Hour)
	if _, err := h.CreateJob(context.Background(), "past", twinJob("deviceId IN ['d1']", past, `{"etag":"*","tags":{"y":2}}`)); err != nil {
		t.Fatal(err)
	}
	j := h.waitStatus(t, "past", JobCompleted)
	if !j.StartTime.Equal(past) || stats(j).SucceededCount != 1 {
		t.Fatalf("got %+v", j)
	}
	if d := h.deviceJobs(t, "past")["d1"]; !d.EndTimeUTC.Equal(regNow.Add(time.Hour)) {
		t.Errorf("a late start still gets its whole window: endTimeUtc %v, want %v", d.EndTimeUTC, regNow.Add(time.Hour))
	}
}

// TestJobsSurviveRestart closes the hub with a job scheduled and one
// running, and opens another on the same store: the scheduled job still
// runs at its start time; the running job fails the device whose method
// call was in flight (its outcome is unknown), carries on with the rest and
// completes.
func TestJobsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	clk := clock.At(regNow)
	h := openJobHub(t, dir, 5, clk)
	tagged(t, h, "answers", "B7")
	tagged(t, h, "mute", "B7")
	connectMethods(t, h.Hub, Identity{DeviceID: "mute"}, &methodSession{})
	if _, err := h.CreateJob(context.Background(), "later", twinJob("deviceId = 'answers'", regNow.Add(time.Hour), `{"etag":"*","tags":{"z":3}}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := h.CreateJob(context.Background(), "call", methodJob("deviceId = 'mute'", regNow, "m", 60)); err != nil {
		t.Fatal(err)
	}
	h.waitStatus(t, "later", JobScheduled)
	h.waitJob(t, "call", "its call in flight", func(j *Job) bool { return stats(j).RunningCount == 1 })
	h.close()

	h2 := openJobHub(t, dir, 5, clk)
	j := h2.waitStatus(t, "call", JobCompleted)
	if want := (JobStatistics{DeviceCount: 1, FailedCount: 1}); stats(j) != want {
		t.Errorf("resumed running job: got %+v, want %+v", stats(j), want)
	}
	if d := h2.deviceJobs(t, "call")["mute"]; d.Status != DeviceJobFailed || d.Error == nil || d.Error.Code != "ServerError" {
		t.Errorf("call in flight at the restart: got %+v", d)
	}
	if calls := h2.MethodCalls("mute"); len(calls) != 0 {
		t.Errorf("the method was called again after the restart: %+v", calls)
	}
	if j, _ := h2.GetJob(context.Background(), "later"); j.Status != JobScheduled {
		t.Fatalf("scheduled job after restart: got %s", j.Status)
	}
	clk.FastForward(time.Hour)
	j = h2.waitStatus(t, "later", JobCompleted)
	if stats(j).SucceededCount != 1 {
		t.Errorf("got %+v", stats(j))
	}
	if tw, _ := h2.GetTwin(context.Background(), Identity{DeviceID: "answers"}); !strings.Contains(string(tw.Tags), `"z":3`) {
		t.Errorf("twin after the resumed job: %s", tw.Tags)
	}
	// The limit counts resumed jobs: the running one ended, the scheduled
	// one too, so five new ones fit.
	for i := range 5 {
		if _, err := h2.CreateJob(context.Background(), fmt.Sprintf("n%d", i), twinJob("*", regNow.Add(48*time.Hour), `{"etag":"*"}`)); err != nil {
			t.Fatalf("job %d after restart: %v", i, err)
		}
	}
	h2.close()
	h3 := openJobHub(t, dir, 5, clk)
	_, err := h3.CreateJob(context.Background(), "n5", twinJob("*", regNow, `{"etag":"*"}`))
	wantCode(t, "sixth active job after a restart", err, 429004)
}

// TestJobRetention: a finished job disappears 30 days after it ended,
// with its device records, and its id can be used again.
func TestJobRetention(t *testing.T) {
	h := newJobHub(t, 1)
	tagged(t, h, "d1", "B7")
	if _, err := h.CreateJob(context.Background(), "old", twinJob("*", regNow, `{"etag":"*"}`)); err != nil {
		t.Fatal(err)
	}
	h.waitStatus(t, "old", JobCompleted)
	h.clk.FastForward(JobRetention)
	if _, err := h.GetJob(context.Background(), "old"); err != nil {
		t.Fatalf("at exactly 30 days: %v", err)
	}
	h.clk.FastForward(time.Second)
	if _, err := h.GetJob(context.Background(), "old"); !errors.Is(err, huberr.JobNotFound("")) {
		t.Fatalf("after 30 days: got %v, want JobNotFound", err)
	}
	if rows := h.deviceJobs(t, "old"); len(rows) != 0 {
		t.Errorf("devices.jobs still lists %v", rows)
	}
	if _, err := h.CreateJob(context.Background(), "old", twinJob("*", h.Now(), `{"etag":"*"}`)); err != nil {
		t.Fatalf("reusing an expired id: %v", err)
	}
}

// TestDevicesJobsQuery filters device job records on their fields and
// refuses what the hub refuses on devices.jobs.
func TestDevicesJobsQuery(t *testing.T) {
	h := newJobHub(t, 1)
	tagged(t, h, "d1", "B7")
	tagged(t, h, "d2", "B7")
	if _, err := h.CreateJob(context.Background(), "q1", twinJob("*", regNow, `{"etag":"*"}`)); err != nil {
		t.Fatal(err)
	}
	h.waitStatus(t, "q1", JobCompleted)
	for q, want := range map[string]int{
		"SELECT * FROM devices.jobs":                                    2,
		"SELECT * FROM devices.jobs WHERE devices.jobs.deviceId = 'd2'": 1,
		"SELECT * FROM devices.jobs WHERE devices.jobs.jobType = 'scheduleUpdateTwin' AND devices.jobs.status = 'completed'": 2,
		"SELECT * FROM devices.jobs WHERE devices.jobs.status = 'failed'":                                                    0,
		"SELECT * FROM devices.jobs WHERE devices.jobs.createdDateTimeUtc > '2024-01-01'":                                    2,
	} {
		p, err := h.Query(context.Background(), q, 0, "")
		if err != nil || len(p.Items) != want || p.ItemType != "DeviceJob" {
			t.Errorf("%s: got %d items (%s), %v; want %d", q, len(p.Items), p.ItemType, err, want)
		}
	}
	for _, q := range []string{"SELECT deviceId FROM devices.jobs", "SELECT COUNT() FROM devices.jobs"} {
		_, err := h.Query(context.Background(), q, 0, "")
		wantCode(t, q, err, 400004)
	}
}

// TestResetRemovesJobs: the emulator's reset stops and forgets every job.
func TestResetRemovesJobs(t *testing.T) {
	h := newJobHub(t, 1)
	if _, err := h.CreateJob(context.Background(), "r1", twinJob("*", regNow.Add(time.Hour), `{"etag":"*"}`)); err != nil {
		t.Fatal(err)
	}
	if err := h.Reset(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := h.GetJob(context.Background(), "r1"); !errors.Is(err, huberr.JobNotFound("")) {
		t.Fatalf("after reset: %v", err)
	}
	if _, err := h.CreateJob(context.Background(), "r2", twinJob("*", regNow, `{"etag":"*"}`)); err != nil {
		t.Fatalf("a job after reset (the limit is free again): %v", err)
	}
	h.waitStatus(t, "r2", JobCompleted)
}

// TestMethodJobConnectTimeout: a method job with connectTimeoutInSeconds
// waits for a device to connect, as a direct method does: one that
// connects in time answers; one that does not fails with DeviceNotOnline
// when the timeout passes.
func TestMethodJobConnectTimeout(t *testing.T) {
	h := newJobHub(t, 1)
	tagged(t, h, "late", "B7")
	tagged(t, h, "never", "B7")
	req := methodJob("tags.site = 'B7'", regNow, "m", 30)
	connect := int64(60)
	req.CloudToDeviceMethod.ConnectTimeoutInSeconds = &connect
	if _, err := h.CreateJob(context.Background(), "wait-for-it", req); err != nil {
		t.Fatal(err)
	}
	h.waitJob(t, "wait-for-it", "both devices running", func(j *Job) bool { return stats(j).RunningCount == 2 })
	connectMethods(t, h.Hub, Identity{DeviceID: "late"}, &methodSession{answer: func(c *Conn, rid string) {
		c.ResolveMethod(rid, 200, []byte(`"hi"`))
	}})
	h.waitJob(t, "wait-for-it", "the late device answered", func(j *Job) bool { return stats(j).SucceededCount == 1 })
	// The window (1 h) is far; the connect timeout ends the other call.
	h.waitTimers(t, 2)
	h.clk.FastForward(time.Minute)
	j := h.waitStatus(t, "wait-for-it", JobCompleted)
	if want := (JobStatistics{DeviceCount: 2, SucceededCount: 1, FailedCount: 1}); stats(j) != want {
		t.Errorf("statistics: got %+v, want %+v", stats(j), want)
	}
	rows := h.deviceJobs(t, "wait-for-it")
	if d := rows["never"]; d.Error == nil || d.Error.Code != "DeviceNotOnline" {
		t.Errorf("device that never connected: %+v", d)
	}
	if d := rows["late"]; d.Outcome == nil || string(d.Outcome.DeviceMethodResponse.Payload) != `"hi"` {
		t.Errorf("device that connected late: %+v", d)
	}
}

// TestJobWindowClosedWhileStopped: a job whose whole execution window
// passed while the emulator was stopped does not run late; it completes
// with its devices failed, and no twin changes.
func TestJobWindowClosedWhileStopped(t *testing.T) {
	dir := t.TempDir()
	h := openJobHub(t, dir, 1, clock.At(regNow))
	tagged(t, h, "d1", "B7")
	req := twinJob("*", regNow.Add(time.Hour), `{"etag":"*","tags":{"late":true}}`)
	ten := int64(600)
	req.MaxExecutionTimeInSeconds = &ten
	if _, err := h.CreateJob(context.Background(), "missed", req); err != nil {
		t.Fatal(err)
	}
	h.waitStatus(t, "missed", JobScheduled)
	h.close()

	h2 := openJobHub(t, dir, 1, clock.At(regNow.Add(2*time.Hour)))
	j := h2.waitStatus(t, "missed", JobCompleted)
	if want := (JobStatistics{DeviceCount: 1, FailedCount: 1}); stats(j) != want {
		t.Errorf("statistics: got %+v, want %+v", stats(j), want)
	}
	if d := h2.deviceJobs(t, "missed")["d1"]; d.Error == nil || d.Error.Code != "GatewayTimeout" {
		t.Errorf("device: %+v", d)
	}
	if tw, _ := h2.GetTwin(context.Background(), Identity{DeviceID: "d1"}); strings.Contains(string(tw.Tags), "late") {
		t.Errorf("the missed job ran: %s", tw.Tags)
	}
}

// TestDeviceJobsOfDeletedDevice: a deleted device's job records leave
// devices.jobs with its twin; the job's statistics keep counting it.
func TestDeviceJobsOfDeletedDevice(t *testing.T) {
	h := newJobHub(t, 1)
	tagged(t, h, "stays", "B7")
	tagged(t, h, "goes", "B7")
	if _, err := h.CreateJob(context.Background(), "j", twinJob("*", regNow, `{"etag":"*","tags":{"a":1}}`)); err != nil {
		t.Fatal(err)
	}
	h.waitStatus(t, "j", JobCompleted)
	if err := h.DeleteDevice(context.Background(), "goes", "*"); err != nil {
		t.Fatal(err)
	}
	rows := h.deviceJobs(t, "j")
	if _, ok := rows["goes"]; ok || len(rows) != 1 {
		t.Errorf("devices.jobs after the delete: %v", rows)
	}
	if j, _ := h.GetJob(context.Background(), "j"); stats(j).SucceededCount != 2 {
		t.Errorf("statistics: %+v", stats(j))
	}
}
