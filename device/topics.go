// SPDX-License-Identifier: MIT

package device

import (
	"strconv"
	"strings"

	"github.com/iothubemulator/iothub/internal/wire"
)

// Subscription filters and topic prefixes (IoT Hub MQTT support; protocol
// reference §3.5). The $iothub filters are shared by devices and modules:
// the identity comes from the connection.
const (
	filterMethods = "$iothub/methods/POST/#"
	filterTwinRes = "$iothub/twin/res/#"
	filterDesired = "$iothub/twin/PATCH/properties/desired/#"

	prefixMethodRequest = "$iothub/methods/POST/"
	prefixTwinResponse  = "$iothub/twin/res/"
	prefixDesired       = "$iothub/twin/PATCH/properties/desired/"
)

// QoS per subscription as the Node SDK requests it (mqtt.ts
// _setupSubscription, mqtt_twin_client.ts): 1 for cloud-to-device messages,
// 0 for everything under $iothub.
const (
	qosC2D     = 1
	qosMethods = 0
	qosTwin    = 0
)

// telemetryTopic returns the topic for a device-to-cloud message carrying
// the property bag: devices/{id}[/modules/{mid}]/messages/events/{bag}.
func telemetryTopic(deviceID, moduleID, bag string) string {
	return wire.IdentityTopic(deviceID, moduleID) + "/messages/events/" + bag
}

// c2dFilter returns the cloud-to-device subscription filter.
func c2dFilter(deviceID string) string {
	return wire.IdentityTopic(deviceID, "") + "/messages/devicebound/#"
}

// methodResponseTopic returns $iothub/methods/res/{status}/?$rid={rid}.
// The rid is re-escaped after being decoded from the request, so an
// ordinary rid is echoed byte for byte.
func methodResponseTopic(status int, rid string) string {
	return "$iothub/methods/res/" + strconv.Itoa(status) + "/?$rid=" + wire.Escape(rid)
}

// twinRequestTopic returns $iothub/twin/{verb}{resource}?$rid={rid}, e.g.
// $iothub/twin/GET/?$rid=... (Node mqtt_twin_client.ts _sendTwinRequest).
func twinRequestTopic(verb, resource, rid string) string {
	return "$iothub/twin/" + verb + resource + "?$rid=" + rid
}

// inboundKind says what a publish from the hub carries.
type inboundKind int

const (
	inboundUnknown inboundKind = iota
	inboundTwinResponse
	inboundDesired
	inboundMethod
	inboundC2D
)

// inbound is a classified publish from the hub. Only the fields for its kind
// are set.
type inbound struct {
	kind       inboundKind
	status     int    // twin response status; 0 when the topic's status is not a number
	rid        string // twin response or method request id
	version    int64  // $version from a twin response or desired-patch topic
	hasVersion bool
	method     string // method name
	bag        string // cloud-to-device property bag, still encoded
}

// classify parses a topic published by the hub. It never panics and returns
// inboundUnknown for anything it does not recognise.
func classify(topic, deviceID string) inbound {
	switch {
	case strings.HasPrefix(topic, prefixTwinResponse):
		// $iothub/twin/res/{status}/?$rid={rid}[&$version={n}]
		rest := topic[len(prefixTwinResponse):]
		path, query, _ := strings.Cut(rest, "?")
		q := parseQuery(query)
		rid, ok := q["$rid"]
		if !ok || rid == "" {
			return inbound{}
		}
		status, err := strconv.Atoi(strings.TrimSuffix(path, "/"))
		if err != nil {
			status = 0
		}
		in := inbound{kind: inboundTwinResponse, status: status, rid: rid}
		in.version, in.hasVersion = parseVersion(q)
		return in
	case strings.HasPrefix(topic, prefixDesired):
		// $iothub/twin/PATCH/properties/desired/?$version={n}
		_, query, _ := strings.Cut(topic[len(prefixDesired):], "?")
		in := inbound{kind: inboundDesired}
		in.version, in.hasVersion = parseVersion(parseQuery(query))
		return in
	case strings.HasPrefix(topic, prefixMethodRequest):
		// $iothub/methods/POST/{name}/?$rid={rid}
		rest := topic[len(prefixMethodRequest):]
		path, query, _ := strings.Cut(rest, "?")
		name, _, _ := strings.Cut(path, "/")
		rid, ok := parseQuery(query)["$rid"]
		if name == "" || !ok {
			return inbound{}
		}
		return inbound{kind: inboundMethod, method: wire.Unescape(name), rid: rid}
	}
	// devices/{id}/messages/devicebound/{bag}; the bag may be absent. Only
	// the segment right after devicebound is the bag (Node topicParts[4],
	// Python parts[4]).
	if rest, ok := cutC2DPrefix(topic, deviceID); ok && (rest == "" || rest[0] == '/') {
		bag, _, _ := strings.Cut(strings.TrimPrefix(rest, "/"), "/")
		return inbound{kind: inboundC2D, bag: bag}
	}
	return inbound{}
}

// cutC2DPrefix removes devices/{id}/messages/devicebound from topic, where
// {id} names deviceID in either spelling wire.SameID accepts. Ids cannot
// contain '/', so the id is one segment.
func cutC2DPrefix(topic, deviceID string) (rest string, ok bool) {
	after, ok := strings.CutPrefix(topic, "devices/")
	if !ok {
		return "", false
	}
	id, rest, ok := strings.Cut(after, "/")
	if !ok || !wire.SameID(id, deviceID) {
		return "", false
	}
	rest, ok = strings.CutPrefix("/"+rest, "/messages/devicebound")
	return rest, ok
}

// parseQuery splits name=value pairs joined by '&' and decodes both sides.
// The first occurrence of a name wins.
func parseQuery(q string) map[string]string {
	m := map[string]string{}
	for pair := range strings.SplitSeq(q, "&") {
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		k = wire.Unescape(k)
		if _, dup := m[k]; !dup {
			m[k] = wire.Unescape(v)
		}
	}
	return m
}

func parseVersion(q map[string]string) (int64, bool) {
	v, ok := q["$version"]
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(v, 10, 64)
	return n, err == nil
}
