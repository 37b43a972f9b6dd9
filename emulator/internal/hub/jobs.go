// SPDX-License-Identifier: MIT

package hub

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/huberr"
	"github.com/iothubemulator/iothub/emulator/internal/query"
	"github.com/iothubemulator/iothub/emulator/internal/store"
	"github.com/iothubemulator/iothub/emulator/internal/twin"
)

// Jobs v2 (iothub-protocol.md §6.8; learn.microsoft.com/azure/iot-hub/
// iot-hub-devguide-jobs and query-jobs). A job runs a direct method or a
// twin update on every device its query condition matches, once, at its
// start time, within its maximum execution time. Its lifecycle:
//
//	queued     accepted (the PUT answers this, as the hub does even for a
//	           job that starts an hour later)
//	scheduled  waiting for a start time still ahead
//	running    the condition has been evaluated; each matched device has a
//	           record in devices.jobs, pending until its turn
//	completed  every device has an outcome, or the execution time ran out
//	           (devices not done by then fail)
//	failed     the job itself could not run
//	cancelled  POST .../cancel; devices still pending are canceled
//
// Jobs and their device records are stored, so they survive a restart (see
// resumeJobs for what happens to a job that was running).

// Job types.
const (
	JobTypeDeviceMethod = "scheduleDeviceMethod"
	JobTypeUpdateTwin   = "scheduleUpdateTwin"
)

// Job statuses.
const (
	JobQueued    = "queued"
	JobScheduled = "scheduled"
	JobRunning   = "running"
	JobCompleted = "completed"
	JobFailed    = "failed"
	JobCancelled = "cancelled"
)

// Device job statuses (the C# SDK's DeviceJobStatus; note the one-l
// "canceled", unlike the job's "cancelled").
const (
	DeviceJobPending   = "pending"
	DeviceJobRunning   = "running"
	DeviceJobCompleted = "completed"
	DeviceJobFailed    = "failed"
	DeviceJobCanceled  = "canceled"
)

// Job limits and defaults.
const (
	// DefaultMaxActiveJobs is the Free and S1 tiers' limit on jobs that are
	// queued, scheduled or running at once (5 on S2, 10 on S3; quotas doc,
	// "Other limits").
	DefaultMaxActiveJobs = 1
	// DefaultJobExecutionTime applies when a request gives no
	// maxExecutionTimeInSeconds: the Node SDK's default (job_client.js).
	DefaultJobExecutionTime = time.Hour
	// JobRetention is how long a finished job stays visible (devguide:
	// "jobs have a TTL of 30 days").
	JobRetention = 30 * 24 * time.Hour
	// maxJobIDLength: "The jobId field must be 64 characters or less and
	// can only contain US-ASCII letters, numbers, and the dash" (devguide).
	maxJobIDLength = 64
	// jobWorkers bounds the devices a job works on at once.
	jobWorkers = 8
)

// OpCreateJob is the fault-injection name of PUT /jobs/v2/{id}.
const OpCreateJob = "CreateJob"

// Job is a job as the service sees it: the JobResponse of GET
// /jobs/v2/{id}, of the cancel route and of each /jobs/v2/query row.
type Job struct {
	JobID                     string          `json:"jobId"`
	QueryCondition            string          `json:"queryCondition,omitempty"`
	CreatedTime               Time            `json:"createdTime,omitzero"`
	StartTime                 Time            `json:"startTime,omitzero"`
	EndTime                   Time            `json:"endTime,omitzero"` // set once the job has ended
	MaxExecutionTimeInSeconds int64           `json:"maxExecutionTimeInSeconds,omitempty"`
	Type                      string          `json:"type"`
	CloudToDeviceMethod       *JobMethod      `json:"cloudToDeviceMethod,omitempty"`
	UpdateTwin                json.RawMessage `json:"updateTwin,omitempty"`
	Status                    string          `json:"status"`
	FailureReason             string          `json:"failureReason,omitempty"`
	StatusMessage             string          `json:"statusMessage,omitempty"`
	DeviceJobStatistics       *JobStatistics  `json:"deviceJobStatistics,omitempty"`
}

// JobMethod is a job's direct method, as stored and reported (the
// CloudToDeviceMethod model).
type JobMethod struct {
	MethodName               string          `json:"methodName"`
	Payload                  json.RawMessage `json:"payload,omitempty"` // as sent; absent when the request had none
	ResponseTimeoutInSeconds int64           `json:"responseTimeoutInSeconds"`
	ConnectTimeoutInSeconds  int64           `json:"connectTimeoutInSeconds"`
}

// JobStatistics counts a job's devices by outcome (deviceJobStatistics).
// Canceled devices count in DeviceCount only.
type JobStatistics struct {
	DeviceCount    int `json:"deviceCount"`
	FailedCount    int `json:"failedCount"`
	SucceededCount int `json:"succeededCount"`
	RunningCount   int `json:"runningCount"`
	PendingCount   int `json:"pendingCount"`
}

// JobRequest is the body of PUT /jobs/v2/{id} (JobRequest in the REST
// reference), as the official SDKs send it.
type JobRequest struct {
	JobID                     string            `json:"jobId"`
	Type                      string            `json:"type"`
	CloudToDeviceMethod       *JobMethodRequest `json:"cloudToDeviceMethod"`
	UpdateTwin                json.RawMessage   `json:"updateTwin"`
	QueryCondition            string            `json:"queryCondition"`
	StartTime                 *Time             `json:"startTime"`                 // nil: now
	MaxExecutionTimeInSeconds *int64            `json:"maxExecutionTimeInSeconds"` // nil or 0: DefaultJobExecutionTime
}

// JobMethodRequest is the cloudToDeviceMethod member of a JobRequest.
type JobMethodRequest struct {
	MethodName               string          `json:"methodName"`
	Payload                  json.RawMessage `json:"payload"` // nil: absent; "null": null, as for a direct method
	ResponseTimeoutInSeconds *int64          `json:"responseTimeoutInSeconds"`
	ConnectTimeoutInSeconds  *int64          `json:"connectTimeoutInSeconds"`
}

// DeviceJob is one device's record of a job: a row of SELECT * FROM
// devices.jobs (query-jobs doc; the C# SDK's DeviceJob). StartTimeUTC is
// the job's start time and EndTimeUTC the end of its execution window, as
// in the docs' example, where they lie maxExecutionTime apart.
type DeviceJob struct {
	DeviceID               string            `json:"deviceId"`
	JobID                  string            `json:"jobId"`
	JobType                string            `json:"jobType"`
	Status                 string            `json:"status"`
	StartTimeUTC           Time              `json:"startTimeUtc"`
	EndTimeUTC             Time              `json:"endTimeUtc"`
	CreatedDateTimeUTC     Time              `json:"createdDateTimeUtc"`
	LastUpdatedDateTimeUTC Time              `json:"lastUpdatedDateTimeUtc"`
	Outcome                *DeviceJobOutcome `json:"outcome,omitempty"` // once completed
	Error                  *DeviceJobError   `json:"error,omitempty"`   // once failed
}

// DeviceJobOutcome is what a completed device job produced: the device's
// answer for a method job, null for a twin update.
type DeviceJobOutcome struct {
	DeviceMethodResponse *DeviceMethodResponse `json:"deviceMethodResponse"`
}

// DeviceMethodResponse is a device's answer to a job's method.
type DeviceMethodResponse struct {
	Status  int             `json:"status"`
	Payload json.RawMessage `json:"payload"`
}

// DeviceJobError says why a device's part of a job failed: the hub's error
// code name and message (for example DeviceNotOnline for a device that was
// not connected).
type DeviceJobError struct {
	Code        string `json:"code"`
	Description string `json:"description"`
}

// jobRecord is what the store holds per job: the service view plus what
// the runner needs.
type jobRecord struct {
	Job
	Seq     uint64 `json:"seq"`               // creation order, for listing and paging
	RunFrom Time   `json:"runFrom,omitzero"`  // when it began to run
	Ends    Time   `json:"deadline,omitzero"` // end of its execution window
}

func (r *jobRecord) active() bool {
	switch r.Status {
	case JobQueued, JobScheduled, JobRunning:
		return true
	}
	return false
}

// expired reports whether a finished job has outlived JobRetention.
func (r *jobRecord) expired(now time.Time) bool {
	return !r.active() && !r.EndTime.IsZero() && now.Sub(r.EndTime.Time) > JobRetention
}

// maxExecution is the job's execution window.
func (r *jobRecord) maxExecution() time.Duration {
	return time.Duration(r.MaxExecutionTimeInSeconds) * time.Second
}

func (r *jobRecord) view() *Job {
	j := r.Job
	if s := r.DeviceJobStatistics; s != nil {
		c := *s
		j.DeviceJobStatistics = &c
	}
	return &j
}

// CreateJob schedules a job (PUT /jobs/v2/{id}). The job is durable before
// it returns; its answer has status queued. It refuses a job id in use
// (409), a hub at its active-job limit (429004), and invalid requests
// (400, or 412 for a twin update whose etag is not "*"), changing nothing.
func (h *Hub) CreateJob(ctx context.Context, id string, req *JobRequest) (*Job, error) {
	if err := h.react(ctx, OpCreateJob, Identity{}); err != nil {
		return nil, err
	}
	now := h.stamp()
	rec, err := h.newJobRecord(id, req, now)
	if err != nil {
		return nil, err
	}
	j := &h.jobs
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return nil, huberr.ServerError("The hub is shutting down.")
	}
	var exists bool
	if err := h.db.View(func(tx *store.Tx) error {
		old, err := loadJob(tx, id)
		exists = old != nil && !old.expired(now)
		return err
	}); err != nil {
		return nil, err
	}
	if exists {
		return nil, huberr.JobAlreadyExists(id)
	}
	if len(j.runs) >= j.limit {
		return nil, huberr.MaxActiveJobsExceeded(j.limit)
	}
	err = h.db.Update(func(tx *store.Tx) error {
		if err := sweepJobs(tx, now); err != nil {
			return err
		}
		if tx.Get(store.Jobs, id) != nil {
			return huberr.JobAlreadyExists(id)
		}
		seq, err := tx.NextSequence(store.Jobs)
		if err != nil {
			return err
		}
		rec.Seq = seq
		return saveJob(tx, rec)
	})
	if err != nil {
		return nil, err
	}
	h.armJobLocked(rec, false)
	return rec.view(), nil
}

// newJobRecord checks a request with the hub's rules and builds the job
// it describes.
func (h *Hub) newJobRecord(id string, req *JobRequest, now time.Time) (*jobRecord, error) {
	if err := validateJobID(id); err != nil {
		return nil, err
	}
	if req == nil {
		return nil, huberr.ArgumentNull("The request body must not be empty.")
	}
	if req.JobID != "" && req.JobID != id {
		return nil, huberr.ArgumentInvalid("The body's jobId '%s' does not match the job id '%s' in the path.", req.JobID, id)
	}
	rec := &jobRecord{Job: Job{
		JobID:               id,
		CreatedTime:         Time{now},
		Status:              JobQueued,
		DeviceJobStatistics: &JobStatistics{},
	}}
	typ, ok := canonicalJobType(req.Type)
	switch {
	case strings.TrimSpace(req.Type) == "":
		return nil, huberr.ArgumentNull("type is required: scheduleDeviceMethod or scheduleUpdateTwin.")
	case !ok || (typ != JobTypeDeviceMethod && typ != JobTypeUpdateTwin):
		return nil, huberr.GenericBadRequest("'%s' is not a job type this route schedules; use scheduleDeviceMethod or scheduleUpdateTwin.", req.Type)
	}
	rec.Type = typ
	cond := strings.TrimSpace(req.QueryCondition)
	if cond == "" {
		return nil, huberr.ArgumentNull("queryCondition is required: a WHERE condition over device twins, such as deviceId = 'dev1', or * for every device.")
	}
	if _, err := parseJobCondition(cond); err != nil {
		return nil, err
	}
	rec.QueryCondition = req.QueryCondition
	switch typ {
	case JobTypeDeviceMethod:
		m, err := jobMethod(req.CloudToDeviceMethod)
		if err != nil {
			return nil, err
		}
		rec.CloudToDeviceMethod = m
	case JobTypeUpdateTwin:
		patch, err := jobTwinPatch(req.UpdateTwin, now)
		if err != nil {
			return nil, err
		}
		rec.UpdateTwin = patch
	}
	// A start time in the past (the SDKs' "now", already gone when the
	// request arrives) starts the job at once, as on the hub.
	rec.StartTime = Time{now}
	if req.StartTime != nil && !req.StartTime.IsZero() {
		rec.StartTime = Time{req.StartTime.UTC().Truncate(100 * time.Nanosecond)}
	}
	maxExec := int64(DefaultJobExecutionTime / time.Second)
	if req.MaxExecutionTimeInSeconds != nil && *req.MaxExecutionTimeInSeconds != 0 {
		maxExec = *req.MaxExecutionTimeInSeconds
	}
	if maxExec < 0 || maxExec > int64(JobRetention/time.Second) {
		return nil, huberr.ArgumentInvalid("maxExecutionTimeInSeconds must be between 1 and %d; got %d.", int64(JobRetention/time.Second), maxExec)
	}
	rec.MaxExecutionTimeInSeconds = maxExec
	// The window starts at the start time, or now when that has passed, so
	// that a job submitted with a stale "now" still gets its full time.
	from := rec.StartTime.Time
	if from.Before(now) {
		from = now
	}
	rec.Ends = Time{from.Add(rec.maxExecution())}
	return rec, nil
}

func validateJobID(id string) error {
	if id == "" {
		return huberr.ArgumentNull("The job id must not be empty.")
	}
	if len(id) > maxJobIDLength {
		return huberr.ArgumentInvalid("The job id is %d characters long; the maximum is %d.", len(id), maxJobIDLength)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return huberr.ArgumentInvalid("The job id '%s' may contain only US-ASCII letters, digits and '-'.", id)
		}
	}
	return nil
}

// jobTypes are the type values of the service's JobType enum (the REST
// reference and the Python SDK's JobResponse model). Only the two v2 types
// can be scheduled; the others are valid filters that match nothing.
var jobTypes = canonicalSet("unknown", "export", "import", "backup", "readDeviceProperties",
	"writeDeviceProperties", "updateDeviceConfiguration", "rebootDevice", "factoryResetDevice",
	"firmwareUpdate", JobTypeDeviceMethod, JobTypeUpdateTwin, "restoreFromBackup", "failoverDataCopy")

// jobStatuses are the JobStatus enum's values; "enqueued" is the C#
// SDK's older name for queued.
var jobStatuses = canonicalSet("unknown", "enqueued", JobRunning, JobCompleted, JobFailed,
	JobCancelled, JobScheduled, JobQueued)

func canonicalSet(names ...string) map[string]string {
	m := make(map[string]string, len(names))
	for _, n := range names {
		m[strings.ToLower(n)] = n
	}
	return m
}

// canonicalJobType accepts any letter case: the C# SDK sends its enum
// names (ScheduleUpdateTwin) in the jobType query parameter, and the hub's
// binder reads enums without case.
func canonicalJobType(s string) (string, bool) {
	v, ok := jobTypes[strings.ToLower(strings.TrimSpace(s))]
	return v, ok
}

func canonicalJobStatus(s string) (string, bool) {
	v, ok := jobStatuses[strings.ToLower(strings.TrimSpace(s))]
	if v == "enqueued" {
		v = JobQueued
	}
	return v, ok
}

// parseJobCondition parses a queryCondition: a WHERE condition over device
// twins, or "*" for every device (the devguide's example job uses "*").
// It returns nil for "*".
func parseJobCondition(s string) (*query.Condition, error) {
	if strings.TrimSpace(s) == "*" {
		return nil, nil
	}
	c, err := query.ParseCondition(s)
	if err != nil {
		return nil, huberr.ArgumentInvalid("The queryCondition is not a valid condition: %s", err.Error())
	}
	return c, nil
}

// jobMethod checks a job's method with the rules of a direct method call;
// a job reports them in form A, as its other errors.
func jobMethod(m *JobMethodRequest) (*JobMethod, error) {
	if m == nil {
		return nil, huberr.ArgumentNull("cloudToDeviceMethod is required for a scheduleDeviceMethod job.")
	}
	out := &JobMethod{
		MethodName:               m.MethodName,
		Payload:                  m.Payload,
		ResponseTimeoutInSeconds: int64(DefaultResponseTimeout / time.Second),
	}
	if m.ResponseTimeoutInSeconds != nil {
		out.ResponseTimeoutInSeconds = *m.ResponseTimeoutInSeconds
	}
	if m.ConnectTimeoutInSeconds != nil {
		out.ConnectTimeoutInSeconds = *m.ConnectTimeoutInSeconds
	}
	// The numbers are checked before they become durations, which a huge
	// value would wrap around.
	_, err := ResponseTimeout(out.ResponseTimeoutInSeconds)
	if err == nil {
		_, err = ConnectTimeout(out.ConnectTimeoutInSeconds)
	}
	if err == nil {
		r := out.request()
		err = ValidateMethodRequest(&r)
	}
	if err != nil {
		he := huberr.As(err)
		formA := *he
		formA.Form, formA.Info = huberr.FormA, nil
		return nil, &formA
	}
	return out, nil
}

// request is the direct method call the job makes on each device.
func (m *JobMethod) request() MethodRequest {
	return MethodRequest{
		Name:            m.MethodName,
		Payload:         m.Payload,
		ResponseTimeout: time.Duration(m.ResponseTimeoutInSeconds) * time.Second,
		ConnectTimeout:  time.Duration(m.ConnectTimeoutInSeconds) * time.Second,
	}
}

// jobTwinPatch checks a job's updateTwin: a twin patch (tags and
// properties.desired) whose etag is "*". The hub refuses any other etag
// with 412, since a job writes many twins (devguide: "The updateTwin
// property requires a valid etag match; for example, etag="*""; the C# SDK
// issue 1680 shows the 412 for a patch without one). The patch is tried on
// an empty twin so that its content breaks no twin rule.
func jobTwinPatch(raw json.RawMessage, now time.Time) (json.RawMessage, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, huberr.ArgumentNull("updateTwin is required for a scheduleUpdateTwin job.")
	}
	var head struct {
		ETag *string `json:"etag"`
	}
	if raw[0] != '{' || json.Unmarshal(raw, &head) != nil {
		return nil, huberr.ArgumentInvalid("updateTwin must be a twin patch object, such as {\"etag\":\"*\",\"properties\":{\"desired\":{...}}}.")
	}
	if head.ETag == nil || strings.Trim(strings.TrimSpace(*head.ETag), `"`) != "*" {
		got := "none"
		if head.ETag != nil {
			got = "'" + *head.ETag + "'"
		}
		return nil, huberr.PreconditionFailed("The etag in the request does not match the etag of the existing resource, as per RFC7232: a job's updateTwin must carry etag \"*\" (got %s).", got)
	}
	if _, err := twin.New(now).PatchTwin(raw, now); err != nil {
		return nil, twinError(err, false)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, raw); err != nil {
		return nil, huberr.ArgumentInvalid("updateTwin is not valid JSON.")
	}
	return compact.Bytes(), nil
}

// GetJob returns a job (GET /jobs/v2/{id}); 404 JobNotFound for an
// unknown id or a job past its retention.
func (h *Hub) GetJob(ctx context.Context, id string) (*Job, error) {
	now := h.Now()
	var out *Job
	err := h.db.View(func(tx *store.Tx) error {
		rec, err := loadJob(tx, id)
		if err != nil {
			return err
		}
		if rec == nil || rec.expired(now) {
			return huberr.JobNotFound(id)
		}
		out = rec.view()
		return nil
	})
	return out, err
}

// CancelJob cancels a job (POST /jobs/v2/{id}/cancel) and returns it with
// status cancelled. A job that has not started never runs; a running job
// starts no more devices (those still pending become canceled) while the
// calls already made finish and record their outcomes. Cancelling a job
// that has ended returns it unchanged.
func (h *Hub) CancelJob(ctx context.Context, id string) (*Job, error) {
	now := h.stamp()
	j := &h.jobs
	j.mu.Lock()
	defer j.mu.Unlock()
	var out *Job
	err := h.db.Update(func(tx *store.Tx) error {
		rec, err := loadJob(tx, id)
		if err != nil {
			return err
		}
		if rec == nil || rec.expired(now) {
			return huberr.JobNotFound(id)
		}
		if rec.active() {
			if rec.Status == JobRunning {
				if err := cancelPendingDevices(tx, rec, now); err != nil {
					return err
				}
			}
			rec.Status, rec.EndTime = JobCancelled, Time{now}
			if err := saveJob(tx, rec); err != nil {
				return err
			}
		}
		out = rec.view()
		return nil
	})
	if err != nil {
		return nil, err
	}
	if r := j.runs[id]; r != nil {
		delete(j.runs, id)
		r.start.Stop()
		r.cancelOnce.Do(func() { close(r.cancel) })
	}
	return out, nil
}

// JobPage is one page of GET /jobs/v2/query.
type JobPage struct {
	Items        []*Job
	Continuation string // empty on the last page
}

// ListJobs returns the jobs of the given type and status ("" for any),
// oldest first, a page at a time (GET /jobs/v2/query). The continuation
// token names the last job of the previous page, so pages stay in step
// while jobs are added, and across restarts.
func (h *Hub) ListJobs(ctx context.Context, jobType, jobStatus string, pageSize int, continuation string) (*JobPage, error) {
	var typ, status string
	if jobType != "" {
		v, ok := canonicalJobType(jobType)
		if !ok {
			return nil, huberr.GenericBadRequest("jobType '%s' is not a job type.", jobType)
		}
		typ = v
	}
	if jobStatus != "" {
		v, ok := canonicalJobStatus(jobStatus)
		if !ok {
			return nil, huberr.GenericBadRequest("jobStatus '%s' is not a job status.", jobStatus)
		}
		status = v
	}
	if pageSize <= 0 {
		pageSize = DefaultPageSize
	}
	pageSize = min(pageSize, MaxPageSize)
	filter := typ + "|" + status
	var after uint64
	if continuation != "" {
		n, err := decodeJobContinuation(continuation, filter)
		if err != nil {
			return nil, err
		}
		after = n
	}
	now := h.Now()
	var recs []*jobRecord
	err := h.db.View(func(tx *store.Tx) error {
		return tx.ForEach(store.Jobs, "", "", func(_ string, v []byte) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			rec, err := decodeJob(v)
			if err != nil {
				return err
			}
			if rec.Seq <= after || rec.expired(now) ||
				(typ != "" && rec.Type != typ) || (status != "" && rec.Status != status) {
				return nil
			}
			recs = append(recs, rec)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	sortJobs(recs)
	page := &JobPage{Items: []*Job{}}
	for i, rec := range recs {
		if i == pageSize {
			page.Continuation = encodeJobContinuation(recs[i-1].Seq, filter)
			break
		}
		page.Items = append(page.Items, rec.view())
	}
	return page, nil
}
