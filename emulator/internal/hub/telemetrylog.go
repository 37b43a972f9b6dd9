// SPDX-License-Identifier: MIT

package hub

import (
	"sync"

	"github.com/iothubemulator/iothub/emulator/internal/store"
)

// The telemetry log takes the messages of concurrent senders in one store
// update. The first sender of a batch submits it; those who come while it
// waits for the store's commit goroutine join it, and the update takes
// whatever has joined when the commit goroutine runs it. So the commit
// reads and writes the log's size, the partitions' counters and the
// retention walk once per batch instead of once per message, and a busy
// hub's batches grow with its load.

// logBatch is what the senders of one batch share.
type logBatch struct {
	ms    []*Message
	rests [][]byte // each message's encoding, room left for its head (encodeForLog)
	done  chan struct{}
	err   error // set before done is closed
}

type telemetryLog struct {
	mu      sync.Mutex
	pending *logBatch // the batch new senders join; nil when none waits
}

// appendLog records messages, encoded but for their heads, and returns once
// they are durable. The messages of one call are recorded together, all
// or none.
func (h *Hub) appendLog(ms []*Message, rests [][]byte) error {
	l := &h.telemetry
	l.mu.Lock()
	b, leader := l.pending, false
	if b == nil {
		b, leader = &logBatch{done: make(chan struct{})}, true
		l.pending = b
	}
	b.ms = append(b.ms, ms...)
	b.rests = append(b.rests, rests...)
	l.mu.Unlock()
	if !leader {
		<-b.done
		return b.err
	}
	var ms2 []*Message
	var rests2 [][]byte
	b.err = h.db.Update(func(tx *store.Tx) error {
		if ms2 == nil {
			// Close the batch: later senders start the next one. The
			// store runs this again when another update of the same
			// commit fails, with the batch already closed.
			ms2, rests2 = l.close(b)
		}
		return h.writeLog(tx, ms2, rests2)
	})
	l.close(b) // when the store ran nothing (closed), the batch ends here
	close(b.done)
	h.msgWake()
	return b.err
}

// close ends b's gathering and returns what joined it.
func (l *telemetryLog) close(b *logBatch) ([]*Message, [][]byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.pending == b {
		l.pending = nil
	}
	return b.ms, b.rests
}

// writeLog appends messages to the log and the partition index, then lets
// retention trim the log.
func (h *Hub) writeLog(tx *store.Tx, ms []*Message, rests [][]byte) error {
	now := h.Now().UTC()
	total, err := telemetryBytes(tx)
	if err != nil {
		return err
	}
	next := map[int]int64{} // partition sequence numbers handed out here, by partition
	var last uint64
	for i, m := range ms {
		seq, err := tx.NextSequence(store.Messages)
		if err != nil {
			return err
		}
		p := h.PartitionOf(m.DeviceID)
		ps, ok := next[p]
		if !ok {
			ps = partitionNext(tx, p)
		}
		next[p] = ps + 1
		m.SequenceNumber, m.EnqueuedTime, m.Partition, m.PartitionSequenceNumber, last = seq, now, p, ps, seq
		if err := putIndexEntry(tx, m); err != nil {
			return err
		}
		b := withHead(rests[i], m)
		if err := tx.Put(store.Messages, seqKey(seq), b); err != nil {
			return err
		}
		total += int64(len(b))
	}
	for p, n := range next {
		if err := putPartitionNext(tx, p, n); err != nil {
			return err
		}
	}
	return h.prune(tx, last, total, h.cfg.Retention.withDefaults(), now)
}
