// SPDX-License-Identifier: MIT

package amqpapi

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/amqp"
	"github.com/iothubemulator/iothub/emulator/internal/huberr"
	"github.com/iothubemulator/iothub/internal/uuid"
)

// Twins over AMQP (amqp.md §2.6). The device attaches a sender and a
// receiver to /devices/{id}/twin (the module form too). A request carries
// the message annotation operation, a correlation-id and, by operation:
//
//	GET                                                    the twin's desired and reported sections
//	PATCH   resource /properties/reported, body the patch  optional annotation version: the base $version
//	PUT     resource /notifications/twin/properties/desired  subscribe to desired pushes
//	DELETE  resource /notifications/twin/properties/desired  unsubscribe
//
// The answer goes out on the receiver with the same correlation-id, the
// annotation status (an AMQP int: C# reads it as int, Node compares it
// with 200..300), after PATCH the new reported version as the annotation
// version (an AMQP long: C# v2 returns it from UpdateReportedProperties),
// and a body: the twin for GET, the hub's error object for a failure.
// Desired pushes carry no correlation-id (that is how both SDKs tell them
// from answers), the patch with its $version as body, and the version
// annotation. Node and C# send GET, PUT and DELETE with a body of " " or
// none; it is ignored.

// Twin operations, resources and annotations.
const (
	annOperation = "operation"
	annResource  = "resource"
	annVersion   = "version"
	annStatus    = "status"

	resReported = "/properties/reported"
	resDesired  = "/notifications/twin/properties/desired"
)

// twinRequest is a parsed twin operation.
type twinRequest struct {
	op            string // GET, PATCH, PUT or DELETE
	correlationID any    // echoed as sent, type included
	version       int64  // PATCH: the base $version; 0 when absent
	body          []byte
}

// parseTwinRequest reads a twin request. A request without a
// correlation-id cannot be answered and is an error; so is an unknown
// operation or resource, which is answered with 400.
func parseTwinRequest(m *amqp.Message) (twinRequest, error) {
	var r twinRequest
	if m.Properties == nil || m.Properties.CorrelationID == nil {
		return r, amqp.Errorf(condArgumentError, "a twin request needs a correlation-id to be answered with")
	}
	r.correlationID = m.Properties.CorrelationID
	opv, ok := m.Annotations.Get(annOperation)
	if !ok {
		return r, huberr.ArgumentInvalid("The twin request has no operation annotation (GET, PATCH, PUT or DELETE).")
	}
	op, err := propString(opv)
	if err != nil {
		return r, huberr.ArgumentInvalid("The operation annotation is %v.", err)
	}
	r.op = strings.ToUpper(op)
	resource := ""
	if v, ok := m.Annotations.Get(annResource); ok && v != nil {
		res, err := propString(v)
		if err != nil {
			return r, huberr.ArgumentInvalid("The resource annotation is %v.", err)
		}
		resource = strings.ToLower(res)
	}
	switch r.op {
	case "GET":
	case "PATCH":
		if resource != resReported {
			return r, huberr.ArgumentInvalid("A twin PATCH is for resource %s, not %q.", resReported, resource)
		}
		if v, ok := m.Annotations.Get(annVersion); ok && v != nil {
			n, ok := intValue(v)
			if !ok || n < 0 {
				return r, huberr.ArgumentInvalid("The version annotation must be a non-negative integer, not %v.", v)
			}
			r.version = n
		}
		body, err := messageBody(m)
		if err != nil {
			return r, huberr.ArgumentInvalid("The body is not usable: %v.", err)
		}
		r.body = body
	case "PUT", "DELETE":
		if resource != strings.ToLower(resDesired) {
			return r, huberr.ArgumentInvalid("A twin %s is for resource %s, not %q.", r.op, resDesired, resource)
		}
	default:
		return r, huberr.ArgumentInvalid("Twin operation %q is not supported; use GET, PATCH, PUT or DELETE.", r.op)
	}
	return r, nil
}

// twinRequest answers one twin request of the device. serveIncoming
// reads the next request only after the answer is written, and a PATCH is
// answered only once it is durable.
func (s *deviceSession) twinRequest(ctx context.Context, d *amqp.Delivery) error {
	if d.Message == nil {
		return amqp.Errorf(amqp.ErrNotImplemented, "message format %#x is not supported for twin requests", d.Format)
	}
	req, err := parseTwinRequest(d.Message)
	if req.correlationID == nil {
		return err // cannot be answered
	}
	var resp *amqp.Message
	if err != nil {
		resp = s.twinError(req, err)
	} else {
		resp = s.twinAnswer(req)
	}
	if err := s.sendTwin(ctx, resp); err != nil {
		return amqp.Errorf(amqp.ErrDetachForced, "the answer could not be sent: %v", err)
	}
	return nil
}

// twinAnswer carries out a valid request and returns its answer.
func (s *deviceSession) twinAnswer(req twinRequest) *amqp.Message {
	h := s.c.srv.hub
	hc := s.hubConn()
	switch req.op {
	case "GET":
		props, err := h.DeviceTwin(s.id)
		if err != nil {
			return s.twinError(req, err)
		}
		doc, err := json.Marshal(props)
		if err != nil {
			return s.twinError(req, err)
		}
		return twinResponse(req, 200, doc)
	case "PATCH":
		v, err := h.PatchReported(s.id, req.body, req.version)
		if err != nil {
			return s.twinError(req, err)
		}
		m := twinResponse(req, 204, nil)
		m.Annotations[amqp.Symbol(annVersion)] = v
		return m
	case "PUT":
		hc.SubscribeDesired()
	case "DELETE":
		hc.UnsubscribeDesired()
	}
	return twinResponse(req, 200, nil)
}

// twinResponse is an answer with status and body (none when empty).
func twinResponse(req twinRequest, status int32, body []byte) *amqp.Message {
	m := &amqp.Message{
		Properties:  &amqp.Properties{CorrelationID: req.correlationID},
		Annotations: amqp.Annotations{amqp.Symbol(annStatus): status},
	}
	if len(body) > 0 {
		m.Data = [][]byte{body}
	}
	return m
}

// twinError answers with the hub error's status and its JSON object, which
// Node parses for the error's message.
func (s *deviceSession) twinError(req twinRequest, err error) *amqp.Message {
	he := huberr.As(err)
	if he.Status >= 500 {
		s.c.log.Error("amqp: twin request failed", "identity", s.id.String(), "err", err)
	}
	body, _ := json.Marshal(he.Detail(strings.ReplaceAll(uuid.New(), "-", ""), s.c.srv.hub.Now()))
	return twinResponse(req, int32(he.Status), body)
}

// sendTwin writes an answer on the twin receiver link of the identity,
// waiting a while for it to attach (the SDKs attach the sender first);
// ctx ends with the link the request came on.
func (s *deviceSession) sendTwin(ctx context.Context, m *amqp.Message) error {
	var timeout <-chan time.Time
	for {
		s.mu.Lock()
		out := s.current[kindTwinOut]
		sig := s.twinSig
		s.mu.Unlock()
		if out != nil {
			ctx, cancel := s.sendContext()
			_, err := out.Send(ctx, m, nil)
			cancel()
			return err
		}
		if timeout == nil {
			timer := time.NewTimer(s.c.srv.opts.replyWait)
			defer timer.Stop()
			timeout = timer.C
		}
		select {
		case <-sig:
		case <-ctx.Done():
			return ctx.Err()
		case <-timeout:
			return errNoTwinLink
		}
	}
}

// SendDesired writes a desired-properties push to the device; the hub
// calls it only after the twin client's PUT.
func (s *deviceSession) SendDesired(version int64, body []byte) error {
	l := s.link(kindTwinOut)
	if l == nil {
		return errNoTwinLink
	}
	m := &amqp.Message{
		Annotations: amqp.Annotations{amqp.Symbol(annVersion): version},
		Data:        [][]byte{body},
	}
	ctx, cancel := s.sendContext()
	defer cancel()
	_, err := l.Send(ctx, m, nil)
	return err
}

var errNoTwinLink = amqp.Errorf(amqp.ErrNotFound, "no link is attached to receive twin answers from /twin")
