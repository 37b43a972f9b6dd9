// SPDX-License-Identifier: MIT

package amqp

import (
	"fmt"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/amqp/codec"
)

// Descriptor codes (part 2 section 2.7 performatives, 2.8 definitions;
// part 3 messaging; part 5 SASL; part 4 transactions).
const (
	descOpen        = 0x10
	descBegin       = 0x11
	descAttach      = 0x12
	descFlow        = 0x13
	descTransfer    = 0x14
	descDisposition = 0x15
	descDetach      = 0x16
	descEnd         = 0x17
	descClose       = 0x18
	descError       = 0x1d
	descReceived    = 0x23
	descAccepted    = 0x24
	descRejected    = 0x25
	descReleased    = 0x26
	descModified    = 0x27
	descSource      = 0x28
	descTarget      = 0x29
	descCoordinator = 0x30

	descSASLMechanisms = 0x40
	descSASLInit       = 0x41
	descSASLChallenge  = 0x42
	descSASLResponse   = 0x43
	descSASLOutcome    = 0x44
)

// symbolicDescriptors maps the symbolic descriptor names, which the spec
// allows in place of the codes (part 1, section 1.5), onto the codes.
var symbolicDescriptors = map[Symbol]uint64{
	"amqp:open:list": descOpen, "amqp:begin:list": descBegin, "amqp:attach:list": descAttach,
	"amqp:flow:list": descFlow, "amqp:transfer:list": descTransfer, "amqp:disposition:list": descDisposition,
	"amqp:detach:list": descDetach, "amqp:end:list": descEnd, "amqp:close:list": descClose,
	"amqp:error:list": descError, "amqp:received:list": descReceived, "amqp:accepted:list": descAccepted,
	"amqp:rejected:list": descRejected, "amqp:released:list": descReleased, "amqp:modified:list": descModified,
	"amqp:source:list": descSource, "amqp:target:list": descTarget, "amqp:coordinator:list": descCoordinator,
	"amqp:sasl-mechanisms:list": descSASLMechanisms, "amqp:sasl-init:list": descSASLInit,
	"amqp:sasl-challenge:list": descSASLChallenge, "amqp:sasl-response:list": descSASLResponse,
	"amqp:sasl-outcome:list": descSASLOutcome,
	"amqp:header:list":       descHeader, "amqp:delivery-annotations:map": descDeliveryAnnotations,
	"amqp:message-annotations:map": descMessageAnnotations, "amqp:properties:list": descProperties,
	"amqp:application-properties:map": descApplicationProperties, "amqp:data:binary": descData,
	"amqp:amqp-sequence:list": descAmqpSequence, "amqp:amqp-value:*": descAmqpValue, "amqp:footer:map": descFooter,
}

func descriptorCode(d any) (uint64, bool) {
	switch t := d.(type) {
	case uint64:
		return t, true
	case Symbol:
		c, ok := symbolicDescriptors[t]
		return c, ok
	}
	return 0, false
}

// Performatives. Optional numeric fields that the peer may leave null, where
// null means something different from zero, are pointers.

type performOpen struct {
	ContainerID         string
	Hostname            string
	MaxFrameSize        uint32 // default 4294967295
	ChannelMax          uint16 // default 65535
	IdleTimeout         time.Duration
	OutgoingLocales     []Symbol
	IncomingLocales     []Symbol
	OfferedCapabilities []Symbol
	DesiredCapabilities []Symbol
	Properties          map[Symbol]any
}

type performBegin struct {
	RemoteChannel       *uint16
	NextOutgoingID      uint32
	IncomingWindow      uint32
	OutgoingWindow      uint32
	HandleMax           uint32 // default 4294967295
	OfferedCapabilities []Symbol
	DesiredCapabilities []Symbol
	Properties          map[Symbol]any
}

type performAttach struct {
	Name                 string
	Handle               uint32
	Role                 Role
	SndSettleMode        SenderSettleMode
	RcvSettleMode        ReceiverSettleMode
	Source               *Source
	Target               *Target
	Coordinator          bool // the target is a transaction coordinator (part 4)
	Unsettled            map[any]any
	IncompleteUnsettled  bool
	InitialDeliveryCount *uint32
	MaxMessageSize       uint64
	OfferedCapabilities  []Symbol
	DesiredCapabilities  []Symbol
	Properties           map[Symbol]any
}

type performFlow struct {
	NextIncomingID *uint32
	IncomingWindow uint32
	NextOutgoingID uint32
	OutgoingWindow uint32
	Handle         *uint32
	DeliveryCount  *uint32
	LinkCredit     *uint32
	Available      *uint32
	Drain          bool
	Echo           bool
	Properties     map[Symbol]any
}

type performTransfer struct {
	Handle        uint32
	DeliveryID    *uint32
	DeliveryTag   []byte
	MessageFormat *uint32
	Settled       *bool
	More          bool
	RcvSettleMode *ReceiverSettleMode
	State         DeliveryState
	Resume        bool
	Aborted       bool
	Batchable     bool
	Payload       []byte // the bytes after the performative (part 2, section 2.3.2)
}

type performDisposition struct {
	Role      Role
	First     uint32
	Last      *uint32
	Settled   bool
	State     DeliveryState
	Batchable bool
}

type performDetach struct {
	Handle uint32
	Closed bool
	Error  *Error
}

type performEnd struct{ Error *Error }

type performClose struct{ Error *Error }

type saslMechanisms struct{ Mechanisms []Symbol }

type saslInit struct {
	Mechanism       Symbol
	InitialResponse []byte
	Hostname        string
}

type saslChallenge struct{ Challenge []byte }

type saslResponse struct{ Response []byte }

type saslOutcome struct {
	Code           uint8
	AdditionalData []byte
}

// --- encoding ----------------------------------------------------------

func optU32(p *uint32) any {
	if p == nil {
		return nil
	}
	return *p
}

func errOrNil(e *Error) any {
	if e == nil {
		return nil
	}
	return e
}

func (p *performOpen) AppendAMQP(b []byte) ([]byte, error) {
	var idle any
	if p.IdleTimeout > 0 {
		idle = uint32(p.IdleTimeout / time.Millisecond)
	}
	return codec.AppendDescribedList(b, descOpen, p.ContainerID, nilIfEmpty(p.Hostname), p.MaxFrameSize, p.ChannelMax, idle,
		nilIfEmptySyms(p.OutgoingLocales), nilIfEmptySyms(p.IncomingLocales), nilIfEmptySyms(p.OfferedCapabilities),
		nilIfEmptySyms(p.DesiredCapabilities), nilIfEmptyMap(p.Properties))
}

func (p *performBegin) AppendAMQP(b []byte) ([]byte, error) {
	var rc any
	if p.RemoteChannel != nil {
		rc = *p.RemoteChannel
	}
	return codec.AppendDescribedList(b, descBegin, rc, p.NextOutgoingID, p.IncomingWindow, p.OutgoingWindow, p.HandleMax,
		nilIfEmptySyms(p.OfferedCapabilities), nilIfEmptySyms(p.DesiredCapabilities), nilIfEmptyMap(p.Properties))
}

func (p *performAttach) AppendAMQP(b []byte) ([]byte, error) {
	var src, tgt, mms any
	if p.Source != nil {
		src = p.Source
	}
	if p.Target != nil {
		tgt = p.Target
	}
	if p.Coordinator {
		tgt = &Described{Descriptor: uint64(descCoordinator), Value: []any{}}
	}
	if p.MaxMessageSize > 0 {
		mms = p.MaxMessageSize
	}
	return codec.AppendDescribedList(b, descAttach, p.Name, p.Handle, bool(p.Role), uint8(p.SndSettleMode), uint8(p.RcvSettleMode),
		src, tgt, nilIfEmptyMap(p.Unsettled), nilIfFalse(p.IncompleteUnsettled), optU32(p.InitialDeliveryCount), mms,
		nilIfEmptySyms(p.OfferedCapabilities), nilIfEmptySyms(p.DesiredCapabilities), nilIfEmptyMap(p.Properties))
}

func (p *performFlow) AppendAMQP(b []byte) ([]byte, error) {
	return codec.AppendDescribedList(b, descFlow, optU32(p.NextIncomingID), p.IncomingWindow, p.NextOutgoingID, p.OutgoingWindow,
		optU32(p.Handle), optU32(p.DeliveryCount), optU32(p.LinkCredit), optU32(p.Available), nilIfFalse(p.Drain),
		nilIfFalse(p.Echo), nilIfEmptyMap(p.Properties))
}

// appendTransfer writes the performative only; the caller appends the payload.
func (p *performTransfer) AppendAMQP(b []byte) ([]byte, error) {
	var tag, settled, rsm any
	if p.DeliveryTag != nil {
		tag = p.DeliveryTag
	}
	if p.Settled != nil {
		settled = *p.Settled
	}
	if p.RcvSettleMode != nil {
		rsm = uint8(*p.RcvSettleMode)
	}
	return codec.AppendDescribedList(b, descTransfer, p.Handle, optU32(p.DeliveryID), tag, optU32(p.MessageFormat), settled,
		nilIfFalse(p.More), rsm, stateOrNil(p.State), nilIfFalse(p.Resume), nilIfFalse(p.Aborted), nilIfFalse(p.Batchable))
}

func (p *performDisposition) AppendAMQP(b []byte) ([]byte, error) {
	return codec.AppendDescribedList(b, descDisposition, bool(p.Role), p.First, optU32(p.Last), nilIfFalse(p.Settled),
		stateOrNil(p.State), nilIfFalse(p.Batchable))
}

func (p *performDetach) AppendAMQP(b []byte) ([]byte, error) {
	return codec.AppendDescribedList(b, descDetach, p.Handle, nilIfFalse(p.Closed), errOrNil(p.Error))
}

func (p *performEnd) AppendAMQP(b []byte) ([]byte, error) {
	return codec.AppendDescribedList(b, descEnd, errOrNil(p.Error))
}

func (p *performClose) AppendAMQP(b []byte) ([]byte, error) {
	return codec.AppendDescribedList(b, descClose, errOrNil(p.Error))
}

func (p *saslMechanisms) AppendAMQP(b []byte) ([]byte, error) {
	return codec.AppendDescribedList(b, descSASLMechanisms, p.Mechanisms)
}

func (p *saslChallenge) AppendAMQP(b []byte) ([]byte, error) {
	return codec.AppendDescribedList(b, descSASLChallenge, p.Challenge)
}

func (p *saslOutcome) AppendAMQP(b []byte) ([]byte, error) {
	var ad any
	if p.AdditionalData != nil {
		ad = p.AdditionalData
	}
	return codec.AppendDescribedList(b, descSASLOutcome, p.Code, ad)
}

// Client-side frames, encoded only by tests that play a raw peer.

func (p *saslInit) AppendAMQP(b []byte) ([]byte, error) {
	var ir any
	if p.InitialResponse != nil {
		ir = p.InitialResponse
	}
	return codec.AppendDescribedList(b, descSASLInit, p.Mechanism, ir, nilIfEmpty(p.Hostname))
}

func (p *saslResponse) AppendAMQP(b []byte) ([]byte, error) {
	return codec.AppendDescribedList(b, descSASLResponse, p.Response)
}

// --- decoding ----------------------------------------------------------

// fields reads the list of a described composite with type checks; the
// first mismatch is kept in err (which becomes amqp:decode-error).
type fields struct {
	name string
	list []any
	err  error
}

func (f *fields) at(i int) any {
	if i < len(f.list) {
		return f.list[i]
	}
	return nil
}

func (f *fields) fail(i int, format string, args ...any) {
	if f.err == nil {
		f.err = &Error{Condition: ErrDecode, Description: fmt.Sprintf("%s field %d: %s", f.name, i, fmt.Sprintf(format, args...))}
	}
}

func (f *fields) mandatory(i int) bool {
	if f.at(i) == nil {
		f.fail(i, "mandatory field is null")
		return false
	}
	return true
}

func field[T any](f *fields, i int, def T) T {
	v := f.at(i)
	if v == nil {
		return def
	}
	t, ok := v.(T)
	if !ok {
		var want T
		f.fail(i, "want %T, got %T", want, v)
		return def
	}
	return t
}

func fieldPtr[T any](f *fields, i int) *T {
	if f.at(i) == nil {
		return nil
	}
	var zero T
	v := field(f, i, zero)
	return &v
}

// symbols reads a "multiple" symbol field: one symbol or an array of them
// (part 1, section 1.3 "multiple").
func (f *fields) symbols(i int) []Symbol {
	switch t := f.at(i).(type) {
	case nil:
		return nil
	case Symbol:
		return []Symbol{t}
	case []Symbol:
		return t
	case Array:
		if len(t) == 0 {
			return nil
		}
	}
	f.fail(i, "want symbol or array of symbol, got %T", f.at(i))
	return nil
}

// symMap reads a fields map (symbol keys). Empty maps decode untyped, and
// string keys are accepted as symbols for peers that use them.
func (f *fields) symMap(i int) map[Symbol]any {
	m, err := toSymMap(f.at(i))
	if err != nil {
		f.fail(i, "%v", err)
	}
	return m
}

func toSymMap(v any) (map[Symbol]any, error) {
	switch t := v.(type) {
	case nil:
		return nil, nil
	case map[Symbol]any:
		return t, nil
	case map[string]any:
		m := make(map[Symbol]any, len(t))
		for k, v := range t {
			m[Symbol(k)] = v
		}
		return m, nil
	case map[any]any:
		m := make(map[Symbol]any, len(t))
		for k, v := range t {
			switch ks := k.(type) {
			case Symbol:
				m[ks] = v
			case string:
				m[Symbol(ks)] = v
			default:
				return nil, fmt.Errorf("map key of type %T where a symbol is required", k)
			}
		}
		return m, nil
	}
	return nil, fmt.Errorf("want a map, got %T", v)
}

func (f *fields) errorField(i int) *Error {
	v := f.at(i)
	if v == nil {
		return nil
	}
	d, ok := v.(*Described)
	code, ok2 := descriptorCode(descOf(d))
	if !ok || !ok2 || code != descError {
		f.fail(i, "want an error, got %T", v)
		return nil
	}
	e, err := decodeError(d)
	if err != nil && f.err == nil {
		f.err = err
	}
	return e
}

func descOf(d *Described) any {
	if d == nil {
		return nil
	}
	return d.Descriptor
}

func listOf(d *Described, name string) (*fields, error) {
	switch l := d.Value.(type) {
	case []any:
		return &fields{name: name, list: l}, nil
	}
	return nil, Errorf(ErrDecode, "%s: want a list, got %T", name, d.Value)
}

func decodeError(d *Described) (*Error, error) {
	f, err := listOf(d, "error")
	if err != nil {
		return nil, err
	}
	f.mandatory(0)
	e := &Error{Condition: field(f, 0, Symbol("")), Description: field(f, 1, ""), Info: f.symMap(2)}
	return e, f.err
}

func (f *fields) stateField(i int) DeliveryState {
	v := f.at(i)
	if v == nil {
		return nil
	}
	d, ok := v.(*Described)
	if !ok {
		f.fail(i, "want a delivery state, got %T", v)
		return nil
	}
	s, err := decodeState(d)
	if err != nil && f.err == nil {
		f.err = err
	}
	return s
}

func decodeState(d *Described) (DeliveryState, error) {
	code, _ := descriptorCode(d.Descriptor)
	f, err := listOf(d, "delivery-state")
	if err != nil {
		return nil, err
	}
	switch code {
	case descAccepted:
		return &Accepted{}, nil
	case descRejected:
		return &Rejected{Error: f.errorField(0)}, f.err
	case descReleased:
		return &Released{}, nil
	case descModified:
		return &Modified{DeliveryFailed: field(f, 0, false), UndeliverableHere: field(f, 1, false), MessageAnnotations: f.symMap(2)}, f.err
	case descReceived:
		f.mandatory(0)
		f.mandatory(1)
		return &Received{SectionNumber: field(f, 0, uint32(0)), SectionOffset: field(f, 1, uint64(0))}, f.err
	}
	return nil, Errorf(ErrNotImplemented, "delivery state %v is not supported (transactions are not implemented)", d.Descriptor)
}

func decodeSource(v any) (*Source, error) {
	if v == nil {
		return nil, nil
	}
	d, ok := v.(*Described)
	if code, ok2 := descriptorCode(descOf(d)); !ok || !ok2 || code != descSource {
		return nil, Errorf(ErrDecode, "attach source: want a source, got %T", v)
	}
	f, err := listOf(d, "source")
	if err != nil {
		return nil, err
	}
	s := &Source{
		Address: addressField(f, 0), Durable: field(f, 1, uint32(0)), ExpiryPolicy: field(f, 2, Symbol("")),
		Timeout: field(f, 3, uint32(0)), Dynamic: field(f, 4, false), DynamicNodeProperties: f.symMap(5),
		DistributionMode: field(f, 6, Symbol("")), Filter: f.symMap(7), DefaultOutcome: f.stateField(8),
		Outcomes: f.symbols(9), Capabilities: f.symbols(10),
	}
	return s, f.err
}

// decodeTarget returns coordinator=true for a transaction coordinator target.
func decodeTarget(v any) (t *Target, coordinator bool, err error) {
	if v == nil {
		return nil, false, nil
	}
	d, ok := v.(*Described)
	code, ok2 := descriptorCode(descOf(d))
	if ok && ok2 && code == descCoordinator {
		return nil, true, nil
	}
	if !ok || !ok2 || code != descTarget {
		return nil, false, Errorf(ErrDecode, "attach target: want a target, got %T", v)
	}
	f, err := listOf(d, "target")
	if err != nil {
		return nil, false, err
	}
	t = &Target{
		Address: addressField(f, 0), Durable: field(f, 1, uint32(0)), ExpiryPolicy: field(f, 2, Symbol("")),
		Timeout: field(f, 3, uint32(0)), Dynamic: field(f, 4, false), DynamicNodeProperties: f.symMap(5),
		Capabilities: f.symbols(6),
	}
	return t, false, f.err
}

// addressField reads an address-string or other text field; a symbol is
// tolerated where a string belongs (and the reverse).
func addressField(f *fields, i int) string {
	switch t := f.at(i).(type) {
	case nil:
		return ""
	case string:
		return t
	case Symbol:
		return string(t)
	}
	f.fail(i, "want a string, got %T", f.at(i))
	return ""
}

// decodeFrameBody decodes one performative (AMQP or SASL) and, for a
// transfer, keeps the payload that follows it.
func decodeFrameBody(body []byte, lim codec.Limits) (any, error) {
	dec := codec.NewDecoder(body, lim)
	v, err := dec.Any()
	if err != nil {
		return nil, Errorf(ErrDecode, "frame body: %v", err)
	}
	d, ok := v.(*Described)
	if !ok {
		return nil, Errorf(ErrDecode, "frame body is a %T, not a performative", v)
	}
	code, ok := descriptorCode(d.Descriptor)
	if !ok {
		return nil, Errorf(ErrDecode, "unknown performative descriptor %v", d.Descriptor)
	}
	rest := body[dec.Offset():]
	if len(rest) > 0 && code != descTransfer {
		return nil, Errorf(ErrDecode, "%d bytes after a non-transfer performative", len(rest))
	}
	switch code {
	case descOpen:
		f, err := listOf(d, "open")
		if err != nil {
			return nil, err
		}
		f.mandatory(0)
		p := &performOpen{
			ContainerID: field(f, 0, ""), Hostname: field(f, 1, ""), MaxFrameSize: field(f, 2, uint32(0xffffffff)),
			ChannelMax: field(f, 3, uint16(0xffff)), IdleTimeout: time.Duration(field(f, 4, uint32(0))) * time.Millisecond,
			OutgoingLocales: f.symbols(5), IncomingLocales: f.symbols(6), OfferedCapabilities: f.symbols(7),
			DesiredCapabilities: f.symbols(8), Properties: f.symMap(9),
		}
		return p, f.err
	case descBegin:
		f, err := listOf(d, "begin")
		if err != nil {
			return nil, err
		}
		f.mandatory(1)
		f.mandatory(2)
		f.mandatory(3)
		p := &performBegin{
			RemoteChannel: fieldPtr[uint16](f, 0), NextOutgoingID: field(f, 1, uint32(0)), IncomingWindow: field(f, 2, uint32(0)),
			OutgoingWindow: field(f, 3, uint32(0)), HandleMax: field(f, 4, uint32(0xffffffff)),
			OfferedCapabilities: f.symbols(5), DesiredCapabilities: f.symbols(6), Properties: f.symMap(7),
		}
		return p, f.err
	case descAttach:
		f, err := listOf(d, "attach")
		if err != nil {
			return nil, err
		}
		f.mandatory(0)
		f.mandatory(1)
		f.mandatory(2)
		p := &performAttach{
			Name: field(f, 0, ""), Handle: field(f, 1, uint32(0)), Role: Role(field(f, 2, false)),
			SndSettleMode: SenderSettleMode(field(f, 3, uint8(SenderMixed))), RcvSettleMode: ReceiverSettleMode(field(f, 4, uint8(ReceiverFirst))),
			IncompleteUnsettled: field(f, 8, false), InitialDeliveryCount: fieldPtr[uint32](f, 9),
			MaxMessageSize: field(f, 10, uint64(0)), OfferedCapabilities: f.symbols(11), DesiredCapabilities: f.symbols(12),
			Properties: f.symMap(13),
		}
		if f.err != nil {
			return nil, f.err
		}
		if p.SndSettleMode > SenderMixed || p.RcvSettleMode > ReceiverSecond {
			return nil, Errorf(ErrInvalidField, "attach: settle mode out of range")
		}
		switch u := f.at(7).(type) {
		case nil:
		case map[any]any:
			p.Unsettled = u
		case map[string]any, map[Symbol]any:
			p.Unsettled = map[any]any{"": nil} // non-empty: any unsettled state means a resume request
		default:
			return nil, Errorf(ErrDecode, "attach field 7: want a map, got %T", u)
		}
		if p.Source, err = decodeSource(f.at(5)); err != nil {
			return nil, err
		}
		if p.Target, p.Coordinator, err = decodeTarget(f.at(6)); err != nil {
			return nil, err
		}
		return p, nil
	case descFlow:
		f, err := listOf(d, "flow")
		if err != nil {
			return nil, err
		}
		f.mandatory(1)
		f.mandatory(2)
		f.mandatory(3)
		p := &performFlow{
			NextIncomingID: fieldPtr[uint32](f, 0), IncomingWindow: field(f, 1, uint32(0)), NextOutgoingID: field(f, 2, uint32(0)),
			OutgoingWindow: field(f, 3, uint32(0)), Handle: fieldPtr[uint32](f, 4), DeliveryCount: fieldPtr[uint32](f, 5),
			LinkCredit: fieldPtr[uint32](f, 6), Available: fieldPtr[uint32](f, 7), Drain: field(f, 8, false),
			Echo: field(f, 9, false), Properties: f.symMap(10),
		}
		return p, f.err
	case descTransfer:
		f, err := listOf(d, "transfer")
		if err != nil {
			return nil, err
		}
		f.mandatory(0)
		p := &performTransfer{
			Handle: field(f, 0, uint32(0)), DeliveryID: fieldPtr[uint32](f, 1), MessageFormat: fieldPtr[uint32](f, 3),
			Settled: fieldPtr[bool](f, 4), More: field(f, 5, false), State: f.stateField(7), Resume: field(f, 8, false),
			Aborted: field(f, 9, false), Batchable: field(f, 10, false), Payload: rest,
		}
		if tag := f.at(2); tag != nil {
			p.DeliveryTag = field(f, 2, []byte(nil))
			if len(p.DeliveryTag) > 32 { // part 2, section 2.8.7: at most 32 bytes
				f.fail(2, "delivery tag of %d bytes exceeds 32", len(p.DeliveryTag))
			}
		}
		if m := fieldPtr[uint8](f, 6); m != nil {
			r := ReceiverSettleMode(*m)
			p.RcvSettleMode = &r
		}
		return p, f.err
	case descDisposition:
		f, err := listOf(d, "disposition")
		if err != nil {
			return nil, err
		}
		f.mandatory(0)
		f.mandatory(1)
		p := &performDisposition{
			Role: Role(field(f, 0, false)), First: field(f, 1, uint32(0)), Last: fieldPtr[uint32](f, 2),
			Settled: field(f, 3, false), State: f.stateField(4), Batchable: field(f, 5, false),
		}
		return p, f.err
	case descDetach:
		f, err := listOf(d, "detach")
		if err != nil {
			return nil, err
		}
		f.mandatory(0)
		p := &performDetach{Handle: field(f, 0, uint32(0)), Closed: field(f, 1, false), Error: f.errorField(2)}
		return p, f.err
	case descEnd:
		f, err := listOf(d, "end")
		if err != nil {
			return nil, err
		}
		return &performEnd{Error: f.errorField(0)}, f.err
	case descClose:
		f, err := listOf(d, "close")
		if err != nil {
			return nil, err
		}
		return &performClose{Error: f.errorField(0)}, f.err
	case descSASLInit:
		f, err := listOf(d, "sasl-init")
		if err != nil {
			return nil, err
		}
		f.mandatory(0)
		return &saslInit{Mechanism: field(f, 0, Symbol("")), InitialResponse: field(f, 1, []byte(nil)), Hostname: field(f, 2, "")}, f.err
	case descSASLResponse:
		f, err := listOf(d, "sasl-response")
		if err != nil {
			return nil, err
		}
		f.mandatory(0)
		return &saslResponse{Response: field(f, 0, []byte(nil))}, f.err
	case descSASLMechanisms:
		f, err := listOf(d, "sasl-mechanisms")
		if err != nil {
			return nil, err
		}
		return &saslMechanisms{Mechanisms: f.symbols(0)}, f.err
	case descSASLOutcome:
		f, err := listOf(d, "sasl-outcome")
		if err != nil {
			return nil, err
		}
		f.mandatory(0)
		return &saslOutcome{Code: field(f, 0, uint8(0)), AdditionalData: field(f, 1, []byte(nil))}, f.err
	case descSASLChallenge:
		f, err := listOf(d, "sasl-challenge")
		if err != nil {
			return nil, err
		}
		return &saslChallenge{Challenge: field(f, 0, []byte(nil))}, f.err
	}
	return nil, Errorf(ErrDecode, "descriptor %v is not a performative", d.Descriptor)
}
