// SPDX-License-Identifier: MIT

package hub

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/huberr"
)

func TestRecordingsKeepTheNewest(t *testing.T) {
	var r recording[int]
	for i := range 3*maxRecords + 7 {
		r.add(i, 1)
	}
	got := r.all()
	if len(got) != maxRecords {
		t.Fatalf("kept %d records, want %d", len(got), maxRecords)
	}
	if got[0] != 2*maxRecords+7 || got[len(got)-1] != 3*maxRecords+6 {
		t.Fatalf("kept records %d..%d, want %d..%d", got[0], got[len(got)-1], 2*maxRecords+7, 3*maxRecords+6)
	}
	if cap(r.items) > 4*maxRecords {
		t.Fatalf("the recording's storage grew to %d entries for %d kept", cap(r.items), maxRecords)
	}
}

func TestRecordingsBoundedByBytes(t *testing.T) {
	r := recording[int]{maxBytes: 1000}
	for i := range 500 {
		r.add(i, 30+i%7)
	}
	got := r.all()
	if r.bytes > 1000 || r.bytes < 1000-40 {
		t.Fatalf("kept %d bytes; want at most 1000, within one entry of it", r.bytes)
	}
	if got[len(got)-1] != 499 {
		t.Fatalf("the newest entry is %d, want 499", got[len(got)-1])
	}
	sum := 0
	for _, i := range got {
		sum += 30 + i%7
	}
	if sum != r.bytes {
		t.Fatalf("kept entries cost %d bytes; the recording counts %d", sum, r.bytes)
	}
	// An entry over the bound by itself is kept, alone.
	r.add(500, 5000)
	if got := r.all(); len(got) != 1 || got[0] != 500 {
		t.Fatalf("after an entry larger than the bound: kept %v", got)
	}
}

// TestMethodRecordingBoundedByBytes invokes methods with 128 KB payloads
// on an offline device (each call is recorded with its payload) until the
// recording is over its byte bound.
func TestMethodRecordingBoundedByBytes(t *testing.T) {
	h := newRetentionHub(t, RetentionConfig{}, nil)
	h.rec.methods.maxBytes = 1 << 20
	if _, err := h.PutDevice(context.Background(), &Device{DeviceID: "d"}, ""); err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(strings.Repeat("p", MaxMethodPayload-2))
	for range 20 {
		_, err := h.InvokeMethod(context.Background(), Identity{DeviceID: "d"}, MethodRequest{Name: "m", Payload: payload, ResponseTimeout: 5 * time.Second})
		if err == nil {
			t.Fatal("a method on an offline device succeeded")
		}
	}
	calls := h.MethodCalls("d")
	total := 0
	for _, c := range calls {
		total += len(c.Payload)
	}
	if total > 1<<20 || len(calls) < 5 {
		t.Fatalf("kept %d calls holding %d payload bytes; want at most 1 MiB, and the newest 5 or more", len(calls), total)
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
