// SPDX-License-Identifier: MIT

package hub

import (
	"bytes"
	"encoding/base64"
	"slices"
	"strconv"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/jsonstr"
)

// A stored message is json.Marshal's encoding of a Message. The commit
// assigns its first members (sequence number, enqueued time, partition
// and partition sequence number), so the rest is encoded before the
// commit, by the sender, and the commit only writes the head in front of
// it: the store's single commit goroutine is what every write of the hub
// waits for.

// storedHeadMax bounds the head's length: four numbers and a time.
const storedHeadMax = len(`{"sequenceNumber":,"enqueuedTime":"","partition":,"partitionSequenceNumber":`) + 20 + len(time.RFC3339Nano) + 10 + 20

// encodeForLog encodes m without its head, after room for it: what follows
// the head in the stored form, from the comma before "deviceId" to the
// closing brace, byte for byte as json.Marshal writes it
// (TestStoredMessageLayout and FuzzEncodeForLog hold it to that), without
// reflection: it runs for every message a device sends. withHead fills the
// room in the commit without another copy.
func encodeForLog(m *Message) []byte {
	n := storedHeadMax + 160 + len(m.DeviceID) + len(m.GenerationID) + base64.StdEncoding.EncodedLen(len(m.Body))
	for k, v := range m.Properties {
		n += len(k) + len(v) + 6
	}
	b := make([]byte, storedHeadMax, n)
	b = append(b, `,"deviceId":`...)
	b = jsonstr.AppendGo(b, m.DeviceID)
	b = appendMember(b, "moduleId", m.ModuleID)
	b = appendMember(b, "connectionAuthMethod", m.AuthMethod)
	b = appendMember(b, "connectionDeviceGenerationId", m.GenerationID)
	b = appendMember(b, "transport", m.Transport)
	b = appendMember(b, "messageId", m.MessageID)
	b = appendMember(b, "correlationId", m.CorrelationID)
	b = appendMember(b, "userId", m.UserID)
	b = appendMember(b, "to", m.To)
	b = appendMember(b, "contentType", m.ContentType)
	b = appendMember(b, "contentEncoding", m.ContentEncoding)
	b = appendMember(b, "creationTimeUtc", m.CreationTime)
	b = appendMember(b, "expiryTimeUtc", m.ExpiryTime)
	b = appendMember(b, "outputName", m.OutputName)
	b = appendMember(b, "messageSchema", m.MessageSchema)
	b = appendMember(b, "componentName", m.ComponentName)
	b = appendMember(b, "interfaceId", m.InterfaceID)
	b = append(b, `,"properties":`...)
	if m.Properties == nil {
		b = append(b, "null"...)
	} else {
		keys := make([]string, 0, len(m.Properties))
		for k := range m.Properties {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = jsonstr.AppendGo(b, k)
			b = append(b, ':')
			b = jsonstr.AppendGo(b, m.Properties[k])
		}
		b = append(b, '}')
	}
	b = append(b, `,"body":`...)
	if m.Body == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '"')
		b = base64.StdEncoding.AppendEncode(b, m.Body)
		b = append(b, '"')
	}
	return append(b, '}')
}

// appendMember appends an omitempty string member.
func appendMember(b []byte, name, v string) []byte {
	if v == "" {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return jsonstr.AppendGo(b, v)
}

// withHead writes m's head into the room encodeForLog left in front of
// the rest in b and returns the stored form, a suffix of b.
func withHead(b []byte, m *Message) []byte {
	var head [storedHeadMax]byte
	h := appendStoredHead(head[:0], m)
	start := storedHeadMax - len(h)
	copy(b[start:], h)
	return b[start:]
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
