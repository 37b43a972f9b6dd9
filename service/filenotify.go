// SPDX-License-Identifier: MIT

package service

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// FileNotification is the hub's notice that a device finished a file
// upload: which device, which blob, its size and time.
type FileNotification struct {
	DeviceID        string    `json:"deviceId"`
	BlobURI         string    `json:"blobUri"`
	BlobName        string    `json:"blobName"` // {deviceId}/{name the device chose}
	LastUpdatedTime time.Time `json:"lastUpdatedTime"`
	BlobSizeInBytes int64     `json:"blobSizeInBytes"`
	EnqueuedTime    time.Time `json:"enqueuedTimeUtc"`

	lockToken string
}

// FileNotificationReceiver takes file-upload notifications from the hub's
// notification queue, each locked until completed (removed), abandoned
// (returned to the queue) or rejected (dropped); a lock that expires
// returns the notification to the queue. Settle every notification
// received.
//
// A real hub delivers them over AMQP (/messages/serviceBound/filenotifications),
// which this client does not speak yet: for now the receiver reads the
// emulator's test-control route and fails with ErrEmulatorOnly against a
// real hub. Its methods stay the same when it gains AMQP.
type FileNotificationReceiver struct {
	c      *Client
	mu     sync.Mutex
	closed bool
}

// FileNotificationReceiver returns a receiver of file-upload notifications.
func (c *Client) FileNotificationReceiver() *FileNotificationReceiver {
	return &FileNotificationReceiver{c: c}
}

// fileNotificationPoll is one long poll of the emulator's route.
const fileNotificationPoll = 20 * time.Second

const fileNotificationPath = "/emulator/filenotifications"

// Receive waits for the next notification and locks it. It returns when
// one arrives, ctx ends, or the receiver is closed (ErrClosed).
func (r *FileNotificationReceiver) Receive(ctx context.Context) (*FileNotification, error) {
	const op = "ReceiveFileNotification"
	for {
		r.mu.Lock()
		closed := r.closed
		r.mu.Unlock()
		if closed {
			return nil, errorf(op, "%w", ErrClosed)
		}
		wait := fileNotificationPoll
		if dl, ok := ctx.Deadline(); ok {
			wait = min(wait, time.Until(dl))
		}
		if wait <= 0 {
			return nil, errorf(op, "%w", context.DeadlineExceeded)
		}
		var n FileNotification
		q := "wait=" + strconv.FormatFloat(wait.Seconds(), 'f', 3, 64)
		h, err := r.c.do(ctx, &call{op: op, method: http.MethodGet, path: fileNotificationPath, query: q, idempotent: true}, &n)
		if err != nil {
			return nil, emulatorOnly(op, r.c.host, err)
		}
		if tok := strings.Trim(h.Get("ETag"), `"`); tok != "" {
			n.lockToken = tok
			return &n, nil
		}
		if err := ctx.Err(); err != nil {
			return nil, errorf(op, "%w", err)
		}
	}
}

// Complete removes a received notification from the queue.
func (r *FileNotificationReceiver) Complete(ctx context.Context, n *FileNotification) error {
	return r.settle(ctx, "CompleteFileNotification", http.MethodDelete, n, "", "")
}

// Abandon returns a received notification to the queue for another
// receive.
func (r *FileNotificationReceiver) Abandon(ctx context.Context, n *FileNotification) error {
	return r.settle(ctx, "AbandonFileNotification", http.MethodPost, n, "/abandon", "")
}

// Reject drops a received notification (the hub dead-letters it).
func (r *FileNotificationReceiver) Reject(ctx context.Context, n *FileNotification) error {
	return r.settle(ctx, "RejectFileNotification", http.MethodDelete, n, "", "reject")
}

func (r *FileNotificationReceiver) settle(ctx context.Context, op, method string, n *FileNotification, suffix, query string) error {
	if n == nil || n.lockToken == "" {
		return errorf(op, "the notification was not received by this client")
	}
	_, err := r.c.do(ctx, &call{op: op, method: method, path: fileNotificationPath + "/" + n.lockToken + suffix, query: query}, nil)
	return emulatorOnly(op, r.c.host, err)
}

// Close stops the receiver: a Receive in progress ends with ErrClosed at
// its next poll, later ones at once. Notifications received and not
// settled return to the queue when their lock expires.
func (r *FileNotificationReceiver) Close() error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	return nil
}
