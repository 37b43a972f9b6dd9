// SPDX-License-Identifier: MIT

package amqpapi

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/hub"
)

// Event Hubs consumers say where to start reading with a selector filter
// (descriptor apache.org:selector-filter:string) on the receiver's source.
// The SDKs build one comparison of one message annotation:
//
//	amqp.annotation.x-opt-offset > '@latest'       only new events
//	amqp.annotation.x-opt-offset > '-1'            from the start
//	amqp.annotation.x-opt-offset >= '12345'        at or after an offset
//	amqp.annotation.x-opt-sequence-number > '41'   after a sequence number
//	amqp.annotation.x-opt-enqueued-time > '1700000000000'  after a time (Unix ms)
//
// Older clients leave the value unquoted. Nothing else is built by any SDK,
// so anything else is refused rather than guessed at.

// maxSelector bounds a selector expression; real ones are under 80 bytes.
const maxSelector = 512

// ParseSelector turns a selector filter expression into a partition start
// position.
func ParseSelector(expr string) (hub.Position, error) {
	if len(expr) > maxSelector {
		return hub.Position{}, fmt.Errorf("selector filter of %d bytes; the longest accepted is %d", len(expr), maxSelector)
	}
	fields := strings.Fields(expr)
	if len(fields) != 3 {
		return hub.Position{}, fmt.Errorf("selector filter %q: want <annotation> <operator> '<value>'", expr)
	}
	name, op, value := strings.ToLower(fields[0]), fields[1], fields[2]
	var pos hub.Position
	switch op {
	case ">":
	case ">=":
		pos.Inclusive = true
	default:
		return hub.Position{}, fmt.Errorf("selector filter %q: operator %q is not supported; use > or >=", expr, op)
	}
	if len(value) >= 2 && value[0] == '\'' && value[len(value)-1] == '\'' {
		value = value[1 : len(value)-1]
	}
	if value == "" {
		return hub.Position{}, fmt.Errorf("selector filter %q: empty value", expr)
	}
	switch strings.TrimPrefix(name, "amqp.annotation.") {
	case "x-opt-offset":
		switch {
		case value == "@latest":
			pos.Latest = true
		case value == "-1":
			pos.Offset = "-1"
		default:
			if _, err := strconv.ParseUint(value, 10, 64); err != nil {
				return hub.Position{}, fmt.Errorf("selector filter %q: offset %q is not a number", expr, value)
			}
			pos.Offset = value
		}
	case "x-opt-sequence-number":
		n, err := strconv.ParseInt(value, 10, 64)
		if err != nil {
			return hub.Position{}, fmt.Errorf("selector filter %q: sequence number %q is not a number", expr, value)
		}
		pos.Sequence = &n
	case "x-opt-enqueued-time":
		ms, err := strconv.ParseInt(value, 10, 64)
		if err != nil {
			return hub.Position{}, fmt.Errorf("selector filter %q: enqueued time %q is not Unix milliseconds", expr, value)
		}
		pos.Enqueued = time.UnixMilli(ms).UTC()
	default:
		return hub.Position{}, fmt.Errorf("selector filter %q: %s is not x-opt-offset, x-opt-sequence-number or x-opt-enqueued-time", expr, fields[0])
	}
	return pos, nil
}
