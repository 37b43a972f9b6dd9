// SPDX-License-Identifier: MIT

package hub

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/huberr"
	"github.com/iothubemulator/iothub/emulator/internal/store"
	"github.com/iothubemulator/iothub/internal/storage"
)

// File upload (iot-hub-devguide-file-upload): the hub hands a device a
// write SAS for one blob in the configured container, remembers the upload
// under a correlation id until the device notifies the outcome or the SAS
// expires, and on a successful upload queues a notification for the back
// end. The blob itself never passes through the hub.

// FileUploadConfig is the hub's file-upload setting: the storage account
// and container it hands out, the SAS time to live, and whether completed
// uploads produce notifications.
type FileUploadConfig struct {
	Account       *storage.Account
	Container     string
	SASTTL        time.Duration // 0: DefaultFileUploadSASTTL
	Notifications bool          // enableFileUploadNotifications
}

// File-upload defaults and limits (iot-hub-devguide-file-upload,
// iot-hub-devguide-quotas-throttling "Other limits").
const (
	DefaultFileUploadSASTTL   = time.Hour
	MaxFileUploadSASTTL       = 24 * time.Hour
	MaxActiveFileUploads      = 10   // per device
	maxBlobNameLength         = 1024 // Azure Storage's limit on a blob name
	fileUploadPermissions     = "rw" // what the hub's SAS grants (the devguide's example)
	fileUploadCorrelationTail = "_ver2.0"
)

// FileUploadSAS is the answer to POST /devices/{id}/files.
type FileUploadSAS struct {
	CorrelationID string `json:"correlationId"`
	HostName      string `json:"hostName"`
	ContainerName string `json:"containerName"`
	BlobName      string `json:"blobName"`
	SASToken      string `json:"sasToken"`
}

// fileUpload is a started upload, kept until notified or expired.
type fileUpload struct {
	CorrelationID string    `json:"correlationId"`
	DeviceID      string    `json:"deviceId"`
	Container     string    `json:"container"`
	BlobName      string    `json:"blobName"`
	Created       time.Time `json:"created"`
	Expiry        time.Time `json:"expiry"`
}

func fileUploadKey(deviceID, correlationID string) string { return deviceID + "\x00" + correlationID }

// FileUploadStatus is what a device reports about an upload.
type FileUploadStatus struct {
	IsSuccess         bool   `json:"isSuccess"`
	StatusCode        int    `json:"statusCode"`
	StatusDescription string `json:"statusDescription"`
}

// fileUploadState is the hub's in-memory side of file upload.
type fileUploadState struct {
	mu              sync.Mutex
	containerExists bool
}

func (h *Hub) fileUploadConfig() (*FileUploadConfig, error) {
	fu := h.cfg.FileUpload
	if fu == nil || fu.Account == nil {
		return nil, huberr.InvalidStorageEndpointProperty("File upload is not configured on this hub: start the emulator with a storage account (--storage-connection-string, e.g. Azurite's) to enable it.")
	}
	return fu, nil
}

func (fu *FileUploadConfig) ttl() time.Duration {
	if fu.SASTTL <= 0 {
		return DefaultFileUploadSASTTL
	}
	return fu.SASTTL
}

// StorageHTTP is the client the hub reaches storage with.
func (h *Hub) storageClient() *storage.Client {
	c := h.cfg.StorageHTTP
	if c == nil {
		c = http.DefaultClient
	}
	return &storage.Client{HTTP: c}
}

// CreateFileUpload starts an upload of blobName for a device: it records
// the upload and returns the SAS the device writes the blob with, for the
// blob {deviceId}/{blobName} in the configured container.
func (h *Hub) CreateFileUpload(ctx context.Context, deviceID, blobName string) (*FileUploadSAS, error) {
	fu, err := h.fileUploadConfig()
	if err != nil {
		return nil, err
	}
	if err := h.react(ctx, OpFileUpload, Identity{DeviceID: deviceID}); err != nil {
		return nil, err
	}
	if strings.TrimSpace(blobName) == "" {
		return nil, huberr.ArgumentNull("blobName is required.")
	}
	full := deviceID + "/" + blobName
	if len(full) > maxBlobNameLength {
		return nil, huberr.ArgumentInvalid("The blob name '%s' is longer than %d characters.", full, maxBlobNameLength)
	}
	now := h.Now().UTC()
	up := &fileUpload{DeviceID: deviceID, Container: fu.Container, BlobName: full,
		Created: now, Expiry: now.Add(fu.ttl()), CorrelationID: newCorrelationID(now, full)}
	err = h.db.Update(func(tx *store.Tx) error {
		if r, err := loadRecord(tx, Identity{DeviceID: deviceID}); err != nil {
			return err
		} else if r == nil {
			return huberr.DeviceNotFound(deviceID)
		}
		active, err := sweepFileUploads(tx, deviceID, now)
		if err != nil {
			return err
		}
		if active >= MaxActiveFileUploads {
			return huberr.DeviceMaximumActiveFileUploadLimitExceeded(MaxActiveFileUploads)
		}
		b, err := json.Marshal(up)
		if err != nil {
			return err
		}
		return tx.Put(store.FileUploads, fileUploadKey(deviceID, up.CorrelationID), b)
	})
	if err != nil {
		return nil, err
	}
	h.ensureUploadContainer(ctx, fu)
	return &FileUploadSAS{
		CorrelationID: up.CorrelationID,
		HostName:      fu.Account.HostName(),
		ContainerName: fu.Container,
		BlobName:      full,
		SASToken:      "?" + fu.Account.BlobSAS(fu.Container, full, fileUploadPermissions, time.Time{}, up.Expiry),
	}, nil
}

// newCorrelationID makes an opaque id in the shape of the hub's: base64 of
// a timestamp, a random part and the blob name, so that it carries '/', '+'
// and '=' like the real ones and clients must escape it.
func newCorrelationID(now time.Time, blob string) string {
	var r [16]byte
	_, _ = rand.Read(r[:])
	raw := fmt.Sprintf("%s_%x_%s%s", now.Format("200601021504"), r, blob, fileUploadCorrelationTail)
	return base64.StdEncoding.EncodeToString([]byte(raw))
}

// sweepFileUploads deletes a device's expired uploads and counts the
// active ones.
func sweepFileUploads(tx *store.Tx, deviceID string, now time.Time) (int, error) {
	var expired []string
	active := 0
	err := tx.ForEach(store.FileUploads, deviceID+"\x00", "", func(k string, v []byte) error {
		var u fileUpload
		if err := json.Unmarshal(v, &u); err != nil {
			return err
		}
		if now.Before(u.Expiry) {
			active++
		} else {
			expired = append(expired, k)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	for _, k := range expired {
		if err := tx.Delete(store.FileUploads, k); err != nil {
			return 0, err
		}
	}
	return active, nil
}

// ensureUploadContainer creates the upload container once, so that a fresh
// Azurite works without a manual step. A real hub requires the container to
// exist; a failure here is only logged, and the device's upload then fails
// at storage as it would against such a hub.
func (h *Hub) ensureUploadContainer(ctx context.Context, fu *FileUploadConfig) {
	h.uploads.mu.Lock()
	defer h.uploads.mu.Unlock()
	if h.uploads.containerExists {
		return
	}
	sas := fu.Account.AccountSAS("rwc", "c", time.Time{}, time.Now().Add(10*time.Minute))
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := h.storageClient().CreateContainer(ctx, fu.Account.ContainerURL(fu.Container)+"?"+sas); err != nil {
		h.log.Warn("file upload: could not create the upload container", "container", fu.Container, "err", err)
		return
	}
	h.uploads.containerExists = true
}

// CompleteFileUpload takes a device's notification about an upload. The
// upload is forgotten; a successful one queues a file-upload notification
// (when notifications are on) with the blob's size and time as storage
// reports them.
func (h *Hub) CompleteFileUpload(ctx context.Context, deviceID, correlationID string, st FileUploadStatus) error {
	fu, err := h.fileUploadConfig()
	if err != nil {
		return err
	}
	if correlationID == "" {
		return huberr.InvalidFileUploadCorrelationID("correlationId is required.")
	}
	key := fileUploadKey(deviceID, correlationID)
	now := h.Now().UTC()
	var up *fileUpload
	err = h.db.View(func(tx *store.Tx) error {
		b := tx.Get(store.FileUploads, key)
		if b == nil {
			return nil
		}
		up = &fileUpload{}
		return json.Unmarshal(b, up)
	})
	if err != nil {
		return err
	}
	if up == nil {
		return huberr.InvalidFileUploadCorrelationID("The correlation id '%s' does not name a file upload of device %s.", correlationID, deviceID)
	}
	if !now.Before(up.Expiry) {
		_ = h.db.Update(func(tx *store.Tx) error { return tx.Delete(store.FileUploads, key) })
		return huberr.ExpiredFileUploadCorrelationID("The file upload with correlation id '%s' expired at %s.", correlationID, up.Expiry.Format(time.RFC3339))
	}
	var note *FileNotification
	if st.IsSuccess && fu.Notifications {
		props, err := h.blobProperties(ctx, fu, up)
		if err != nil {
			return err
		}
		note = &FileNotification{
			DeviceID:        deviceID,
			BlobURI:         fu.Account.BlobURL(up.Container, up.BlobName),
			BlobName:        up.BlobName,
			LastUpdatedTime: props.LastModified.UTC().Format("2006-01-02T15:04:05-07:00"),
			BlobSizeInBytes: props.Size,
			EnqueuedTimeUTC: Time{now},
		}
	}
	err = h.db.Update(func(tx *store.Tx) error {
		if tx.Get(store.FileUploads, key) == nil {
			return huberr.InvalidFileUploadCorrelationID("The file upload with correlation id '%s' was notified already.", correlationID)
		}
		if err := tx.Delete(store.FileUploads, key); err != nil {
			return err
		}
		if note == nil {
			return nil
		}
		return h.queueFileNotification(tx, note, now)
	})
	if err == nil && note != nil {
		h.fileNoteWake()
	}
	return err
}

// blobProperties reads the uploaded blob's size and time with a short read
// SAS of the hub's own.
func (h *Hub) blobProperties(ctx context.Context, fu *FileUploadConfig, up *fileUpload) (storage.Properties, error) {
	u := fu.Account.BlobURL(up.Container, up.BlobName) + "?" +
		fu.Account.BlobSAS(up.Container, up.BlobName, "r", time.Time{}, time.Now().Add(5*time.Minute))
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	p, err := h.storageClient().GetProperties(ctx, u)
	if err != nil {
		var se *storage.Error
		if errors.As(err, &se) && se.StatusCode == http.StatusNotFound {
			return p, huberr.InvalidStorageEndpointOrBlob("The blob %s/%s does not exist in storage: upload it before notifying success.", up.Container, up.BlobName)
		}
		return p, huberr.InvalidStorageEndpointOrBlob("The hub could not read the blob %s/%s from storage: %v", up.Container, up.BlobName, err)
	}
	return p, nil
}

// ActiveFileUploads returns the number of a device's uploads that are
// neither notified nor expired (emulator-only).
func (h *Hub) ActiveFileUploads(deviceID string) (int, error) {
	n := 0
	now := h.Now()
	err := h.db.View(func(tx *store.Tx) error {
		return tx.ForEach(store.FileUploads, deviceID+"\x00", "", func(_ string, v []byte) error {
			var u fileUpload
			if err := json.Unmarshal(v, &u); err != nil {
				return err
			}
			if now.Before(u.Expiry) {
				n++
			}
			return nil
		})
	})
	return n, err
}

// dropDeviceFileUploads forgets a deleted device's uploads.
func dropDeviceFileUploads(tx *store.Tx, deviceID string) error {
	var keys []string
	if err := tx.ForEach(store.FileUploads, deviceID+"\x00", "", func(k string, _ []byte) error {
		keys = append(keys, k)
		return nil
	}); err != nil {
		return err
	}
	for _, k := range keys {
		if err := tx.Delete(store.FileUploads, k); err != nil {
			return err
		}
	}
	return nil
}
