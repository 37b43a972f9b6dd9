// SPDX-License-Identifier: MIT

package hub

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/store"
)

// TestStoredMessageLayout: the head written in the commit in front of the
// rest encoded before it is exactly json.Marshal's encoding, which every
// reader decodes, and readStoredHead reads the head back.
func TestStoredMessageLayout(t *testing.T) {
	at := time.Date(2026, 12, 6, 20, 30, 1, 120000000, time.UTC)
	for i, m := range []*Message{
		{DeviceID: "d"},
		{SequenceNumber: 18446744073709551615, EnqueuedTime: at, Partition: 31, PartitionSequenceNumber: 9223372036854775807, DeviceID: "d"},
		{SequenceNumber: 7, EnqueuedTime: at.Add(-time.Second), Partition: 2, PartitionSequenceNumber: 3, DeviceID: "dev \"quoted\" é", ModuleID: "m",
			AuthMethod: "sas", GenerationID: "638", Transport: "mqtt", MessageID: "mid", ContentType: "application/json",
			Properties: map[string]string{"a": "1", "b\n": "<&>", "\u2028\xff\x01": "\t\b\f\r\"\\"}, Body: []byte{0, 1, 2, 255}},
		{DeviceID: "d", Body: []byte{}, Properties: map[string]string{"z": "", "a": "\u2029"}, MessageSchema: "s", InterfaceID: "i", ComponentName: "c", OutputName: "o",
			CreationTime: "c", ExpiryTime: "e", UserID: "u", To: "/t", ContentEncoding: "utf-8", CorrelationID: "c"},
		{SequenceNumber: 1, EnqueuedTime: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), DeviceID: "d", Properties: map[string]string{}},
	} {
		want, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		got := withHead(encodeForLog(m), m)
		if !bytes.Equal(got, want) {
			t.Errorf("%d: stored form\n%s\nwant json.Marshal's\n%s", i, got, want)
		}
		head, ok := readStoredHead(got)
		if !ok || !head.enqueued.Equal(m.EnqueuedTime) || head.partition != m.Partition || head.partitionSeq != m.PartitionSequenceNumber {
			t.Errorf("%d: readStoredHead = %+v, %v; want %v, %d, %d", i, head, ok, m.EnqueuedTime, m.Partition, m.PartitionSequenceNumber)
		}
	}
	for _, v := range []string{
		`{"sequenceNumber":1,"enqueuedTime":"2026-01-01T00:00:00Z","deviceId":"d","partition":0,"partitionSequenceNumber":0}`, // the layout before
		`{"sequenceNumber":1,"enqueuedTime":"2026-01-01T00:00:00Z","partition":1,"partitionSequenceNumber":12345678901234567890}`,
		`{"sequenceNumber":1,"enqueuedTime":"2026-01-01T00:00:00Z","partition":-1,"partitionSequenceNumber":0}`,
		`{"sequenceNumber":1,"enqueuedTime":"yesterday","partition":1,"partitionSequenceNumber":0}`,
		`{"sequenceNumber":1,"enqueuedTime":"2026-01-01T00:00:00Z","partition":1,"partitionSequenceNumber":0`,
		`{"deviceId":"d"}`,
	} {
		if h, ok := readStoredHead([]byte(v)); ok {
			t.Errorf("readStoredHead(%s) = %+v, true; want false", v, h)
		}
	}
}

// FuzzEncodeForLog: the hand-written encoding of a message is json.Marshal's.
func FuzzEncodeForLog(f *testing.F) {
	f.Add("d", "m", "<id>", "a\u2028b", "k", "v\xff\x00", []byte("body"), true)
	f.Add("", "", "", "", "", "", []byte(nil), false)
	f.Fuzz(func(t *testing.T, device, module, msgID, contentType, key, value string, body []byte, props bool) {
		m := &Message{DeviceID: device, ModuleID: module, MessageID: msgID, ContentType: contentType, Body: body}
		if props {
			m.Properties = map[string]string{key: value, value: key}
		}
		want, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if got := withHead(encodeForLog(m), m); !bytes.Equal(got, want) {
			t.Errorf("encoded\n%q\njson.Marshal\n%q", got, want)
		}
	})
}

// FuzzReadStoredHead: whatever it is given, readStoredHead does not panic,
// and it reads the head of every message in its stored form (what
// json.Marshal writes) as the decoder does.
func FuzzReadStoredHead(f *testing.F) {
	m := &Message{SequenceNumber: 3, EnqueuedTime: time.Date(2026, 1, 1, 0, 0, 0, 5, time.UTC), Partition: 1, PartitionSequenceNumber: 2, DeviceID: "d"}
	b, _ := json.Marshal(m)
	f.Add(b)
	f.Add([]byte(`{"sequenceNumber":1,"enqueuedTime":"2026-01-01T00:00:00Z","deviceId":"d"}`))
	f.Add([]byte(`{"sequenceNumber":1,"enqueuedTime":"2026-01-01T01:00:00+01:00","partition":-1,"partitionSequenceNumber":0,"deviceId":"d","properties":null,"body":null}`))
	f.Fuzz(func(t *testing.T, v []byte) {
		head, ok := readStoredHead(v)
		var m Message
		if json.Unmarshal(v, &m) != nil {
			return
		}
		if canonical, err := json.Marshal(&m); err != nil || !bytes.Equal(canonical, v) {
			return // not a stored form: a duplicate or reordered member, spaces
		}
		if m.Partition < 0 || m.PartitionSequenceNumber < 0 {
			return // never stored; readStoredHead reads no sign
		}
		if !ok || !m.EnqueuedTime.Equal(head.enqueued) || m.Partition != head.partition || m.PartitionSequenceNumber != head.partitionSeq {
			t.Errorf("head %+v, %v; decoder %v %d %d", head, ok, m.EnqueuedTime, m.Partition, m.PartitionSequenceNumber)
		}
	})
}

// TestRetentionOverOlderLayout: messages stored by an older emulator, whose
// heads retention cannot read, still leave the partition index with
// themselves.
func TestRetentionOverOlderLayout(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hub.db")
	h := openPartitionHub(t, path, 2, RetentionConfig{MaxMessages: 4}, nil)
	for i := range 4 {
		send(t, h, fmt.Sprintf("dev%d", i), fmt.Sprint(i))
	}
	// Rewrite them as the layout before: the partition members last.
	err := h.db.Update(func(tx *store.Tx) error {
		var keys []string
		var olds [][]byte
		err := tx.ForEach(store.Messages, "", "", func(k string, v []byte) error {
			var m Message
			if err := json.Unmarshal(v, &m); err != nil {
				return err
			}
			old, err := json.Marshal(struct {
				SequenceNumber          uint64    `json:"sequenceNumber"`
				EnqueuedTime            time.Time `json:"enqueuedTime"`
				DeviceID                string    `json:"deviceId"`
				Partition               int       `json:"partition"`
				PartitionSequenceNumber int64     `json:"partitionSequenceNumber"`
				Body                    []byte    `json:"body"`
			}{m.SequenceNumber, m.EnqueuedTime, m.DeviceID, m.Partition, m.PartitionSequenceNumber, m.Body})
			keys, olds = append(keys, k), append(olds, old)
			return err
		})
		for i, k := range keys {
			if _, ok := readStoredHead(olds[i]); ok {
				t.Fatalf("the older layout %s reads as a head", olds[i])
			}
			if err == nil {
				err = tx.Put(store.Messages, k, olds[i])
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := 4; i < 10; i++ {
		send(t, h, fmt.Sprintf("dev%d", i), fmt.Sprint(i))
	}
	var bodies []string
	for p := range 2 {
		for _, m := range mustRead(t, h, p) {
			bodies = append(bodies, string(m.Body))
		}
	}
	err = h.db.View(func(tx *store.Tx) error {
		if n := tx.Count(store.PartitionIndex, ""); n != 4 {
			t.Errorf("partition index holds %d entries, want 4 (messages %v)", n, bodies)
		}
		if n := tx.Count(store.Messages, ""); n != 4 {
			t.Errorf("log holds %d messages, want 4", n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func mustRead(t *testing.T, h *Hub, p int) []*Message {
	t.Helper()
	ms, err := h.ReadPartition(p, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

// TestConcurrentSendersShareCommits: messages sent while the store is busy
// are recorded in one commit, each exactly once, with the log's and each
// partition's sequence numbers without gaps, even when another update of
// the same commit fails and the store runs the rest again.
func TestConcurrentSendersShareCommits(t *testing.T) {
	h := openPartitionHub(t, filepath.Join(t.TempDir(), "hub.db"), 4, RetentionConfig{}, nil)
	var commits, ops atomic.Int64
	h.db.OnCommit(func(n int, _ time.Duration) { commits.Add(1); ops.Add(int64(n)) })

	started, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock) // before the hub closes, when the test fails early
	go h.db.Update(func(*store.Tx) error { close(started); <-release; return nil })
	<-started
	const senders = 40
	var wg sync.WaitGroup
	errs := make(chan error, 2*senders)
	for i := range senders {
		wg.Go(func() {
			errs <- h.RecordTelemetry(context.Background(), Identity{DeviceID: fmt.Sprintf("dev%d", i)}, "sas", "mqtt", &Message{Body: []byte(fmt.Sprint("a", i))})
		})
	}
	// Once every sender has joined the waiting batch, an update that
	// fails is queued behind it: the store then runs the batch again
	// without it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		h.telemetry.mu.Lock()
		n := 0
		if h.telemetry.pending != nil {
			n = len(h.telemetry.pending.ms)
		}
		h.telemetry.mu.Unlock()
		if n == senders {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d senders joined the batch", n, senders)
		}
		time.Sleep(time.Millisecond)
	}
	failed := make(chan error, 1)
	go func() { failed <- h.db.Update(func(*store.Tx) error { return errors.New("boom") }) }()
	time.Sleep(20 * time.Millisecond) // let it reach the queue; either order must be correct
	before, opsBefore := commits.Load(), ops.Load()
	unblock()
	wg.Wait()
	if err := <-failed; err == nil || err.Error() != "boom" {
		t.Errorf("the failing update returned %v", err)
	}
	// The blocked commit, the batch and the failing update: one commit
	// each at most.
	if n := commits.Load() - before; n > 3 {
		t.Errorf("%d senders waiting on a busy store took %d commits", senders, n)
	}
	// And one store update for all the senders, not one each.
	if n := ops.Load() - opsBefore; n > 3 {
		t.Errorf("%d senders waiting on a busy store made %d store updates", senders, n)
	}
	// A second wave with nothing holding the store.
	for i := range senders {
		wg.Go(func() {
			errs <- h.RecordTelemetry(context.Background(), Identity{DeviceID: fmt.Sprintf("dev%d", i)}, "sas", "mqtt", &Message{Body: []byte(fmt.Sprint("b", i))})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	ms, err := h.Telemetry("", "", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2*senders {
		t.Fatalf("log holds %d messages, want %d", len(ms), 2*senders)
	}
	bodies := map[string]bool{}
	partSeqs := map[int][]int64{}
	for i, m := range ms {
		if m.SequenceNumber != uint64(i+1) {
			t.Errorf("message %d has sequence number %d", i, m.SequenceNumber)
		}
		if bodies[string(m.Body)] {
			t.Errorf("%s recorded twice", m.Body)
		}
		bodies[string(m.Body)] = true
		if m.Partition != h.PartitionOf(m.DeviceID) {
			t.Errorf("%s in partition %d, want %d", m.DeviceID, m.Partition, h.PartitionOf(m.DeviceID))
		}
		partSeqs[m.Partition] = append(partSeqs[m.Partition], m.PartitionSequenceNumber)
	}
	total := 0
	for p, seqs := range partSeqs {
		for i, s := range seqs {
			if s != int64(i) {
				t.Errorf("partition %d: sequence numbers %v", p, seqs)
				break
			}
		}
		read := mustRead(t, h, p)
		if len(read) != len(seqs) {
			t.Errorf("partition %d reads %d messages, log says %d", p, len(read), len(seqs))
		}
		total += len(read)
	}
	if total != 2*senders {
		t.Errorf("partitions hold %d messages, want %d", total, 2*senders)
	}
}
