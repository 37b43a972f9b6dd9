// SPDX-License-Identifier: MIT

package hub

import (
	"context"
	"testing"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/store"
)

func newRetentionHub(t *testing.T, r RetentionConfig, clock func() time.Time) *Hub {
	t.Helper()
	db, err := store.OpenTemp()
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(db, Config{HostName: "myhub.example", Policies: DefaultPolicies(regOwnerKey), Retention: r, Clock: clock})
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
	// Age pruning sweeps every 64th insert; write until one sweep has run.
	for range 54 {
		recordMsg(t, h, "new")
	}
	ms, _ := h.Telemetry("", "", 0, 0)
	for _, m := range ms {
		if string(m.Body) == "old" {
			t.Fatalf("a message older than the maximum age survived the sweep (seq %d)", m.SequenceNumber)
		}
	}
	if len(ms) != 54 {
		t.Fatalf("kept %d messages, want the 54 new ones", len(ms))
	}
}

func TestWaitTelemetryWakesOnNewMessage(t *testing.T) {
	h := newRetentionHub(t, RetentionConfig{}, nil)
	got := make(chan int, 1)
	go func() {
		ms, _ := h.WaitTelemetry(context.Background(), "d", "", 0, 0, 10*time.Second)
		got <- len(ms)
	}()
	time.Sleep(50 * time.Millisecond)
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
