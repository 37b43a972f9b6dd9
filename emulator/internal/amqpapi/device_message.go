// SPDX-License-Identifier: MIT

package amqpapi

import (
	"github.com/iothubemulator/iothub/emulator/internal/amqp"
	"github.com/iothubemulator/iothub/emulator/internal/amqp/codec"
	"github.com/iothubemulator/iothub/emulator/internal/hub"
)

// Device messages and the AMQP message sections (iot-hub-devguide-messages-
// construct; C# AmqpIotMessageConverter, Node amqp_message): system
// properties travel in the properties section, a few as application
// properties or message annotations, user properties as application
// properties.

// Application properties and annotations that carry system properties.
const (
	appCreationTime   = "iothub-creation-time-utc" // C#: ISO 8601 text
	appMessageSchema  = "iothub-message-schema"
	appOutputName     = "iothub-outputname"
	annInterfaceID    = "iothub-interface-id"
	annComponentName  = "dt-subject"
	annEnqueuedTime   = "iothub-enqueuedtime"
	annDeliveryCount  = "iothub-deliverycount"
	annSequenceNumber = "x-opt-sequence-number"
)

// amqpTimeFormat is how AMQP timestamps become the hub's text fields: UTC
// with milliseconds (AMQP timestamps have no finer precision).
const amqpTimeFormat = "2006-01-02T15:04:05.000Z"

// telemetryMessage builds the hub's record of one device-to-cloud message.
func telemetryMessage(m *amqp.Message) (*hub.Message, error) {
	hm := &hub.Message{Properties: make(map[string]string, len(m.ApplicationProperties))}
	if p := m.Properties; p != nil {
		hm.MessageID = idString(p.MessageID)
		hm.CorrelationID = idString(p.CorrelationID)
		if p.UserID != nil {
			hm.UserID = string(p.UserID)
		}
		hm.To = p.To
		hm.ContentType = string(p.ContentType)
		hm.ContentEncoding = string(p.ContentEncoding)
		if !p.AbsoluteExpiryTime.IsZero() {
			hm.ExpiryTime = p.AbsoluteExpiryTime.UTC().Format(amqpTimeFormat)
		}
		if !p.CreationTime.IsZero() {
			hm.CreationTime = p.CreationTime.UTC().Format(amqpTimeFormat)
		}
	}
	for k, v := range m.ApplicationProperties {
		s, err := propString(v)
		if err != nil {
			return nil, amqp.Errorf(condArgumentError, "application property %q: %v", k, err)
		}
		switch k {
		case appCreationTime:
			hm.CreationTime = s
		case appMessageSchema:
			hm.MessageSchema = s
		case appOutputName:
			hm.OutputName = s
		default:
			hm.Properties[k] = s
		}
	}
	for name, field := range map[string]*string{annInterfaceID: &hm.InterfaceID, annComponentName: &hm.ComponentName} {
		if v, ok := m.Annotations.Get(name); ok {
			s, err := propString(v)
			if err != nil {
				return nil, amqp.Errorf(condArgumentError, "annotation %q: %v", name, err)
			}
			*field = s
		}
	}
	body, err := messageBody(m)
	if err != nil {
		return nil, amqp.Errorf(condArgumentError, "%v", err)
	}
	hm.Body = body
	return hm, nil
}

// decodeEventBatch reads the messages of a batch: each data section of the
// outer message is one encoded message.
func decodeEventBatch(outer *amqp.Message) ([]*hub.Message, error) {
	if len(outer.Data) == 0 {
		return nil, amqp.Errorf(condArgumentError, "the batch holds no messages")
	}
	inner, err := amqp.DecodeBatch(outer, codec.Limits{})
	if err != nil {
		return nil, err
	}
	out := make([]*hub.Message, 0, len(inner))
	for i, m := range inner {
		hm, err := telemetryMessage(m)
		if err != nil {
			return nil, amqp.Errorf(condArgumentError, "batch message %d: %v", i, err)
		}
		out = append(out, hm)
	}
	return out, nil
}

// c2dAMQP builds the AMQP message of a cloud-to-device message as the
// device SDKs read it: system properties in the properties section,
// iothub-ack and the user properties as application properties, the
// enqueued time, sequence number and delivery count as annotations (with
// the types C#'s converter asks for), the body as one data section.
func c2dAMQP(m *hub.C2DMessage) *amqp.Message {
	p := &amqp.Properties{To: m.To, ContentType: amqp.Symbol(m.ContentType), ContentEncoding: amqp.Symbol(m.ContentEncoding),
		AbsoluteExpiryTime: m.ExpiryTime}
	setIDs(p, m.MessageID, m.CorrelationID, m.UserID)
	app := make(map[string]any, len(m.Properties)+1)
	for k, v := range m.Properties {
		app[k] = v
	}
	if m.Ack != "" {
		app[appPropAck] = m.Ack
	}
	return &amqp.Message{
		Header: &amqp.Header{Durable: true, Priority: 4, DeliveryCount: uint32(max(m.DeliveryCount-1, 0))},
		Annotations: amqp.Annotations{
			amqp.Symbol(annEnqueuedTime):   m.EnqueuedTime,
			amqp.Symbol(annSequenceNumber): m.Seq,
			amqp.Symbol(annDeliveryCount):  uint8(min(m.DeliveryCount, 255)),
		},
		Properties:            p,
		ApplicationProperties: app,
		Data:                  [][]byte{m.Body},
	}
}
