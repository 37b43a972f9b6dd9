// SPDX-License-Identifier: MIT

package service

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"
)

// TestJobRequestsMatchSDKs checks what each job operation sends against
// what the official SDKs send: Node azure-iothub 1.16.6 job_client.js
// (scheduleTwinUpdate, scheduleDeviceMethod, getJob, cancelJob, the
// /jobs/v2/query function with jobStatus before jobType and the paging
// headers) and the C# JobClient for connectTimeoutInSeconds.
func TestJobRequestsMatchSDKs(t *testing.T) {
	const av = "?api-version=2021-04-12"
	start := time.Date(2024, 5, 2, 10, 0, 0, 123456789, time.FixedZone("CEST", 2*3600))
	tests := []struct {
		name      string
		call      func(ctx context.Context, c *Client) error
		method    string
		uri       string
		body      string
		extraHdrs map[string]string
	}{
		{
			name: "ScheduleTwinUpdate",
			call: func(ctx context.Context, c *Client) error {
				_, err := c.ScheduleTwinUpdate(ctx, JobSchedule{JobID: "twin-b7", QueryCondition: "tags.site = 'B7'", StartTime: start, MaxExecutionTime: 90 * time.Second},
					&Twin{Tags: TwinCollection(`{"floor":3}`), Properties: TwinProperties{Desired: TwinCollection(`{"fw":"2.0"}`)}})
				return err
			},
			method: "PUT", uri: "/jobs/v2/twin-b7" + av,
			body: `{"jobId":"twin-b7","type":"scheduleUpdateTwin","queryCondition":"tags.site = 'B7'",
				"updateTwin":{"etag":"*","tags":{"floor":3},"properties":{"desired":{"fw":"2.0"}}},
				"startTime":"2024-05-02T08:00:00.123Z","maxExecutionTimeInSeconds":90}`,
		},
		{
			name: "ScheduleDeviceMethod defaults",
			call: func(ctx context.Context, c *Client) error {
				_, err := c.ScheduleDeviceMethod(ctx, JobSchedule{JobID: "reboot", QueryCondition: "*", StartTime: start}, MethodCall{Name: "reboot"})
				return err
			},
			method: "PUT", uri: "/jobs/v2/reboot" + av,
			body: `{"jobId":"reboot","type":"scheduleDeviceMethod","queryCondition":"*",
				"cloudToDeviceMethod":{"methodName":"reboot","payload":null,"responseTimeoutInSeconds":30,"connectTimeoutInSeconds":0},
				"startTime":"2024-05-02T08:00:00.123Z","maxExecutionTimeInSeconds":3600}`,
		},
		{
			name: "ScheduleDeviceMethod with payload and timeouts",
			call: func(ctx context.Context, c *Client) error {
				_, err := c.ScheduleDeviceMethod(ctx, JobSchedule{JobID: "m", QueryCondition: "deviceId IN ['a']", StartTime: start, MaxExecutionTime: 1500 * time.Millisecond},
					MethodCall{Name: "set", Payload: map[string]int{"v": 1}, ResponseTimeout: 10 * time.Second, ConnectTimeout: 5 * time.Second})
				return err
			},
			method: "PUT", uri: "/jobs/v2/m" + av,
			body: `{"jobId":"m","type":"scheduleDeviceMethod","queryCondition":"deviceId IN ['a']",
				"cloudToDeviceMethod":{"methodName":"set","payload":{"v":1},"responseTimeoutInSeconds":10,"connectTimeoutInSeconds":5},
				"startTime":"2024-05-02T08:00:00.123Z","maxExecutionTimeInSeconds":2}`,
		},
		{
			name: "GetJob",
			call: func(ctx context.Context, c *Client) error {
				_, err := c.GetJob(ctx, "reboot")
				return err
			},
			method: "GET", uri: "/jobs/v2/reboot" + av,
		},
		{
			name: "CancelJob",
			call: func(ctx context.Context, c *Client) error {
				_, err := c.CancelJob(ctx, "reboot")
				return err
			},
			method: "POST", uri: "/jobs/v2/reboot/cancel" + av,
		},
		{
			name: "QueryJobs with filters",
			call: func(ctx context.Context, c *Client) error {
				_, err := c.QueryJobs(JobTypeUpdateTwin, JobCompleted, 20).NextPage(ctx)
				return err
			},
			method: "GET", uri: "/jobs/v2/query" + av + "&jobStatus=completed&jobType=scheduleUpdateTwin",
			extraHdrs: map[string]string{"x-ms-max-item-count": "20", "x-ms-continuation": ""},
		},
		{
			name: "QueryJobs without filters",
			call: func(ctx context.Context, c *Client) error {
				_, err := c.QueryJobs("", "", 0).NextPage(ctx)
				return err
			},
			method: "GET", uri: "/jobs/v2/query" + av,
			extraHdrs: map[string]string{"x-ms-max-item-count": ""},
		},
		{
			name: "QueryDeviceJobs",
			call: func(ctx context.Context, c *Client) error {
				_, err := c.QueryDeviceJobs("devices.jobs.jobId = 'reboot'", 0).NextPage(ctx)
				return err
			},
			method: "POST", uri: "/devices/query" + av,
			body: `{"query":"SELECT * FROM devices.jobs WHERE devices.jobs.jobId = 'reboot'"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hub := newFakeHub(t, func(w http.ResponseWriter, r *http.Request, n int) {
				if r.URL.Path == "/jobs/v2/query" || r.URL.Path == "/devices/query" {
					reply(w, http.StatusOK, "[]")
					return
				}
				reply(w, http.StatusOK, `{"jobId":"x","type":"scheduleUpdateTwin","status":"queued"}`)
			})
			c, _ := hub.client(t)
			if err := tt.call(testContext(t), c); err != nil {
				t.Fatalf("call: %v", err)
			}
			reqs := hub.requests()
			if len(reqs) != 1 {
				t.Fatalf("got %d requests, want 1", len(reqs))
			}
			r := reqs[0]
			if r.Method != tt.method || r.RequestURI != tt.uri {
				t.Errorf("got %s %s, want %s %s", r.Method, r.RequestURI, tt.method, tt.uri)
			}
			checkCommonHeaders(t, r, hub.host())
			for k, want := range tt.extraHdrs {
				if got := r.Header.Get(k); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
			if tt.body == "" {
				if len(r.Body) != 0 {
					t.Errorf("got body %q, want none", r.Body)
				}
				return
			}
			checkJSON(t, "request body", r.Body, tt.body)
		})
	}
}

// TestScheduleJobNotRetried: a job id is created once; a retry after a lost
// answer would be refused as a duplicate, so scheduling makes one attempt
// while reads and cancels are retried.
func TestScheduleJobNotRetried(t *testing.T) {
	hub := newFakeHub(t, func(w http.ResponseWriter, r *http.Request, n int) {
		// The first attempt of each call fails: schedule (0), get (1),
		// cancel (3).
		if n == 0 || n == 1 || n == 3 {
			replyFormA(w, http.StatusServiceUnavailable, "ServiceUnavailable", "try again")
			return
		}
		reply(w, http.StatusOK, `{"jobId":"j","type":"scheduleUpdateTwin","status":"queued"}`)
	})
	c, _ := hub.client(t, WithRetryPolicy(ExponentialBackoff{}))
	ctx := testContext(t)
	_, err := c.ScheduleTwinUpdate(ctx, JobSchedule{JobID: "j", QueryCondition: "*"}, &Twin{})
	if !errors.Is(err, ErrServiceUnavailable) || len(hub.requests()) != 1 {
		t.Fatalf("ScheduleTwinUpdate: got %v after %d requests, want ErrServiceUnavailable after 1", err, len(hub.requests()))
	}
	if _, err := c.GetJob(ctx, "j"); err != nil || len(hub.requests()) != 3 {
		t.Fatalf("GetJob: got %v after %d requests in all, want success after a retry", err, len(hub.requests()))
	}
	if _, err := c.CancelJob(ctx, "j"); err != nil || len(hub.requests()) != 5 {
		t.Fatalf("CancelJob: got %v after %d requests in all, want success after a retry", err, len(hub.requests()))
	}
}

// TestJobDecoding reads the shapes the hub answers with: the three-field
// answer to a PUT, a full job, a job query row that names its type
// "jobType", and a devices.jobs row with zone-less times (the query-jobs
// doc's example).
func TestJobDecoding(t *testing.T) {
	var created Job
	if err := json.Unmarshal([]byte(`{"jobId":"job01","type":"scheduleDeviceMethod","status":"queued"}`), &created); err != nil {
		t.Fatal(err)
	}
	if created.JobID != "job01" || created.Type != JobTypeDeviceMethod || created.Status != JobQueued || !created.CreatedTime.IsZero() {
		t.Errorf("PUT answer: got %+v", created)
	}

	var full Job
	err := json.Unmarshal([]byte(`{"jobId":"j","queryCondition":"*","createdTime":"2024-05-02T09:20:11.1234567Z",
		"startTime":"2024-05-02T09:20:11Z","endTime":"0001-01-01T00:00:00Z","maxExecutionTimeInSeconds":120,
		"type":"scheduleUpdateTwin","updateTwin":{"etag":"*","tags":{"a":1}},"status":"running",
		"deviceJobStatistics":{"deviceCount":3,"failedCount":1,"succeededCount":1,"runningCount":1,"pendingCount":0}}`), &full)
	if err != nil {
		t.Fatal(err)
	}
	if full.CreatedTime != time.Date(2024, 5, 2, 9, 20, 11, 123456700, time.UTC) || !full.EndTime.IsZero() ||
		full.MaxExecutionTime() != 2*time.Minute || full.UpdateTwin == nil || string(full.UpdateTwin.Tags) != `{"a":1}` ||
		*full.DeviceJobStatistics != (JobStatistics{DeviceCount: 3, FailedCount: 1, SucceededCount: 1, RunningCount: 1}) {
		t.Errorf("full job: got %+v", full)
	}
	if full.Status.Ended() || !JobCancelled.Ended() {
		t.Error("Ended: running is not final, cancelled is")
	}

	var row Job
	if err := json.Unmarshal([]byte(`{"jobId":"j","jobType":"scheduleUpdateTwin","status":"completed","createdDateTimeUtc":"2024-05-02T09:20:11Z","endTimeUtc":"2024-05-02T09:22:11.5"}`), &row); err != nil {
		t.Fatal(err)
	}
	if row.Type != JobTypeUpdateTwin || row.CreatedTime.IsZero() || row.EndTime != time.Date(2024, 5, 2, 9, 22, 11, 5e8, time.UTC) {
		t.Errorf("row with alternative names: got %+v", row)
	}

	var d DeviceJob
	err = json.Unmarshal([]byte(`{"deviceId":"myDeviceId","jobId":"myJobId","jobType":"scheduleDeviceMethod","status":"completed",
		"startTimeUtc":"2016-09-29T18:18:52.7418462","endTimeUtc":"2016-09-29T18:20:52.7418462",
		"createdDateTimeUtc":"2016-09-29T18:18:56.7787107Z","lastUpdatedDateTimeUtc":"2016-09-29T18:18:56.8894408Z",
		"outcome":{"deviceMethodResponse":{"status":200,"payload":{"ok":true}}}}`), &d)
	if err != nil {
		t.Fatal(err)
	}
	if d.EndTimeUTC.Sub(d.StartTimeUTC) != 2*time.Minute || d.StartTimeUTC.Location() != time.UTC || d.Status != DeviceJobCompleted ||
		d.Outcome == nil || d.Outcome.DeviceMethodResponse.Status != 200 || string(d.Outcome.DeviceMethodResponse.Payload) != `{"ok":true}` {
		t.Errorf("device job: got %+v", d)
	}
}

func TestJobClientSideValidation(t *testing.T) {
	hub := newFakeHub(t, func(w http.ResponseWriter, r *http.Request, n int) { reply(w, 200, `{}`) })
	c, _ := hub.client(t)
	ctx := testContext(t)
	ok := JobSchedule{JobID: "j", QueryCondition: "*"}
	for name, call := range map[string]func() error{
		"twin without patch": func() error { _, err := c.ScheduleTwinUpdate(ctx, ok, nil); return err },
		"twin without id": func() error {
			_, err := c.ScheduleTwinUpdate(ctx, JobSchedule{QueryCondition: "*"}, &Twin{})
			return err
		},
		"method without query": func() error {
			_, err := c.ScheduleDeviceMethod(ctx, JobSchedule{JobID: "j"}, MethodCall{Name: "m"})
			return err
		},
		"method without name": func() error { _, err := c.ScheduleDeviceMethod(ctx, ok, MethodCall{}); return err },
		"negative window": func() error {
			_, err := c.ScheduleDeviceMethod(ctx, JobSchedule{JobID: "j", QueryCondition: "*", MaxExecutionTime: -1}, MethodCall{Name: "m"})
			return err
		},
		"get without id":    func() error { _, err := c.GetJob(ctx, ""); return err },
		"cancel without id": func() error { _, err := c.CancelJob(ctx, ""); return err },
	} {
		if err := call(); err == nil {
			t.Errorf("%s: got nil error, want one", name)
		}
	}
	if n := len(hub.requests()); n != 0 {
		t.Errorf("got %d requests, want none for invalid arguments", n)
	}
}
