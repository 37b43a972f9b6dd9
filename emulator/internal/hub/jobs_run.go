// SPDX-License-Identifier: MIT

package hub

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/clock"
	"github.com/iothubemulator/iothub/emulator/internal/huberr"
	"github.com/iothubemulator/iothub/emulator/internal/store"
)

// How jobs run. Every active job (queued, scheduled or running) has a
// jobRun: a clock timer armed for its start time and one supervising
// goroutine. Timers come from the hub's clock, so a test that fast-forwards
// the clock to a job's start time starts it, and one that moves past its
// execution window ends it. Every state change is one store transaction
// that reads the stored job and changes it only from the state it expects,
// so a cancel and the runner never undo each other.
//
// Lock order: jobsState.mu, then the store (a transaction runs while it is
// held); never the other way round.

type jobsState struct {
	mu     sync.Mutex
	runs   map[string]*jobRun // active jobs; their number is checked against limit
	limit  int
	closed bool // Close: no job starts or is created
}

type jobRun struct {
	id       string
	start    *clock.Timer
	started  chan struct{} // closed when the start time comes
	cancel   chan struct{} // closed by CancelJob
	stop     chan struct{} // closed by Close and Reset: leave the job as stored
	done     chan struct{} // closed when the supervisor returns
	deadline chan struct{} // closed when the execution window ends

	startOnce, cancelOnce, stopOnce, deadlineOnce sync.Once
}

// Why a running job's calls are cut short.
var (
	errJobStopped  = errors.New("hub: the emulator stopped the job")
	errJobDeadline = errors.New("hub: the job's execution window ended")
)

func (h *Hub) initJobs(limit int) error {
	if limit == 0 {
		limit = DefaultMaxActiveJobs
	}
	if limit < 0 {
		return errors.New("hub: MaxActiveJobs must not be negative")
	}
	h.jobs.runs = map[string]*jobRun{}
	h.jobs.limit = limit
	return h.resumeJobs()
}

// resumeJobs restarts the runs of the jobs that were active when the hub
// last stopped, as the hub's own job service outlives its nodes: a queued
// or scheduled job waits for its start time (or starts at once if that has
// passed), and a running job carries on with the devices it had not
// reached, inside its original execution window. A device whose direct
// method was in flight when the process stopped has failed: whether the
// device ran the method is unknown, and calling it twice could run it
// twice. A twin update in flight is applied again: a patch applied twice
// leaves the twin as once (only its versions move).
func (h *Hub) resumeJobs() error {
	now := h.stamp()
	var active []*jobRecord
	err := h.db.Update(func(tx *store.Tx) error {
		active = active[:0]
		if err := sweepJobs(tx, now); err != nil {
			return err
		}
		return tx.ForEach(store.Jobs, "", "", func(_ string, v []byte) error {
			rec, err := decodeJob(v)
			if err != nil {
				return err
			}
			if rec.active() {
				active = append(active, rec)
			}
			return nil
		})
	})
	if err != nil {
		return err
	}
	sortJobs(active)
	h.jobs.mu.Lock()
	defer h.jobs.mu.Unlock()
	for _, rec := range active {
		h.armJobLocked(rec, rec.Status == JobRunning)
	}
	return nil
}

// armJobLocked registers an active job's run, with h.jobs.mu held. Its
// start timer is armed before CreateJob returns, so moving the clock right
// after creation starts the job.
func (h *Hub) armJobLocked(rec *jobRecord, running bool) {
	r := &jobRun{
		id:       rec.JobID,
		started:  make(chan struct{}),
		cancel:   make(chan struct{}),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
		deadline: make(chan struct{}),
	}
	h.jobs.runs[rec.JobID] = r
	wait := time.Duration(0)
	if !running {
		wait = rec.StartTime.Sub(h.Now())
	}
	r.start = h.clk.AfterFunc(wait, func() { r.startOnce.Do(func() { close(r.started) }) })
	go h.superviseJob(r, rec.Status == JobQueued && wait > 0)
}

// superviseJob takes a job from queued to its end.
func (h *Hub) superviseJob(r *jobRun, toScheduled bool) {
	defer close(r.done)
	if toScheduled {
		h.markScheduled(r.id)
	}
	select {
	case <-r.started:
	case <-r.cancel:
		return
	case <-r.stop:
		return
	}
	h.runJob(r)
}

// markScheduled moves a queued job whose start time is ahead to
// scheduled. A failure is logged: the job runs at its start time anyway,
// and a restart reads it from the store as it is.
func (h *Hub) markScheduled(id string) {
	err := h.db.Update(func(tx *store.Tx) error {
		rec, err := loadJob(tx, id)
		if err != nil || rec == nil || rec.Status != JobQueued {
			return err
		}
		rec.Status = JobScheduled
		return saveJob(tx, rec)
	})
	if err != nil && !errors.Is(err, store.ErrClosed) {
		h.log.Error("job state not saved", "job", id, "err", err)
	}
}

// runJob starts the job, works through its devices and ends it.
func (h *Hub) runJob(r *jobRun) {
	rec, pending, ok := h.beginJob(r.id)
	if !ok {
		h.forgetRun(r)
		return
	}
	if !h.Now().Before(rec.Ends.Time) {
		// The window closed while the emulator was stopped: no device
		// starts outside it.
		h.endJob(r, true)
		return
	}
	// The execution window: its timer is armed before any device starts.
	deadline := h.clk.AfterFunc(rec.Ends.Sub(h.Now()), func() { r.deadlineOnce.Do(func() { close(r.deadline) }) })
	defer deadline.Stop()
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	go func() {
		select {
		case <-r.deadline:
			cancel(errJobDeadline)
		case <-r.stop:
			cancel(errJobStopped)
		case <-ctx.Done():
		}
	}()

	sem := make(chan struct{}, jobWorkers)
	var wg sync.WaitGroup
dispatch:
	for _, dev := range pending {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			break dispatch
		case <-r.cancel:
			break dispatch
		}
		select {
		case <-ctx.Done():
			<-sem
			break dispatch
		case <-r.cancel:
			<-sem
			break dispatch
		default:
		}
		wg.Add(1)
		go func(dev string) {
			defer wg.Done()
			defer func() { <-sem }()
			h.runDeviceJob(ctx, rec, dev)
		}(dev)
	}
	wg.Wait()

	switch cause := context.Cause(ctx); {
	case errors.Is(cause, errJobStopped):
		return // as stored; resumeJobs carries on
	case errors.Is(cause, errJobDeadline):
		h.endJob(r, true)
	default:
		select {
		case <-r.cancel:
			// CancelJob has stored the outcome.
		default:
			h.endJob(r, false)
		}
	}
}

// beginJob moves a queued or scheduled job to running: it evaluates the
// query condition now (devices registered later are not part of the job)
// and records every matched device as pending, in one transaction. For a
// job that was already running (a resumed one) it fails the devices whose
// calls were in flight. It returns the devices left to do.
func (h *Hub) beginJob(id string) (*jobRecord, []string, bool) {
	var rec *jobRecord
	var pending []string
	err := h.db.Update(func(tx *store.Tx) error {
		rec, pending = nil, nil
		r, err := loadJob(tx, id)
		if err != nil || r == nil {
			return err
		}
		now := h.stamp()
		switch r.Status {
		case JobQueued, JobScheduled:
			cond, err := parseJobCondition(r.QueryCondition)
			if err != nil {
				r.Status, r.EndTime = JobFailed, Time{now}
				r.FailureReason = err.Error()
				return saveJob(tx, r)
			}
			ids, err := h.matchDevices(tx, cond)
			if err != nil {
				return err
			}
			r.Status, r.RunFrom = JobRunning, Time{now}
			r.DeviceJobStatistics = &JobStatistics{DeviceCount: len(ids), PendingCount: len(ids)}
			for _, dev := range ids {
				d := &DeviceJob{
					DeviceID: dev, JobID: id, JobType: r.Type, Status: DeviceJobPending,
					StartTimeUTC: r.StartTime, EndTimeUTC: r.Ends,
					CreatedDateTimeUTC: Time{now}, LastUpdatedDateTimeUTC: Time{now},
				}
				if err := saveDeviceJob(tx, d); err != nil {
					return err
				}
			}
			pending = ids
		case JobRunning:
			err := tx.ForEach(store.DeviceJobs, deviceJobPrefix(id), "", func(_ string, v []byte) error {
				d, err := decodeDeviceJob(v)
				if err != nil {
					return err
				}
				switch d.Status {
				case DeviceJobPending:
					pending = append(pending, d.DeviceID)
				case DeviceJobRunning:
					if r.Type == JobTypeUpdateTwin {
						// A twin patch can be applied again safely.
						setDeviceStatus(r, d, DeviceJobPending, now)
						pending = append(pending, d.DeviceID)
					} else {
						setDeviceStatus(r, d, DeviceJobFailed, now)
						d.Error = &DeviceJobError{Code: "ServerError",
							Description: "The emulator stopped while the direct method call was in flight; whether the device ran it is unknown, so it is not called again."}
					}
					return saveDeviceJob(tx, d)
				}
				return nil
			})
			if err != nil {
				return err
			}
		default:
			return nil
		}
		rec = r
		return saveJob(tx, r)
	})
	if err != nil {
		if !errors.Is(err, store.ErrClosed) {
			h.log.Error("job not started", "job", id, "err", err)
		}
		return nil, nil, false
	}
	if rec == nil || rec.Status != JobRunning {
		return nil, nil, false
	}
	return rec, pending, true
}

// runDeviceJob does the job's work on one device and records the outcome.
// The device shows as running while the call is made.
func (h *Hub) runDeviceJob(ctx context.Context, rec *jobRecord, deviceID string) {
	if !h.deviceJobTransition(rec.JobID, deviceID, DeviceJobPending, func(*DeviceJob) string { return DeviceJobRunning }) {
		return // cancelled meanwhile
	}
	id := Identity{DeviceID: deviceID}
	var outcome *DeviceJobOutcome
	var err error
	switch rec.Type {
	case JobTypeDeviceMethod:
		// The hub's direct method path: connect and response timeouts,
		// 404103 for a device that is not connected.
		var res MethodResult
		res, err = h.InvokeMethod(ctx, id, rec.CloudToDeviceMethod.request())
		if err == nil {
			outcome = &DeviceJobOutcome{DeviceMethodResponse: &DeviceMethodResponse{Status: res.Status, Payload: res.Payload}}
		}
	case JobTypeUpdateTwin:
		// The service twin update path, with etag "*": tags and desired
		// properties merged, versions bumped, and the device notified if
		// it is connected and subscribed.
		_, err = h.UpdateTwin(ctx, id, rec.UpdateTwin, "*", false)
		if err == nil {
			outcome = &DeviceJobOutcome{}
		}
	}
	if err != nil && errors.Is(context.Cause(ctx), errJobStopped) {
		return // left running; resumeJobs decides
	}
	h.deviceJobTransition(rec.JobID, deviceID, DeviceJobRunning, func(d *DeviceJob) string {
		if err == nil {
			d.Outcome = outcome
			return DeviceJobCompleted
		}
		d.Error = deviceJobError(ctx, rec, err)
		return DeviceJobFailed
	})
}

// deviceJobError is the error a device's record carries.
func deviceJobError(ctx context.Context, rec *jobRecord, err error) *DeviceJobError {
	if errors.Is(context.Cause(ctx), errJobDeadline) {
		return jobDeadlineError(rec)
	}
	he := huberr.As(err)
	return &DeviceJobError{Code: he.Name, Description: he.Message}
}

func jobDeadlineError(rec *jobRecord) *DeviceJobError {
	return &DeviceJobError{Code: "GatewayTimeout",
		Description: "The job's maxExecutionTimeInSeconds (" + time.Duration(rec.MaxExecutionTimeInSeconds*int64(time.Second)).String() + ") ran out before this device was done."}
}

// deviceJobTransition moves a device record from status from to the
// status change returns, with the job's statistics, in one transaction. It
// reports false when the record is no longer in status from (the job was
// cancelled, or ended).
func (h *Hub) deviceJobTransition(jobID, deviceID, from string, change func(d *DeviceJob) string) bool {
	var done bool
	err := h.db.Update(func(tx *store.Tx) error {
		done = false
		rec, err := loadJob(tx, jobID)
		if err != nil || rec == nil {
			return err
		}
		d, err := loadDeviceJob(tx, jobID, deviceID)
		if err != nil || d == nil || d.Status != from {
			return err
		}
		setDeviceStatus(rec, d, change(d), h.stamp())
		if err := saveDeviceJob(tx, d); err != nil {
			return err
		}
		done = true
		return saveJob(tx, rec)
	})
	if err != nil && !errors.Is(err, store.ErrClosed) {
		h.log.Error("device job outcome not saved", "job", jobID, "device", deviceID, "err", err)
	}
	return err == nil && done
}

// endJob completes a running job. When its window ran out (expired), the
// devices not done fail; the job is still completed: the hub reports a job
// whose execution time passed as completed, with those devices in
// failedCount.
func (h *Hub) endJob(r *jobRun, expired bool) {
	// The job's place among the active ones is freed in the same step as
	// its end is stored: CreateJob, which counts them under the same lock,
	// never sees a completed job as active.
	h.jobs.mu.Lock()
	defer h.jobs.mu.Unlock()
	err := h.db.Update(func(tx *store.Tx) error {
		rec, err := loadJob(tx, r.id)
		if err != nil || rec == nil || rec.Status != JobRunning {
			return err
		}
		now := h.stamp()
		if expired {
			var left []*DeviceJob
			if err := tx.ForEach(store.DeviceJobs, deviceJobPrefix(r.id), "", func(_ string, v []byte) error {
				d, err := decodeDeviceJob(v)
				if err != nil {
					return err
				}
				if d.Status == DeviceJobPending || d.Status == DeviceJobRunning {
					left = append(left, d)
				}
				return nil
			}); err != nil {
				return err
			}
			for _, d := range left {
				setDeviceStatus(rec, d, DeviceJobFailed, now)
				d.Error = jobDeadlineError(rec)
				if err := saveDeviceJob(tx, d); err != nil {
					return err
				}
			}
		}
		rec.Status, rec.EndTime = JobCompleted, Time{now}
		return saveJob(tx, rec)
	})
	if err != nil {
		if !errors.Is(err, store.ErrClosed) {
			h.log.Error("job end not saved", "job", r.id, "err", err)
		}
		return
	}
	if h.jobs.runs[r.id] == r {
		delete(h.jobs.runs, r.id)
	}
}

// forgetRun frees a finished job's place among the active jobs.
func (h *Hub) forgetRun(r *jobRun) {
	h.jobs.mu.Lock()
	if h.jobs.runs[r.id] == r {
		delete(h.jobs.runs, r.id)
	}
	h.jobs.mu.Unlock()
}

// StopJobs stops running jobs without changing what is stored, so that a
// restart resumes them; no job is created or started afterwards. Call it
// before closing the device sessions, so that no job sees devices go
// offline because the emulator is stopping. Close calls it too.
func (h *Hub) StopJobs() { h.stopJobRuns(true) }

// stopJobRuns stops every run without changing what is stored and waits
// for them; closed says whether jobs stay stopped (Close) or may be created
// again (Reset, once the stored jobs are gone).
func (h *Hub) stopJobRuns(closed bool) {
	h.jobs.mu.Lock()
	runs := make([]*jobRun, 0, len(h.jobs.runs))
	for _, r := range h.jobs.runs {
		runs = append(runs, r)
	}
	h.jobs.runs = map[string]*jobRun{}
	h.jobs.closed = closed
	h.jobs.mu.Unlock()
	for _, r := range runs {
		r.start.Stop()
		r.stopOnce.Do(func() { close(r.stop) })
	}
	for _, r := range runs {
		<-r.done
	}
}
