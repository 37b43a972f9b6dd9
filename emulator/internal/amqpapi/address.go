// SPDX-License-Identifier: MIT

package amqpapi

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// Node is what a link address names on the hub's AMQP surface.
type Node int

// The nodes the hub serves. Device-side nodes carry a device id, and a
// module id for the module forms.
const (
	NodeUnknown            Node = iota
	NodeCBS                     // $cbs: claims-based security, put-token
	NodeC2D                     // /messages/devicebound: service sends cloud-to-device messages
	NodeFeedback                // /messages/serviceBound/feedback: service receives delivery feedback
	NodeFileNotifications       // /messages/serviceBound/filenotifications
	NodeEventsRedirect          // /messages/events...: the hub redirects to its Event Hub-compatible endpoint
	NodeEventHubManagement      // {eventhub}/$management: event hub and partition properties
	NodeEventHubPartition       // {eventhub}/ConsumerGroups/{group}/Partitions/{n}: a partition consumer
	NodeDeviceEvents            // /devices/{id}[/modules/{mid}]/messages/events: device telemetry
	NodeDeviceC2D               // /devices/{id}/messages/devicebound: device receives C2D
	NodeDeviceMethods           // /devices/{id}[/modules/{mid}]/methods/devicebound: direct methods
	NodeDeviceTwin              // /devices/{id}[/modules/{mid}]/twin: twin operations
	NodeModuleInputs            // /devices/{id}/modules/{mid}/inputs: module input messages
)

var nodeNames = [...]string{"unknown", "$cbs", "devicebound", "feedback", "filenotifications", "events (redirect)",
	"event hub $management", "event hub partition", "device events", "device C2D", "device methods", "device twin", "module inputs"}

func (n Node) String() string {
	if int(n) < len(nodeNames) {
		return nodeNames[n]
	}
	return "node(" + strconv.Itoa(int(n)) + ")"
}

// Address is a parsed link address.
type Address struct {
	Node          Node
	DeviceID      string // device nodes
	ModuleID      string // module forms of device nodes
	EventHub      string // event hub nodes: the name as the client wrote it
	ConsumerGroup string // partition consumers
	Partition     int    // partition consumers
}

// errAddress is returned for an address the hub does not serve.
var errAddress = errors.New("no such node")

// ParseAddress reads a link's source or target address. Clients write them
// in several forms: a bare path ("/messages/devicebound"), a path without
// its leading slash, or a full URI ("amqps://{host}/...", "sb://{host}/...",
// with a port); device and module ids are URL-encoded. Keywords are
// matched case-insensitively, as the hub does (Edge Hub spells
// "deviceBound", the SDKs "devicebound"). eventHub is the hub's event hub
// name; a name that differs only in case is accepted.
func ParseAddress(addr, eventHub string) (Address, error) {
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
	path = strings.Trim(path, "/")
	if path == "" {
		return Address{}, fmt.Errorf("%w: empty address", errAddress)
	}
	raw := strings.Split(path, "/")
	seg := make([]string, len(raw))
	for i, s := range raw {
		d, err := url.PathUnescape(s)
		if err != nil {
			return Address{}, fmt.Errorf("%w: %q is not a valid path segment", errAddress, s)
		}
		seg[i] = d
	}
	is := func(i int, word string) bool { return i < len(seg) && strings.EqualFold(seg[i], word) }
	n := len(seg)
	switch {
	case n == 1 && is(0, "$cbs"):
		return Address{Node: NodeCBS}, nil
	case n == 2 && is(0, "messages") && is(1, "devicebound"):
		return Address{Node: NodeC2D}, nil
	case n == 3 && is(0, "messages") && is(1, "servicebound") && is(2, "feedback"):
		return Address{Node: NodeFeedback}, nil
	case n == 3 && is(0, "messages") && is(1, "servicebound") && is(2, "filenotifications"):
		return Address{Node: NodeFileNotifications}, nil
	case n >= 2 && is(0, "messages") && is(1, "events"):
		return Address{Node: NodeEventsRedirect}, nil
	case is(0, "devices") && n >= 2:
		return parseDeviceAddress(seg, is)
	case eventHub != "" && strings.EqualFold(seg[0], eventHub):
		return parseEventHubAddress(seg, is)
	case n == 1 && is(0, "$management"):
		return Address{Node: NodeEventHubManagement, EventHub: eventHub}, nil
	}
	return Address{}, fmt.Errorf("%w: %s", errAddress, addr)
}

func parseDeviceAddress(seg []string, is func(int, string) bool) (Address, error) {
	a := Address{DeviceID: seg[1]}
	rest := seg[2:]
	if len(rest) >= 2 && is(2, "modules") {
		a.ModuleID = seg[3]
		rest = seg[4:]
	}
	if a.DeviceID == "" || (len(seg) > 3 && is(2, "modules") && a.ModuleID == "") {
		return Address{}, fmt.Errorf("%w: empty device or module id", errAddress)
	}
	word := func(i int, w string) bool { return i < len(rest) && strings.EqualFold(rest[i], w) }
	switch {
	case len(rest) == 2 && word(0, "messages") && word(1, "events"):
		a.Node = NodeDeviceEvents
	case len(rest) == 2 && word(0, "messages") && word(1, "devicebound") && a.ModuleID == "":
		a.Node = NodeDeviceC2D
	case len(rest) == 2 && word(0, "methods") && word(1, "devicebound"):
		a.Node = NodeDeviceMethods
	case len(rest) == 1 && word(0, "twin"):
		a.Node = NodeDeviceTwin
	case len(rest) == 1 && word(0, "inputs") && a.ModuleID != "":
		a.Node = NodeModuleInputs
	default:
		return Address{}, fmt.Errorf("%w: /%s", errAddress, strings.Join(seg, "/"))
	}
	return a, nil
}

func parseEventHubAddress(seg []string, is func(int, string) bool) (Address, error) {
	a := Address{EventHub: seg[0]}
	switch {
	case len(seg) == 2 && is(1, "$management"):
		a.Node = NodeEventHubManagement
		return a, nil
	case len(seg) == 5 && is(1, "consumergroups") && is(3, "partitions"):
		p, err := strconv.Atoi(seg[4])
		if err != nil || p < 0 || seg[2] == "" {
			return Address{}, fmt.Errorf("%w: partition %q of consumer group %q", errAddress, seg[4], seg[2])
		}
		a.Node, a.ConsumerGroup, a.Partition = NodeEventHubPartition, seg[2], p
		return a, nil
	}
	return Address{}, fmt.Errorf("%w: /%s", errAddress, strings.Join(seg, "/"))
}
