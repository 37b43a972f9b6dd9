// SPDX-License-Identifier: MIT

package twin

import (
	"errors"
	"fmt"
)

var (
	// ErrInvalid marks a write that breaks a content rule: malformed JSON, a
	// body that is not an object, a bad key, a value out of range, too deep
	// a nesting or a null where none is allowed. The hub answers 400
	// (400004 on MQTT, ArgumentInvalid on REST).
	ErrInvalid = errors.New("invalid twin update")

	// ErrTooLarge marks a write that would take a section (tags, desired or
	// reported) over its size quota. The hub answers 403 / 403100 on the
	// device side (§3.8); the REST status is unconfirmed (§11 item 7).
	ErrTooLarge = errors.New("twin section too large")
)

// Error is a rejected twin write. errors.Is(err, ErrInvalid) or
// errors.Is(err, ErrTooLarge) tells which kind; Error() is a message for the
// client, worded like the hub's and naming the offending path and limit.
type Error struct {
	Kind error  // ErrInvalid or ErrTooLarge
	Path string // the offending value, or the object holding a bad name, e.g. "properties.desired.fan"; "" for the whole body
	Msg  string // the client-facing message
}

// Error returns the client-facing message.
func (e *Error) Error() string { return e.Msg }

// Unwrap returns the kind, so errors.Is matches ErrInvalid or ErrTooLarge.
func (e *Error) Unwrap() error { return e.Kind }

func invalidf(path, format string, args ...any) *Error {
	return &Error{Kind: ErrInvalid, Path: path, Msg: fmt.Sprintf(format, args...)}
}
