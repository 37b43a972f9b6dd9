// SPDX-License-Identifier: MIT

package hub

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/store"
)

// The Event Hub-compatible view of the telemetry log.
//
// Every recorded device-to-cloud message belongs to one partition, chosen
// by a stable hash of its device id, and has a sequence number within that
// partition (from 0, without gaps), as an event hub's partitions do. The
// messages themselves stay in the one telemetry log; each partition is an
// index over it: key partition + sequence number, value the message's log
// sequence number and enqueued time, so positions can be resolved and
// partition properties read without decoding a message. A message's offset
// is its log sequence number in decimal: increasing within a partition, as
// an event hub's offsets are, and the same number the emulator-only API
// shows.

// Partition counts the hub allows (2 to 32 on the hub; 1 is accepted here
// for tests that want one ordered stream).
const (
	DefaultPartitions = 4
	MaxPartitions     = 32
)

const (
	metaPartitionCount = "partition-count"
	metaPartitionNext  = "partition-next/" // + partition number: next sequence number, big-endian
)

// PartitionCount is the number of partitions of the hub's event hub.
func (h *Hub) PartitionCount() int { return h.partitions }

// PartitionOf is the partition that a device's messages go to.
func (h *Hub) PartitionOf(deviceID string) int {
	return int(fnv32(deviceID) % uint32(h.partitions))
}

// indexKey is a partition index key: partition byte, then the big-endian
// sequence number, so byte order is sequence order within a partition.
func indexKey(p int, seq int64) string {
	var b [9]byte
	b[0] = byte(p)
	binary.BigEndian.PutUint64(b[1:], uint64(seq))
	return string(b[:])
}

func indexPrefix(p int) string { return string([]byte{byte(p)}) }

// indexEntry is what the partition index keeps of a message.
type indexEntry struct {
	seq      int64     // sequence number within the partition
	logSeq   uint64    // sequence number in the telemetry log (the offset)
	enqueued time.Time // enqueued time
}

func (e indexEntry) value() []byte {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], e.logSeq)
	binary.BigEndian.PutUint64(b[8:], uint64(e.enqueued.UnixNano()))
	return b[:]
}

func parseIndexEntry(k string, v []byte) (indexEntry, error) {
	if len(k) != 9 || len(v) != 16 {
		return indexEntry{}, fmt.Errorf("partition index entry of %d+%d bytes", len(k), len(v))
	}
	return indexEntry{
		seq:      int64(binary.BigEndian.Uint64([]byte(k[1:]))),
		logSeq:   binary.BigEndian.Uint64(v[:8]),
		enqueued: time.Unix(0, int64(binary.BigEndian.Uint64(v[8:]))).UTC(),
	}, nil
}

// nextPartitionSeq hands out the next sequence number of partition p.
func nextPartitionSeq(tx *store.Tx, p int) (int64, error) {
	n := partitionNext(tx, p)
	return n, putPartitionNext(tx, p, n+1)
}

// partitionNext is the next sequence number of partition p.
func partitionNext(tx *store.Tx, p int) int64 {
	if b := tx.Peek(store.Meta, metaPartitionNext+strconv.Itoa(p)); len(b) == 8 {
		return int64(binary.BigEndian.Uint64(b))
	}
	return 0
}

func putPartitionNext(tx *store.Tx, p int, n int64) error {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(n))
	return tx.Put(store.Meta, metaPartitionNext+strconv.Itoa(p), b[:])
}

// indexMessage assigns m its partition and partition sequence number and
// records it in the partition index. m.SequenceNumber and m.EnqueuedTime
// must be set.
func (h *Hub) indexMessage(tx *store.Tx, m *Message) error {
	p := h.PartitionOf(m.DeviceID)
	seq, err := nextPartitionSeq(tx, p)
	if err != nil {
		return err
	}
	m.Partition, m.PartitionSequenceNumber = p, seq
	return putIndexEntry(tx, m)
}

// putIndexEntry records m in the partition index; all its sequence
// numbers and its enqueued time must be set.
func putIndexEntry(tx *store.Tx, m *Message) error {
	e := indexEntry{seq: m.PartitionSequenceNumber, logSeq: m.SequenceNumber, enqueued: m.EnqueuedTime}
	return tx.Put(store.PartitionIndex, indexKey(m.Partition, e.seq), e.value())
}

// pruneIndex drops index entries of messages that retention removed from
// the log: those below firstKept, the oldest log sequence number kept.
// Retention removes the oldest messages first, so in each partition the
// entries to drop are a prefix.
func (h *Hub) pruneIndex(tx *store.Tx, firstKept uint64) error {
	for p := range h.partitions {
		var drop []string
		err := tx.ForEach(store.PartitionIndex, indexPrefix(p), "", func(k string, v []byte) error {
			e, err := parseIndexEntry(k, v)
			if err != nil {
				return err
			}
			if e.logSeq >= firstKept {
				return store.ErrStop
			}
			drop = append(drop, k)
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range drop {
			if err := tx.Delete(store.PartitionIndex, k); err != nil {
				return err
			}
		}
	}
	return nil
}

// ensurePartitionIndex makes the index agree with the log and the
// configured partition count: a database written before partitions
// existed, or with another count, is indexed anew (the hub cannot change
// its partition count; the emulator re-partitions, and consumers start
// over, as they would on a new hub).
func (h *Hub) ensurePartitionIndex() error {
	return h.db.Update(func(tx *store.Tx) error {
		want := strconv.Itoa(h.partitions)
		if string(tx.Get(store.Meta, metaPartitionCount)) == want {
			return nil
		}
		var keys []string
		if err := tx.ForEach(store.PartitionIndex, "", "", func(k string, _ []byte) error { keys = append(keys, k); return nil }); err != nil {
			return err
		}
		for _, k := range keys {
			if err := tx.Delete(store.PartitionIndex, k); err != nil {
				return err
			}
		}
		for p := range MaxPartitions {
			if err := tx.Delete(store.Meta, metaPartitionNext+strconv.Itoa(p)); err != nil {
				return err
			}
		}
		var msgs []*Message
		err := tx.ForEach(store.Messages, "", "", func(_ string, v []byte) error {
			var m Message
			if err := json.Unmarshal(v, &m); err != nil {
				return err
			}
			msgs = append(msgs, &m)
			return nil
		})
		if err != nil {
			return err
		}
		for _, m := range msgs {
			if err := h.indexMessage(tx, m); err != nil {
				return err
			}
			b, err := json.Marshal(m)
			if err != nil {
				return err
			}
			if err := tx.Put(store.Messages, seqKey(m.SequenceNumber), b); err != nil {
				return err
			}
		}
		return tx.Put(store.Meta, metaPartitionCount, []byte(want))
	})
}

// PartitionInfo describes one partition as an event hub's management node
// does.
type PartitionInfo struct {
	Partition        int
	BeginSequence    int64     // first sequence number still retained; LastSequence+1 when empty
	LastSequence     int64     // last sequence number ever enqueued; -1 when none
	LastOffset       string    // offset of that message; "-1" when none
	LastEnqueuedTime time.Time // zero when none
	Empty            bool      // no message is retained
}

// Partition returns the properties of partition p.
func (h *Hub) Partition(p int) (PartitionInfo, error) {
	if p < 0 || p >= h.partitions {
		return PartitionInfo{}, fmt.Errorf("partition %d does not exist", p)
	}
	info := PartitionInfo{Partition: p, LastSequence: -1, LastOffset: "-1"}
	cutoff := h.retentionCutoff()
	err := h.db.View(func(tx *store.Tx) error {
		first, last := indexEntry{seq: -1}, indexEntry{seq: -1}
		err := tx.ForEach(store.PartitionIndex, indexPrefix(p), "", func(k string, v []byte) error {
			e, err := parseIndexEntry(k, v)
			if err != nil {
				return err
			}
			if e.enqueued.Before(cutoff) {
				return nil // expired by age: pruning runs on writes only
			}
			first = e
			return store.ErrStop
		})
		if err != nil {
			return err
		}
		if k, v := tx.Last(store.PartitionIndex, indexPrefix(p)); k != "" {
			if last, err = parseIndexEntry(k, v); err != nil {
				return err
			}
		}
		if b := tx.Get(store.Meta, metaPartitionNext+strconv.Itoa(p)); len(b) == 8 {
			info.LastSequence = int64(binary.BigEndian.Uint64(b)) - 1
		}
		if last.seq >= 0 && last.seq == info.LastSequence {
			info.LastOffset = strconv.FormatUint(last.logSeq, 10)
			info.LastEnqueuedTime = last.enqueued
		}
		if first.seq < 0 {
			info.Empty, info.BeginSequence = true, info.LastSequence+1
		} else {
			info.BeginSequence = first.seq
		}
		return nil
	})
	return info, err
}

// Position is where a partition reader starts, as the Event Hubs selector
// filters say: exactly one of the fields applies, in this order.
type Position struct {
	Latest    bool      // only messages enqueued after the reader starts
	Offset    string    // after (or, Inclusive, at) this offset; "-1" is the start of the partition
	Sequence  *int64    // after (or, Inclusive, at) this sequence number
	Enqueued  time.Time // enqueued after this time
	Inclusive bool
}

// StartOf resolves pos to the sequence number of partition p from which a
// reader reads (the first message it may return has this number or more).
func (h *Hub) StartOf(p int, pos Position) (int64, error) {
	if p < 0 || p >= h.partitions {
		return 0, fmt.Errorf("partition %d does not exist", p)
	}
	var start int64
	err := h.db.View(func(tx *store.Tx) error {
		var next int64
		if b := tx.Get(store.Meta, metaPartitionNext+strconv.Itoa(p)); len(b) == 8 {
			next = int64(binary.BigEndian.Uint64(b))
		}
		start = next // nothing matches: the reader waits for new messages
		switch {
		case pos.Latest:
			return nil
		case pos.Sequence != nil:
			s := *pos.Sequence
			if !pos.Inclusive {
				s++
			}
			start = max(s, 0)
			return nil
		case pos.Offset != "":
			if pos.Offset == "-1" {
				start = 0
				return nil
			}
			off, err := strconv.ParseUint(pos.Offset, 10, 64)
			if err != nil {
				return fmt.Errorf("offset %q is not a number", pos.Offset)
			}
			return tx.ForEach(store.PartitionIndex, indexPrefix(p), "", func(k string, v []byte) error {
				e, err := parseIndexEntry(k, v)
				if err != nil {
					return err
				}
				if e.logSeq > off || (pos.Inclusive && e.logSeq == off) {
					start = e.seq
					return store.ErrStop
				}
				return nil
			})
		default:
			return tx.ForEach(store.PartitionIndex, indexPrefix(p), "", func(k string, v []byte) error {
				e, err := parseIndexEntry(k, v)
				if err != nil {
					return err
				}
				// Readers see enqueued times in milliseconds (an AMQP
				// timestamp), so "after the time I saw" compares at that precision.
				at := e.enqueued.Truncate(time.Millisecond)
				if at.After(pos.Enqueued) || (pos.Inclusive && at.Equal(pos.Enqueued)) {
					start = e.seq
					return store.ErrStop
				}
				return nil
			})
		}
	})
	return start, err
}

// ReadPartition returns up to limit messages of partition p with sequence
// numbers from, oldest first; messages that retention has removed are
// skipped. It does not wait: see TelemetryNotify.
func (h *Hub) ReadPartition(p int, from int64, limit int) ([]*Message, error) {
	if p < 0 || p >= h.partitions {
		return nil, fmt.Errorf("partition %d does not exist", p)
	}
	var out []*Message
	cutoff := h.retentionCutoff()
	err := h.db.View(func(tx *store.Tx) error {
		return tx.ForEach(store.PartitionIndex, indexPrefix(p), indexKey(p, max(from, 0)), func(k string, v []byte) error {
			e, err := parseIndexEntry(k, v)
			if err != nil {
				return err
			}
			if e.enqueued.Before(cutoff) {
				return nil
			}
			b := tx.Get(store.Messages, seqKey(e.logSeq))
			if b == nil {
				return nil
			}
			var m Message
			if err := json.Unmarshal(b, &m); err != nil {
				return err
			}
			out = append(out, &m)
			if limit > 0 && len(out) >= limit {
				return store.ErrStop
			}
			return nil
		})
	})
	return out, err
}

// TelemetryNotify returns a channel that is closed when the next message
// is recorded (or the hub is reset): a reader that found nothing new waits
// on it, then reads again.
func (h *Hub) TelemetryNotify() <-chan struct{} {
	h.msgMu.Lock()
	defer h.msgMu.Unlock()
	return h.msgNotify
}

func (h *Hub) retentionCutoff() time.Time {
	return h.Now().Add(-h.cfg.Retention.withDefaults().MaxAge)
}
