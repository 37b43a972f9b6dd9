// SPDX-License-Identifier: MIT

package hub

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/huberr"
)

func TestRecordingsKeepTheNewest(t *testing.T) {
	var s []int
	for i := range 3*maxRecords + 7 {
		s = appendBounded(s, i)
	}
	got := newest(s)
	if len(got) != maxRecords {
		t.Fatalf("kept %d records, want %d", len(got), maxRecords)
	}
	if got[0] != 2*maxRecords+7 || got[len(got)-1] != 3*maxRecords+6 {
		t.Fatalf("kept records %d..%d, want %d..%d", got[0], got[len(got)-1], 2*maxRecords+7, 3*maxRecords+6)
	}
}

// TestFaultDelayFollowsTheClock: an injected delay is hub time, so a test
// can fast-forward through it.
func TestFaultDelayFollowsTheClock(t *testing.T) {
	h := newRegHub(t)
	regDevice(t, h, Device{DeviceID: "d"})
	h.SetReactor(ReactorFunc(func(op string, id Identity) *Fault {
		if op == OpGetTwin {
			return &Fault{Delay: time.Hour, Err: huberr.Throttled()}
		}
		return nil
	}))
	got := make(chan error, 1)
	go func() {
		_, err := h.GetTwin(context.Background(), Identity{DeviceID: "d"})
		got <- err
	}()
	waitTimers(t, h, 1)
	select {
	case err := <-got:
		t.Fatalf("the call returned before its delay: %v", err)
	case <-time.After(20 * time.Millisecond):
	}
	h.Clock().FastForward(time.Hour)
	select {
	case err := <-got:
		if !errors.Is(err, huberr.Throttled()) {
			t.Fatalf("got %v, want the injected throttling error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the delay did not end when the clock passed it")
	}
}
