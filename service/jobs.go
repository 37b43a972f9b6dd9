// SPDX-License-Identifier: MIT

package service

import (
	"bytes"
	"context"
	"encoding/json"
	"iter"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/iothubemulator/iothub/internal/wire"
)

// Jobs v2 (/jobs/v2): a job runs a direct method or a twin update on every
// device a query condition matches, at a start time, within a maximum
// execution time. The hub keeps a job for 30 days after it ends, and
// allows only a few active (queued, scheduled or running) jobs at once: one
// on the Free and S1 tiers, five on S2, ten on S3; beyond that scheduling
// fails with an error matching ErrThrottled (code 429004).

// JobType is what a job does.
type JobType string

// Job types that can be scheduled.
const (
	JobTypeDeviceMethod JobType = "scheduleDeviceMethod"
	JobTypeUpdateTwin   JobType = "scheduleUpdateTwin"
)

// JobStatus is where a job is in its life.
type JobStatus string

// Job statuses.
const (
	JobQueued    JobStatus = "queued"    // accepted; what scheduling answers
	JobScheduled JobStatus = "scheduled" // waiting for its start time
	JobRunning   JobStatus = "running"   // working through its devices
	JobCompleted JobStatus = "completed" // every device has an outcome, or the execution time ran out
	JobFailed    JobStatus = "failed"    // the job itself could not run
	JobCancelled JobStatus = "cancelled" // cancelled before it ended
)

// Ended reports whether the status is final.
func (s JobStatus) Ended() bool {
	return s == JobCompleted || s == JobFailed || s == JobCancelled
}

// DeviceJobStatus is where one device is in a job. Note "canceled" with
// one l, unlike JobCancelled.
type DeviceJobStatus string

// Device job statuses.
const (
	DeviceJobPending   DeviceJobStatus = "pending"
	DeviceJobScheduled DeviceJobStatus = "scheduled"
	DeviceJobRunning   DeviceJobStatus = "running"
	DeviceJobCompleted DeviceJobStatus = "completed"
	DeviceJobFailed    DeviceJobStatus = "failed"
	DeviceJobCanceled  DeviceJobStatus = "canceled"
)

// DefaultJobExecutionTime is the maximum execution time sent when a
// JobSchedule gives none: the Node SDK's default (job_client.js).
const DefaultJobExecutionTime = time.Hour

// JobSchedule says which job, on which devices, when and for how long.
type JobSchedule struct {
	JobID string // required: at most 64 US-ASCII letters, digits and '-'
	// QueryCondition selects the devices: a condition over device twins as
	// in a query's WHERE clause, without WHERE (deviceId IN ['a','b'],
	// tags.site = 'B7'), or "*" for every device. Required.
	QueryCondition string
	// StartTime is when the job starts; zero means now. A time already
	// past starts the job at once.
	StartTime time.Time
	// MaxExecutionTime bounds the job (whole seconds, rounded up); devices
	// not done by then fail. Zero means DefaultJobExecutionTime.
	MaxExecutionTime time.Duration
}

// Job is a job as the hub reports it.
type Job struct {
	JobID                     string         `json:"jobId"`
	Type                      JobType        `json:"type"`
	Status                    JobStatus      `json:"status"`
	QueryCondition            string         `json:"queryCondition,omitempty"`
	CreatedTime               time.Time      `json:"createdTime,omitzero"`
	StartTime                 time.Time      `json:"startTime,omitzero"`
	EndTime                   time.Time      `json:"endTime,omitzero"` // zero until the job ends
	MaxExecutionTimeInSeconds int64          `json:"maxExecutionTimeInSeconds,omitempty"`
	CloudToDeviceMethod       *JobMethod     `json:"cloudToDeviceMethod,omitempty"` // method jobs
	UpdateTwin                *Twin          `json:"updateTwin,omitempty"`          // twin update jobs
	FailureReason             string         `json:"failureReason,omitempty"`
	StatusMessage             string         `json:"statusMessage,omitempty"`
	DeviceJobStatistics       *JobStatistics `json:"deviceJobStatistics,omitempty"`
}

// MaxExecutionTime is the job's maximum execution time.
func (j *Job) MaxExecutionTime() time.Duration {
	return time.Duration(j.MaxExecutionTimeInSeconds) * time.Second
}

// UnmarshalJSON reads a job from any of the hub's job answers: they name
// the type "type" or "jobType", and the hub writes some times without a
// zone (UTC).
func (j *Job) UnmarshalJSON(b []byte) error {
	type plain Job
	var w struct {
		*plain
		JobType     JobType  `json:"jobType"`
		CreatedTime hubTime  `json:"createdTime"`
		StartTime   hubTime  `json:"startTime"`
		EndTime     hubTime  `json:"endTime"`
		Created     *hubTime `json:"createdDateTimeUtc"`
		Started     *hubTime `json:"startTimeUtc"`
		Ended       *hubTime `json:"endTimeUtc"`
	}
	w.plain = (*plain)(j)
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	if j.Type == "" {
		j.Type = w.JobType
	}
	j.CreatedTime, j.StartTime, j.EndTime = w.CreatedTime.t, w.StartTime.t, w.EndTime.t
	for _, alt := range []struct {
		dst *time.Time
		src *hubTime
	}{{&j.CreatedTime, w.Created}, {&j.StartTime, w.Started}, {&j.EndTime, w.Ended}} {
		if alt.dst.IsZero() && alt.src != nil {
			*alt.dst = alt.src.t
		}
	}
	return nil
}

// JobMethod is a method job's direct method.
type JobMethod struct {
	MethodName               string          `json:"methodName"`
	Payload                  json.RawMessage `json:"payload,omitempty"`
	ResponseTimeoutInSeconds int64           `json:"responseTimeoutInSeconds,omitempty"`
	ConnectTimeoutInSeconds  int64           `json:"connectTimeoutInSeconds,omitempty"`
}

// JobStatistics counts a job's devices by outcome.
type JobStatistics struct {
	DeviceCount    int `json:"deviceCount"`    // devices the condition matched when the job started
	FailedCount    int `json:"failedCount"`    // devices whose part failed
	SucceededCount int `json:"succeededCount"` // devices whose part succeeded
	RunningCount   int `json:"runningCount"`   // devices being worked on
	PendingCount   int `json:"pendingCount"`   // devices not started yet
}

// DeviceJob is one device's part in a job: a row of SELECT * FROM
// devices.jobs.
type DeviceJob struct {
	DeviceID               string            `json:"deviceId"`
	JobID                  string            `json:"jobId"`
	JobType                JobType           `json:"jobType"`
	Status                 DeviceJobStatus   `json:"status"`
	StartTimeUTC           time.Time         `json:"startTimeUtc,omitzero"`
	EndTimeUTC             time.Time         `json:"endTimeUtc,omitzero"`
	CreatedDateTimeUTC     time.Time         `json:"createdDateTimeUtc,omitzero"`
	LastUpdatedDateTimeUTC time.Time         `json:"lastUpdatedDateTimeUtc,omitzero"`
	Outcome                *DeviceJobOutcome `json:"outcome,omitempty"` // once completed
	Error                  *DeviceJobError   `json:"error,omitempty"`   // once failed
}

// UnmarshalJSON reads a device job record; the hub writes some of its
// times without a zone (UTC), as the query-jobs doc's example shows.
func (d *DeviceJob) UnmarshalJSON(b []byte) error {
	type plain DeviceJob
	var w struct {
		*plain
		StartTimeUTC           hubTime `json:"startTimeUtc"`
		EndTimeUTC             hubTime `json:"endTimeUtc"`
		CreatedDateTimeUTC     hubTime `json:"createdDateTimeUtc"`
		LastUpdatedDateTimeUTC hubTime `json:"lastUpdatedDateTimeUtc"`
	}
	w.plain = (*plain)(d)
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	d.StartTimeUTC, d.EndTimeUTC = w.StartTimeUTC.t, w.EndTimeUTC.t
	d.CreatedDateTimeUTC, d.LastUpdatedDateTimeUTC = w.CreatedDateTimeUTC.t, w.LastUpdatedDateTimeUTC.t
	return nil
}

// DeviceJobOutcome is what a device's part produced: the device's answer
// to a method job (nil for a twin update).
type DeviceJobOutcome struct {
	DeviceMethodResponse *MethodResult `json:"deviceMethodResponse"`
}

// DeviceJobError says why a device's part failed, with the hub's error
// code name (DeviceNotOnline for a device that was not connected, for
// example).
type DeviceJobError struct {
	Code        string `json:"code"`
	Description string `json:"description"`
}

// hubTime reads an RFC 3339 time, or one without a zone as UTC.
type hubTime struct{ t time.Time }

func (h *hubTime) UnmarshalJSON(b []byte) error {
	s := string(bytes.Trim(b, `"`))
	if s == "" || s == "null" {
		return nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		if t, err = time.Parse("2006-01-02T15:04:05.999999999", s); err != nil {
			return err
		}
	}
	if t.Year() > 1 {
		h.t = t.UTC()
	}
	return nil
}

// jobRequest is the body of PUT /jobs/v2/{id}, as Node's JobClient builds
// it (job_client.js).
type jobRequest struct {
	JobID                     string         `json:"jobId"`
	Type                      JobType        `json:"type"`
	CloudToDeviceMethod       *methodRequest `json:"cloudToDeviceMethod,omitempty"`
	UpdateTwin                *Twin          `json:"updateTwin,omitempty"`
	QueryCondition            string         `json:"queryCondition"`
	StartTime                 string         `json:"startTime"`
	MaxExecutionTimeInSeconds int64          `json:"maxExecutionTimeInSeconds"`
}

func jobPath(id string) string { return "/jobs/v2/" + wire.Escape(id) }

// ScheduleTwinUpdate schedules a job that merges patch into the twin of
// every device s.QueryCondition matches (tags and properties.desired, as
// UpdateTwin does; connected devices get the desired notification). The
// hub requires the patch's etag to be "*", which an empty patch.ETag
// becomes. The hub answers with the job's id, type and status (queued)
// only; GetJob reports the rest. Scheduling is never retried: a retry
// after a lost answer would fail with ErrAlreadyExists.
func (c *Client) ScheduleTwinUpdate(ctx context.Context, s JobSchedule, patch *Twin) (*Job, error) {
	if patch == nil {
		return nil, errorf("ScheduleTwinUpdate", "patch is required")
	}
	body, err := newJobRequest("ScheduleTwinUpdate", s, JobTypeUpdateTwin, c.now())
	if err != nil {
		return nil, err
	}
	p := *patch
	if p.ETag == "" {
		p.ETag = "*"
	}
	body.UpdateTwin = &p
	return c.scheduleJob(ctx, "ScheduleTwinUpdate", body)
}

// ScheduleDeviceMethod schedules a job that calls a direct method on every
// device s.QueryCondition matches, as InvokeMethod does; each device's
// answer, or its failure (ErrDeviceNotOnline's DeviceNotOnline for a
// device that is not connected), is in its DeviceJob. See
// ScheduleTwinUpdate for the answer and retries.
func (c *Client) ScheduleDeviceMethod(ctx context.Context, s JobSchedule, m MethodCall) (*Job, error) {
	const op = "ScheduleDeviceMethod"
	if m.Name == "" {
		return nil, errorf(op, "method name is required")
	}
	if m.ResponseTimeout < 0 || m.ConnectTimeout < 0 {
		return nil, errorf(op, "timeouts must not be negative")
	}
	body, err := newJobRequest(op, s, JobTypeDeviceMethod, c.now())
	if err != nil {
		return nil, err
	}
	resp := m.ResponseTimeout
	if resp == 0 {
		resp = DefaultMethodResponseTimeout
	}
	body.CloudToDeviceMethod = &methodRequest{
		MethodName:               m.Name,
		Payload:                  m.Payload,
		ResponseTimeoutInSeconds: ceilSeconds(resp),
		ConnectTimeoutInSeconds:  ceilSeconds(m.ConnectTimeout),
	}
	return c.scheduleJob(ctx, op, body)
}

func newJobRequest(op string, s JobSchedule, typ JobType, now time.Time) (*jobRequest, error) {
	if s.JobID == "" || strings.TrimSpace(s.QueryCondition) == "" {
		return nil, errorf(op, "job id and query condition are required")
	}
	if s.MaxExecutionTime < 0 {
		return nil, errorf(op, "maximum execution time must not be negative")
	}
	start := s.StartTime
	if start.IsZero() {
		start = now
	}
	maxExec := s.MaxExecutionTime
	if maxExec == 0 {
		maxExec = DefaultJobExecutionTime
	}
	return &jobRequest{
		JobID:          s.JobID,
		Type:           typ,
		QueryCondition: s.QueryCondition,
		// Node's JobClient sends Date.toISOString(): UTC, milliseconds.
		StartTime:                 start.UTC().Format("2006-01-02T15:04:05.000Z07:00"),
		MaxExecutionTimeInSeconds: ceilSeconds(maxExec),
	}, nil
}

func (c *Client) scheduleJob(ctx context.Context, op string, body *jobRequest) (*Job, error) {
	out := new(Job)
	if _, err := c.do(ctx, &call{op: op, method: http.MethodPut, path: jobPath(body.JobID), body: body}, out); err != nil {
		return nil, err
	}
	return out, nil
}

// GetJob returns job id (GET /jobs/v2/{id}); an unknown id, or one whose
// job ended more than 30 days ago, gives an error matching ErrNotFound.
func (c *Client) GetJob(ctx context.Context, id string) (*Job, error) {
	if id == "" {
		return nil, errorf("GetJob", "job id is required")
	}
	out := new(Job)
	if _, err := c.do(ctx, &call{op: "GetJob", method: http.MethodGet, path: jobPath(id), idempotent: true}, out); err != nil {
		return nil, err
	}
	return out, nil
}

// CancelJob cancels job id (POST /jobs/v2/{id}/cancel) and returns it. A
// job that has not started never runs; a running one starts no more
// devices. Cancelling a job that has ended changes nothing, so the call is
// retried like a read.
func (c *Client) CancelJob(ctx context.Context, id string) (*Job, error) {
	if id == "" {
		return nil, errorf("CancelJob", "job id is required")
	}
	out := new(Job)
	if _, err := c.do(ctx, &call{op: "CancelJob", method: http.MethodPost, path: jobPath(id) + "/cancel", idempotent: true}, out); err != nil {
		return nil, err
	}
	return out, nil
}

// WaitJob polls job id every interval (one second when zero) until it has
// ended, and returns it; ctx bounds the wait.
func (c *Client) WaitJob(ctx context.Context, id string, interval time.Duration) (*Job, error) {
	if interval <= 0 {
		interval = time.Second
	}
	for {
		j, err := c.GetJob(ctx, id)
		if err != nil {
			return nil, err
		}
		if j.Status.Ended() {
			return j, nil
		}
		if err := c.sleep(ctx, interval); err != nil {
			return nil, errorf("WaitJob", "job %s is %s: %w", id, j.Status, err)
		}
	}
}

// QueryJobs prepares a query of the hub's jobs (GET /jobs/v2/query) of
// the given type and status ("" for any), oldest first. Read it with
// NextPage, All or Jobs; its items are of type ItemTypeJobResponse.
func (c *Client) QueryJobs(jobType JobType, status JobStatus, pageSize int) *Query {
	v := url.Values{}
	if status != "" {
		v.Set("jobStatus", string(status))
	}
	if jobType != "" {
		v.Set("jobType", string(jobType))
	}
	return &Query{c: c, pageSize: pageSize, page: func(h http.Header) *call {
		return &call{op: "QueryJobs", method: http.MethodGet, path: "/jobs/v2/query", query: v.Encode(), header: h, idempotent: true}
	}}
}

// QueryDeviceJobs prepares SELECT * FROM devices.jobs with the given
// condition ("" for none), for example "devices.jobs.jobId = 'reboot-b7'".
// Read it with NextPage, All or DeviceJobs.
func (c *Client) QueryDeviceJobs(condition string, pageSize int) *Query {
	text := "SELECT * FROM devices.jobs"
	if strings.TrimSpace(condition) != "" {
		text += " WHERE " + condition
	}
	return c.Query(text, pageSize)
}

// Jobs returns an iterator over every remaining item decoded as a job, for
// QueryJobs, fetching pages within ctx as All does.
func (q *Query) Jobs(ctx context.Context) iter.Seq2[*Job, error] {
	return decodeAll[Job](ctx, q, "job")
}

// DeviceJobs returns an iterator over every remaining item decoded as a
// device job, for devices.jobs queries, fetching pages within ctx as All
// does.
func (q *Query) DeviceJobs(ctx context.Context) iter.Seq2[*DeviceJob, error] {
	return decodeAll[DeviceJob](ctx, q, "device job")
}

func decodeAll[T any](ctx context.Context, q *Query, what string) iter.Seq2[*T, error] {
	return func(yield func(*T, error) bool) {
		for item, err := range q.All(ctx) {
			if err != nil {
				yield(nil, err)
				return
			}
			v := new(T)
			if err := json.Unmarshal(item, v); err != nil {
				yield(nil, errorf("Query", "decoding %s: %w", what, err))
				return
			}
			if !yield(v, nil) {
				return
			}
		}
	}
}
