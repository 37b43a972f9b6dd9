// SPDX-License-Identifier: MIT

package hub

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/huberr"
	"github.com/iothubemulator/iothub/emulator/internal/store"
	"github.com/iothubemulator/iothub/internal/storage"
	"github.com/iothubemulator/iothub/internal/uuid"
)

// Registry import and export jobs (iot-hub-bulk-identity-mgmt; REST
// "Create Import Export Job"): POST /jobs/create starts a job that runs in
// the background, GET /jobs/{id} and GET /jobs report it, DELETE
// /jobs/{id} cancels it. An export writes devices.txt, one
// ExportImportDevice per line (modules on lines of their own), into the
// output container; an import applies devices.txt from the input container
// line by line and writes importErrors.log into the output container. Jobs
// are stored, with an import's progress and errors committed after each
// line, so a restarted emulator resumes a job where it stopped.

// Job types and statuses as the hub spells them (JobProperties).
const (
	JobTypeExport = "export"
	JobTypeImport = "import"

	// JobEnqueued is where an import/export job starts; it then is
	// JobRunning and ends JobCompleted, JobFailed or JobCancelled (the
	// statuses of jobs.go, spelt alike).
	JobEnqueued = "enqueued"

	DefaultDevicesBlobName     = "devices.txt"
	DefaultImportErrorsLogName = "importErrors.log"
	defaultConfigurationsBlob  = "configurations.txt"
)

// More import modes, of import jobs only (iot-hub-bulk-identity-mgmt,
// "Import behavior"); createOrUpdate is the default of a line without one.
const (
	ImportCreateOrUpdate            = "createOrUpdate"
	ImportCreateOrUpdateIfMatchETag = "createOrUpdateIfMatchETag"
)

// ImportExportJob is a job as the REST API shows it (JobProperties). The
// container URIs are not echoed: a live hub answers them empty, and they
// carry credentials.
type ImportExportJob struct {
	JobID                     string  `json:"jobId"`
	StartTimeUTC              *Time   `json:"startTimeUtc,omitempty"`
	EndTimeUTC                *Time   `json:"endTimeUtc,omitempty"`
	Type                      string  `json:"type"`
	Status                    string  `json:"status"`
	Progress                  int     `json:"progress"`
	InputBlobContainerURI     string  `json:"inputBlobContainerUri"`
	OutputBlobContainerURI    string  `json:"outputBlobContainerUri"`
	InputBlobName             string  `json:"inputBlobName,omitempty"`
	OutputBlobName            string  `json:"outputBlobName,omitempty"`
	ExcludeKeysInExport       bool    `json:"excludeKeysInExport"`
	StorageAuthenticationType string  `json:"storageAuthenticationType,omitempty"`
	IncludeConfigurations     bool    `json:"includeConfigurations,omitempty"`
	ConfigurationsBlobName    string  `json:"configurationsBlobName,omitempty"`
	FailureReason             *string `json:"failureReason"`
}

// ImportExportRequest is the body of POST /jobs/create.
type ImportExportRequest struct {
	Type                      string `json:"type"`
	InputBlobContainerURI     string `json:"inputBlobContainerUri"`
	OutputBlobContainerURI    string `json:"outputBlobContainerUri"`
	InputBlobName             string `json:"inputBlobName"`
	OutputBlobName            string `json:"outputBlobName"`
	ExcludeKeysInExport       bool   `json:"excludeKeysInExport"`
	StorageAuthenticationType string `json:"storageAuthenticationType"`
	IncludeConfigurations     bool   `json:"includeConfigurations"`
	ConfigurationsBlobName    string `json:"configurationsBlobName"`
}

// ieJobRecord is what the store keeps of a job.
type ieJobRecord struct {
	Job       ImportExportJob  `json:"job"`
	Input     string           `json:"input,omitempty"`  // input container URI with its SAS
	Output    string           `json:"output,omitempty"` // output container URI with its SAS
	Created   time.Time        `json:"created"`
	LinesDone int              `json:"linesDone,omitempty"` // import: input lines applied
	Errors    []ImportErrorLog `json:"errors,omitempty"`    // import: the lines that failed so far
}

// ImportErrorLog is one line of importErrors.log: the identity of a failed
// line and the hub's error for it (the shape a live hub writes).
type ImportErrorLog struct {
	DeviceID    string `json:"deviceId"`
	ModuleID    string `json:"moduleId,omitempty"`
	ErrorCode   int    `json:"errorCode"`
	ErrorStatus string `json:"errorStatus"`
}

// ieJobRunner tracks the jobs running in this process.
type ieJobRunner struct {
	mu      sync.Mutex
	cancels map[string]context.CancelFunc
	wg      sync.WaitGroup
	closed  bool
}

// maxIEJobHistory bounds the stored finished jobs; the oldest go first (the
// hub keeps 30 days of history).
const maxIEJobHistory = 100

// CreateImportExportJob checks a job request, stores the job as enqueued
// and starts it. Only one import/export job runs at a time (403003
// JobQuotaExceeded). The output container must accept writes with the
// URI given: a refusal is 400 BlobContainerValidationError, as on a live
// hub.
func (h *Hub) CreateImportExportJob(ctx context.Context, req ImportExportRequest) (*ImportExportJob, error) {
	if err := h.react(ctx, OpImportExport, Identity{}); err != nil {
		return nil, err
	}
	typ := strings.ToLower(req.Type)
	if typ != JobTypeExport && typ != JobTypeImport {
		return nil, huberr.ArgumentInvalid("Job type '%s' is not valid: use 'export' or 'import'.", req.Type)
	}
	if strings.EqualFold(req.StorageAuthenticationType, "identityBased") {
		return nil, huberr.ArgumentInvalid("storageAuthenticationType identityBased needs a managed identity, which the emulator does not have: give container URIs with a SAS (keyBased).")
	}
	if req.OutputBlobContainerURI == "" {
		return nil, huberr.ArgumentNull("outputBlobContainerUri is required.")
	}
	if typ == JobTypeImport && req.InputBlobContainerURI == "" {
		return nil, huberr.ArgumentNull("inputBlobContainerUri is required for an import job.")
	}
	rec := &ieJobRecord{Input: req.InputBlobContainerURI, Output: req.OutputBlobContainerURI, Created: h.Now().UTC()}
	rec.Job = ImportExportJob{JobID: uuid.New(), Type: typ, Status: JobEnqueued,
		InputBlobName: req.InputBlobName, OutputBlobName: req.OutputBlobName,
		ExcludeKeysInExport: req.ExcludeKeysInExport, StorageAuthenticationType: req.StorageAuthenticationType,
		IncludeConfigurations: req.IncludeConfigurations, ConfigurationsBlobName: req.ConfigurationsBlobName}
	for _, u := range []string{rec.Input, rec.Output} {
		if u == "" {
			continue
		}
		if _, err := storage.ContainerBlobURL(u, "x"); err != nil {
			return nil, huberr.ArgumentInvalid("The blob container URI is not valid: %v", err)
		}
	}
	if err := h.checkWritable(ctx, rec.Output, rec.outputBlob()); err != nil {
		return nil, err
	}
	err := h.db.Update(func(tx *store.Tx) error {
		busy := ""
		if err := tx.ForEach(store.ImportExportJobs, "", "", func(_ string, v []byte) error {
			var r ieJobRecord
			if err := json.Unmarshal(v, &r); err != nil {
				return err
			}
			if r.Job.Status == JobEnqueued || r.Job.Status == JobRunning {
				busy = r.Job.JobID
				return store.ErrStop
			}
			return nil
		}); err != nil {
			return err
		}
		if busy != "" {
			return huberr.JobQuotaExceeded("Only one import or export job may run at a time; job %s is still running.", busy)
		}
		if err := trimIEJobHistory(tx); err != nil {
			return err
		}
		return putIEJob(tx, rec)
	})
	if err != nil {
		return nil, err
	}
	h.startIEJob(rec.Job.JobID)
	job := rec.Job
	return &job, nil
}

func (r *ieJobRecord) outputBlob() string {
	if r.Job.Type == JobTypeExport {
		return orDefault(r.Job.OutputBlobName, DefaultDevicesBlobName)
	}
	return orDefault(r.Job.OutputBlobName, DefaultImportErrorsLogName)
}

func (r *ieJobRecord) inputBlob() string {
	return orDefault(r.Job.InputBlobName, DefaultDevicesBlobName)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// checkWritable stages an uncommitted block on the output blob: it proves
// the SAS grants writes without leaving anything visible (storage discards
// uncommitted blocks).
func (h *Hub) checkWritable(ctx context.Context, container, blob string) error {
	u, err := storage.ContainerBlobURL(container, blob)
	if err != nil {
		return huberr.ArgumentInvalid("The output blob container URI is not valid: %v", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := h.storageClient().PutBlock(ctx, u, storage.BlockID(0), []byte("probe")); err != nil {
		return huberr.BlobContainerValidationError("Unauthorized to write to output blob container %s: %v", storage.Redact(container), err)
	}
	return nil
}

func putIEJob(tx *store.Tx, r *ieJobRecord) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return tx.Put(store.ImportExportJobs, r.Job.JobID, b)
}

func trimIEJobHistory(tx *store.Tx) error {
	var done []*ieJobRecord
	if err := tx.ForEach(store.ImportExportJobs, "", "", func(_ string, v []byte) error {
		var r ieJobRecord
		if err := json.Unmarshal(v, &r); err != nil {
			return err
		}
		if r.Job.Status != JobEnqueued && r.Job.Status != JobRunning {
			done = append(done, &r)
		}
		return nil
	}); err != nil {
		return err
	}
	if len(done) < maxIEJobHistory {
		return nil
	}
	sort.Slice(done, func(i, j int) bool { return done[i].Created.Before(done[j].Created) })
	for _, r := range done[:len(done)-maxIEJobHistory+1] {
		if err := tx.Delete(store.ImportExportJobs, r.Job.JobID); err != nil {
			return err
		}
	}
	return nil
}

func loadIEJob(tx *store.Tx, id string) (*ieJobRecord, error) {
	b := tx.Get(store.ImportExportJobs, id)
	if b == nil {
		return nil, nil
	}
	var r ieJobRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// GetImportExportJob returns a job; an unknown id is 404 JobNotFound.
func (h *Hub) GetImportExportJob(ctx context.Context, id string) (*ImportExportJob, error) {
	var out *ImportExportJob
	err := h.db.View(func(tx *store.Tx) error {
		r, err := loadIEJob(tx, id)
		if err != nil {
			return err
		}
		if r == nil {
			return huberr.JobNotFound(id)
		}
		out = &r.Job
		return nil
	})
	return out, err
}

// ListImportExportJobs returns every stored job, oldest first.
func (h *Hub) ListImportExportJobs(ctx context.Context) ([]ImportExportJob, error) {
	var recs []*ieJobRecord
	err := h.db.View(func(tx *store.Tx) error {
		return tx.ForEach(store.ImportExportJobs, "", "", func(_ string, v []byte) error {
			var r ieJobRecord
			if err := json.Unmarshal(v, &r); err != nil {
				return err
			}
			recs = append(recs, &r)
			return nil
		})
	})
	sort.SliceStable(recs, func(i, j int) bool { return recs[i].Created.Before(recs[j].Created) })
	out := make([]ImportExportJob, len(recs))
	for i, r := range recs {
		out[i] = r.Job
	}
	return out, err
}

// CancelImportExportJob cancels an enqueued or running job; a finished job
// is returned as it is. An import stops before its next line: the lines
// applied so far stay applied.
func (h *Hub) CancelImportExportJob(ctx context.Context, id string) (*ImportExportJob, error) {
	var out *ImportExportJob
	err := h.db.Update(func(tx *store.Tx) error {
		r, err := loadIEJob(tx, id)
		if err != nil {
			return err
		}
		if r == nil {
			return huberr.JobNotFound(id)
		}
		if r.Job.Status == JobEnqueued || r.Job.Status == JobRunning {
			r.Job.Status = JobCancelled
			end := Time{h.Now().UTC()}
			r.Job.EndTimeUTC = &end
			if err := putIEJob(tx, r); err != nil {
				return err
			}
		}
		out = &r.Job
		return nil
	})
	if err == nil && out.Status == JobCancelled {
		h.ieJobs.mu.Lock()
		if c := h.ieJobs.cancels[id]; c != nil {
			c()
		}
		h.ieJobs.mu.Unlock()
	}
	return out, err
}

// ResumeImportExportJobs starts the jobs a previous run left enqueued or running.
func (h *Hub) ResumeImportExportJobs() error {
	var ids []string
	err := h.db.View(func(tx *store.Tx) error {
		return tx.ForEach(store.ImportExportJobs, "", "", func(k string, v []byte) error {
			var r ieJobRecord
			if err := json.Unmarshal(v, &r); err != nil {
				return err
			}
			if r.Job.Status == JobEnqueued || r.Job.Status == JobRunning {
				ids = append(ids, k)
			}
			return nil
		})
	})
	for _, id := range ids {
		h.startIEJob(id)
	}
	return err
}

func (h *Hub) startIEJob(id string) {
	h.ieJobs.mu.Lock()
	defer h.ieJobs.mu.Unlock()
	if h.ieJobs.closed {
		return
	}
	if h.ieJobs.cancels == nil {
		h.ieJobs.cancels = map[string]context.CancelFunc{}
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.ieJobs.cancels[id] = cancel
	h.ieJobs.wg.Add(1)
	go func() {
		defer h.ieJobs.wg.Done()
		defer func() {
			h.ieJobs.mu.Lock()
			delete(h.ieJobs.cancels, id)
			h.ieJobs.mu.Unlock()
			cancel()
		}()
		h.runIEJob(ctx, id)
	}()
}

// stopIEJobs cancels running jobs and waits for them; their records stay
// running, to be resumed by the next start.
func (h *Hub) stopIEJobs() {
	h.ieJobs.mu.Lock()
	h.ieJobs.closed = true
	for _, c := range h.ieJobs.cancels {
		c()
	}
	h.ieJobs.mu.Unlock()
	h.ieJobs.wg.Wait()
}

// WaitImportExportJobs waits until no job runs in this process (for tests).
func (h *Hub) WaitImportExportJobs() { h.ieJobs.wg.Wait() }

// errIEJobGone ends a job whose record was cancelled or deleted meanwhile.
var errIEJobGone = errors.New("job cancelled")

// updateIEJob applies fn to the stored job unless it was cancelled or
// removed meanwhile.
func (h *Hub) updateIEJob(id string, fn func(r *ieJobRecord)) (*ieJobRecord, error) {
	var out *ieJobRecord
	err := h.db.Update(func(tx *store.Tx) error {
		r, err := loadIEJob(tx, id)
		if err != nil {
			return err
		}
		if r == nil || r.Job.Status == JobCancelled || r.Job.Status == JobCompleted || r.Job.Status == JobFailed {
			return errIEJobGone
		}
		fn(r)
		out = r
		return putIEJob(tx, r)
	})
	return out, err
}

func (h *Hub) runIEJob(ctx context.Context, id string) {
	rec, err := h.updateIEJob(id, func(r *ieJobRecord) {
		if r.Job.StartTimeUTC == nil {
			st := Time{h.Now().UTC()}
			r.Job.StartTimeUTC = &st
		}
		r.Job.Status = JobRunning
	})
	if err != nil {
		return
	}
	var reason string
	if rec.Job.Type == JobTypeExport {
		reason, err = h.runExport(ctx, rec)
	} else {
		reason, err = h.runImport(ctx, rec)
	}
	if errors.Is(err, errIEJobGone) || ctx.Err() != nil {
		return // cancelled, deleted, or the hub is closing (resumed at next start)
	}
	_, _ = h.updateIEJob(id, func(r *ieJobRecord) {
		end := Time{h.Now().UTC()}
		r.Job.EndTimeUTC = &end
		if reason != "" {
			r.Job.Status = JobFailed
			r.Job.FailureReason = &reason
			h.log.Warn("import/export job failed", "job", id, "type", r.Job.Type, "reason", reason)
			return
		}
		r.Job.Status = JobCompleted
		r.Job.Progress = 100
	})
}

// ExportImportDevice is one line of devices.txt.
type ExportImportDevice struct {
	ID             string          `json:"id"`
	ModuleID       string          `json:"moduleId,omitempty"`
	ETag           string          `json:"eTag"`
	ImportMode     string          `json:"importMode,omitempty"`
	Status         string          `json:"status,omitempty"`
	StatusReason   *string         `json:"statusReason,omitempty"`
	Authentication *Authentication `json:"authentication"`
	TwinETag       string          `json:"twinETag,omitempty"`
	Tags           json.RawMessage `json:"tags,omitempty"`
	Properties     *TwinProperties `json:"properties,omitempty"`
	Capabilities   *Capabilities   `json:"capabilities,omitempty"`
	DeviceScope    string          `json:"deviceScope,omitempty"`
	ParentScopes   []string        `json:"parentScopes,omitempty"`
	ManagedBy      string          `json:"managedBy,omitempty"`
}

// runExport writes every device and module, with its twin, to the output
// container in one snapshot. It returns a failure reason, or "".
func (h *Hub) runExport(ctx context.Context, rec *ieJobRecord) (string, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	err := h.db.View(func(tx *store.Tx) error {
		var devices []*record
		if err := tx.ForEach(store.Devices, "", "", func(_ string, v []byte) error {
			var r record
			if err := unmarshalRecord(v, &r); err != nil {
				return err
			}
			devices = append(devices, &r)
			return nil
		}); err != nil {
			return err
		}
		for _, d := range devices {
			id := Identity{DeviceID: d.Device.DeviceID}
			line, err := h.exportLine(tx, id, d, nil, rec.Job.ExcludeKeysInExport)
			if err != nil {
				return err
			}
			if err := enc.Encode(line); err != nil {
				return err
			}
			if err := tx.ForEach(store.Modules, id.DeviceID+"\x00", "", func(_ string, v []byte) error {
				var m record
				if err := unmarshalRecord(v, &m); err != nil {
					return err
				}
				line, err := h.exportLine(tx, Identity{DeviceID: id.DeviceID, ModuleID: m.Module.ModuleID}, &m, d, rec.Job.ExcludeKeysInExport)
				if err != nil {
					return err
				}
				return enc.Encode(line)
			}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	u, err := storage.ContainerBlobURL(rec.Output, rec.outputBlob())
	if err != nil {
		return err.Error(), nil
	}
	if err := h.writeBlob(ctx, u, buf.Bytes()); err != nil {
		return fmt.Sprintf("Could not write %s to the output blob container %s: %v", rec.outputBlob(), storage.Redact(rec.Output), err), nil
	}
	return "", nil
}

func (h *Hub) exportLine(tx *store.Tx, id Identity, r, parent *record, excludeKeys bool) (*ExportImportDevice, error) {
	tw, err := h.viewOf(tx, id, r, parent)
	if err != nil {
		return nil, err
	}
	line := &ExportImportDevice{ID: id.DeviceID, ModuleID: id.ModuleID, TwinETag: tw.ETag, Tags: tw.Tags,
		Properties: &TwinProperties{Desired: tw.Properties.Desired, Reported: tw.Properties.Reported}}
	var auth Authentication
	if r.Device != nil {
		d := r.Device
		line.ETag, line.Status, line.StatusReason = d.ETag, d.Status, d.StatusReason
		caps := d.Capabilities
		line.Capabilities = &caps
		line.DeviceScope, line.ParentScopes = d.DeviceScope, d.ParentScopes
		auth = d.Authentication
	} else {
		line.ETag, line.ManagedBy = r.Module.ETag, r.Module.ManagedBy
		auth = r.Module.Authentication
	}
	if excludeKeys && auth.SymmetricKey != nil {
		// Keys are exported as null (iot-hub-bulk-identity-mgmt).
		auth.SymmetricKey = nil
	}
	line.Authentication = &auth
	return line, nil
}

// writeBlob writes a block blob; large content goes in 4 MiB blocks.
func (h *Hub) writeBlob(ctx context.Context, blobURL string, data []byte) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	c := h.storageClient()
	const block = 4 << 20
	if len(data) <= block {
		return c.PutBlob(ctx, blobURL, bytes.NewReader(data), int64(len(data)), "text/plain")
	}
	var ids []string
	for i := 0; len(data) > 0; i++ {
		n := min(block, len(data))
		id := storage.BlockID(i)
		if err := c.PutBlock(ctx, blobURL, id, data[:n]); err != nil {
			return err
		}
		ids = append(ids, id)
		data = data[n:]
	}
	return c.PutBlockList(ctx, blobURL, ids, "text/plain")
}

// importLine is a line of an import file: an identity with its import mode.
type importLine struct {
	ImportDevice
	Properties *struct {
		Desired json.RawMessage `json:"desired,omitempty"`
	} `json:"properties,omitempty"`
}

// maxImportLine bounds one line of an import file (an identity with a twin
// of at most 8+32+32 KB and keys fits well within it).
const maxImportLine = 1 << 20

// runImport reads the whole input blob first, so that a storage failure
// leaves the registry untouched, then applies its lines one by one,
// committing the job's progress after each, and finally writes
// importErrors.log. It returns a failure reason, or "".
func (h *Hub) runImport(ctx context.Context, rec *ieJobRecord) (string, error) {
	in, err := storage.ContainerBlobURL(rec.Input, rec.inputBlob())
	if err != nil {
		return err.Error(), nil
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	body, err := h.readBlob(rctx, in)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return fmt.Sprintf("Could not read %s from the input blob container %s: %v; no device was imported.", rec.inputBlob(), storage.Redact(rec.Input), err), nil
	}
	lines := splitLines(body)
	for i := rec.LinesDone; i < len(lines); i++ {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		var fail *ImportErrorLog
		if len(lines[i]) > maxImportLine {
			fail = &ImportErrorLog{ErrorCode: 400004, ErrorStatus: fmt.Sprintf("Line %d is longer than %d bytes.", i+1, maxImportLine)}
		} else if err := h.importJobLine(ctx, lines[i]); err != nil {
			fail = importFailure(lines[i], err)
		}
		total := len(lines)
		rec, err = h.updateIEJob(rec.Job.JobID, func(r *ieJobRecord) {
			r.LinesDone = i + 1
			r.Job.Progress = (i + 1) * 99 / total
			if fail != nil {
				r.Errors = append(r.Errors, *fail)
			}
		})
		if err != nil {
			return "", err
		}
	}
	var log bytes.Buffer
	enc := json.NewEncoder(&log)
	enc.SetEscapeHTML(false)
	for _, e := range rec.Errors {
		_ = enc.Encode(e)
	}
	out, err := storage.ContainerBlobURL(rec.Output, rec.outputBlob())
	if err == nil {
		err = h.writeBlob(ctx, out, log.Bytes())
	}
	if err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return fmt.Sprintf("All %d lines were processed but %s could not be written to the output blob container %s: %v. Failed lines: %s",
			len(lines), rec.outputBlob(), storage.Redact(rec.Output), err, summarizeErrors(rec.Errors)), nil
	}
	return "", nil
}

func (h *Hub) readBlob(ctx context.Context, u string) ([]byte, error) {
	rc, err := h.storageClient().GetBlob(ctx, u)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// splitLines returns the non-blank lines of an import file.
func splitLines(b []byte) [][]byte {
	var out [][]byte
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), len(b)+1)
	for sc.Scan() {
		if l := bytes.TrimSpace(sc.Bytes()); len(l) > 0 {
			out = append(out, append([]byte(nil), l...))
		}
	}
	return out
}

func summarizeErrors(errs []ImportErrorLog) string {
	if len(errs) == 0 {
		return "none"
	}
	var parts []string
	for i, e := range errs {
		if i == 20 {
			parts = append(parts, fmt.Sprintf("and %d more", len(errs)-20))
			break
		}
		id := e.DeviceID
		if e.ModuleID != "" {
			id += "/" + e.ModuleID
		}
		parts = append(parts, fmt.Sprintf("%s (%d)", id, e.ErrorCode))
	}
	return strings.Join(parts, ", ")
}

func importFailure(line []byte, err error) *ImportErrorLog {
	var id struct {
		ID       string `json:"id"`
		ModuleID string `json:"moduleId"`
	}
	_ = json.Unmarshal(line, &id)
	he := huberr.As(err)
	return &ImportErrorLog{DeviceID: id.ID, ModuleID: id.ModuleID, ErrorCode: he.Code, ErrorStatus: he.Message}
}

// importJobLine applies one line with the import job's modes.
func (h *Hub) importJobLine(ctx context.Context, raw []byte) error {
	var l importLine
	if err := json.Unmarshal(raw, &l); err != nil {
		return huberr.ArgumentInvalid("The line is not a JSON ExportImportDevice: %v", err)
	}
	it := l.ImportDevice
	if l.Properties != nil && len(l.Properties.Desired) > 0 {
		desired, err := stripTwinMetadata(l.Properties.Desired)
		if err != nil {
			return err
		}
		it.Properties = &struct {
			Desired json.RawMessage `json:"desired,omitempty"`
		}{Desired: desired}
	}
	if it.ID == "" {
		return huberr.ArgumentNull("id is required.")
	}
	// A live hub refuses device lines without a status, whatever the mode.
	if it.ModuleID == "" && it.Status == "" {
		return huberr.ArgumentInvalid("status is required on every device line of an import.")
	}
	id := Identity{DeviceID: it.ID, ModuleID: it.ModuleID}
	exists := h.mustExist(id) == nil
	switch mode := canonicalJobImportMode(it.ImportMode); mode {
	case "", ImportCreateOrUpdate:
		it.ImportMode = ImportUpdate // the bulk API's update creates what is missing
	case ImportCreateOrUpdateIfMatchETag:
		it.ImportMode = ImportUpdateIfMatchETag
		if !exists {
			it.ImportMode = ImportCreate
		}
	case ImportUpdate, ImportUpdateIfMatchETag:
		if !exists {
			return h.db.View(func(tx *store.Tx) error { return notFound(tx, id) })
		}
		it.ImportMode = mode
	default:
		it.ImportMode = mode
	}
	return h.importOne(ctx, it)
}

// canonicalJobImportMode spells an import mode canonically, including the
// modes only import jobs know.
func canonicalJobImportMode(m string) string {
	for _, c := range []string{ImportCreateOrUpdate, ImportCreateOrUpdateIfMatchETag} {
		if strings.EqualFold(m, c) {
			return c
		}
	}
	return canonicalImportMode(m)
}

// stripTwinMetadata drops the "$metadata" and "$version" an exported twin
// carries: the import applies the properties, and the hub keeps its own
// metadata.
func stripTwinMetadata(desired json.RawMessage) (json.RawMessage, error) {
	if string(desired) == "null" {
		return desired, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(desired, &m); err != nil {
		return nil, huberr.ArgumentInvalid("properties.desired must be a JSON object: %v", err)
	}
	delete(m, "$metadata")
	delete(m, "$version")
	if len(m) == 0 {
		return nil, nil
	}
	return json.Marshal(m)
}
