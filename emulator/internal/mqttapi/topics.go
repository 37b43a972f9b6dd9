// SPDX-License-Identifier: MIT

package mqttapi

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/iothubemulator/iothub/emulator/internal/hub"
)

// The fixed topic set of iothub-protocol.md §3.5. A hub is not a general
// broker: a topic or filter that is not one of these is refused.
const (
	filterMethods        = "$iothub/methods/POST/#"
	filterTwinResponses  = "$iothub/twin/res/#"
	filterDesired        = "$iothub/twin/PATCH/properties/desired/#"
	prefixTwinGet        = "$iothub/twin/GET/"
	prefixTwinReported   = "$iothub/twin/PATCH/properties/reported/"
	prefixMethodResponse = "$iothub/methods/res/"
	prefixMethodRequest  = "$iothub/methods/POST/"
	prefixTwinResponse   = "$iothub/twin/res/"
	prefixDesiredPush    = "$iothub/twin/PATCH/properties/desired/"
)

// errTopic is wrapped by every topic or filter the hub does not serve.
var errTopic = errors.New("topic is not served by IoT Hub")

func topicErr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errTopic}, args...)...)
}

// pubKind is what a device-to-hub PUBLISH asks for.
type pubKind uint8

const (
	pubTelemetry      pubKind = iota + 1 // devices/{id}[/modules/{mid}]/messages/events/[{bag}]
	pubTwinGet                           // $iothub/twin/GET/?$rid={rid}
	pubTwinReported                      // $iothub/twin/PATCH/properties/reported/?$rid={rid}[&$version={n}]
	pubMethodResponse                    // $iothub/methods/res/{status}/?$rid={rid}
)

// pubTopic is a parsed device-to-hub topic name.
type pubTopic struct {
	kind pubKind
	// Telemetry: the identity segments exactly as they appear in the topic
	// (Python percent-encodes ids, Node does not; see names).
	device, module string
	bag            string // telemetry: the raw property bag, without a trailing '/'
	rid            string // twin and method: the request id as sent, still encoded, echoed byte for byte (§3.9)
	version        int64  // twin reported: the base $version, 0 when absent (§3.8)
	status         int    // method response: the device's status code
}

// parsePublishTopic classifies a topic a device publishes to. It returns an
// error wrapping errTopic for anything outside §3.5.
func parsePublishTopic(name string) (pubTopic, error) {
	switch {
	case strings.HasPrefix(name, "devices/"):
		return parseTelemetryTopic(name)
	case strings.HasPrefix(name, prefixTwinGet):
		rid, _, err := requestQuery(name[len(prefixTwinGet):], false)
		if err != nil {
			return pubTopic{}, err
		}
		return pubTopic{kind: pubTwinGet, rid: rid}, nil
	case strings.HasPrefix(name, prefixTwinReported):
		rid, version, err := requestQuery(name[len(prefixTwinReported):], true)
		if err != nil {
			return pubTopic{}, err
		}
		return pubTopic{kind: pubTwinReported, rid: rid, version: version}, nil
	case strings.HasPrefix(name, prefixMethodResponse):
		status, query, ok := strings.Cut(name[len(prefixMethodResponse):], "/")
		if !ok {
			return pubTopic{}, topicErr("method response %q has no request id", name)
		}
		// Python percent-encodes the status; digits survive either way.
		code, err := strconv.Atoi(status)
		if err != nil || code < 0 || code > 999999 {
			return pubTopic{}, topicErr("method response status %q is not an integer", status)
		}
		rid, _, err := requestQuery(query, false)
		if err != nil {
			return pubTopic{}, err
		}
		return pubTopic{kind: pubMethodResponse, rid: rid, status: code}, nil
	}
	return pubTopic{}, topicErr("%q", name)
}

// parseTelemetryTopic parses devices/{id}/messages/events/[{bag}] and
// devices/{id}/modules/{mid}/messages/events/[{bag}]. Node's output events
// end the bag with an extra '/' (§9), which is dropped; the bare
// ".../messages/events" without a slash is accepted too.
func parseTelemetryTopic(name string) (pubTopic, error) {
	rest := name[len("devices/"):]
	dev, rest, ok := strings.Cut(rest, "/")
	if !ok || dev == "" {
		return pubTopic{}, topicErr("%q", name)
	}
	t := pubTopic{kind: pubTelemetry, device: dev}
	if m, ok := strings.CutPrefix(rest, "modules/"); ok {
		mod, after, ok := strings.Cut(m, "/")
		if !ok || mod == "" {
			return pubTopic{}, topicErr("%q", name)
		}
		t.module, rest = mod, after
	}
	if rest == "messages/events" {
		return t, nil
	}
	bag, ok := strings.CutPrefix(rest, "messages/events/")
	if !ok {
		return pubTopic{}, topicErr("%q", name)
	}
	t.bag = strings.TrimSuffix(bag, "/")
	return t, nil
}

// requestQuery reads the "?$rid=...[&$version=...]" tail of a twin or
// method topic. The part before '?' must be empty: the path is already
// matched. Keys are percent-decoded (Python may encode '$'), unknown keys
// are ignored, and the rid is returned as sent.
func requestQuery(tail string, withVersion bool) (rid string, version int64, err error) {
	q, ok := strings.CutPrefix(tail, "?")
	if !ok {
		return "", 0, topicErr("request topic has %q where ?$rid= belongs", tail)
	}
	var haveRID bool
	for item := range strings.SplitSeq(q, "&") {
		k, v, _ := strings.Cut(item, "=")
		key, err := url.PathUnescape(k)
		if err != nil {
			return "", 0, topicErr("request topic key %q is not percent-encoded correctly", k)
		}
		switch key {
		case "$rid":
			rid, haveRID = v, true
		case "$version":
			if !withVersion {
				continue
			}
			s, err := url.PathUnescape(v)
			if err == nil {
				version, err = strconv.ParseInt(s, 10, 64)
			}
			if err != nil || version < 0 {
				return "", 0, topicErr("$version %q is not a non-negative integer", v)
			}
		}
	}
	if !haveRID || rid == "" {
		return "", 0, topicErr("request topic has no $rid")
	}
	return rid, version, nil
}

// names reports whether the telemetry topic names exactly id: a device
// topic for a device, a module topic for a module.
func (t pubTopic) names(id hub.Identity) bool {
	return segmentIs(t.device, id.DeviceID) && (t.module == "") == (id.ModuleID == "") &&
		(t.module == "" || segmentIs(t.module, id.ModuleID))
}

// segmentIs reports whether a topic segment spells id, raw (Node, C) or
// percent-encoded (Python quotes ids with safe="").
func segmentIs(seg, id string) bool {
	if seg == id {
		return true
	}
	if !strings.Contains(seg, "%") {
		return false
	}
	dec, err := url.PathUnescape(seg)
	return err == nil && dec == id
}

// subKind is what a SUBSCRIBE filter asks for.
type subKind uint8

const (
	subMethods       subKind = iota + 1 // $iothub/methods/POST/#
	subTwinResponses                    // $iothub/twin/res/#
	subDesired                          // $iothub/twin/PATCH/properties/desired/#
	subC2D                              // devices/{id}/messages/devicebound/# (or devices/+/...)
	subModuleInputs                     // devices/{id}/modules/{mid}/inputs/# (or devices/{id}/modules/{mid}/#)
)

// anyDevice is the device segment azure-sdk-for-c subscribes to C2D with:
// its AZ_IOT_HUB_CLIENT_C2D_SUBSCRIBE_TOPIC is
// "devices/+/messages/devicebound/#", used by every device on ESP32,
// FreeRTOS and Azure RTOS. The hub writes only the connection's own
// messages to it, so the wildcard can never match another device's.
const anyDevice = "+"

// subFilter is a parsed subscription filter.
type subFilter struct {
	kind           subKind
	device, module string // C2D and inputs: the identity segments as sent (C2D: anyDevice for '+')
}

// parseFilter classifies a SUBSCRIBE filter. Only the filters of §3.5 exist,
// plus two spellings SDKs use for them: azure-sdk-for-c's C2D filter with
// '+' for the device, and the C# v1 ModuleClient's module-wide
// devices/{id}/modules/{mid}/# (its ReceiveEventMessagePatternFilter, which
// the module doc page lists too), taken as the inputs subscription.
// Anything else, narrower or wider, is an error wrapping errTopic.
func parseFilter(f string) (subFilter, error) {
	switch f {
	case filterMethods:
		return subFilter{kind: subMethods}, nil
	case filterTwinResponses:
		return subFilter{kind: subTwinResponses}, nil
	case filterDesired:
		return subFilter{kind: subDesired}, nil
	}
	rest, ok := strings.CutPrefix(f, "devices/")
	if !ok {
		return subFilter{}, topicErr("filter %q", f)
	}
	dev, rest, ok := strings.Cut(rest, "/")
	if !ok || dev == "" {
		return subFilter{}, topicErr("filter %q", f)
	}
	if rest == "messages/devicebound/#" && (dev == anyDevice || !strings.ContainsAny(dev, "+#")) {
		return subFilter{kind: subC2D, device: dev}, nil
	}
	if strings.ContainsAny(dev, "+#") {
		return subFilter{}, topicErr("filter %q", f)
	}
	rest, ok = strings.CutPrefix(rest, "modules/")
	if !ok {
		return subFilter{}, topicErr("filter %q", f)
	}
	mod, tail, ok := strings.Cut(rest, "/")
	if !ok || mod == "" || strings.ContainsAny(mod, "+#") || (tail != "inputs/#" && tail != "#") {
		return subFilter{}, topicErr("filter %q", f)
	}
	return subFilter{kind: subModuleInputs, device: dev, module: mod}, nil
}

// allowedFor reports whether the identity may hold this subscription: the
// $iothub filters are shared names and always its own; C2D belongs to a
// device and inputs to a module, each naming exactly that identity (or,
// for C2D, any device: see anyDevice).
func (f subFilter) allowedFor(id hub.Identity) bool {
	switch f.kind {
	case subC2D:
		return id.ModuleID == "" && (f.device == anyDevice || segmentIs(f.device, id.DeviceID))
	case subModuleInputs:
		return id.ModuleID != "" && segmentIs(f.device, id.DeviceID) && segmentIs(f.module, id.ModuleID)
	}
	return true
}

// property is one key=value member of a property bag, decoded.
type property struct {
	Key, Value string
}

// decodePropertyBag splits a property bag (§3.6): members joined by '&',
// each split at its first '='; keys and values are percent-decoded
// path-style, so '+' stays '+' (Python warns against unquote_plus). A member
// without '=' has an empty value; empty members are skipped. A bad escape or
// an empty key is an error.
func decodePropertyBag(bag string) ([]property, error) {
	if bag == "" {
		return nil, nil
	}
	props := make([]property, 0, strings.Count(bag, "&")+1)
	for item := range strings.SplitSeq(bag, "&") {
		if item == "" {
			continue
		}
		k, v, _ := strings.Cut(item, "=")
		key, err := url.PathUnescape(k)
		if err != nil {
			return nil, fmt.Errorf("property name %q is not percent-encoded correctly", k)
		}
		if key == "" {
			return nil, fmt.Errorf("property %q has an empty name", item)
		}
		val, err := url.PathUnescape(v)
		if err != nil {
			return nil, fmt.Errorf("property %s has a value that is not percent-encoded correctly", key)
		}
		props = append(props, property{Key: key, Value: val})
	}
	return props, nil
}

// encodePropertyBag is the inverse of decodePropertyBag for hub-to-device
// topics: each key and value is escaped as JavaScript's encodeURIComponent
// does, which every SDK's decoder undoes, and members are joined by '&'.
func encodePropertyBag(props []property) string {
	var b strings.Builder
	for i, p := range props {
		if i > 0 {
			b.WriteByte('&')
		}
		appendComponent(&b, p.Key)
		b.WriteByte('=')
		appendComponent(&b, p.Value)
	}
	return b.String()
}

func appendComponent(b *strings.Builder, s string) {
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		if unreserved(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
}

// unreserved is encodeURIComponent's set of characters left as they are.
func unreserved(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("-_.!~*'()", c) >= 0
}
