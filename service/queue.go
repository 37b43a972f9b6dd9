// SPDX-License-Identifier: MIT

package service

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/go-amqp"

	"github.com/iothubemulator/iothub/internal/wire"
)

// The hub's service-bound queues (feedback, file-upload notifications)
// are read on a receiver link (amqp.md §2.4, §2.5). Each message is locked
// in the hub's queue while the client holds it; the client settles it with
// an outcome: accepted completes it, released abandons it (it comes again,
// its delivery count one higher), rejected dead-letters it. A message the
// client does not settle comes again when its lock expires (60 s on the
// hub) or when the link ends. Each Receive asks the hub for one message
// (link credit 1, granted by the call), so the hub locks only messages the
// caller asked for.

// queueReceiver reads one service-bound queue on the client's hub
// connection, attaching again after the link or connection is lost.
type queueReceiver struct {
	c       *Client
	address string

	mu     sync.Mutex
	conn   *amqpConn
	recv   *amqp.Receiver
	credit int // granted on recv and not yet used
	closed bool
	stop   chan struct{} // closed by close: ends a Receive in progress
}

func newQueueReceiver(c *Client, address string) *queueReceiver {
	return &queueReceiver{c: c, address: address, stop: make(chan struct{})}
}

// link returns the receiver link, attaching it when needed.
func (q *queueReceiver) link(ctx context.Context, op string) (*amqp.Receiver, string, error) {
	a, err := q.c.hubConn(ctx, op)
	if err != nil {
		return nil, "", err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return nil, "", errorf(op, "%w", ErrClosed)
	}
	if q.recv != nil && q.conn == a {
		return q.recv, a.target.addr, nil
	}
	r, err := a.sess.NewReceiver(ctx, q.address, &amqp.ReceiverOptions{
		Credit:         -1, // granted by each receive
		SettlementMode: ptr(amqp.ReceiverSettleModeFirst),
	})
	if err != nil {
		return nil, "", q.c.amqpError(op, a.target.addr, err)
	}
	q.conn, q.recv, q.credit = a, r, 0
	return r, a.target.addr, nil
}

// drop forgets r after it failed, so that the next receive attaches anew.
func (q *queueReceiver) drop(r *amqp.Receiver) {
	q.mu.Lock()
	if q.recv == r {
		q.recv = nil
	}
	q.mu.Unlock()
	closeLink(r)
}

func closeLink(l interface{ Close(context.Context) error }) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = l.Close(ctx)
}

// receive waits for the next message. Lost links and connections are
// replaced as the retry policy allows; the hub's refusals end the call.
func (q *queueReceiver) receive(ctx context.Context, op string) (*amqp.Message, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-q.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	var m *amqp.Message
	var addr string
	err := q.c.withRetries(ctx, op, q.c.hubTarget().addr, func() error {
		r, a, err := q.link(ctx, op)
		if err != nil {
			return err
		}
		addr = a
		// Ask for one message, unless an earlier receive that gave up
		// already did.
		q.mu.Lock()
		if q.recv == r && q.credit == 0 {
			if err := r.IssueCredit(1); err == nil {
				q.credit = 1
			}
		}
		q.mu.Unlock()
		m, err = r.Receive(ctx, nil)
		if err == nil {
			q.mu.Lock()
			if q.recv == r && q.credit > 0 {
				q.credit--
			}
			q.mu.Unlock()
		}
		if err != nil {
			if ctx.Err() == nil {
				q.drop(r)
			}
			return q.c.amqpError(op, addr, err)
		}
		return nil
	})
	if err != nil {
		if q.isClosed() {
			return nil, errorf(op, "%w", ErrClosed)
		}
		return nil, err
	}
	return m, nil
}

func (q *queueReceiver) isClosed() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.closed
}

// received is a message as a receiver handed it out, settled at most once.
type received struct {
	msg     *amqp.Message
	settled atomic.Bool
}

// Outcomes of a received message.
const (
	outcomeComplete = iota // accepted
	outcomeAbandon         // released
	outcomeReject          // rejected
)

// settle sends the outcome for m on the link it came on. A message whose
// link has gone was returned to the queue by the hub: settling it fails
// with the hub's lock-lost error.
func (q *queueReceiver) settle(ctx context.Context, op string, rm *received, outcome int) error {
	if rm == nil || rm.msg == nil {
		return errorf(op, "the message was not received by this client")
	}
	if rm.settled.Swap(true) {
		// As the hub answers a lock token used twice on HTTPS.
		e := lockLost(op)
		e.Message = "the message was already settled; its lock is no longer held"
		return e
	}
	m := rm.msg
	q.mu.Lock()
	r := q.recv
	q.mu.Unlock()
	if r == nil {
		return lockLost(op)
	}
	var err error
	switch outcome {
	case outcomeComplete:
		err = r.AcceptMessage(ctx, m)
	case outcomeAbandon:
		err = r.ReleaseMessage(ctx, m)
	default:
		err = r.RejectMessage(ctx, m, nil)
	}
	if err != nil {
		var ae *amqp.Error
		if errors.As(err, &ae) {
			return q.c.amqpError(op, q.c.hubTarget().addr, err)
		}
		if ctx.Err() != nil {
			return errorf(op, "%w", ctx.Err())
		}
		return fmt.Errorf("%w: %w", lockLost(op), err)
	}
	return nil
}

// lockLost is the error of settling a message whose link has gone: the hub
// released its lock, and it comes again.
func lockLost(op string) *Error {
	return &Error{Op: op, StatusCode: http.StatusPreconditionFailed, Code: CodeDeviceMessageLockLost,
		CodeName: wire.CodeName(CodeDeviceMessageLockLost),
		Message:  "the link the message came on has closed; the hub returns the message to the queue"}
}

func (q *queueReceiver) close() {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return
	}
	q.closed = true
	close(q.stop)
	r := q.recv
	q.recv = nil
	q.mu.Unlock()
	if r != nil {
		closeLink(r)
	}
}

// annotationTime reads a timestamp message annotation.
func annotationTime(m *amqp.Message, name string) time.Time {
	if t, ok := annotation(m, name).(time.Time); ok {
		return t.UTC()
	}
	return time.Time{}
}

// annotation reads a message annotation, whose key arrives as a symbol.
func annotation(m *amqp.Message, name string) any {
	for k, v := range m.Annotations {
		switch key := k.(type) {
		case string:
			if key == name {
				return v
			}
		case amqp.Symbol:
			if string(key) == name {
				return v
			}
		}
	}
	return nil
}

// body is a message's payload: its data sections, or an amqp-value of
// binary or string.
func body(m *amqp.Message) []byte {
	if len(m.Data) == 1 {
		return m.Data[0]
	}
	if len(m.Data) > 1 {
		var b []byte
		for _, d := range m.Data {
			b = append(b, d...)
		}
		return b
	}
	switch v := m.Value.(type) {
	case []byte:
		return v
	case string:
		return []byte(v)
	}
	return nil
}
