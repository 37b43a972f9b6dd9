// SPDX-License-Identifier: MIT

package hub

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/clock"
	"github.com/iothubemulator/iothub/emulator/internal/store"
)

func newRetentionHub(t *testing.T, r RetentionConfig, now func() time.Time) *Hub {
	t.Helper()
	db, err := store.OpenTemp()
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(db, Config{HostName: "myhub.example", Policies: DefaultPolicies(regOwnerKey), Retention: r, Clock: clock.FromFunc(now)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close(); db.Close() })
	return h
}

func recordMsg(t *testing.T, h *Hub, body string) {
	t.Helper()
	if err := h.RecordTelemetry(context.Background(), Identity{DeviceID: "d"}, "sas", "mqtt", &Message{Body: []byte(body)}); err != nil {
		t.Fatal(err)
	}
}

func TestTelemetryRetentionByCount(t *testing.T) {
	h := newRetentionHub(t, RetentionConfig{MaxMessages: 10}, nil)
	for i := range 25 {
		recordMsg(t, h, string(rune('a'+i)))
	}
	ms, err := h.Telemetry("", "", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 10 || string(ms[0].Body) != string(rune('a'+15)) || ms[9].SequenceNumber != 25 {
		t.Fatalf("kept %d messages from seq %d; want the newest 10 (16..25)", len(ms), ms[0].SequenceNumber)
	}
}

func TestTelemetryRetentionByAge(t *testing.T) {
	now := time.Date(2024, 5, 2, 9, 0, 0, 0, time.UTC)
	h := newRetentionHub(t, RetentionConfig{MaxAge: time.Hour}, func() time.Time { return now })
	for range 10 {
		recordMsg(t, h, "old")
	}
	now = now.Add(2 * time.Hour)
	// An idle hub no longer serves them, though nothing has pruned yet.
	if ms, _ := h.Telemetry("", "", 0, 0); len(ms) != 0 {
		t.Fatalf("an idle hub served %d messages older than the maximum age", len(ms))
	}
	recordMsg(t, h, "new")
	ms, _ := h.Telemetry("", "", 0, 0)
	if len(ms) != 1 || string(ms[0].Body) != "new" {
		t.Fatalf("after one insert: got %d messages, want only the new one", len(ms))
	}
	// And they are gone from the store, not only hidden.
	now = now.Add(-2 * time.Hour)
	if ms, _ := h.Telemetry("", "", 0, 0); len(ms) != 1 {
		t.Fatalf("the old messages were not deleted: %d messages visible with the clock set back", len(ms))
	}
}

// TestTelemetryRetentionShrinks lowers the count limit over an existing
// log, as a restart with a smaller --telemetry-max-messages does.
func TestTelemetryRetentionShrinks(t *testing.T) {
	db, err := store.OpenTemp()
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	open := func(max int) *Hub {
		h, err := New(db, Config{HostName: "myhub.example", Policies: DefaultPolicies(regOwnerKey), Retention: RetentionConfig{MaxMessages: max}})
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	h := open(100)
	for range 50 {
		recordMsg(t, h, "x")
	}
	h.Close()
	h = open(5)
	defer h.Close()
	recordMsg(t, h, "y")
	if ms, _ := h.Telemetry("", "", 0, 0); len(ms) != 5 {
		t.Fatalf("kept %d messages after lowering the limit to 5", len(ms))
	}
}

func TestRecordTelemetryBatchIsAtomic(t *testing.T) {
	h := newRetentionHub(t, RetentionConfig{}, nil)
	id := Identity{DeviceID: "d"}
	small := &Message{Body: []byte("small")}
	big := &Message{Body: make([]byte, MaxD2CSize)}
	if err := h.RecordTelemetryBatch(context.Background(), id, "sas", "https", []*Message{small, big}); err == nil {
		t.Fatal("a batch over 256 KB in total was accepted")
	}
	if ms, _ := h.Telemetry("", "", 0, 0); len(ms) != 0 {
		t.Fatalf("a refused batch recorded %d messages", len(ms))
	}
	if err := h.RecordTelemetryBatch(context.Background(), id, "sas", "https", []*Message{{Body: []byte("a")}, {Body: []byte("b")}}); err != nil {
		t.Fatal(err)
	}
	if ms, _ := h.Telemetry("", "", 0, 0); len(ms) != 2 || ms[0].EnqueuedTime != ms[1].EnqueuedTime {
		t.Fatalf("batch: got %d messages", len(ms))
	}
}

func TestWaitTelemetryWakesOnNewMessage(t *testing.T) {
	h := newRetentionHub(t, RetentionConfig{}, nil)
	got := make(chan int, 1)
	go func() {
		ms, _ := h.WaitTelemetry(context.Background(), "d", "", 0, 0, 10*time.Second)
		got <- len(ms)
	}()
	waitTimers(t, h, 1) // the long poll is waiting
	recordMsg(t, h, "x")
	select {
	case n := <-got:
		if n != 1 {
			t.Fatalf("woke with %d messages, want 1", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("WaitTelemetry did not wake on a new message")
	}
}

// TestWaitTelemetryEndsWithTheClock: a long poll with nothing to return
// ends when the hub's clock passes its wait, not when wall time does.
func TestWaitTelemetryEndsWithTheClock(t *testing.T) {
	h := newRegHub(t)
	got := make(chan error, 1)
	go func() {
		ms, err := h.WaitTelemetry(context.Background(), "d", "", 0, 0, time.Minute)
		if err == nil && len(ms) != 0 {
			err = fmt.Errorf("got %d messages, want none", len(ms))
		}
		got <- err
	}()
	waitTimers(t, h, 1)
	h.Clock().FastForward(time.Minute)
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the long poll outlived its wait on the hub's clock")
	}
}

// storedTelemetry sums the stored size of the log's messages, and reads
// the size the hub keeps of it.
func storedTelemetry(t *testing.T, h *Hub) (sum, kept int64) {
	t.Helper()
	err := h.db.View(func(tx *store.Tx) error {
		if err := tx.ForEach(store.Messages, "", "", func(_ string, v []byte) error { sum += int64(len(v)); return nil }); err != nil {
			return err
		}
		var err error
		kept, err = telemetryBytes(tx)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return sum, kept
}

// TestTelemetryRetentionByBytes: the log keeps at most MaxBytes of stored
// messages, dropping the oldest, across a restart with a smaller limit,
// for a store written before the size was kept, and after a reset.
func TestTelemetryRetentionByBytes(t *testing.T) {
	db, err := store.OpenTemp()
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	open := func(maxBytes int64) *Hub {
		h, err := New(db, Config{HostName: "myhub.example", Policies: DefaultPolicies(regOwnerKey), Retention: RetentionConfig{MaxBytes: maxBytes}})
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	body := strings.Repeat("x", 1000) // about 1.5 KB stored (base64 and fields)
	h := open(20 << 10)
	for range 100 {
		recordMsg(t, h, body)
	}
	sum, kept := storedTelemetry(t, h)
	if sum != kept {
		t.Fatalf("the hub counts %d bytes; the messages hold %d", kept, sum)
	}
	if sum > 20<<10 || sum < 15<<10 {
		t.Fatalf("the log holds %d bytes; want at most the 20 KiB limit and not much less", sum)
	}
	ms, _ := h.Telemetry("", "", 0, 0)
	if len(ms) == 0 || ms[len(ms)-1].SequenceNumber != 100 {
		t.Fatalf("the newest message is gone: %d kept", len(ms))
	}
	h.Close()

	// A store written before the size was kept: it is counted once.
	if err := db.Update(func(tx *store.Tx) error { return tx.Delete(store.Meta, metaTelemetryBytes) }); err != nil {
		t.Fatal(err)
	}
	h = open(5 << 10)
	recordMsg(t, h, body)
	sum, kept = storedTelemetry(t, h)
	if sum != kept || sum > 5<<10 {
		t.Fatalf("after lowering the limit to 5 KiB: %d bytes kept, %d counted", sum, kept)
	}
	// One message over the limit by itself is still kept: it was acknowledged.
	if err := h.RecordTelemetry(context.Background(), Identity{DeviceID: "d"}, "sas", "mqtt", &Message{Body: make([]byte, 100<<10)}); err != nil {
		t.Fatal(err)
	}
	if ms, _ := h.Telemetry("", "", 0, 0); len(ms) != 1 || len(ms[0].Body) != 100<<10 {
		t.Fatalf("after a message larger than the limit: %d messages kept", len(ms))
	}
	if err := h.Reset(context.Background()); err != nil {
		t.Fatal(err)
	}
	if sum, kept = storedTelemetry(t, h); sum != 0 || kept != 0 {
		t.Fatalf("after a reset: %d bytes stored, %d counted", sum, kept)
	}
	h.Close()
}
