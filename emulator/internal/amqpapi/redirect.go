// SPDX-License-Identifier: MIT

package amqpapi

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/iothubemulator/iothub/emulator/internal/amqp"
	"github.com/iothubemulator/iothub/emulator/internal/hub"
)

// The hub does not serve /messages/events itself: a service client that
// attaches a receiver there (the C# service SDK's and the Event Hubs
// samples' way of finding the Event Hub-compatible endpoint from an IoT Hub
// connection string) gets its attach answered and then detached with
// amqp:link:redirect, whose info names the endpoint: hostname,
// network-host, port and address, amqps://{host}:{port}/{eventhub}/ and
// whatever followed /messages/events ("$management", or
// "ConsumerGroups/{group}/Partitions/{n}"). Clients read the event hub's
// name from the address (":\d+/(.*)/\$management") and reconnect with an
// Event Hubs SDK. Here the endpoint is this emulator, on the listener the
// client came through (plain AMQP redirects to plain AMQP).

var needEvents = Need{Rights: hub.ServiceConnect, Resource: "messages/events"}

func (c *conn) attachRedirect(l *amqp.Link, reply *amqp.AttachReply) error {
	if l.Role() != amqp.RoleSender {
		return amqp.Errorf(amqp.ErrNotFound, "the hub has no node at %q: devices send to /devices/{deviceId}/messages/events", l.Address())
	}
	if _, err := c.authorize(l, needEvents); err != nil {
		return err
	}
	host := c.srv.hub.HostName()
	scheme, addr := "amqps", c.srv.Addr()
	if c.via == TransportPlain {
		scheme, addr = "amqp", c.srv.PlainAddr()
	}
	port := 5671
	if scheme == "amqp" {
		port = 5672
	}
	if addr != nil {
		if _, p, err := net.SplitHostPort(addr.String()); err == nil {
			port, _ = strconv.Atoi(p)
		}
	}
	target := fmt.Sprintf("%s://%s:%d/%s/%s", scheme, host, port, c.srv.eventHub, eventsRest(l.Address()))
	// The hub echoes the client's source in its attach before the detach.
	reply.Source = l.Source()
	return &amqp.Error{
		Condition:   amqp.ErrLinkRedirect,
		Description: "The Event Hub-compatible endpoint of this hub is " + target,
		Info: map[amqp.Symbol]any{
			"hostname":     host,
			"network-host": host,
			"port":         int32(port),
			"address":      target,
		},
	}
}

// eventsRest is what follows messages/events in an address, as written.
func eventsRest(addr string) string {
	path := addr
	if i := strings.Index(path, "://"); i >= 0 {
		path = path[i+3:]
		if j := strings.IndexByte(path, '/'); j >= 0 {
			path = path[j:]
		} else {
			path = ""
		}
	}
	if i := strings.IndexAny(path, "?#"); i >= 0 {
		path = path[:i]
	}
	seg := strings.Split(strings.Trim(path, "/"), "/")
	for i := 0; i+1 < len(seg); i++ {
		if strings.EqualFold(seg[i], "messages") && strings.EqualFold(seg[i+1], "events") {
			rest := strings.Join(seg[i+2:], "/")
			if u, err := url.PathUnescape(rest); err == nil {
				return u
			}
			return rest
		}
	}
	return ""
}
