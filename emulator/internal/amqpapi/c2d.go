// SPDX-License-Identifier: MIT

package amqpapi

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/amqp"
	"github.com/iothubemulator/iothub/emulator/internal/hub"
)

// /messages/devicebound: the back end sends cloud-to-device messages on a
// sender link, each addressed by its to property,
// /devices/{deviceId}/messages/devicebound (the id URL-encoded). A message
// is accepted once it is durable in the device's queue; an unknown device
// gets amqp:not-found, a full queue (50) amqp:resource-limit-exceeded, a
// message over 64 KB amqp:link:message-size-exceeded (amqp.md §2.3). The
// link goes on after a rejected message.

// appPropAck is the application property that asks for delivery feedback.
const appPropAck = "iothub-ack"

var needC2D = Need{Rights: hub.ServiceConnect, Resource: "messages/devicebound"}

func (c *conn) attachC2D(l *amqp.Link) error {
	if err := needRole(l, NodeC2D, true); err != nil {
		return err
	}
	if _, err := c.authorize(l, needC2D); err != nil {
		return err
	}
	go c.serveC2D(l)
	return nil
}

// serveC2D queues the link's messages one at a time, in the order sent,
// which is the order they reach the devices' queues.
func (c *conn) serveC2D(l *amqp.Link) {
	ctx, cancel := c.linkContext(l)
	defer cancel()
	for {
		d, err := l.Receive(ctx)
		if err != nil {
			return
		}
		state := c.sendC2D(ctx, d)
		if err := d.Settle(state); err != nil {
			return
		}
	}
}

// sendC2D queues one message and returns the outcome for it.
func (c *conn) sendC2D(ctx context.Context, d *amqp.Delivery) amqp.DeliveryState {
	reject := func(cond amqp.Symbol, format string, args ...any) amqp.DeliveryState {
		return &amqp.Rejected{Error: amqp.Errorf(cond, format, args...)}
	}
	m := d.Message
	if m == nil || d.Format != 0 {
		return reject(amqp.ErrNotImplemented, "message format %#x is not supported for cloud-to-device messages; send one message per transfer", d.Format)
	}
	p := m.Properties
	if p == nil || p.To == "" {
		return reject(condArgumentError, "the message has no to property; set it to /devices/{deviceId}/messages/devicebound")
	}
	a, err := ParseAddress(p.To, c.srv.eventHub)
	if err != nil || a.Node != NodeDeviceC2D {
		return reject(condArgumentError, "to %q is not /devices/{deviceId}/messages/devicebound", p.To)
	}
	msg, err := c2dMessage(m)
	if err != nil {
		return reject(condArgumentError, "%v", err)
	}
	h := c.srv.hub
	var ttl time.Duration
	if !p.AbsoluteExpiryTime.IsZero() {
		// Already past: queued to expire at once, as the hub reports it
		// (Expired feedback), rather than living for the default TTL.
		ttl = max(p.AbsoluteExpiryTime.Sub(h.Now()), time.Millisecond)
	}
	if m.Header != nil && m.Header.TTL > 0 && (ttl == 0 || m.Header.TTL < ttl) {
		ttl = m.Header.TTL
	}
	if _, err := h.SendC2D(ctx, a.DeviceID, msg, ttl); err != nil {
		if ctx.Err() != nil {
			// The link went away; its outcome cannot be told any more.
			return &amqp.Released{}
		}
		e := hubError(err)
		if e.Condition == amqp.ErrInternal {
			c.log.Error("amqp: cloud-to-device send failed", "device", a.DeviceID, "err", err)
		}
		return &amqp.Rejected{Error: e}
	}
	return &amqp.Accepted{}
}

// c2dMessage converts an AMQP message to the hub's form: ids of any AMQP
// type in their string form (feedback reports originalMessageId so),
// application properties as strings, the body from its data sections (or
// an amqp-value of binary or string).
func c2dMessage(m *amqp.Message) (*hub.C2DMessage, error) {
	p := m.Properties
	out := &hub.C2DMessage{
		MessageID:       idString(p.MessageID),
		CorrelationID:   idString(p.CorrelationID),
		UserID:          string(p.UserID),
		ContentType:     string(p.ContentType),
		ContentEncoding: string(p.ContentEncoding),
	}
	for k, v := range m.ApplicationProperties {
		s, err := propString(v)
		if err != nil {
			return nil, fmt.Errorf("application property %q: %v", k, err)
		}
		if k == appPropAck {
			out.Ack = s
			continue
		}
		if out.Properties == nil {
			out.Properties = map[string]string{}
		}
		out.Properties[k] = s
	}
	body, err := messageBody(m)
	if err != nil {
		return nil, err
	}
	if body == nil {
		body = []byte{}
	}
	out.Body = body
	return out, nil
}

// messageBody returns a message's body as the bytes the hub stores: its
// data sections joined (the SDKs send one), or an amqp-value that is a
// string or binary.
func messageBody(m *amqp.Message) ([]byte, error) {
	switch {
	case len(m.Sequence) > 0:
		return nil, errors.New("an amqp-sequence body is not supported; send the body as a data section")
	case m.Value != nil:
		switch v := m.Value.(type) {
		case string:
			return []byte(v), nil
		case []byte:
			return v, nil
		}
		return nil, fmt.Errorf("an amqp-value body of type %T is not supported; send the body as a data section", m.Value)
	case len(m.Data) == 1:
		return m.Data[0], nil
	}
	return bytes.Join(m.Data, nil), nil
}

// idString is the string form of a message-id or correlation-id: a uuid
// as 8-4-4-4-12 hex (what Node's SDKs meant when they encoded a
// UUID-looking string as uuid), a ulong in decimal, binary in hex.
func idString(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case amqp.UUID:
		return x.String()
	case uint64:
		return strconv.FormatUint(x, 10)
	case []byte:
		return hex.EncodeToString(x)
	case amqp.Symbol:
		return string(x)
	}
	return fmt.Sprint(v)
}

// setIDs sets the ids of a message the hub sends, leaving out the empty
// ones (an empty string would be an id of its own).
func setIDs(p *amqp.Properties, messageID, correlationID, userID string) {
	if messageID != "" {
		p.MessageID = messageID
	}
	if correlationID != "" {
		p.CorrelationID = correlationID
	}
	if userID != "" {
		p.UserID = []byte(userID)
	}
}

// propString is an application property's value as the hub keeps it: a
// string. Numbers and booleans are written in their usual form.
func propString(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case amqp.Symbol:
		return string(x), nil
	case bool:
		return strconv.FormatBool(x), nil
	case int8, int16, int32, int64, uint8, uint16, uint32, uint64:
		return fmt.Sprint(x), nil
	case float32:
		return strconv.FormatFloat(float64(x), 'g', -1, 32), nil
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64), nil
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano), nil
	case amqp.UUID:
		return x.String(), nil
	case nil:
		return "", nil
	}
	return "", fmt.Errorf("a value of type %T; the hub keeps properties as strings", v)
}
