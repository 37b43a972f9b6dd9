// SPDX-License-Identifier: MIT

package amqpapi

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/amqp"
	"github.com/iothubemulator/iothub/emulator/internal/amqp/codec"
	"github.com/iothubemulator/iothub/internal/uuid"
)

// Direct methods over AMQP (amqp.md §2.6): the device attaches a receiver
// and a sender to /devices/{id}/methods/devicebound (with the same
// com.microsoft:channel-correlation-id "methods:<uuid>"). A request goes
// out on the receiver with the method name in the application property
// IoThub-methodname, a fresh uuid as its correlation-id and the payload as
// a data section; the device answers on its sender with the same
// correlation-id and the status in IoThub-status (an AMQP int). The C#
// SDK turns the correlation-id into a Guid and back (new Guid(requestId)),
// so it must be a uuid; Node converts it to text and sends it back as a
// uuid again. The hub's own request ids are mapped to and from them here.

// Application properties of method requests and responses.
const (
	appMethodName   = "IoThub-methodname"
	appMethodStatus = "IoThub-status"
)

// requestTTL bounds how long an unanswered request's id is remembered:
// beyond the hub's longest response timeout (300 s) the hub has given up.
const requestTTL = 6 * time.Minute

// methodRequests maps the correlation ids of requests sent to a device to
// the hub's request ids.
type methodRequests struct {
	mu   sync.Mutex
	byID map[string]methodRequest
}

type methodRequest struct {
	rid     string
	expires time.Time
}

func (r *methodRequests) init() { r.byID = map[string]methodRequest{} }

func (r *methodRequests) add(cid, rid string) {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.byID) >= 64 {
		for k, v := range r.byID {
			if now.After(v.expires) {
				delete(r.byID, k)
			}
		}
	}
	r.byID[cid] = methodRequest{rid: rid, expires: now.Add(requestTTL)}
}

func (r *methodRequests) take(cid string) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m, ok := r.byID[cid]
	delete(r.byID, cid)
	return m.rid, ok
}

// errNoMethodLink is a request for a device whose method links are gone.
var errNoMethodLink = errors.New("the method links are not attached")

// SendMethod writes a direct-method request to the device. The hub calls
// it from the connection's send goroutine.
func (s *deviceSession) SendMethod(rid, name string, payload []byte) error {
	l := s.link(kindMethodsOut)
	if l == nil {
		return errNoMethodLink
	}
	cid := uuid.New()
	u, _ := parseUUIDText(cid)
	s.methods.add(cid, rid)
	msg := &amqp.Message{
		Properties:            &amqp.Properties{CorrelationID: u},
		ApplicationProperties: map[string]any{appMethodName: name},
		Data:                  [][]byte{payload},
	}
	ctx, cancel := s.sendContext()
	defer cancel()
	o, err := l.Send(ctx, msg, nil)
	if err != nil {
		s.methods.take(cid)
		return err
	}
	if o != nil {
		// A request the link loses unsettled (the device detaches it, as
		// the Node SDK does while it reconnects) never reached the device.
		go func() {
			<-o.Done()
			if o.Err() != nil {
				if _, ok := s.methods.take(cid); ok {
					s.hubConn().MethodUndelivered(rid)
				}
			}
		}()
	}
	return nil
}

// methodResponse hands a device's answer to the hub, which drops late and
// unknown ones.
func (s *deviceSession) methodResponse(_ context.Context, d *amqp.Delivery) error {
	if d.Message == nil {
		return amqp.Errorf(amqp.ErrNotImplemented, "message format %#x is not supported for method responses", d.Format)
	}
	resp, err := parseMethodResponse(d.Message)
	if err != nil {
		return err
	}
	if rid, ok := s.methods.take(resp.correlationID); ok {
		s.hubConn().ResolveMethod(rid, resp.status, resp.body)
	}
	return nil
}

// methodResponse is a device's answer to a method request.
type methodResponse struct {
	correlationID string // canonical text of the request's uuid
	status        int
	body          []byte
}

// parseMethodResponse reads a method response: a correlation-id (uuid, or
// its text, or its 16 bytes as binary), IoThub-status as an integer (or
// its decimal text), and a body.
func parseMethodResponse(m *amqp.Message) (methodResponse, error) {
	var r methodResponse
	if m.Properties == nil || m.Properties.CorrelationID == nil {
		return r, amqp.Errorf(condArgumentError, "a method response needs the request's correlation-id")
	}
	switch v := m.Properties.CorrelationID.(type) {
	case amqp.UUID:
		r.correlationID = v.String()
	case string:
		u, ok := parseUUIDText(v)
		if !ok {
			return r, amqp.Errorf(condArgumentError, "correlation-id %q is not a request id the hub sent", v)
		}
		r.correlationID = u.String()
	case []byte:
		if len(v) != 16 {
			return r, amqp.Errorf(condArgumentError, "a binary correlation-id must be a uuid's 16 bytes")
		}
		var u amqp.UUID
		copy(u[:], v)
		r.correlationID = u.String()
	default:
		return r, amqp.Errorf(condArgumentError, "correlation-id of type %T is not a request id the hub sent", v)
	}
	status, ok := intValue(m.ApplicationProperties[appMethodStatus])
	if !ok || status < -(1<<31) || status > 1<<31-1 {
		return r, amqp.Errorf(condArgumentError, "a method response needs the status as an integer application property %s", appMethodStatus)
	}
	r.status = int(status)
	body, err := messageBody(m)
	if err != nil {
		return r, amqp.Errorf(condArgumentError, "%v", err)
	}
	r.body = body
	return r, nil
}

// intValue reads an integer of any AMQP integer type, or its decimal text.
func intValue(v any) (int64, bool) {
	switch t := v.(type) {
	case int8:
		return int64(t), true
	case int16:
		return int64(t), true
	case int32:
		return int64(t), true
	case int64:
		return t, true
	case uint8:
		return int64(t), true
	case uint16:
		return int64(t), true
	case uint32:
		return int64(t), true
	case uint64:
		if t > 1<<63-1 {
			return 0, false
		}
		return int64(t), true
	case string:
		n, err := strconv.ParseInt(t, 10, 64)
		return n, err == nil
	}
	return 0, false
}

// parseUUIDText reads a canonical uuid string (any case).
func parseUUIDText(s string) (amqp.UUID, bool) { return codec.ParseUUID(s) }
