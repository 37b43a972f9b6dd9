// SPDX-License-Identifier: MIT

package amqpapi

import (
	"strings"

	"github.com/iothubemulator/iothub/emulator/internal/amqp"
	"github.com/iothubemulator/iothub/emulator/internal/hub"
)

// onAttach decides every link a client attaches: the one place that says
// which node serves which address. Each node checks the link's role and
// the connection's claims, then serves the link on its own goroutine (this
// runs on the connection's reader and must not wait for its traffic).
func (c *conn) onAttach(l *amqp.Link, reply *amqp.AttachReply) error {
	if err := refuseServiceBus(l); err != nil {
		return err
	}
	a, err := ParseAddress(l.Address(), c.srv.eventHub)
	if err != nil {
		if isEventHubEntity(l.Address(), c.srv.eventHub) {
			return amqp.Errorf(amqp.ErrNotImplemented, "the Event Hub-compatible endpoint is read-only (devices send telemetry to the hub); read from %s/ConsumerGroups/{group}/Partitions/{n}", c.srv.eventHub)
		}
		return amqp.Errorf(amqp.ErrNotFound, "the hub has no node at %q", l.Address())
	}
	switch a.Node {
	case NodeCBS:
		return c.attachCBS(l)
	case NodeC2D:
		return c.attachC2D(l)
	case NodeFeedback:
		return c.attachFeedback(l)
	case NodeFileNotifications:
		return c.attachFileNotifications(l)
	case NodeEventsRedirect:
		return c.attachRedirect(l, reply)
	case NodeEventHubManagement:
		return c.attachManagement(l)
	case NodeEventHubPartition:
		return c.attachPartition(l, a, reply)
	case NodeDeviceEvents, NodeDeviceC2D, NodeDeviceMethods, NodeDeviceTwin, NodeModuleInputs:
		return c.attachDevice(l, reply, a)
	}
	return amqp.Errorf(amqp.ErrNotFound, "the hub has no node at %q", l.Address())
}

// isEventHubEntity reports whether addr names the event hub itself or one
// of its partitions as an Event Hubs producer does ({eventhub},
// {eventhub}/Partitions/{n}).
func isEventHubEntity(addr, eventHub string) bool {
	_, path := hub.SplitResource(addr)
	if !strings.Contains(addr, "://") {
		path = strings.Trim(addr, "/")
	}
	seg := strings.Split(path, "/")
	return strings.EqualFold(seg[0], eventHub) && (len(seg) == 1 || (len(seg) == 3 && strings.EqualFold(seg[1], "partitions")))
}

// refuseServiceBus refuses what Service Bus has and the hub does not:
// dynamic nodes and message sessions (a session filter).
func refuseServiceBus(l *amqp.Link) error {
	if s := l.Source(); s != nil {
		if s.Dynamic {
			return amqp.Errorf(amqp.ErrNotImplemented, "dynamic nodes are not supported")
		}
		for k := range s.Filter {
			if k == "com.microsoft:session-filter" {
				return amqp.Errorf(amqp.ErrNotImplemented, "message sessions are not supported")
			}
		}
	}
	if t := l.Target(); t != nil && t.Dynamic {
		return amqp.Errorf(amqp.ErrNotImplemented, "dynamic nodes are not supported")
	}
	return nil
}

// needRole refuses a link whose peer has the wrong role for the node:
// want is the peer's role (a client sends to a sender-node, receives from
// a receiver-node).
func needRole(l *amqp.Link, node Node, peerSends bool) error {
	if (l.Role() == amqp.RoleReceiver) == peerSends {
		return nil
	}
	if peerSends {
		return amqp.Errorf(amqp.ErrNotAllowed, "the %s node only receives: attach a sender to it", node)
	}
	return amqp.Errorf(amqp.ErrNotAllowed, "the %s node only sends: attach a receiver to it", node)
}
