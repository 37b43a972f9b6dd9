// SPDX-License-Identifier: MIT

package amqp

import (
	"fmt"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/amqp/codec"
)

// Section descriptors (part 3, section 3.2).
const (
	descHeader                = 0x70
	descDeliveryAnnotations   = 0x71
	descMessageAnnotations    = 0x72
	descProperties            = 0x73
	descApplicationProperties = 0x74
	descData                  = 0x75
	descAmqpSequence          = 0x76
	descAmqpValue             = 0x77
	descFooter                = 0x78
)

// MessageFormatBatch is the message format of a batch whose data sections
// each hold one encoded message (used by the Azure SDKs for batched sends).
const MessageFormatBatch uint32 = 0x80013700

// Message is an AMQP message (part 3, section 3.2). The body is Data (one or
// more data sections), Sequence (amqp-sequence sections) or Value (one
// amqp-value section); a nil Value means no amqp-value section.
type Message struct {
	Header                *Header
	DeliveryAnnotations   Annotations
	Annotations           Annotations // message-annotations
	Properties            *Properties
	ApplicationProperties map[string]any
	Data                  [][]byte
	Sequence              [][]any
	Value                 any
	Footer                Annotations
}

// Annotations is an annotations map (part 3, section 3.2.10): keys are
// Symbol (or uint64, which the spec reserves). String keys are encoded as
// symbols, so m.Annotations["x-opt-offset"] = "12" does what it looks like.
type Annotations map[any]any

// Get returns the value under the symbol key k.
func (a Annotations) Get(k string) (any, bool) {
	v, ok := a[Symbol(k)]
	return v, ok
}

// AppendAMQP implements codec.Marshaler (the map only, without descriptor).
func (a Annotations) AppendAMQP(b []byte) ([]byte, error) {
	m := make(map[any]any, len(a))
	for k, v := range a {
		switch t := k.(type) {
		case string:
			m[Symbol(t)] = v
		case Symbol, uint64:
			m[k] = v
		default:
			return b, fmt.Errorf("amqp: annotation key of type %T (want Symbol, string or uint64)", k)
		}
	}
	return codec.Append(b, m)
}

// Header is the header section (part 3, section 3.2.1).
type Header struct {
	Durable       bool
	Priority      uint8 // default 4 when decoded from a null field
	TTL           time.Duration
	FirstAcquirer bool
	DeliveryCount uint32
}

// Properties is the properties section (part 3, section 3.2.4). MessageID
// and CorrelationID are uint64, UUID, []byte or string (any other type a
// peer sends is kept as sent).
// Empty strings and zero times mean the field is absent.
type Properties struct {
	MessageID          any
	UserID             []byte
	To                 string
	Subject            string
	ReplyTo            string
	CorrelationID      any
	ContentType        Symbol
	ContentEncoding    Symbol
	AbsoluteExpiryTime time.Time
	CreationTime       time.Time
	GroupID            string
	GroupSequence      uint32
	ReplyToGroupID     string
}

func nilIfZeroTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

// AppendAMQP implements codec.Marshaler.
func (h *Header) AppendAMQP(b []byte) ([]byte, error) {
	var ttl any
	if h.TTL > 0 {
		ttl = uint32(h.TTL / time.Millisecond)
	}
	var prio any
	if h.Priority != 4 {
		prio = h.Priority
	}
	return codec.AppendDescribedList(b, descHeader, nilIfFalse(h.Durable), prio, ttl, nilIfFalse(h.FirstAcquirer), nilIfZero(h.DeliveryCount))
}

// AppendAMQP implements codec.Marshaler.
func (p *Properties) AppendAMQP(b []byte) ([]byte, error) {
	var uid any
	if p.UserID != nil {
		uid = p.UserID
	}
	return codec.AppendDescribedList(b, descProperties, p.MessageID, uid, nilIfEmpty(p.To), nilIfEmpty(p.Subject),
		nilIfEmpty(p.ReplyTo), p.CorrelationID, nilIfEmptySym(p.ContentType), nilIfEmptySym(p.ContentEncoding),
		nilIfZeroTime(p.AbsoluteExpiryTime), nilIfZeroTime(p.CreationTime), nilIfEmpty(p.GroupID),
		nilIfZero(p.GroupSequence), nilIfEmpty(p.ReplyToGroupID))
}

// MarshalBinary encodes the message's sections in the spec's order.
func (m *Message) MarshalBinary() ([]byte, error) { return m.AppendAMQP(nil) }

// AppendAMQP appends the encoded message.
func (m *Message) AppendAMQP(b []byte) ([]byte, error) {
	var err error
	section := func(code uint64, v any) {
		if err != nil {
			return
		}
		b = append(b, 0x00)
		b, err = codec.Append(b, code)
		if err == nil {
			b, err = codec.Append(b, v)
		}
	}
	if m.Header != nil {
		if b, err = m.Header.AppendAMQP(b); err != nil {
			return b, err
		}
	}
	if m.DeliveryAnnotations != nil {
		section(descDeliveryAnnotations, m.DeliveryAnnotations)
	}
	if m.Annotations != nil {
		section(descMessageAnnotations, m.Annotations)
	}
	if err != nil {
		return b, err
	}
	if m.Properties != nil {
		if b, err = m.Properties.AppendAMQP(b); err != nil {
			return b, err
		}
	}
	if m.ApplicationProperties != nil {
		section(descApplicationProperties, m.ApplicationProperties)
	}
	for _, d := range m.Data {
		section(descData, d)
	}
	for _, s := range m.Sequence {
		section(descAmqpSequence, s)
	}
	if m.Value != nil {
		section(descAmqpValue, m.Value)
	}
	if m.Footer != nil {
		section(descFooter, m.Footer)
	}
	return b, err
}

// UnmarshalBinary decodes a message with the default limits.
func (m *Message) UnmarshalBinary(b []byte) error {
	msg, err := DecodeMessage(b, codec.Limits{})
	if err != nil {
		return err
	}
	*m = *msg
	return nil
}

// DecodeMessage decodes the sections of an encoded message. Unknown
// sections, wrong field types and trailing garbage are *Error values with
// amqp:decode-error.
func DecodeMessage(b []byte, lim codec.Limits) (*Message, error) {
	m := &Message{}
	dec := codec.NewDecoder(b, lim)
	for dec.Len() > 0 {
		v, err := dec.Any()
		if err != nil {
			return nil, Errorf(ErrDecode, "message: %v", err)
		}
		d, ok := v.(*Described)
		if !ok {
			return nil, Errorf(ErrDecode, "message: a %T where a section belongs", v)
		}
		code, ok := descriptorCode(d.Descriptor)
		if !ok {
			return nil, Errorf(ErrDecode, "message: unknown section descriptor %v", d.Descriptor)
		}
		if err := m.decodeSection(code, d); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Message) decodeSection(code uint64, d *Described) error {
	switch code {
	case descHeader:
		f, err := listOf(d, "header")
		if err != nil {
			return err
		}
		m.Header = &Header{
			Durable: field(f, 0, false), Priority: field(f, 1, uint8(4)),
			TTL:           time.Duration(field(f, 2, uint32(0))) * time.Millisecond,
			FirstAcquirer: field(f, 3, false), DeliveryCount: field(f, 4, uint32(0)),
		}
		return f.err
	case descProperties:
		f, err := listOf(d, "properties")
		if err != nil {
			return err
		}
		m.Properties = &Properties{
			// str and sym are read interchangeably in the text fields, as
			// go-amqp and the .NET client do.
			MessageID: f.at(0), UserID: field(f, 1, []byte(nil)), To: addressField(f, 2), Subject: addressField(f, 3),
			ReplyTo: addressField(f, 4), CorrelationID: f.at(5), ContentType: Symbol(addressField(f, 6)),
			ContentEncoding: Symbol(addressField(f, 7)), AbsoluteExpiryTime: field(f, 8, time.Time{}),
			CreationTime: field(f, 9, time.Time{}), GroupID: addressField(f, 10), GroupSequence: field(f, 11, uint32(0)),
			ReplyToGroupID: addressField(f, 12),
		}
		// The spec allows ulong, uuid, binary and string ids (3.2.11-14);
		// other types are kept as sent rather than failing the delivery.
		return f.err
	case descDeliveryAnnotations, descMessageAnnotations, descFooter:
		a, err := toAnnotations(d.Value)
		if err != nil || a == nil {
			return err // a null map section says nothing
		}
		switch code {
		case descDeliveryAnnotations:
			m.DeliveryAnnotations = a
		case descMessageAnnotations:
			m.Annotations = a
		default:
			m.Footer = a
		}
	case descApplicationProperties:
		switch t := d.Value.(type) {
		case map[string]any:
			m.ApplicationProperties = t
		case map[Symbol]any:
			// symbol keys break the spec (str, 3.2.5) but are unambiguous.
			m.ApplicationProperties = make(map[string]any, len(t))
			for k, v := range t {
				m.ApplicationProperties[string(k)] = v
			}
		case map[any]any:
			m.ApplicationProperties = make(map[string]any, len(t))
			for k, v := range t {
				switch kt := k.(type) {
				case string:
					m.ApplicationProperties[kt] = v
				case Symbol:
					m.ApplicationProperties[string(kt)] = v
				default:
					return Errorf(ErrDecode, "application-properties with non-string keys")
				}
			}
		case nil:
		default:
			return Errorf(ErrDecode, "application-properties is a %T, not a map", d.Value)
		}
	case descData:
		b, ok := d.Value.([]byte)
		if !ok {
			return Errorf(ErrDecode, "data section holds a %T, not binary", d.Value)
		}
		m.Data = append(m.Data, b)
	case descAmqpSequence:
		l, ok := d.Value.([]any)
		if !ok {
			return Errorf(ErrDecode, "amqp-sequence section holds a %T, not a list", d.Value)
		}
		m.Sequence = append(m.Sequence, l)
	case descAmqpValue:
		m.Value = d.Value
	default:
		return Errorf(ErrDecode, "descriptor %v is not a message section", d.Descriptor)
	}
	return nil
}

func toAnnotations(v any) (Annotations, error) {
	switch t := v.(type) {
	case nil:
		return nil, nil
	case map[Symbol]any:
		a := make(Annotations, len(t))
		for k, v := range t {
			a[k] = v
		}
		return a, nil
	case map[string]any:
		// str keys break the spec (symbol or ulong) but go-amqp and others
		// accept them; read them as the symbols they were meant to be.
		a := make(Annotations, len(t))
		for k, v := range t {
			a[Symbol(k)] = v
		}
		return a, nil
	case map[any]any:
		a := make(Annotations, len(t))
		for k, v := range t {
			switch kt := k.(type) {
			case Symbol, uint64:
				a[k] = v
			case string:
				a[Symbol(kt)] = v
			default:
				return nil, Errorf(ErrDecode, "annotation key of type %T (want symbol or ulong)", k)
			}
		}
		return a, nil
	}
	return nil, Errorf(ErrDecode, "annotations section holds a %T, not a map", v)
}

// DecodeBatch decodes the messages of a batch (message format
// MessageFormatBatch): each data section of the outer message is one
// encoded message.
func DecodeBatch(outer *Message, lim codec.Limits) ([]*Message, error) {
	msgs := make([]*Message, 0, len(outer.Data))
	for i, d := range outer.Data {
		m, err := DecodeMessage(d, lim)
		if err != nil {
			return nil, Errorf(ErrDecode, "batch message %d: %v", i, err)
		}
		msgs = append(msgs, m)
	}
	return msgs, nil
}

// EncodeBatch encodes msgs as one batch message (send it with message
// format MessageFormatBatch). The outer message takes the first message's
// message-annotations and properties, as the Azure SDKs do.
func EncodeBatch(msgs []*Message) ([]byte, error) {
	outer := &Message{Data: make([][]byte, 0, len(msgs))}
	if len(msgs) > 0 {
		outer.Annotations = msgs[0].Annotations
		outer.Properties = msgs[0].Properties
	}
	for _, m := range msgs {
		b, err := m.MarshalBinary()
		if err != nil {
			return nil, err
		}
		outer.Data = append(outer.Data, b)
	}
	return outer.MarshalBinary()
}
