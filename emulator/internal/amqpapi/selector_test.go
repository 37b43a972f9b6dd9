// SPDX-License-Identifier: MIT

package amqpapi

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/iothubemulator/iothub/emulator/internal/hub"
)

func TestParseSelector(t *testing.T) {
	seq := func(n int64) *int64 { return &n }
	for _, tc := range []struct {
		expr string
		want hub.Position
	}{
		// What @azure/event-hubs, azeventhubs, azure-eventhub (Python) and
		// the C# SDKs build.
		{"amqp.annotation.x-opt-offset > '@latest'", hub.Position{Latest: true}},
		{"amqp.annotation.x-opt-offset > '-1'", hub.Position{Offset: "-1"}},
		{"amqp.annotation.x-opt-offset >= '-1'", hub.Position{Offset: "-1", Inclusive: true}},
		{"amqp.annotation.x-opt-offset > '4096'", hub.Position{Offset: "4096"}},
		{"amqp.annotation.x-opt-offset >= '4096'", hub.Position{Offset: "4096", Inclusive: true}},
		{"amqp.annotation.x-opt-sequence-number > '0'", hub.Position{Sequence: seq(0)}},
		{"amqp.annotation.x-opt-sequence-number >= '17'", hub.Position{Sequence: seq(17), Inclusive: true}},
		{"amqp.annotation.x-opt-enqueued-time > '1537406052971'", hub.Position{Enqueued: time.UnixMilli(1537406052971).UTC()}},
		// Older clients: no quotes.
		{"amqp.annotation.x-opt-enqueued-time > 1537406052971", hub.Position{Enqueued: time.UnixMilli(1537406052971).UTC()}},
		{"amqp.annotation.x-opt-sequence-number > 2995", hub.Position{Sequence: seq(2995)}},
		{"  AMQP.ANNOTATION.X-OPT-OFFSET   >   '-1'  ", hub.Position{Offset: "-1"}},
	} {
		got, err := ParseSelector(tc.expr)
		if err != nil {
			t.Errorf("%q: %v", tc.expr, err)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%q (-want +got):\n%s", tc.expr, diff)
		}
	}
}

func TestParseSelectorRefuses(t *testing.T) {
	for _, expr := range []string{
		"", "amqp.annotation.x-opt-offset", "amqp.annotation.x-opt-offset > ", "amqp.annotation.x-opt-offset = '1'",
		"amqp.annotation.x-opt-offset < '1'", "amqp.annotation.x-opt-offset > 'abc'", "amqp.annotation.x-opt-offset > ''",
		"amqp.annotation.x-opt-sequence-number > 'x'", "amqp.annotation.x-opt-enqueued-time > '2020-01-01'",
		"amqp.annotation.x-opt-partition-key > 'a'", "user.prop > '1'", "amqp.annotation.x-opt-offset > '1' AND x > 2",
		"amqp.annotation.x-opt-offset > '" + strings.Repeat("9", 600) + "'",
	} {
		if got, err := ParseSelector(expr); err == nil {
			t.Errorf("%q: accepted as %+v", expr, got)
		}
	}
}

func FuzzParseSelector(f *testing.F) {
	for _, s := range []string{"amqp.annotation.x-opt-offset > '@latest'", "amqp.annotation.x-opt-sequence-number >= '5'", "amqp.annotation.x-opt-enqueued-time > 1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		pos, err := ParseSelector(expr)
		if err != nil {
			return
		}
		set := 0
		for _, b := range []bool{pos.Latest, pos.Offset != "", pos.Sequence != nil, !pos.Enqueued.IsZero()} {
			if b {
				set++
			}
		}
		if set != 1 {
			t.Fatalf("%q: %d positions set, want exactly one: %+v", expr, set, pos)
		}
	})
}
