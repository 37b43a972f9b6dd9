// SPDX-License-Identifier: MIT

package service

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/go-amqp"

	"github.com/iothubemulator/iothub/internal/wire"
)

// Delivery feedback: the hub's feedback queue, read over AMQP with a
// FeedbackReceiver (/messages/serviceBound/feedback, as the official SDKs
// read it) or over HTTPS with ReceiveFeedback, CompleteFeedback and
// AbandonFeedback (GET /messages/serviceBound/feedback, as Python's
// IoTHubHttpRuntimeManager reads it). Both settle the same queue. Each
// queued message is a batch of records (the hub batches up to 64 records
// or 15 seconds).

// FeedbackStatus is the outcome a Feedback record reports.
type FeedbackStatus string

// Feedback outcomes, as the hub names them (C# service SDK
// FeedbackStatusCode).
const (
	FeedbackSuccess               FeedbackStatus = "Success"               // the device completed the message
	FeedbackExpired               FeedbackStatus = "Expired"               // the time to live ran out before completion
	FeedbackDeliveryCountExceeded FeedbackStatus = "DeliveryCountExceeded" // delivered the maximum number of times without completion
	FeedbackRejected              FeedbackStatus = "Rejected"              // the device rejected the message
	FeedbackPurged                FeedbackStatus = "Purged"                // the queue was purged
)

// Feedback is a cloud-to-device delivery outcome that the message's Ack
// asked for. The fields are those of a real hub's feedback record.
type Feedback struct {
	OriginalMessageID  string         `json:"originalMessageId"`  // MessageID of the cloud-to-device message
	DeviceGenerationID string         `json:"deviceGenerationId"` // generation of the target device
	DeviceID           string         `json:"deviceId"`           // target device
	EnqueuedTimeUTC    time.Time      `json:"enqueuedTimeUtc"`    // when the outcome happened
	StatusCode         FeedbackStatus `json:"statusCode"`         // outcome
	Description        string         `json:"description"`        // outcome in words
}

// FeedbackBatch is one message of the feedback queue: feedback records,
// locked until completed, abandoned or rejected.
type FeedbackBatch struct {
	Records       []Feedback // the records, oldest first
	MessageID     string     // the feedback message's own id
	EnqueuedTime  time.Time  // when the hub queued the batch
	DeliveryCount int        // times the batch was delivered before this one
	LockToken     string     // the lock: over HTTPS, what CompleteFeedback and AbandonFeedback take

	rcv *received // set when the batch came over AMQP
}

// FeedbackReceiver reads the hub's feedback queue over AMQP, on the
// client's AMQP connection (see Close). Each batch received is locked
// until Complete (removed), Abandon (returned to the queue for another
// receive) or Reject (dead-lettered); one not settled within the hub's
// lock time (60 s) comes again. Each Receive asks the hub for one batch,
// so the hub locks only what was asked for. A lost connection is reopened
// as the retry policy allows; batches received on it can no longer be
// settled (ErrPreconditionFailed, 412002) and come again.
type FeedbackReceiver struct {
	q *queueReceiver
}

// FeedbackReceiver returns a receiver of the hub's delivery feedback. It
// attaches on the first Receive.
func (c *Client) FeedbackReceiver() *FeedbackReceiver {
	return &FeedbackReceiver{q: newQueueReceiver(c, "/messages/serviceBound/feedback")}
}

// Receive waits for the next feedback batch and locks it. It returns when
// one arrives, ctx ends, or the receiver is closed (ErrClosed).
func (r *FeedbackReceiver) Receive(ctx context.Context) (*FeedbackBatch, error) {
	const op = "ReceiveFeedback"
	m, err := r.q.receive(ctx, op)
	if err != nil {
		return nil, err
	}
	rm := &received{msg: m}
	b := &FeedbackBatch{rcv: rm, EnqueuedTime: annotationTime(m, "iothub-enqueuedtime")}
	if m.Properties != nil {
		b.MessageID = idString(m.Properties.MessageID)
		if b.EnqueuedTime.IsZero() && m.Properties.CreationTime != nil {
			b.EnqueuedTime = m.Properties.CreationTime.UTC()
		}
	}
	if m.Header != nil {
		b.DeliveryCount = int(m.Header.DeliveryCount)
	}
	b.LockToken = lockToken(m.DeliveryTag)
	if err := json.Unmarshal(body(m), &b.Records); err != nil {
		// Not a batch the client can read: the hub keeps it for a look
		// with another tool rather than it being lost.
		_ = r.q.settle(ctx, op, rm, outcomeAbandon)
		return nil, errorf(op, "decoding feedback: %w", err)
	}
	return b, nil
}

// Complete removes a received batch from the queue.
func (r *FeedbackReceiver) Complete(ctx context.Context, b *FeedbackBatch) error {
	return r.q.settle(ctx, "CompleteFeedback", batchMsg(b), outcomeComplete)
}

// Abandon returns a received batch to the queue for another receive.
func (r *FeedbackReceiver) Abandon(ctx context.Context, b *FeedbackBatch) error {
	return r.q.settle(ctx, "AbandonFeedback", batchMsg(b), outcomeAbandon)
}

// Reject drops a received batch (the hub dead-letters it).
func (r *FeedbackReceiver) Reject(ctx context.Context, b *FeedbackBatch) error {
	return r.q.settle(ctx, "RejectFeedback", batchMsg(b), outcomeReject)
}

// Close detaches the receiver: a Receive in progress ends with ErrClosed.
// Batches received and not settled return to the queue.
func (r *FeedbackReceiver) Close() error {
	r.q.close()
	return nil
}

func batchMsg(b *FeedbackBatch) *received {
	if b == nil {
		return nil
	}
	return b.rcv
}

// lockToken is the lock token a delivery tag stands for: the hub's tags
// are the lock's 16-byte UUID.
func lockToken(tag []byte) string {
	if len(tag) == 16 {
		var u amqp.UUID
		copy(u[:], tag)
		return u.String()
	}
	return string(tag)
}

// ReceiveFeedback locks the next batch of the feedback queue over HTTPS
// (GET /messages/serviceBound/feedback), as the Python SDK's
// IoTHubHttpRuntimeManager does; settle it with CompleteFeedback or
// AbandonFeedback and its LockToken. It returns nil and no error when the
// queue is empty. It is not retried: a repeat after a lost answer would
// lock a second batch and leave the first locked until its lock expires.
func (c *Client) ReceiveFeedback(ctx context.Context) (*FeedbackBatch, error) {
	const op = "ReceiveFeedbackHTTP"
	b := &FeedbackBatch{}
	h, err := c.do(ctx, &call{op: op, method: http.MethodGet, path: "/messages/serviceBound/feedback"}, &b.Records)
	if err != nil {
		return nil, err
	}
	b.LockToken = strings.Trim(h.Get("ETag"), `"`)
	if b.LockToken == "" {
		return nil, nil // 204: nothing queued
	}
	b.MessageID = h.Get("iothub-messageid")
	b.EnqueuedTime = headerTime(h.Get("iothub-enqueuedtime"))
	if n, err := strconv.Atoi(h.Get("iothub-deliverycount")); err == nil {
		b.DeliveryCount = n
	}
	return b, nil
}

// CompleteFeedback removes the batch locked by lockToken from the feedback
// queue (DELETE /messages/serviceBound/feedback/{lockToken}). An expired
// or unknown lock gives an error matching ErrPreconditionFailed
// (412002 DeviceMessageLockLost) or ErrNotFound.
func (c *Client) CompleteFeedback(ctx context.Context, lockToken string) error {
	return c.settleFeedback(ctx, "CompleteFeedback", http.MethodDelete, lockToken, "")
}

// AbandonFeedback returns the batch locked by lockToken to the feedback
// queue (POST /messages/serviceBound/feedback/{lockToken}/abandon).
func (c *Client) AbandonFeedback(ctx context.Context, lockToken string) error {
	return c.settleFeedback(ctx, "AbandonFeedback", http.MethodPost, lockToken, "/abandon")
}

func (c *Client) settleFeedback(ctx context.Context, op, method, lockToken, suffix string) error {
	if lockToken == "" {
		return errorf(op, "lock token is required")
	}
	_, err := c.do(ctx, &call{op: op, method: method, path: "/messages/serviceBound/feedback/" + wire.Escape(lockToken) + suffix}, nil)
	return err
}

// PurgeResult is the answer to PurgeC2DQueue.
type PurgeResult struct {
	DeviceID            string `json:"deviceId"`
	ModuleID            string `json:"moduleId,omitempty"`
	TotalMessagesPurged int    `json:"totalMessagesPurged"` // messages removed from the queue
}

// PurgeC2DQueue deletes every cloud-to-device message queued for a device
// (DELETE /devices/{id}/commands); messages that asked for negative or
// full acknowledgement produce Purged feedback. An unknown device gives an
// error matching ErrNotFound. It is retried as a delete; a repeat after a
// lost answer reports only what that repeat removed.
func (c *Client) PurgeC2DQueue(ctx context.Context, deviceID string) (*PurgeResult, error) {
	const op = "PurgeC2DQueue"
	if deviceID == "" {
		return nil, errorf(op, "device id is required")
	}
	var out PurgeResult
	if _, err := c.do(ctx, &call{op: op, method: http.MethodDelete, path: devicePath(deviceID) + "/commands", idempotent: true}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// headerTime reads a time header in the forms the hub writes: RFC 1123
// (with GMT or UTC) or RFC 3339.
func headerTime(v string) time.Time {
	if t, err := http.ParseTime(v); err == nil {
		return t.UTC()
	}
	for _, layout := range []string{time.RFC1123, time.RFC1123Z, time.RFC3339Nano} {
		if t, err := time.Parse(layout, v); err == nil {
			return t.UTC()
		}
	}
	return time.Time{}
}
