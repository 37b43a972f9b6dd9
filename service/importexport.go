// SPDX-License-Identifier: MIT

package service

import (
	"context"
	"net/http"
	"time"

	"github.com/iothubemulator/iothub/internal/wire"
)

// Registry import and export jobs (iot-hub-bulk-identity-mgmt): the hub
// exports every identity, with its twin, to devices.txt in a blob
// container, or applies devices.txt from one, in the background. The
// containers are given as URIs with a SAS; the hub writes with them.

// Import/export job types, and the status an accepted one starts in (it
// then runs, completes, fails or is cancelled, with the JobStatus values of
// jobs.go).
const (
	JobTypeExport JobType   = "export"
	JobTypeImport JobType   = "import"
	JobEnqueued   JobStatus = "enqueued"
)

// ImportExportJob is a job request and, as returned by the hub, its state
// (JobProperties). The hub does not return the container URIs.
type ImportExportJob struct {
	JobID                  string    `json:"jobId,omitempty"`
	Type                   JobType   `json:"type"`
	Status                 JobStatus `json:"status,omitempty"`
	Progress               int       `json:"progress,omitempty"`
	StartTime              time.Time `json:"startTimeUtc,omitzero"`
	EndTime                time.Time `json:"endTimeUtc,omitzero"`
	InputBlobContainerURI  string    `json:"inputBlobContainerUri,omitempty"`
	OutputBlobContainerURI string    `json:"outputBlobContainerUri,omitempty"`
	InputBlobName          string    `json:"inputBlobName,omitempty"`  // default devices.txt
	OutputBlobName         string    `json:"outputBlobName,omitempty"` // default devices.txt (export), importErrors.log (import)
	ExcludeKeysInExport    bool      `json:"excludeKeysInExport"`
	FailureReason          string    `json:"failureReason,omitempty"`
}

// ExportDevicesToBlob starts a job that writes every device and module identity,
// with twins, to devices.txt in the container (a URI with a SAS that
// grants write). Keys are written as null when excludeKeys is set.
func (c *Client) ExportDevicesToBlob(ctx context.Context, outputContainerURI string, excludeKeys bool) (*ImportExportJob, error) {
	return c.CreateImportExportJob(ctx, &ImportExportJob{Type: JobTypeExport, OutputBlobContainerURI: outputContainerURI, ExcludeKeysInExport: excludeKeys})
}

// ImportDevicesFromBlob starts a job that applies devices.txt from the input
// container, one ExportImportDevice per line with its importMode (default
// createOrUpdate), and writes importErrors.log, the lines that failed, to
// the output container. A job that completes may still have failed lines.
func (c *Client) ImportDevicesFromBlob(ctx context.Context, inputContainerURI, outputContainerURI string) (*ImportExportJob, error) {
	return c.CreateImportExportJob(ctx, &ImportExportJob{Type: JobTypeImport, InputBlobContainerURI: inputContainerURI, OutputBlobContainerURI: outputContainerURI})
}

// CreateImportExportJob starts a job (POST /jobs/create). It is not
// repeated after a failure, since a second job could start. Only one
// import/export job runs at a time: another answers 403 JobQuotaExceeded
// (ErrForbidden); a container the hub cannot write answers 400
// BlobContainerValidationError.
func (c *Client) CreateImportExportJob(ctx context.Context, job *ImportExportJob) (*ImportExportJob, error) {
	var out ImportExportJob
	if _, err := c.do(ctx, &call{op: "CreateImportExportJob", method: http.MethodPost, path: "/jobs/create", body: job}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetImportExportJob reads a job (GET /jobs/{id}); an unknown id is 404
// JobNotFound.
func (c *Client) GetImportExportJob(ctx context.Context, jobID string) (*ImportExportJob, error) {
	var out ImportExportJob
	if _, err := c.do(ctx, &call{op: "GetImportExportJob", method: http.MethodGet, path: "/jobs/" + wire.Escape(jobID), idempotent: true}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListImportExportJobs returns the hub's import/export jobs (GET /jobs).
func (c *Client) ListImportExportJobs(ctx context.Context) ([]*ImportExportJob, error) {
	out := []*ImportExportJob{}
	if _, err := c.do(ctx, &call{op: "ListImportExportJobs", method: http.MethodGet, path: "/jobs", idempotent: true}, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// CancelImportExportJob cancels a job (DELETE /jobs/{id}). An import
// stops between lines; lines applied stay applied.
func (c *Client) CancelImportExportJob(ctx context.Context, jobID string) (*ImportExportJob, error) {
	var out ImportExportJob
	if _, err := c.do(ctx, &call{op: "CancelImportExportJob", method: http.MethodDelete, path: "/jobs/" + wire.Escape(jobID), idempotent: true}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// WaitImportExportJob polls a job every interval (0: one second) until it
// is finished or ctx ends, and returns its last state.
func (c *Client) WaitImportExportJob(ctx context.Context, jobID string, interval time.Duration) (*ImportExportJob, error) {
	if interval <= 0 {
		interval = time.Second
	}
	for {
		j, err := c.GetImportExportJob(ctx, jobID)
		if err != nil || j.Status.Ended() {
			return j, err
		}
		if err := c.sleep(ctx, interval); err != nil {
			return j, errorf("WaitImportExportJob", "%w; the job was %s", err, j.Status)
		}
	}
}
