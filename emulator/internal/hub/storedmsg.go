// SPDX-License-Identifier: MIT

package hub

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"
)

// A stored message is json.Marshal's encoding of a Message. The commit
// assigns its first members (sequence number, enqueued time, partition
// and partition sequence number), so the rest is encoded before the
// commit, by the sender, and the commit only writes the head in front of
// it: the store's single commit goroutine is what every write of the hub
// waits for.

// zeroHead is how json.Marshal begins a Message whose head members are
// zero.
const zeroHead = `{"sequenceNumber":0,"enqueuedTime":"0001-01-01T00:00:00Z","partition":0,"partitionSequenceNumber":0`

// storedHeadMax bounds the head's length: four numbers and a time.
const storedHeadMax = len(`{"sequenceNumber":,"enqueuedTime":"","partition":,"partitionSequenceNumber":`) + 20 + len(time.RFC3339Nano) + 10 + 20

// encodeRest encodes m without its head: what follows the head in the
// stored form, from the comma before "deviceId" to the closing brace.
func encodeRest(m *Message) ([]byte, error) {
	c := *m
	c.SequenceNumber, c.EnqueuedTime, c.Partition, c.PartitionSequenceNumber = 0, time.Time{}, 0, 0
	b, err := json.Marshal(&c)
	if err != nil {
		return nil, err
	}
	if !bytes.HasPrefix(b, []byte(zeroHead)) {
		// Message's members were reordered: a programming error that
		// TestStoredMessageLayout catches.
		panic("hub: a Message does not encode with its head first")
	}
	return b[len(zeroHead):], nil
}

// appendStoredHead appends m's head as json.Marshal writes it.
func appendStoredHead(dst []byte, m *Message) []byte {
	dst = append(dst, `{"sequenceNumber":`...)
	dst = strconv.AppendUint(dst, m.SequenceNumber, 10)
	dst = append(dst, `,"enqueuedTime":"`...)
	dst = m.EnqueuedTime.AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","partition":`...)
	dst = strconv.AppendInt(dst, int64(m.Partition), 10)
	dst = append(dst, `,"partitionSequenceNumber":`...)
	return strconv.AppendInt(dst, m.PartitionSequenceNumber, 10)
}

// storedHead is what retention reads of a stored message.
type storedHead struct {
	enqueued     time.Time
	partition    int
	partitionSeq int64
}

// readStoredHead reads the head of a stored message written by
// appendStoredHead, without decoding the rest (a body of up to 256 KB).
// ok is false for any other layout, e.g. a message stored by an older
// emulator, which the caller then decodes.
func readStoredHead(v []byte) (h storedHead, ok bool) {
	rest, ok := bytes.CutPrefix(v, []byte(`{"sequenceNumber":`))
	if !ok {
		return h, false
	}
	i := 0
	for i < len(rest) && '0' <= rest[i] && rest[i] <= '9' {
		i++
	}
	if rest, ok = bytes.CutPrefix(rest[i:], []byte(`,"enqueuedTime":"`)); i == 0 || !ok {
		return h, false
	}
	i = bytes.IndexByte(rest, '"')
	if i < 0 {
		return h, false
	}
	t, err := time.Parse(time.RFC3339Nano, string(rest[:i]))
	if err != nil {
		return h, false
	}
	h.enqueued = t
	if rest, ok = bytes.CutPrefix(rest[i+1:], []byte(`,"partition":`)); !ok {
		return h, false
	}
	var n int64
	if n, rest, ok = cutNumber(rest); !ok {
		return h, false
	}
	h.partition = int(n)
	if rest, ok = bytes.CutPrefix(rest, []byte(`,"partitionSequenceNumber":`)); !ok {
		return h, false
	}
	if h.partitionSeq, rest, ok = cutNumber(rest); !ok || len(rest) == 0 || (rest[0] != ',' && rest[0] != '}') {
		return h, false
	}
	return h, true
}

// cutNumber reads a non-negative decimal integer of at most 19 digits.
func cutNumber(b []byte) (int64, []byte, bool) {
	i := 0
	for i < len(b) && i < 19 && '0' <= b[i] && b[i] <= '9' {
		i++
	}
	if i == 0 || i < len(b) && '0' <= b[i] && b[i] <= '9' {
		return 0, b, false
	}
	n, err := strconv.ParseInt(string(b[:i]), 10, 64)
	return n, b[i:], err == nil
}
