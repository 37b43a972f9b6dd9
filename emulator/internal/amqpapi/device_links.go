// SPDX-License-Identifier: MIT

package amqpapi

import (
	"context"

	"github.com/iothubemulator/iothub/emulator/internal/amqp"
	"github.com/iothubemulator/iothub/emulator/internal/hub"
)

// maxEventWireSize is the max-message-size of a telemetry link: the hub's
// 256 KB, which counts body and properties, plus room for the AMQP
// encoding around them. The hub's own rule decides past the encoding
// (RecordTelemetry answers MessageTooLarge, which rejects the delivery
// with amqp:link:message-size-exceeded); a transfer beyond this size gets
// the link detached with the same condition (part 2, 2.7.3).
const maxEventWireSize = hub.MaxD2CSize + 16<<10

// attachDevice serves a device or module link: it authorizes the link by a
// claim for the identity its address names, checks the client's role,
// starts (or joins) the identity's session and serves the link.
func (c *conn) attachDevice(l *amqp.Link, reply *amqp.AttachReply, a Address) error {
	id := hub.Identity{DeviceID: a.DeviceID, ModuleID: a.ModuleID}
	// Authorized first, so that a client learns about a missing claim
	// before it learns about a wrong role.
	cl, err := c.authorize(l, Need{Device: &id})
	if err != nil {
		return err
	}
	kind, err := deviceLinkKind(l, a)
	if err != nil {
		return err
	}
	s, err := c.ensureDevice(id, claimMethod(cl))
	if err != nil {
		// Refused by the hub (a fault's duration, throttling): the
		// condition is one the SDKs retry (faults.go).
		return hubError(err)
	}
	if kind == kindEvents {
		reply.MaxMessageSize = maxEventWireSize
	}
	if err := s.addLink(l, kind); err != nil {
		return err
	}
	switch kind {
	case kindEvents:
		go s.serveIncoming(l, "telemetry", s.recordEvents)
	case kindMethodsIn:
		go s.serveIncoming(l, "method response", s.methodResponse)
	case kindTwinIn:
		go s.serveIncoming(l, "twin request", s.twinRequest)
	}
	return nil
}

// deviceLinkKind tells what a device link is for from its node and the
// client's role. A module's receiver on its own events address is its
// input link: that is where the Node SDK's ModuleClient listens
// (endpoint.moduleMessagePath), beside /inputs, which C# uses.
func deviceLinkKind(l *amqp.Link, a Address) (linkKind, error) {
	clientSends := l.Role() == amqp.RoleReceiver
	switch a.Node {
	case NodeDeviceEvents:
		if clientSends {
			return kindEvents, nil
		}
		if a.ModuleID != "" {
			return kindInputs, nil
		}
		return 0, needRole(l, a.Node, true)
	case NodeModuleInputs:
		return kindInputs, needRole(l, a.Node, false)
	case NodeDeviceC2D:
		return kindC2D, needRole(l, a.Node, false)
	case NodeDeviceMethods:
		if clientSends {
			return kindMethodsIn, nil
		}
		return kindMethodsOut, nil
	case NodeDeviceTwin:
		if clientSends {
			return kindTwinIn, nil
		}
		return kindTwinOut, nil
	}
	return 0, amqp.Errorf(amqp.ErrNotFound, "the hub has no device node %s", a.Node)
}

// serveIncoming reads what the device sends on l, one delivery at a time
// in order, and settles each with handle's result: accepted, or rejected
// with the error (outcomeError). what names the messages in the log.
func (s *deviceSession) serveIncoming(l *amqp.Link, what string, handle func(context.Context, *amqp.Delivery) error) {
	ctx, cancel := s.c.linkContext(l)
	defer cancel()
	for {
		d, err := l.Receive(ctx)
		if err != nil {
			return
		}
		s.touch()
		if err := handle(ctx, d); err != nil {
			s.c.log.Info("amqp: "+what+" refused", "identity", s.id.String(), "err", oneLine(err))
			_ = d.Reject(outcomeError(err))
			continue
		}
		_ = d.Accept()
	}
}

// recordEvents records one telemetry delivery, accepted once it is durable
// (a batch all or none); serveIncoming keeps a device's messages in order.
func (s *deviceSession) recordEvents(ctx context.Context, d *amqp.Delivery) error {
	msgs, err := telemetryOf(d)
	if err != nil {
		return err
	}
	return s.c.srv.hub.RecordTelemetryBatch(ctx, s.id, s.method, s.c.via.String(), msgs)
}

// telemetryOf reads the messages of a telemetry delivery: one message, or
// the messages of a batch (message format 0x80013700, which the C# and C
// SDKs send for SendEventBatch).
func telemetryOf(d *amqp.Delivery) ([]*hub.Message, error) {
	switch {
	case d.Message == nil:
		return nil, amqp.Errorf(amqp.ErrNotImplemented, "message format %#x is not supported; send AMQP messages or batches (%#x)", d.Format, amqp.MessageFormatBatch)
	case d.Format == amqp.MessageFormatBatch:
		return decodeEventBatch(d.Message)
	}
	m, err := telemetryMessage(d.Message)
	if err != nil {
		return nil, err
	}
	return []*hub.Message{m}, nil
}
