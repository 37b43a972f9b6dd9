// SPDX-License-Identifier: MIT

package hub

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/huberr"
	"github.com/iothubemulator/iothub/emulator/internal/query"
	"github.com/iothubemulator/iothub/emulator/internal/store"
)

// How jobs are stored: store.Jobs maps the job id to its jobRecord;
// store.DeviceJobs maps jobId \x00 deviceId to the DeviceJob exactly as
// devices.jobs queries return it. Job ids hold only letters, digits and
// '-', device ids never hold \x00, so a job's device records are the keys
// with the prefix jobId \x00.

func deviceJobKey(jobID, deviceID string) string { return jobID + "\x00" + deviceID }

func deviceJobPrefix(jobID string) string { return jobID + "\x00" }

func loadJob(tx *store.Tx, id string) (*jobRecord, error) {
	b := tx.Get(store.Jobs, id)
	if b == nil {
		return nil, nil
	}
	return decodeJob(b)
}

func decodeJob(b []byte) (*jobRecord, error) {
	var r jobRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("decode job record: %w", err)
	}
	if r.DeviceJobStatistics == nil {
		r.DeviceJobStatistics = &JobStatistics{}
	}
	return &r, nil
}

func saveJob(tx *store.Tx, r *jobRecord) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return tx.Put(store.Jobs, r.JobID, b)
}

func loadDeviceJob(tx *store.Tx, jobID, deviceID string) (*DeviceJob, error) {
	b := tx.Get(store.DeviceJobs, deviceJobKey(jobID, deviceID))
	if b == nil {
		return nil, nil
	}
	var d DeviceJob
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("decode device job %s/%s: %w", jobID, deviceID, err)
	}
	return &d, nil
}

func decodeDeviceJob(b []byte) (*DeviceJob, error) {
	var d DeviceJob
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("decode device job: %w", err)
	}
	return &d, nil
}

func saveDeviceJob(tx *store.Tx, d *DeviceJob) error {
	b, err := json.Marshal(d)
	if err != nil {
		return err
	}
	return tx.Put(store.DeviceJobs, deviceJobKey(d.JobID, d.DeviceID), b)
}

// count moves one device from the statistics bucket of status from to that
// of status to ("" for none).
func (s *JobStatistics) count(from, to string) {
	for _, c := range []struct {
		status string
		delta  int
	}{{from, -1}, {to, 1}} {
		switch c.status {
		case DeviceJobPending:
			s.PendingCount += c.delta
		case DeviceJobRunning:
			s.RunningCount += c.delta
		case DeviceJobCompleted:
			s.SucceededCount += c.delta
		case DeviceJobFailed:
			s.FailedCount += c.delta
		}
	}
}

// setDeviceStatus moves a device's record to status and keeps the job's
// statistics in step; both are written by the caller's transaction.
func setDeviceStatus(rec *jobRecord, d *DeviceJob, status string, now time.Time) {
	rec.DeviceJobStatistics.count(d.Status, status)
	d.Status, d.LastUpdatedDateTimeUTC = status, Time{now}
}

// cancelPendingDevices marks the devices a running job has not started as
// canceled.
func cancelPendingDevices(tx *store.Tx, rec *jobRecord, now time.Time) error {
	var pending []*DeviceJob
	err := tx.ForEach(store.DeviceJobs, deviceJobPrefix(rec.JobID), "", func(_ string, v []byte) error {
		var d DeviceJob
		if err := json.Unmarshal(v, &d); err != nil {
			return err
		}
		if d.Status == DeviceJobPending {
			pending = append(pending, &d)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, d := range pending {
		setDeviceStatus(rec, d, DeviceJobCanceled, now)
		if err := saveDeviceJob(tx, d); err != nil {
			return err
		}
	}
	return nil
}

// sweepJobs deletes finished jobs older than JobRetention with their
// device records.
func sweepJobs(tx *store.Tx, now time.Time) error {
	var old []string
	err := tx.ForEach(store.Jobs, "", "", func(k string, v []byte) error {
		rec, err := decodeJob(v)
		if err != nil {
			return err
		}
		if rec.expired(now) {
			old = append(old, k)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, id := range old {
		var keys []string
		if err := tx.ForEach(store.DeviceJobs, deviceJobPrefix(id), "", func(k string, _ []byte) error {
			keys = append(keys, k)
			return nil
		}); err != nil {
			return err
		}
		for _, k := range keys {
			if err := tx.Delete(store.DeviceJobs, k); err != nil {
				return err
			}
		}
		if err := tx.Delete(store.Jobs, id); err != nil {
			return err
		}
	}
	return nil
}

func sortJobs(recs []*jobRecord) {
	slices.SortFunc(recs, func(a, b *jobRecord) int {
		switch {
		case a.Seq < b.Seq:
			return -1
		case a.Seq > b.Seq:
			return 1
		}
		return strings.Compare(a.JobID, b.JobID)
	})
}

// The /jobs/v2/query continuation token carries the creation sequence of
// the last job returned and a hash of the filters: a token is refused with
// other filters rather than misapplied.
func encodeJobContinuation(after uint64, filter string) string {
	return base64.RawURLEncoding.EncodeToString([]byte("jobs:" + strconv.FormatUint(after, 10) + ":" + strconv.FormatUint(fnv64(filter), 36)))
}

func decodeJobContinuation(tok, filter string) (uint64, error) {
	bad := huberr.ArgumentInvalid("The continuation token is not valid for this job query.")
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return 0, bad
	}
	parts := strings.Split(string(b), ":")
	if len(parts) != 3 || parts[0] != "jobs" || parts[2] != strconv.FormatUint(fnv64(filter), 36) {
		return 0, bad
	}
	n, err := strconv.ParseUint(parts[1], 10, 64)
	if err != nil {
		return 0, bad
	}
	return n, nil
}

// deviceJobDocs yields the devices.jobs collection for a query: every
// device record of every job still retained, in key order (by job id, then
// device id). The hub keeps a device's job records in its twin, so those
// of a deleted device are left out (a job's statistics still count it).
func deviceJobDocs(ctx context.Context, tx *store.Tx, now time.Time, walkErr *error) func(yield func([]byte) bool) {
	return func(yield func([]byte) bool) {
		expired := map[string]bool{}
		*walkErr = tx.ForEach(store.Jobs, "", "", func(k string, v []byte) error {
			rec, err := decodeJob(v)
			if err != nil {
				return err
			}
			if rec.expired(now) {
				expired[k] = true
			}
			return nil
		})
		if *walkErr != nil {
			return
		}
		*walkErr = tx.ForEach(store.DeviceJobs, "", "", func(k string, v []byte) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			id, dev, _ := strings.Cut(k, "\x00")
			if expired[id] || tx.Get(store.Devices, dev) == nil {
				return nil
			}
			if !yield(v) {
				return store.ErrStop
			}
			return nil
		})
	}
}

// matchDevices returns the ids of the devices whose twins satisfy cond
// (every device when cond is nil), in key order.
func (h *Hub) matchDevices(tx *store.Tx, cond *query.Condition) ([]string, error) {
	var ids []string
	err := tx.ForEach(store.Devices, "", "", func(k string, v []byte) error {
		if cond == nil {
			ids = append(ids, k)
			return nil
		}
		var r record
		if err := unmarshalRecord(v, &r); err != nil {
			return err
		}
		tw, err := h.viewOf(tx, Identity{DeviceID: k}, &r, nil)
		if err != nil {
			return err
		}
		doc, err := json.Marshal(tw)
		if err != nil {
			return err
		}
		if cond.Match(query.RawDocument(doc)) {
			ids = append(ids, k)
		}
		return nil
	})
	return ids, err
}

// runJobsQuery runs a devices.jobs query over every retained device job
// record, on one read transaction.
func (h *Hub) runJobsQuery(ctx context.Context, q *query.Query) ([]json.RawMessage, error) {
	var items []json.RawMessage
	now := h.Now()
	err := h.db.View(func(tx *store.Tx) error {
		var walkErr error
		var err error
		items, err = q.Execute(deviceJobDocs(ctx, tx, now, &walkErr))
		if walkErr != nil {
			return walkErr
		}
		return err
	})
	if err != nil {
		var qe *query.Error
		if errors.As(err, &qe) {
			return nil, huberr.ArgumentInvalid("%s", qe.Error())
		}
		return nil, err
	}
	return items, nil
}
