// SPDX-License-Identifier: MIT

package amqp

import (
	"fmt"

	"github.com/iothubemulator/iothub/emulator/internal/amqp/codec"
)

// Aliases of the codec's types, so that the adapter needs only this package.
type (
	Symbol     = codec.Symbol
	UUID       = codec.UUID
	Char       = codec.Char
	Described  = codec.Described
	Array      = codec.Array
	Decimal32  = codec.Decimal32
	Decimal64  = codec.Decimal64
	Decimal128 = codec.Decimal128
)

// Error conditions (part 2, section 2.8.15-18, and part 3 for links).
const (
	ErrInternal              Symbol = "amqp:internal-error"
	ErrNotFound              Symbol = "amqp:not-found"
	ErrUnauthorizedAccess    Symbol = "amqp:unauthorized-access"
	ErrDecode                Symbol = "amqp:decode-error"
	ErrResourceLimitExceeded Symbol = "amqp:resource-limit-exceeded"
	ErrNotAllowed            Symbol = "amqp:not-allowed"
	ErrInvalidField          Symbol = "amqp:invalid-field"
	ErrNotImplemented        Symbol = "amqp:not-implemented"
	ErrResourceLocked        Symbol = "amqp:resource-locked"
	ErrPreconditionFailed    Symbol = "amqp:precondition-failed"
	ErrResourceDeleted       Symbol = "amqp:resource-deleted"
	ErrIllegalState          Symbol = "amqp:illegal-state"
	ErrFrameSizeTooSmall     Symbol = "amqp:frame-size-too-small"

	ErrConnectionForced    Symbol = "amqp:connection:forced"
	ErrFramingError        Symbol = "amqp:connection:framing-error"
	ErrConnectionRedirect  Symbol = "amqp:connection:redirect"
	ErrWindowViolation     Symbol = "amqp:session:window-violation"
	ErrErrantLink          Symbol = "amqp:session:errant-link"
	ErrHandleInUse         Symbol = "amqp:session:handle-in-use"
	ErrUnattachedHandle    Symbol = "amqp:session:unattached-handle"
	ErrDetachForced        Symbol = "amqp:link:detach-forced"
	ErrTransferLimit       Symbol = "amqp:link:transfer-limit-exceeded"
	ErrMessageSizeExceeded Symbol = "amqp:link:message-size-exceeded"
	ErrLinkRedirect        Symbol = "amqp:link:redirect"
	ErrLinkStolen          Symbol = "amqp:link:stolen"
)

// Error is the AMQP error type (part 2, section 2.8.14). Info must round-trip
// exactly: the hub's amqp:link:redirect carries hostname, network-host, port
// and address in it.
type Error struct {
	Condition   Symbol
	Description string
	Info        map[Symbol]any
}

// Error formats the condition and description.
func (e *Error) Error() string {
	if e.Description == "" {
		return string(e.Condition)
	}
	return fmt.Sprintf("%s: %s", e.Condition, e.Description)
}

// Errorf returns an *Error with the condition and a formatted description.
func Errorf(cond Symbol, format string, args ...any) *Error {
	return &Error{Condition: cond, Description: fmt.Sprintf(format, args...)}
}

// AppendAMQP implements codec.Marshaler.
func (e *Error) AppendAMQP(b []byte) ([]byte, error) {
	if e == nil {
		return append(b, 0x40), nil
	}
	return codec.AppendDescribedList(b, descError, e.Condition, nilIfEmpty(e.Description), nilIfEmptyMap(e.Info))
}

// Role is a link endpoint's role (part 2, section 2.8.1): false is sender.
type Role bool

// Link roles.
const (
	RoleSender   Role = false
	RoleReceiver Role = true
)

// String returns "sender" or "receiver".
func (r Role) String() string {
	if r == RoleReceiver {
		return "receiver"
	}
	return "sender"
}

// SenderSettleMode is snd-settle-mode (part 2, section 2.8.2).
type SenderSettleMode uint8

// Sender settle modes.
const (
	SenderUnsettled SenderSettleMode = 0 // every delivery is sent unsettled
	SenderSettled   SenderSettleMode = 1 // every delivery is sent settled
	SenderMixed     SenderSettleMode = 2 // the sender chooses per delivery (the default)
)

// ReceiverSettleMode is rcv-settle-mode (part 2, section 2.8.3).
type ReceiverSettleMode uint8

// Receiver settle modes.
const (
	ReceiverFirst  ReceiverSettleMode = 0 // the receiver settles first (the default)
	ReceiverSecond ReceiverSettleMode = 1 // the receiver settles after the sender has
)

// Source is a link source terminus (part 3, section 3.5.3).
type Source struct {
	Address               string
	Durable               uint32 // terminus-durability: 0 none, 1 configuration, 2 unsettled-state
	ExpiryPolicy          Symbol // "" means the default, session-end
	Timeout               uint32 // seconds
	Dynamic               bool
	DynamicNodeProperties map[Symbol]any
	DistributionMode      Symbol
	Filter                map[Symbol]any // values are *Described (e.g. apache.org:selector-filter:string) or nil
	DefaultOutcome        DeliveryState
	Outcomes              []Symbol
	Capabilities          []Symbol
}

// AppendAMQP implements codec.Marshaler.
func (s *Source) AppendAMQP(b []byte) ([]byte, error) {
	if s == nil {
		return append(b, 0x40), nil
	}
	return codec.AppendDescribedList(b, descSource,
		nilIfEmpty(s.Address), nilIfZero(s.Durable), nilIfEmptySym(s.ExpiryPolicy), nilIfZero(s.Timeout),
		nilIfFalse(s.Dynamic), nilIfEmptyMap(s.DynamicNodeProperties), nilIfEmptySym(s.DistributionMode),
		nilIfEmptyMap(s.Filter), stateOrNil(s.DefaultOutcome), nilIfEmptySyms(s.Outcomes), nilIfEmptySyms(s.Capabilities))
}

// SelectorFilter returns the string value of the filter whose descriptor is
// apache.org:selector-filter:string (0x0000468C00000004), the one the Event
// Hubs SDKs send, whatever its key in the filter map.
func (s *Source) SelectorFilter() (string, bool) {
	if s == nil {
		return "", false
	}
	for _, v := range s.Filter {
		d, ok := v.(*Described)
		if !ok {
			continue
		}
		if d.Descriptor == uint64(0x0000468C00000004) || d.Descriptor == Symbol("apache.org:selector-filter:string") {
			str, ok := d.Value.(string)
			return str, ok
		}
	}
	return "", false
}

// Target is a link target terminus (part 3, section 3.5.4).
type Target struct {
	Address               string
	Durable               uint32
	ExpiryPolicy          Symbol
	Timeout               uint32
	Dynamic               bool
	DynamicNodeProperties map[Symbol]any
	Capabilities          []Symbol
}

// AppendAMQP implements codec.Marshaler.
func (t *Target) AppendAMQP(b []byte) ([]byte, error) {
	if t == nil {
		return append(b, 0x40), nil
	}
	return codec.AppendDescribedList(b, descTarget,
		nilIfEmpty(t.Address), nilIfZero(t.Durable), nilIfEmptySym(t.ExpiryPolicy), nilIfZero(t.Timeout),
		nilIfFalse(t.Dynamic), nilIfEmptyMap(t.DynamicNodeProperties), nilIfEmptySyms(t.Capabilities))
}

// DeliveryState is a delivery's state or outcome (part 3, section 3.4):
// *Accepted, *Rejected, *Released, *Modified or *Received.
type DeliveryState interface {
	codec.Marshaler
	deliveryState()
}

// Accepted is the accepted outcome (part 3, section 3.4.2).
type Accepted struct{}

// Rejected is the rejected outcome (section 3.4.3), with an optional error.
type Rejected struct{ Error *Error }

// Released is the released outcome (section 3.4.4).
type Released struct{}

// Modified is the modified outcome (section 3.4.5).
type Modified struct {
	DeliveryFailed     bool
	UndeliverableHere  bool
	MessageAnnotations map[Symbol]any
}

// Received is the received delivery state (section 3.4.1), not an outcome.
type Received struct {
	SectionNumber uint32
	SectionOffset uint64
}

func (*Accepted) deliveryState() {}
func (*Rejected) deliveryState() {}
func (*Released) deliveryState() {}
func (*Modified) deliveryState() {}
func (*Received) deliveryState() {}

// AppendAMQP implements codec.Marshaler.
func (a *Accepted) AppendAMQP(b []byte) ([]byte, error) {
	return codec.AppendDescribedList(b, descAccepted)
}

// AppendAMQP implements codec.Marshaler.
func (r *Rejected) AppendAMQP(b []byte) ([]byte, error) {
	var e any
	if r.Error != nil {
		e = r.Error
	}
	return codec.AppendDescribedList(b, descRejected, e)
}

// AppendAMQP implements codec.Marshaler.
func (r *Released) AppendAMQP(b []byte) ([]byte, error) {
	return codec.AppendDescribedList(b, descReleased)
}

// AppendAMQP implements codec.Marshaler.
func (m *Modified) AppendAMQP(b []byte) ([]byte, error) {
	return codec.AppendDescribedList(b, descModified, nilIfFalse(m.DeliveryFailed), nilIfFalse(m.UndeliverableHere), nilIfEmptyMap(m.MessageAnnotations))
}

// AppendAMQP implements codec.Marshaler.
func (r *Received) AppendAMQP(b []byte) ([]byte, error) {
	return codec.AppendDescribedList(b, descReceived, r.SectionNumber, r.SectionOffset)
}

func stateOrNil(s DeliveryState) any {
	if s == nil {
		return nil
	}
	return s
}

func stateName(s DeliveryState) string {
	switch t := s.(type) {
	case nil:
		return "none"
	case *Accepted:
		return "accepted"
	case *Rejected:
		if t.Error != nil {
			return "rejected(" + t.Error.Error() + ")"
		}
		return "rejected"
	case *Released:
		return "released"
	case *Modified:
		return fmt.Sprintf("modified(failed=%v,undeliverable=%v)", t.DeliveryFailed, t.UndeliverableHere)
	case *Received:
		return "received"
	}
	return fmt.Sprintf("%T", s)
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func nilIfEmptySym(s Symbol) any {
	if s == "" {
		return nil
	}
	return s
}

func nilIfEmptySyms(s []Symbol) any {
	if len(s) == 0 {
		return nil
	}
	return s
}

func nilIfZero[T uint32 | uint64 | uint16](v T) any {
	if v == 0 {
		return nil
	}
	return v
}

func nilIfFalse(v bool) any {
	if !v {
		return nil
	}
	return v
}

func nilIfEmptyMap[K comparable](m map[K]any) any {
	if len(m) == 0 {
		return nil
	}
	return m
}
