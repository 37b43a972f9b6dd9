// SPDX-License-Identifier: MIT

package device

import (
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/iothubemulator/iothub/internal/wire"
)

// MaxMessageSize is the largest device-to-cloud message the hub accepts,
// body plus properties (IoT Hub quotas: 256 KB). SendMessage refuses larger
// messages locally, as the Node SDK does.
const MaxMessageSize = 256 * 1024

// Message is a device-to-cloud (telemetry) or cloud-to-device message.
// The system properties travel in the MQTT topic's property bag under the
// keys noted on each field.
type Message struct {
	Body            []byte            // payload, sent as is
	MessageID       string            // $.mid
	CorrelationID   string            // $.cid
	UserID          string            // $.uid
	ContentType     string            // $.ct; "application/json" lets hub routing read the body
	ContentEncoding string            // $.ce; "utf-8" lets hub routing read the body
	OutputName      string            // $.on; modules only, names the output for edge routing
	ExpiryTime      time.Time         // $.exp, absolute expiry
	CreationTime    time.Time         // $.ctime, creation time
	To              string            // $.to; set on received cloud-to-device messages
	Ack             string            // iothub-ack; the feedback the sender asked for (received only)
	Properties      map[string]string // application properties
}

// Property-bag keys (IoT Hub MQTT support, "Sending device-to-cloud
// messages"; protocol reference §3.6).
const (
	keyMessageID       = "$.mid"
	keyCorrelationID   = "$.cid"
	keyUserID          = "$.uid"
	keyTo              = "$.to"
	keyExpiry          = "$.exp"
	keyContentType     = "$.ct"
	keyContentEncoding = "$.ce"
	keyCreationTime    = "$.ctime"
	keyOutputName      = "$.on"
	keyAck             = "iothub-ack"
)

// isoTime is the form Node's Date.toISOString produces, which the Node SDK
// sends as $.exp.
const isoTime = "2006-01-02T15:04:05.000Z"

// encodeProperties returns m's property bag, without a leading separator.
// System properties come first in the order both the Node SDK
// (device/transport/mqtt/src/mqtt.ts, _getEventTopicFromMessage) and the
// Python SDK (iothub/pipeline/mqtt_topic_iothub.py,
// encode_message_properties_in_topic) use: $.on, $.mid, $.cid, $.uid, $.ct,
// $.ce, $.exp; $.ctime (C SDK) follows. Application properties come last,
// sorted by key as Python does. Keys and values are escaped like Node's
// encodeURIComponent: space is %20, never '+'.
func encodeProperties(m *Message) string {
	var b strings.Builder
	add := func(k, v string) {
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		b.WriteString(wire.Escape(k))
		b.WriteByte('=')
		b.WriteString(wire.Escape(v))
	}
	addIf := func(k, v string) {
		if v != "" {
			add(k, v)
		}
	}
	addIf(keyOutputName, m.OutputName)
	addIf(keyMessageID, m.MessageID)
	addIf(keyCorrelationID, m.CorrelationID)
	addIf(keyUserID, m.UserID)
	addIf(keyContentType, m.ContentType)
	addIf(keyContentEncoding, m.ContentEncoding)
	if !m.ExpiryTime.IsZero() {
		add(keyExpiry, m.ExpiryTime.UTC().Format(isoTime))
	}
	if !m.CreationTime.IsZero() {
		add(keyCreationTime, m.CreationTime.UTC().Format(isoTime))
	}
	for _, k := range slices.Sorted(maps.Keys(m.Properties)) {
		add(k, m.Properties[k])
	}
	return b.String()
}

// decodeProperties fills m from a received property bag. It follows the
// SDKs' parsers (Node _extractPropertiesFromTopicPart, Python
// extract_message_properties_from_topic) but never fails: pairs split at the
// first '=', both sides are percent-decoded with '+' kept literal, a bare key
// (the hub's encoding of a null value) reads as "", and malformed escapes or
// timestamps are kept verbatim (timestamps under their wire key in
// Properties).
func decodeProperties(bag string, m *Message) {
	for pair := range strings.SplitSeq(bag, "&") {
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		k, v = wire.Unescape(k), wire.Unescape(v)
		switch k {
		case keyMessageID:
			m.MessageID = v
		case keyCorrelationID:
			m.CorrelationID = v
		case keyUserID:
			m.UserID = v
		case keyTo:
			m.To = v
		case keyContentType:
			m.ContentType = v
		case keyContentEncoding:
			m.ContentEncoding = v
		case keyOutputName:
			m.OutputName = v
		case keyAck:
			m.Ack = v
		case keyExpiry, keyCreationTime:
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				setProperty(m, k, v)
			} else if k == keyExpiry {
				m.ExpiryTime = t
			} else {
				m.CreationTime = t
			}
		default:
			setProperty(m, k, v)
		}
	}
}

func setProperty(m *Message, k, v string) {
	if m.Properties == nil {
		m.Properties = map[string]string{}
	}
	m.Properties[k] = v
}
