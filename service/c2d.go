// SPDX-License-Identifier: MIT

package service

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"time"

	"github.com/Azure/go-amqp"

	"github.com/iothubemulator/iothub/internal/wire"
)

// Cloud-to-device messages go to the hub over AMQP, as every official
// service SDK sends them (amqp.md §2.3): transfers on a sender link to
// /messages/devicebound, each addressed by its to property,
// /devices/{deviceId}/messages/devicebound, and settled by the hub:
// accepted once queued, rejected with amqp:not-found for an unknown device
// and amqp:resource-limit-exceeded for a full queue.

// Acknowledgements a cloud-to-device message may ask for (C2DMessage.Ack):
// which delivery outcomes produce a Feedback record.
const (
	AckNone     = "none"     // no feedback (the default)
	AckPositive = "positive" // feedback when the device completes the message
	AckNegative = "negative" // feedback when the message expires, is rejected or exceeds the delivery count
	AckFull     = "full"     // feedback on every outcome
)

// C2DMessage is a cloud-to-device message to queue with SendC2D.
type C2DMessage struct {
	Body            []byte            // payload, sent as is; at most 64 KB with the properties
	MessageID       string            // message id; Feedback.OriginalMessageID refers to it
	CorrelationID   string            // correlation id
	UserID          string            // user id (AMQP user-id); leave it empty unless the hub expects one
	Ack             string            // AckNone, AckPositive, AckNegative or AckFull; "" means none
	ContentType     string            // content type of Body, e.g. "application/json"
	ContentEncoding string            // content encoding of Body, e.g. "utf-8"
	TTL             time.Duration     // time to live from the send, at most 48h; 0 means the hub's default (1h)
	ExpiryTime      time.Time         // absolute expiry; when set it replaces TTL
	Properties      map[string]string // application properties
}

// uuidLike is the form of message id that the Node SDK sends as an AMQP
// uuid rather than a string (azure-iot-amqp-base amqp_message encodeUuid):
// a lower-case RFC 4122 version 1 to 5 UUID. The hub reports it back in
// the same 8-4-4-4-12 form.
var uuidLike = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[1-5][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// amqpID is an id as the Node SDK puts it on the wire.
func amqpID(id string) any {
	if !uuidLike.MatchString(id) {
		return id
	}
	var u amqp.UUID
	hex := id[0:8] + id[9:13] + id[14:18] + id[19:23] + id[24:36]
	for i := range u {
		_, _ = fmt.Sscanf(hex[2*i:2*i+2], "%02x", &u[i])
	}
	return u
}

// c2dAMQP builds the AMQP message for m to deviceID, with the properties
// the official SDKs set: to, message-id, correlation-id, content type and
// encoding, absolute-expiry-time, user-id, application properties with
// iothub-ack, and the body as one data section.
func c2dAMQP(deviceID string, m *C2DMessage, now time.Time) (*amqp.Message, error) {
	if m.TTL < 0 {
		return nil, fmt.Errorf("negative time to live %v", m.TTL)
	}
	p := &amqp.MessageProperties{To: ptr("/devices/" + wire.Escape(deviceID) + "/messages/devicebound")}
	if m.MessageID != "" {
		p.MessageID = amqpID(m.MessageID)
	}
	if m.CorrelationID != "" {
		p.CorrelationID = amqpID(m.CorrelationID)
	}
	if m.UserID != "" {
		p.UserID = []byte(m.UserID)
	}
	if m.ContentType != "" {
		p.ContentType = ptr(m.ContentType)
	}
	if m.ContentEncoding != "" {
		p.ContentEncoding = ptr(m.ContentEncoding)
	}
	switch {
	case !m.ExpiryTime.IsZero():
		p.AbsoluteExpiryTime = ptr(m.ExpiryTime.UTC())
	case m.TTL > 0:
		p.AbsoluteExpiryTime = ptr(now.Add(m.TTL).UTC())
	}
	msg := &amqp.Message{Properties: p, Data: [][]byte{m.Body}}
	if m.Body == nil {
		msg.Data = [][]byte{{}}
	}
	if m.Ack != "" || len(m.Properties) > 0 {
		msg.ApplicationProperties = make(map[string]any, len(m.Properties)+1)
		for k, v := range m.Properties {
			msg.ApplicationProperties[k] = v
		}
		if m.Ack != "" {
			msg.ApplicationProperties["iothub-ack"] = m.Ack
		}
	}
	return msg, nil
}

// SendC2D queues a cloud-to-device message for device deviceID: an AMQP
// transfer to /messages/devicebound, the way the official service SDKs
// send one, on the client's AMQP connection (opened on first use; see
// Close). It returns once the hub has accepted (queued) the message. An
// unknown device gives an error matching ErrNotFound (404001
// DeviceNotFound), a full queue (50 messages) one matching ErrForbidden
// (403004 DeviceMaximumQueueDepthExceeded), a message over 64 KB one
// matching ErrMessageTooLarge, and a bad Ack or TTL one matching
// ErrBadRequest; each carries the AMQP condition in Error.Condition.
// Opening the connection is retried as the retry policy allows; the send
// itself is repeated only when the link had ended before the message went
// out (on a connection left idle, say): a repeat after a lost answer could
// queue the message twice.
func (c *Client) SendC2D(ctx context.Context, deviceID string, m *C2DMessage) error {
	const op = "SendC2D"
	if deviceID == "" {
		return errorf(op, "device id is required")
	}
	if m == nil {
		return errorf(op, "message is required")
	}
	msg, err := c2dAMQP(deviceID, m, c.now())
	if err != nil {
		return errorf(op, "%w", err)
	}
	for attempt := 1; ; attempt++ {
		s, addr, err := c.c2dSender(ctx, op)
		if err != nil {
			return err
		}
		receipt, err := s.SendWithReceipt(ctx, msg, nil)
		if err != nil {
			// The transfer did not go out whole, so the hub has not got
			// the message: the link (or connection) ended first, typically
			// while the client was idle. Once, on a new link, it is safe
			// to send again.
			c.dropC2DSender(s)
			if attempt == 1 && isLinkGone(err) && ctx.Err() == nil {
				continue
			}
			return c.c2dError(ctx, op, addr, err)
		}
		state, err := receipt.Wait(ctx)
		if err != nil {
			c.dropC2DSender(s)
			return c.c2dError(ctx, op, addr, err)
		}
		switch st := state.(type) {
		case *amqp.StateAccepted:
			c.log.DebugContext(ctx, "iothub: AMQP cloud-to-device message accepted", "device", deviceID, "messageId", m.MessageID)
			return nil
		case *amqp.StateRejected:
			if st.Error == nil {
				return &Error{Op: op, StatusCode: http.StatusBadRequest, Message: "the hub rejected the message without saying why"}
			}
			return c.c2dError(ctx, op, addr, st.Error)
		default:
			// Released or modified: the hub did not take it, and says it
			// may on another try.
			return &Error{Op: op, StatusCode: http.StatusServiceUnavailable,
				Message: fmt.Sprintf("the hub did not queue the message (outcome %T); it can be sent again", state)}
		}
	}
}

// c2dError is the error of a failed send.
func (c *Client) c2dError(ctx context.Context, op, addr string, err error) error {
	if ctx.Err() != nil {
		return errorf(op, "%w; the hub may or may not have queued the message", ctx.Err())
	}
	err = c.amqpError(op, addr, err)
	if e := asError(err); e != nil && e.Condition != "" {
		c2dCodes(e)
	}
	return err
}

// c2dCodes gives a refused cloud-to-device message the codes REST has for
// the same refusal (Node: amqp_service_errors maps not-found to
// DeviceNotFoundError and resource-limit-exceeded to
// DeviceMaximumQueueDepthExceededError).
func c2dCodes(e *Error) {
	switch e.Condition {
	case "amqp:not-found":
		e.Code = CodeDeviceNotFound
	case "amqp:resource-limit-exceeded":
		e.Code = CodeDeviceMaximumQueueDepth
	default:
		return
	}
	e.CodeName = wire.CodeName(e.Code)
}

// isLinkGone reports whether err ended the link or connection rather than
// refusing one message.
func isLinkGone(err error) bool {
	var linkErr *amqp.LinkError
	var connErr *amqp.ConnError
	var sessErr *amqp.SessionError
	return errors.As(err, &linkErr) || errors.As(err, &connErr) || errors.As(err, &sessErr)
}

// c2dSender returns the sender link to /messages/devicebound, attaching it
// (and connecting) when needed.
func (c *Client) c2dSender(ctx context.Context, op string) (*amqp.Sender, string, error) {
	a, err := c.hubConn(ctx, op)
	if err != nil {
		return nil, "", err
	}
	c.amqpMu.Lock()
	defer c.amqpMu.Unlock()
	if c.amqpClosed {
		return nil, "", errorf(op, "%w", ErrClosed)
	}
	if c.c2d != nil && c.hub == a {
		return c.c2d, a.target.addr, nil
	}
	s, err := a.sess.NewSender(ctx, "/messages/devicebound", nil)
	if err != nil {
		return nil, "", c.amqpError(op, a.target.addr, err)
	}
	c.c2d = s
	return s, a.target.addr, nil
}

func (c *Client) dropC2DSender(s *amqp.Sender) {
	c.amqpMu.Lock()
	if c.c2d == s {
		c.c2d = nil
	}
	c.amqpMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = s.Close(ctx)
}
