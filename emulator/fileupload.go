// SPDX-License-Identifier: MIT

package emulator

import (
	"context"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/hub"
)

// File upload and import/export jobs, direct state access (emulator-only).

// FileNotification is a file-upload notification waiting for the back end.
type FileNotification struct {
	DeviceID        string
	BlobURI         string
	BlobName        string // {deviceId}/{name as the device gave it}
	BlobSizeInBytes int64
	LastUpdatedTime string // as storage reported it
	EnqueuedTime    time.Time
	DeliveryCount   int // receives so far (abandoned or lock expired)
}

func fileNotificationOf(m hub.FileNotificationMessage) FileNotification {
	n := m.Notification
	return FileNotification{DeviceID: n.DeviceID, BlobURI: n.BlobURI, BlobName: n.BlobName,
		BlobSizeInBytes: n.BlobSizeInBytes, LastUpdatedTime: n.LastUpdatedTime,
		EnqueuedTime: m.EnqueuedTime, DeliveryCount: m.DeliveryCount}
}

// FileNotifications returns the file-upload notifications not yet
// completed by a receiver, oldest first, without locking them.
func (s *Server) FileNotifications() ([]FileNotification, error) {
	ms, err := s.hub.FileNotifications()
	if err != nil {
		return nil, err
	}
	out := make([]FileNotification, len(ms))
	for i, m := range ms {
		out[i] = fileNotificationOf(m)
	}
	return out, nil
}

// ReceiveFileNotification takes the next file-upload notification for the
// back end the way the hub's notification endpoint does: it waits up to
// wait for one, locks it for a minute and returns it with a function that
// completes it (removes it from the queue). It returns nil and no error
// when none arrived.
func (s *Server) ReceiveFileNotification(ctx context.Context, wait time.Duration) (*FileNotification, func() error, error) {
	m, err := s.hub.ReceiveFileNotification(ctx, 0, wait)
	if err != nil || m == nil {
		return nil, nil, err
	}
	n := fileNotificationOf(*m)
	tok := m.LockToken
	return &n, func() error { return s.hub.CompleteFileNotification(context.Background(), tok) }, nil
}

// ActiveFileUploads is the number of a device's file uploads that are
// neither notified nor expired (the hub allows ten).
func (s *Server) ActiveFileUploads(deviceID string) (int, error) {
	return s.hub.ActiveFileUploads(deviceID)
}

// ImportExportJob is a registry import or export job.
type ImportExportJob struct {
	JobID         string
	Type          string // "export" or "import"
	Status        string // enqueued, running, completed, failed, cancelled
	Progress      int
	StartTime     time.Time
	EndTime       time.Time
	FailureReason string
}

// ImportExportJobs returns the stored import/export jobs, oldest first.
func (s *Server) ImportExportJobs() ([]ImportExportJob, error) {
	js, err := s.hub.ListImportExportJobs(context.Background())
	if err != nil {
		return nil, err
	}
	out := make([]ImportExportJob, len(js))
	for i, j := range js {
		out[i] = ImportExportJob{JobID: j.JobID, Type: j.Type, Status: j.Status, Progress: j.Progress}
		if j.StartTimeUTC != nil {
			out[i].StartTime = j.StartTimeUTC.Time
		}
		if j.EndTimeUTC != nil {
			out[i].EndTime = j.EndTimeUTC.Time
		}
		if j.FailureReason != nil {
			out[i].FailureReason = *j.FailureReason
		}
	}
	return out, nil
}
