// SPDX-License-Identifier: MIT

package service_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/iothubemulator/iothub/device"
	"github.com/iothubemulator/iothub/emulator"
	"github.com/iothubemulator/iothub/internal/testutil"
	"github.com/iothubemulator/iothub/service"
)

// invokeWhenListening calls a method until the device has subscribed to
// methods: the device client subscribes lazily, as the SDKs do.
func invokeWhenListening(t *testing.T, ctx context.Context, c *service.Client, id string, m service.MethodCall) *service.MethodResult {
	t.Helper()
	for {
		res, err := c.InvokeMethod(ctx, id, m)
		if err == nil {
			return res
		}
		if !errors.Is(err, service.ErrDeviceNotOnline) || ctx.Err() != nil {
			t.Fatalf("InvokeMethod(%s): %v", id, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitDesiredSubscribed patches the twin until the device receives a
// desired patch, so that later notifications reach it.
func waitDesiredSubscribed(t *testing.T, ctx context.Context, c *service.Client, id string, got <-chan device.Properties) {
	t.Helper()
	for {
		if _, err := c.UpdateTwin(ctx, id, &service.Twin{Properties: service.TwinProperties{Desired: service.TwinCollection(`{"probe":1}`)}}, ""); err != nil {
			t.Fatalf("UpdateTwin: %v", err)
		}
		select {
		case <-got:
			return
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			t.Fatal("the device never received a desired patch")
		}
	}
}

// TestEmulatorJobs schedules a twin update and a direct method through the
// client, runs the first by moving the emulator's clock to its start time,
// and reads the jobs and their device records back.
func TestEmulatorJobs(t *testing.T) {
	srv, c, ctx := newEmulatorClient(t)
	now := time.Now().UTC().Truncate(time.Second)
	srv.SetTime(now)
	cs := createDevice(t, srv, "b7-on")
	createDevice(t, srv, "b7-off")
	createDevice(t, srv, "b8")
	for id, site := range map[string]string{"b7-on": "B7", "b7-off": "B7", "b8": "B8"} {
		if _, err := c.UpdateTwin(ctx, id, &service.Twin{Tags: service.TwinCollection(`{"site":"` + site + `"}`)}, ""); err != nil {
			t.Fatal(err)
		}
	}
	d := connectDevice(t, ctx, srv, cs)
	d.HandleMethod("reboot", func(_ context.Context, req *device.MethodRequest) (int, any) {
		return 200, map[string]any{"got": req.Payload}
	})
	patches := make(chan device.Properties, 16)
	d.OnDesiredPropertiesUpdate(func(p device.Properties, _ int64) { patches <- p })
	invokeWhenListening(t, ctx, c, "b7-on", service.MethodCall{Name: "reboot"})
	waitDesiredSubscribed(t, ctx, c, "b7-on", patches)

	// A twin update ten minutes ahead.
	start := now.Add(10 * time.Minute)
	j, err := c.ScheduleTwinUpdate(ctx, service.JobSchedule{JobID: "twin-b7", QueryCondition: "tags.site = 'B7'", StartTime: start},
		&service.Twin{Properties: service.TwinProperties{Desired: service.TwinCollection(`{"fw":"2.0"}`)}})
	if err != nil {
		t.Fatalf("ScheduleTwinUpdate: %v", err)
	}
	if j.JobID != "twin-b7" || j.Type != service.JobTypeUpdateTwin || j.Status != service.JobQueued {
		t.Errorf("scheduled: got %+v", j)
	}
	testutil.Eventually(t, "the job to be scheduled", func() bool {
		j, err = c.GetJob(ctx, "twin-b7")
		return err != nil || j.Status == service.JobScheduled
	})
	if err != nil || !j.StartTime.Equal(start) || j.MaxExecutionTime() != time.Hour || j.UpdateTwin == nil {
		t.Fatalf("GetJob before the start: %+v, %v", j, err)
	}
	srv.FastForward(10 * time.Minute)
	j, err = c.WaitJob(ctx, "twin-b7", 5*time.Millisecond)
	if err != nil || j.Status != service.JobCompleted || *j.DeviceJobStatistics != (service.JobStatistics{DeviceCount: 2, SucceededCount: 2}) || !j.EndTime.Equal(start) {
		t.Fatalf("WaitJob: %+v %+v, %v", j, j.DeviceJobStatistics, err)
	}
	// The job's patch reaches the connected device as a notification.
	for waiting := true; waiting; {
		select {
		case p := <-patches:
			if v, ok := p["fw"]; ok {
				if v != "2.0" {
					t.Errorf("desired patch: got fw %v", v)
				}
				waiting = false
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the device never got the job's desired patch")
		}
	}

	// A method job at once.
	j, err = c.ScheduleDeviceMethod(ctx, service.JobSchedule{JobID: "reboot-b7", QueryCondition: "tags.site = 'B7'", StartTime: srv.Now()},
		service.MethodCall{Name: "reboot", Payload: map[string]int{"delay": 1}})
	if err != nil {
		t.Fatalf("ScheduleDeviceMethod: %v", err)
	}
	if j, err = c.WaitJob(ctx, "reboot-b7", 5*time.Millisecond); err != nil || j.Status != service.JobCompleted {
		t.Fatalf("WaitJob: %+v, %v", j, err)
	}
	rows := map[string]*service.DeviceJob{}
	q := c.QueryDeviceJobs("devices.jobs.jobId = 'reboot-b7'", 1)
	for dj, err := range q.DeviceJobs(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		rows[dj.DeviceID] = dj
	}
	if q.ItemType() != service.ItemTypeDeviceJob || len(rows) != 2 {
		t.Fatalf("devices.jobs: %d rows of %s", len(rows), q.ItemType())
	}
	on, off := rows["b7-on"], rows["b7-off"]
	if on.Status != service.DeviceJobCompleted || on.Outcome == nil || on.Outcome.DeviceMethodResponse.Status != 200 ||
		string(on.Outcome.DeviceMethodResponse.Payload) != `{"got":{"delay":1}}` || on.JobType != service.JobTypeDeviceMethod {
		t.Errorf("answering device: %+v", on)
	}
	if off.Status != service.DeviceJobFailed || off.Error == nil || off.Error.Code != "DeviceNotOnline" {
		t.Errorf("offline device: %+v", off)
	}

	// The hub's job list, filtered and paged.
	var ids []string
	jq := c.QueryJobs("", "", 1)
	for j, err := range jq.Jobs(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, j.JobID)
	}
	if strings.Join(ids, ",") != "twin-b7,reboot-b7" || jq.ItemType() != service.ItemTypeJobResponse {
		t.Errorf("QueryJobs: got %v (%s)", ids, jq.ItemType())
	}
	page, err := c.QueryJobs(service.JobTypeDeviceMethod, service.JobCompleted, 0).NextPage(ctx)
	if err != nil || len(page) != 1 {
		t.Fatalf("filtered: %s, %v", page, err)
	}
	var only service.Job
	if err := json.Unmarshal(page[0], &only); err != nil || only.JobID != "reboot-b7" {
		t.Errorf("filtered: got %s", page[0])
	}
}

// TestEmulatorJobErrors: the hub's refusals reach the caller as *Error with
// the hub's code and the matching sentinel.
func TestEmulatorJobErrors(t *testing.T) {
	_, c, ctx := newEmulatorClient(t)
	later := time.Now().Add(time.Hour)
	code := func(err error) (int, string) {
		var e *service.Error
		if !errors.As(err, &e) {
			t.Fatalf("got %v, want a *service.Error", err)
		}
		return e.Code, e.CodeName
	}
	_, err := c.GetJob(ctx, "nope")
	if _, name := code(err); !errors.Is(err, service.ErrNotFound) || name != "JobNotFound" {
		t.Errorf("GetJob unknown: %v", err)
	}
	_, err = c.CancelJob(ctx, "nope")
	if !errors.Is(err, service.ErrNotFound) {
		t.Errorf("CancelJob unknown: %v", err)
	}
	_, err = c.ScheduleTwinUpdate(ctx, service.JobSchedule{JobID: "bad", QueryCondition: "tags.site ="}, &service.Twin{})
	if !errors.Is(err, service.ErrBadRequest) {
		t.Errorf("bad condition: %v", err)
	}
	_, err = c.ScheduleTwinUpdate(ctx, service.JobSchedule{JobID: "etag", QueryCondition: "*"}, &service.Twin{ETag: "AAAAAAAAAAE="})
	if !errors.Is(err, service.ErrPreconditionFailed) {
		t.Errorf("twin etag other than *: %v", err)
	}
	if _, err := c.ScheduleTwinUpdate(ctx, service.JobSchedule{JobID: "first", QueryCondition: "*", StartTime: later}, &service.Twin{}); err != nil {
		t.Fatal(err)
	}
	_, err = c.ScheduleDeviceMethod(ctx, service.JobSchedule{JobID: "second", QueryCondition: "*"}, service.MethodCall{Name: "m"})
	if n, name := code(err); !errors.Is(err, service.ErrThrottled) || n != 429004 || name != "ThrottlingMaxActiveJobCountExceeded" {
		t.Errorf("second active job: %v (%d %s)", err, n, name)
	}
	_, err = c.ScheduleTwinUpdate(ctx, service.JobSchedule{JobID: "first", QueryCondition: "*", StartTime: later}, &service.Twin{})
	if !errors.Is(err, service.ErrAlreadyExists) {
		t.Errorf("duplicate id: %v", err)
	}
	j, err := c.CancelJob(ctx, "first")
	if err != nil || j.Status != service.JobCancelled || j.EndTime.IsZero() {
		t.Fatalf("CancelJob: %+v, %v", j, err)
	}
	if _, err := c.ScheduleDeviceMethod(ctx, service.JobSchedule{JobID: "second", QueryCondition: "*"}, service.MethodCall{Name: "m"}); err != nil {
		t.Errorf("after the cancel, a job fits: %v", err)
	}
}

// TestEmulatorJobsSurviveRestart: a job scheduled on one run of the
// emulator runs at its start time on the next.
func TestEmulatorJobsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	now := time.Now().UTC().Truncate(time.Second)
	open := func() (*emulator.Server, *service.Client) {
		srv := emulator.RunT(t, emulator.WithDataDir(dir), func(o *emulator.Options) {
			o.Clock = func() time.Time { return now }
		})
		c, err := service.NewFromConnectionString(srv.ConnectionString(), service.WithRootCAs(srv.CAPool()), service.WithoutRetries())
		if err != nil {
			t.Fatal(err)
		}
		return srv, c
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	srv, c := open()
	createDevice(t, srv, "d1")
	if _, err := c.ScheduleTwinUpdate(ctx, service.JobSchedule{JobID: "later", QueryCondition: "deviceId = 'd1'", StartTime: now.Add(30 * time.Minute)},
		&service.Twin{Tags: service.TwinCollection(`{"done":true}`)}); err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}

	srv, c = open()
	if j, err := c.GetJob(ctx, "later"); err != nil || j.Status.Ended() {
		t.Fatalf("after the restart: %+v, %v", j, err)
	}
	srv.FastForward(30 * time.Minute)
	j, err := c.WaitJob(ctx, "later", 5*time.Millisecond)
	if err != nil || j.Status != service.JobCompleted || j.DeviceJobStatistics.SucceededCount != 1 {
		t.Fatalf("after its start time: %+v, %v", j, err)
	}
	tw, err := c.GetTwin(ctx, "d1")
	if err != nil || !strings.Contains(string(tw.Tags), `"done":true`) {
		t.Fatalf("twin: %s, %v", tw.Tags, err)
	}
}
