// SPDX-License-Identifier: MIT

package service

import (
	"context"
	"encoding/json"
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

	rcv *received
}

// FileNotificationReceiver takes file-upload notifications from the hub's
// notification queue over AMQP (/messages/serviceBound/filenotifications,
// as the official SDKs read it), on the client's AMQP connection (see
// Close). Each notification is locked until completed (removed), abandoned
// (returned to the queue) or rejected (dead-lettered); a lock that expires
// returns it to the queue. Each Receive asks the hub for one
// notification, so the hub locks only what was asked for.
type FileNotificationReceiver struct {
	q *queueReceiver
}

// FileNotificationReceiver returns a receiver of file-upload
// notifications. It attaches on the first Receive.
func (c *Client) FileNotificationReceiver() *FileNotificationReceiver {
	return &FileNotificationReceiver{q: newQueueReceiver(c, "/messages/serviceBound/filenotifications")}
}

// Receive waits for the next notification and locks it. It returns when
// one arrives, ctx ends, or the receiver is closed (ErrClosed).
func (r *FileNotificationReceiver) Receive(ctx context.Context) (*FileNotification, error) {
	const op = "ReceiveFileNotification"
	m, err := r.q.receive(ctx, op)
	if err != nil {
		return nil, err
	}
	n := &FileNotification{rcv: &received{msg: m}}
	if err := json.Unmarshal(body(m), n); err != nil {
		_ = r.q.settle(ctx, op, n.rcv, outcomeAbandon)
		return nil, errorf(op, "decoding the notification: %w", err)
	}
	return n, nil
}

// Complete removes a received notification from the queue.
func (r *FileNotificationReceiver) Complete(ctx context.Context, n *FileNotification) error {
	return r.q.settle(ctx, "CompleteFileNotification", notificationMsg(n), outcomeComplete)
}

// Abandon returns a received notification to the queue for another
// receive.
func (r *FileNotificationReceiver) Abandon(ctx context.Context, n *FileNotification) error {
	return r.q.settle(ctx, "AbandonFileNotification", notificationMsg(n), outcomeAbandon)
}

// Reject drops a received notification (the hub dead-letters it).
func (r *FileNotificationReceiver) Reject(ctx context.Context, n *FileNotification) error {
	return r.q.settle(ctx, "RejectFileNotification", notificationMsg(n), outcomeReject)
}

// Close detaches the receiver: a Receive in progress ends with ErrClosed.
// Notifications received and not settled return to the queue.
func (r *FileNotificationReceiver) Close() error {
	r.q.close()
	return nil
}

func notificationMsg(n *FileNotification) *received {
	if n == nil {
		return nil
	}
	return n.rcv
}
