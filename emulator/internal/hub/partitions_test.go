// SPDX-License-Identifier: MIT

package hub

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/iothubemulator/iothub/emulator/internal/clock"
	"github.com/iothubemulator/iothub/emulator/internal/store"
)

func openPartitionHub(t *testing.T, path string, partitions int, r RetentionConfig, clk *clock.Clock) *Hub {
	t.Helper()
	db, err := store.Open(path, store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(db, Config{HostName: "myhub.example", Policies: DefaultPolicies(regOwnerKey), Partitions: partitions, Retention: r, Clock: clk})
	if err != nil {
		db.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close(); db.Close() })
	return h
}

func send(t *testing.T, h *Hub, deviceID, body string) {
	t.Helper()
	if err := h.RecordTelemetry(context.Background(), Identity{DeviceID: deviceID}, "sas", "mqtt", &Message{Body: []byte(body)}); err != nil {
		t.Fatal(err)
	}
}

// partitionView is what a consumer of one partition sees: bodies with
// their sequence numbers and offsets.
func partitionView(t *testing.T, h *Hub, p int, from int64) []string {
	t.Helper()
	ms, err := h.ReadPartition(p, from, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range ms {
		if m.Partition != p {
			t.Errorf("message %q read from partition %d says partition %d", m.Body, p, m.Partition)
		}
		out = append(out, fmt.Sprintf("%d:%s", m.PartitionSequenceNumber, m.Body))
	}
	return out
}

func TestPartitionsOrderAndNumberEachDevicesMessages(t *testing.T) {
	h := openPartitionHub(t, filepath.Join(t.TempDir(), "hub.db"), 4, RetentionConfig{}, nil)
	devices := []string{"a", "b", "c", "d", "e", "f", "g", "h"}
	for i := range 5 {
		for _, d := range devices {
			send(t, h, d, fmt.Sprintf("%s%d", d, i))
		}
	}
	want := map[int][]string{}
	for i := range 5 {
		for _, d := range devices {
			p := h.PartitionOf(d)
			want[p] = append(want[p], fmt.Sprintf("%d:%s%d", len(want[p]), d, i))
		}
	}
	if len(want) < 2 {
		t.Fatalf("8 devices all hashed to one partition: %v", want)
	}
	for p := range 4 {
		if diff := cmp.Diff(want[p], partitionView(t, h, p, 0)); diff != "" {
			t.Errorf("partition %d (-want +got):\n%s", p, diff)
		}
		info, err := h.Partition(p)
		if err != nil {
			t.Fatal(err)
		}
		n := int64(len(want[p]))
		if info.BeginSequence != 0 || info.LastSequence != n-1 || info.Empty != (n == 0) {
			t.Errorf("partition %d info %+v; want begin 0, last %d", p, info, n-1)
		}
		if n > 0 {
			ms, _ := h.ReadPartition(p, n-1, 1)
			if info.LastOffset != strconv.FormatUint(ms[0].SequenceNumber, 10) || !info.LastEnqueuedTime.Equal(ms[0].EnqueuedTime) {
				t.Errorf("partition %d last offset %s at %v; want the last message's %d at %v", p, info.LastOffset, info.LastEnqueuedTime, ms[0].SequenceNumber, ms[0].EnqueuedTime)
			}
		}
	}
	// A reader may start in the middle.
	p := h.PartitionOf("a")
	if got := partitionView(t, h, p, 3); len(got) != len(want[p])-3 || got[0] != want[p][3] {
		t.Errorf("reading partition %d from 3: got %v", p, got)
	}
}

func TestEmptyPartition(t *testing.T) {
	h := openPartitionHub(t, filepath.Join(t.TempDir(), "hub.db"), 32, RetentionConfig{}, nil)
	info, err := h.Partition(31)
	if err != nil {
		t.Fatal(err)
	}
	want := PartitionInfo{Partition: 31, BeginSequence: 0, LastSequence: -1, LastOffset: "-1", Empty: true}
	if info != want {
		t.Errorf("got %+v, want %+v", info, want)
	}
	if _, err := h.Partition(32); err == nil {
		t.Error("partition 32 of 32 exists")
	}
}

func TestStartPositions(t *testing.T) {
	clk := clock.At(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	h := openPartitionHub(t, filepath.Join(t.TempDir(), "hub.db"), 1, RetentionConfig{}, clk)
	var times []time.Time
	for i := range 5 {
		times = append(times, clk.Now())
		send(t, h, "d", strconv.Itoa(i))
		clk.FastForward(time.Second)
	}
	ms, _ := h.ReadPartition(0, 0, 0)
	off := func(i int) string { return strconv.FormatUint(ms[i].SequenceNumber, 10) }
	seq := func(n int64) *int64 { return &n }
	for _, tc := range []struct {
		name string
		pos  Position
		want int64
	}{
		{"latest", Position{Latest: true}, 5},
		{"earliest", Position{Offset: "-1"}, 0},
		{"after an offset", Position{Offset: off(2)}, 3},
		{"at an offset", Position{Offset: off(2), Inclusive: true}, 2},
		{"after the last offset", Position{Offset: off(4)}, 5},
		{"after a sequence number", Position{Sequence: seq(1)}, 2},
		{"at a sequence number", Position{Sequence: seq(1), Inclusive: true}, 1},
		{"after an enqueued time", Position{Enqueued: times[1]}, 2},
		{"between enqueued times", Position{Enqueued: times[1].Add(time.Millisecond)}, 2},
		{"before the first message", Position{Enqueued: times[0].Add(-time.Hour)}, 0},
		{"after every message", Position{Enqueued: times[4]}, 5},
	} {
		got, err := h.StartOf(0, tc.pos)
		if err != nil || got != tc.want {
			t.Errorf("%s: got %d, %v; want %d", tc.name, got, err, tc.want)
		}
	}
	if _, err := h.StartOf(0, Position{Offset: "abc"}); err == nil {
		t.Error("a non-numeric offset was accepted")
	}
}

func TestRetentionPrunesPartitions(t *testing.T) {
	h := openPartitionHub(t, filepath.Join(t.TempDir(), "hub.db"), 1, RetentionConfig{MaxMessages: 3}, nil)
	for i := range 10 {
		send(t, h, "d", strconv.Itoa(i))
	}
	if diff := cmp.Diff([]string{"7:7", "8:8", "9:9"}, partitionView(t, h, 0, 0)); diff != "" {
		t.Errorf("after retention (-want +got):\n%s", diff)
	}
	info, _ := h.Partition(0)
	if info.BeginSequence != 7 || info.LastSequence != 9 {
		t.Errorf("info %+v; want begin 7, last 9", info)
	}
	err := h.db.View(func(tx *store.Tx) error {
		if n := tx.Count(store.PartitionIndex, ""); n != 3 {
			t.Errorf("partition index holds %d entries, want 3", n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestPartitionsSurviveRestartAndRepartition(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hub.db")
	h := openPartitionHub(t, path, 4, RetentionConfig{}, nil)
	for i := range 6 {
		send(t, h, fmt.Sprintf("dev%d", i), strconv.Itoa(i))
	}
	before := map[int][]string{}
	for p := range 4 {
		before[p] = partitionView(t, h, p, 0)
	}
	h.Close()
	h.db.Close()

	h = openPartitionHub(t, path, 4, RetentionConfig{}, nil)
	for p := range 4 {
		if diff := cmp.Diff(before[p], partitionView(t, h, p, 0)); diff != "" {
			t.Errorf("partition %d after restart (-want +got):\n%s", p, diff)
		}
	}
	send(t, h, "dev0", "after")
	p0 := h.PartitionOf("dev0")
	if got := partitionView(t, h, p0, 0); got[len(got)-1] != fmt.Sprintf("%d:after", len(before[p0])) {
		t.Errorf("numbering did not continue after restart: %v", got)
	}
	h.Close()
	h.db.Close()

	// Another partition count: every message is indexed anew.
	h = openPartitionHub(t, path, 1, RetentionConfig{}, nil)
	want := []string{"0:0", "1:1", "2:2", "3:3", "4:4", "5:5", "6:after"}
	if diff := cmp.Diff(want, partitionView(t, h, 0, 0)); diff != "" {
		t.Errorf("one partition after re-partitioning (-want +got):\n%s", diff)
	}
}

func TestResetKeepsPartitionNumbering(t *testing.T) {
	h := openPartitionHub(t, filepath.Join(t.TempDir(), "hub.db"), 1, RetentionConfig{}, nil)
	send(t, h, "d", "a")
	send(t, h, "d", "b")
	if err := h.Reset(context.Background()); err != nil {
		t.Fatal(err)
	}
	info, _ := h.Partition(0)
	if !info.Empty || info.LastSequence != 1 || info.BeginSequence != 2 {
		t.Errorf("after reset: %+v; want empty, last 1, begin 2", info)
	}
	send(t, h, "d", "c")
	if diff := cmp.Diff([]string{"2:c"}, partitionView(t, h, 0, 0)); diff != "" {
		t.Errorf("after reset (-want +got):\n%s", diff)
	}
}

func TestNotifyWakesOnRecord(t *testing.T) {
	h := openPartitionHub(t, filepath.Join(t.TempDir(), "hub.db"), 1, RetentionConfig{}, nil)
	ch := h.TelemetryNotify()
	select {
	case <-ch:
		t.Fatal("notified before anything was recorded")
	default:
	}
	send(t, h, "d", "x")
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("not notified of a recorded message")
	}
}
