// SPDX-License-Identifier: MIT

package amqpapi

import (
	"context"
	"encoding/json"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/amqp"
	"github.com/iothubemulator/iothub/emulator/internal/amqp/codec"
	"github.com/iothubemulator/iothub/emulator/internal/hub"
)

// Service-bound queues (/messages/serviceBound/feedback and
// .../filenotifications) are read on a receiver link. Each message
// the hub sends is locked in the hub's queue while it is on its way; the
// client's outcome settles it there: accepted completes it, released or
// modified abandons it (it comes again, its delivery count one higher),
// rejected dead-letters it (amqp.md §2.4). A message the client never
// settles is abandoned when the link ends, or comes again when its lock
// expires. A client that receives pre-settled (snd-settle-mode settled)
// completes each message as it is sent.

// queuePoll is how often an idle queue reader looks again: expired locks
// and expired cloud-to-device messages (whose Expired feedback appears
// when the hub next looks) wake nobody.
const queuePoll = time.Second

// queueMessage is one locked message of a service-bound queue.
type queueMessage struct {
	lockToken string
	msg       *amqp.Message
}

// serviceQueue is a hub queue as the receiver link sees it.
type serviceQueue interface {
	notify() <-chan struct{}
	receive(ctx context.Context) (*queueMessage, error) // nil when empty
	complete(ctx context.Context, lockToken string) error
	abandon(ctx context.Context, lockToken string) error
	reject(ctx context.Context, lockToken string) error
}

// serveQueue sends the queue's messages as the client grants credit.
func (c *conn) serveQueue(l *amqp.Link, q serviceQueue) {
	ctx, cancel := c.linkContext(l)
	defer cancel()
	poll := time.NewTicker(queuePoll)
	defer poll.Stop()
	for {
		changed := l.CreditChanged()
		if credit, _ := l.Credit(); credit == 0 {
			select {
			case <-changed:
				continue
			case <-ctx.Done():
				return
			}
		}
		wake := q.notify()
		m, err := q.receive(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			c.log.Error("amqp: queue receive failed", "link", l.Name(), "err", err)
		}
		if m == nil {
			select {
			case <-wake:
			case <-poll.C:
			case <-ctx.Done():
				return
			}
			continue
		}
		out, err := l.Send(ctx, m.msg, &amqp.SendOptions{Tag: lockTag(m.lockToken)})
		if err != nil {
			// Never sent: back to the queue for the next reader.
			_ = q.abandon(context.WithoutCancel(ctx), m.lockToken)
			return
		}
		go c.settleQueued(q, out, m.lockToken)
	}
}

// settleQueued applies the client's outcome to the locked message.
func (c *conn) settleQueued(q serviceQueue, out *amqp.Outgoing, lockToken string) {
	<-out.Done()
	ctx := context.WithoutCancel(c.srv.ctx)
	var err error
	switch out.State().(type) {
	case *amqp.Accepted:
		err = q.complete(ctx, lockToken)
	case *amqp.Rejected:
		err = q.reject(ctx, lockToken)
	case nil:
		if out.Err() == nil {
			err = q.complete(ctx, lockToken) // sent pre-settled
		} else {
			err = q.abandon(ctx, lockToken) // the link ended first
		}
	default: // released, modified
		err = q.abandon(ctx, lockToken)
	}
	if err != nil {
		// Typically the lock expired first: the message comes again.
		c.log.Debug("amqp: queue settlement not applied", "lock", lockToken, "err", err)
	}
}

// lockTag is the delivery tag of a locked message (a cloud-to-device
// delivery, or one of a service-bound queue): its lock token's 16 bytes in
// the order .NET's Guid keeps them, since the C# SDKs read the lock token
// as new Guid(deliveryTag) and settle with Guid.ToByteArray() again (Edge
// Hub does the same). Other SDKs settle by delivery and never look inside
// the tag. A token that is no UUID (never one of the hub's) goes as text,
// cut to the 32 bytes a tag may have.
func lockTag(lockToken string) []byte {
	if u, ok := codec.ParseUUID(lockToken); ok {
		return []byte{u[3], u[2], u[1], u[0], u[5], u[4], u[7], u[6], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]}
	}
	if len(lockToken) > 32 {
		return []byte(lockToken[:32])
	}
	return []byte(lockToken)
}

// feedbackQueue is the hub's feedback queue.
type feedbackQueue struct {
	hub     *hub.Hub
	hubName string
}

var needFeedback = Need{Rights: hub.ServiceConnect, Resource: "messages/servicebound/feedback"}

func (c *conn) attachFeedback(l *amqp.Link) error {
	if err := needRole(l, NodeFeedback, false); err != nil {
		return err
	}
	if _, err := c.authorize(l, needFeedback); err != nil {
		return err
	}
	go c.serveQueue(l, &feedbackQueue{hub: c.srv.hub, hubName: c.srv.eventHub})
	return nil
}

func (q *feedbackQueue) notify() <-chan struct{} { return q.hub.FeedbackNotify() }

// receive locks the next feedback batch and builds the message the hub
// sends for it: a JSON array of records, content type
// application/vnd.microsoft.iothub.feedback.json, the hub's name as
// user-id.
func (q *feedbackQueue) receive(ctx context.Context) (*queueMessage, error) {
	fm, err := q.hub.ReceiveFeedback(ctx, 0)
	if err != nil || fm == nil {
		return nil, err
	}
	body, err := json.Marshal(fm.Records)
	if err != nil {
		return nil, err
	}
	return &queueMessage{lockToken: fm.LockToken, msg: &amqp.Message{
		Header: &amqp.Header{Durable: true, Priority: 4, DeliveryCount: uint32(max(fm.DeliveryCount-1, 0))},
		Annotations: amqp.Annotations{
			"iothub-enqueuedtime":   fm.EnqueuedTime,
			"x-opt-sequence-number": int64(fm.Seq),
		},
		Properties: &amqp.Properties{
			MessageID:          fm.MessageID,
			UserID:             []byte(q.hubName),
			To:                 "/messages/serviceBound/feedback",
			ContentType:        hub.FeedbackContentType,
			ContentEncoding:    "utf-8",
			AbsoluteExpiryTime: fm.ExpiryTime,
			CreationTime:       fm.EnqueuedTime,
		},
		Data: [][]byte{body},
	}}, nil
}

func (q *feedbackQueue) complete(ctx context.Context, tok string) error {
	return q.hub.CompleteFeedback(ctx, tok)
}

func (q *feedbackQueue) abandon(ctx context.Context, tok string) error {
	return q.hub.AbandonFeedback(ctx, tok)
}

func (q *feedbackQueue) reject(ctx context.Context, tok string) error {
	return q.hub.RejectFeedback(ctx, tok)
}

// fileNotificationQueue is the hub's file-upload notification queue.
type fileNotificationQueue struct {
	hub     *hub.Hub
	hubName string
}

var needFileNotifications = Need{Rights: hub.ServiceConnect, Resource: "messages/servicebound/filenotifications"}

func (c *conn) attachFileNotifications(l *amqp.Link) error {
	if err := needRole(l, NodeFileNotifications, false); err != nil {
		return err
	}
	if _, err := c.authorize(l, needFileNotifications); err != nil {
		return err
	}
	go c.serveQueue(l, &fileNotificationQueue{hub: c.srv.hub, hubName: c.srv.eventHub})
	return nil
}

func (q *fileNotificationQueue) notify() <-chan struct{} { return q.hub.FileNotificationNotify() }

// receive locks the next notification and builds the message the hub
// sends for it: the notification's JSON object, content type
// application/vnd.microsoft.iothub.filenotification.json, the hub's name
// as user-id.
func (q *fileNotificationQueue) receive(ctx context.Context) (*queueMessage, error) {
	fm, err := q.hub.ReceiveFileNotification(ctx, 0, 0)
	if err != nil || fm == nil {
		return nil, err
	}
	return &queueMessage{lockToken: fm.LockToken, msg: &amqp.Message{
		Header:      &amqp.Header{Durable: true, Priority: 4, DeliveryCount: uint32(max(fm.DeliveryCount-1, 0))},
		Annotations: amqp.Annotations{"iothub-enqueuedtime": fm.EnqueuedTime},
		Properties: &amqp.Properties{
			MessageID:          fm.MessageID,
			UserID:             []byte(q.hubName),
			To:                 "/messages/serviceBound/filenotifications",
			ContentType:        hub.FileNotificationContentType,
			ContentEncoding:    "utf-8",
			AbsoluteExpiryTime: fm.ExpiryTime,
			CreationTime:       fm.EnqueuedTime,
		},
		Data: [][]byte{fm.Body()},
	}}, nil
}

func (q *fileNotificationQueue) complete(ctx context.Context, tok string) error {
	return q.hub.CompleteFileNotification(ctx, tok)
}

func (q *fileNotificationQueue) abandon(ctx context.Context, tok string) error {
	return q.hub.AbandonFileNotification(ctx, tok)
}

func (q *fileNotificationQueue) reject(ctx context.Context, tok string) error {
	return q.hub.RejectFileNotification(ctx, tok)
}
