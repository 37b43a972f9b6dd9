// SPDX-License-Identifier: MIT

package hub

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/huberr"
	"github.com/iothubemulator/iothub/emulator/internal/store"
)

// MaxD2CSize is the hub's limit on a device-to-cloud message, body plus
// properties (iothub-protocol.md §10).
const MaxD2CSize = 256 * 1024

// Message is a device-to-cloud message as the hub records it.
//
// The members the commit assigns come first, so that the rest can be
// encoded before it (see encodeForLog) and retention can read what it needs
// from the head of a stored message (readStoredHead).
type Message struct {
	SequenceNumber          uint64            `json:"sequenceNumber"`
	EnqueuedTime            time.Time         `json:"enqueuedTime"`
	Partition               int               `json:"partition"`               // Event Hub-compatible partition
	PartitionSequenceNumber int64             `json:"partitionSequenceNumber"` // sequence number within the partition
	DeviceID                string            `json:"deviceId"`
	ModuleID                string            `json:"moduleId,omitempty"`
	AuthMethod              string            `json:"connectionAuthMethod,omitempty"`
	GenerationID            string            `json:"connectionDeviceGenerationId,omitempty"` // the sending device's generation id
	Transport               string            `json:"transport,omitempty"`                    // mqtt, mqtt-ws, https
	MessageID               string            `json:"messageId,omitempty"`
	CorrelationID           string            `json:"correlationId,omitempty"`
	UserID                  string            `json:"userId,omitempty"`
	To                      string            `json:"to,omitempty"`
	ContentType             string            `json:"contentType,omitempty"`
	ContentEncoding         string            `json:"contentEncoding,omitempty"`
	CreationTime            string            `json:"creationTimeUtc,omitempty"`
	ExpiryTime              string            `json:"expiryTimeUtc,omitempty"`
	OutputName              string            `json:"outputName,omitempty"`
	MessageSchema           string            `json:"messageSchema,omitempty"`
	ComponentName           string            `json:"componentName,omitempty"`
	InterfaceID             string            `json:"interfaceId,omitempty"`
	Properties              map[string]string `json:"properties"`
	Body                    []byte            `json:"body"`

	// Fault is set by RecordTelemetry when the message asked for a fault
	// through the hook's properties and the hub scheduled it (faults.go);
	// a transport whose hub does not acknowledge such a message (MQTT)
	// reads it. Not stored.
	Fault FaultKind `json:"-"`
}

// TransportHTTPS is the transport name of the device HTTPS API. It holds
// no connection, which changes what the fault-injection hook does.
const TransportHTTPS = "https"

// size is what the 256 KB limit counts: body plus property names and values.
func (m *Message) size() int {
	n := len(m.Body)
	for k, v := range m.Properties {
		n += len(k) + len(v)
	}
	for _, s := range []string{m.MessageID, m.CorrelationID, m.UserID, m.To, m.ContentType, m.ContentEncoding,
		m.CreationTime, m.ExpiryTime, m.OutputName, m.MessageSchema, m.ComponentName, m.InterfaceID} {
		n += len(s)
	}
	return n
}

// RecordTelemetry stores a device's message and returns once it is durable,
// so the transport may acknowledge it (MQTT PUBACK, HTTP 204). The hub
// fills in identity, enqueued time and sequence number.
func (h *Hub) RecordTelemetry(ctx context.Context, id Identity, authMethod, transport string, m *Message) error {
	return h.RecordTelemetryBatch(ctx, id, authMethod, transport, []*Message{m})
}

// RecordTelemetryBatch stores messages sent together (HTTPS batch send)
// all or none: the whole batch counts against the 256 KB limit, and one
// transaction records it.
func (h *Hub) RecordTelemetryBatch(ctx context.Context, id Identity, authMethod, transport string, ms []*Message) error {
	total := 0
	for _, m := range ms {
		total += m.size()
	}
	if total > MaxD2CSize {
		return huberr.MessageTooLarge("The message is %d bytes; the maximum is %d.", total, MaxD2CSize)
	}
	if err := h.react(ctx, OpTelemetry, id); err != nil {
		return err
	}
	faults, err := h.telemetryFaults(id, transport, ms)
	if err != nil {
		return err
	}
	for _, m := range ms {
		m.DeviceID, m.ModuleID, m.AuthMethod, m.Transport = id.DeviceID, id.ModuleID, authMethod, transport
		if m.Properties == nil {
			m.Properties = map[string]string{}
		}
	}
	// The device's generation is read here, not in the commit that every
	// write of the hub waits for, and from the connection when there is
	// one: a generation changes only when the device is deleted and
	// created again, which ends its connections.
	var gen string
	if c := h.conn(id); c != nil {
		gen = c.gen
	}
	if gen == "" {
		if gen, err = h.generationOf(id.DeviceID); err != nil {
			return err
		}
	}
	// Everything but the head is encoded here too.
	rests := make([][]byte, len(ms))
	for i, m := range ms {
		m.GenerationID = gen
		rests[i] = encodeForLog(m)
	}
	if err := h.appendLog(ms, rests); err != nil {
		return err
	}
	h.metrics.MessagesIn(transport, len(ms))
	// Scheduled once durable: the message that asks for a fault is
	// recorded as telemetry, as on the hub.
	for i, spec := range faults {
		h.scheduleFault(spec, FaultSourceMessage)
		ms[i].Fault = spec.Kind
	}
	return nil
}

// telemetryFaults reads the fault-injection hook's properties of messages
// about to be recorded, and returns the faults to schedule once they are
// durable, by message index. A message whose fault cannot be read is
// recorded as plain telemetry, and the fault as invalid.
//
// HTTPS holds no connection: a connection fault sent that way has nothing
// to break, and an Invoke* fault is answered on the message itself, which
// is not recorded; its duration has no effect (the C# e2e suite's account
// of the hub: "the fault is only seen for the original HTTP request").
func (h *Hub) telemetryFaults(id Identity, transport string, ms []*Message) (map[int]FaultSpec, error) {
	var out map[int]FaultSpec
	for i, m := range ms {
		spec, found, err := faultOf(id, m.Properties)
		switch {
		case !found:
		case err != nil:
			h.newFaultEntry(spec, FaultSourceMessage, FaultInvalid, err.Error())
		case transport == TransportHTTPS && spec.Kind.Breaks():
			h.newFaultEntry(spec, FaultSourceMessage, FaultNotApplicable, "a message sent over HTTPS has no connection to break")
		case transport == TransportHTTPS:
			e := h.newFaultEntry(spec, FaultSourceMessage, FaultApplied, "answered on the HTTPS request that carried it")
			h.faults.mu.Lock()
			now := e.rec.RequestedTime
			e.rec.AppliedTime, e.rec.Refused = &now, 1
			h.faults.mu.Unlock()
			return nil, spec.Kind.refusal()
		default:
			if out == nil {
				out = map[int]FaultSpec{}
			}
			out[i] = spec
		}
	}
	return out, nil
}

// generationOf reads a device's generation id; "" when it does not exist.
func (h *Hub) generationOf(deviceID string) (string, error) {
	var gen string
	err := h.db.View(func(tx *store.Tx) error {
		r, err := loadRecord(tx, Identity{DeviceID: deviceID})
		if r != nil && r.Device != nil {
			gen = r.Device.GenerationID
		}
		return err
	})
	return gen, err
}

// RetentionConfig bounds the recorded telemetry log.
type RetentionConfig struct {
	MaxMessages int           // keep at most this many; default 100,000
	MaxAge      time.Duration // drop older messages; default 24h (the hub's default retention is one day)
	MaxBytes    int64         // keep at most this many bytes of stored messages; default 256 MiB
}

// Retention defaults: the hub keeps telemetry for one day by default. The
// byte bound is the emulator's: 100,000 messages of the hub's 256 KB would
// be 25 GB.
const (
	DefaultRetentionMessages = 100000
	DefaultRetentionAge      = 24 * time.Hour
	DefaultRetentionBytes    = 256 << 20
)

func (r RetentionConfig) withDefaults() RetentionConfig {
	if r.MaxMessages <= 0 {
		r.MaxMessages = DefaultRetentionMessages
	}
	if r.MaxAge <= 0 {
		r.MaxAge = DefaultRetentionAge
	}
	if r.MaxBytes <= 0 {
		r.MaxBytes = DefaultRetentionBytes
	}
	return r
}

// metaTelemetryBytes is the Meta key of the telemetry log's size: the
// stored bytes of every message in it, kept in the same transactions that
// add and remove them.
const metaTelemetryBytes = "telemetryBytes"

// telemetryBytes returns the log's size, counting it once for a store that
// does not have the key yet (written before the byte bound existed).
func telemetryBytes(tx *store.Tx) (int64, error) {
	if b := tx.Get(store.Meta, metaTelemetryBytes); len(b) == 8 {
		return int64(binary.BigEndian.Uint64(b)), nil
	}
	var total int64
	err := tx.ForEach(store.Messages, "", "", func(_ string, v []byte) error {
		total += int64(len(v))
		return nil
	})
	return total, err
}

func putTelemetryBytes(tx *store.Tx, total int64) error {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(max(total, 0)))
	return tx.Put(store.Meta, metaTelemetryBytes, b[:])
}

// prune drops, oldest first, every message beyond the count limit, older
// than the age limit, or while the log holds more than its byte limit,
// with their partition index entries, and records the log's new size
// (total is its size before pruning). The walk stops at the first message
// it keeps, so an insert costs what it removes plus one look.
func (h *Hub) prune(tx *store.Tx, last uint64, total int64, r RetentionConfig, now time.Time) error {
	cutoff := now.Add(-r.MaxAge)
	var drop, dropIndex []string
	firstKept, indexed := last+1, true
	err := tx.ForEach(store.Messages, "", "", func(k string, v []byte) error {
		seq := binary.BigEndian.Uint64([]byte(k))
		head, ok := readStoredHead(v)
		expired := ok && head.enqueued.Before(cutoff) || !ok && enqueuedBefore(v, cutoff)
		// The newest message stays, whatever its size: it is acknowledged.
		if seq == last || (last-seq < uint64(r.MaxMessages) && total <= r.MaxBytes && !expired) {
			firstKept = seq
			return store.ErrStop
		}
		drop = append(drop, k)
		if ok {
			dropIndex = append(dropIndex, indexKey(head.partition, head.partitionSeq))
		} else {
			indexed = false
		}
		total -= int64(len(v))
		return nil
	})
	if err != nil {
		return err
	}
	if len(drop) == 0 {
		return putTelemetryBytes(tx, total)
	}
	for _, k := range drop {
		if err := tx.Delete(store.Messages, k); err != nil {
			return err
		}
	}
	if indexed {
		// Each message has one index entry, named by its head.
		for _, k := range dropIndex {
			if err := tx.Delete(store.PartitionIndex, k); err != nil {
				return err
			}
		}
	} else if err := h.pruneIndex(tx, firstKept); err != nil {
		return err
	}
	return putTelemetryBytes(tx, total)
}

// enqueuedBefore reports whether a stored message was enqueued before t. It
// reads only the leading members, not a body of up to 256 KB.
func enqueuedBefore(v []byte, t time.Time) bool {
	// As json.Marshal writes a Message, its enqueued time is the second
	// member: read it without a decoder, which this runs for every
	// message recorded, on the store's commit goroutine.
	const second = `,"enqueuedTime":"`
	if i := bytes.Index(v[:min(len(v), 64)], []byte(second)); i > 0 && bytes.HasPrefix(v, []byte(`{"sequenceNumber":`)) {
		rest := v[i+len(second):]
		if j := bytes.IndexByte(rest, '"'); j > 0 {
			if et, err := time.Parse(time.RFC3339Nano, string(rest[:j])); err == nil {
				return et.Before(t)
			}
		}
	}
	dec := json.NewDecoder(bytes.NewReader(v))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return false
	}
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return false
		}
		if key == "enqueuedTime" {
			var et time.Time
			if err := dec.Decode(&et); err != nil {
				return false
			}
			return et.Before(t)
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return false
		}
	}
	return false
}

// seqKey is a big-endian key so that byte order is sequence order.
func seqKey(n uint64) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], n)
	return string(b[:])
}

// Telemetry returns recorded messages with sequence numbers above since,
// oldest first, filtered by device and module when those are non-empty, at
// most limit of them (all when limit <= 0).
func (h *Hub) Telemetry(deviceID, moduleID string, since uint64, limit int) ([]*Message, error) {
	var out []*Message
	// Pruning runs on writes; an idle hub must still not serve expired messages.
	cutoff := h.Now().Add(-h.cfg.Retention.withDefaults().MaxAge)
	err := h.db.View(func(tx *store.Tx) error {
		return tx.ForEach(store.Messages, "", seqKey(since+1), func(k string, v []byte) error {
			var m Message
			if err := json.Unmarshal(v, &m); err != nil {
				return err
			}
			if (deviceID != "" && m.DeviceID != deviceID) || (moduleID != "" && m.ModuleID != moduleID) || m.EnqueuedTime.Before(cutoff) {
				return nil
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

// TelemetryHead is the sequence number of the newest recorded message (0
// when none was ever recorded): reading from it on sees only what arrives
// later.
func (h *Hub) TelemetryHead() (uint64, error) {
	var head uint64
	err := h.db.View(func(tx *store.Tx) error {
		head = tx.Sequence(store.Messages)
		return nil
	})
	return head, err
}

// msgWake wakes telemetry waiters.
func (h *Hub) msgWake() {
	h.msgMu.Lock()
	close(h.msgNotify)
	h.msgNotify = make(chan struct{})
	h.msgMu.Unlock()
}

// WaitTelemetry returns messages as Telemetry does, waiting up to wait for
// at least one to arrive when none is there yet (long poll).
func (h *Hub) WaitTelemetry(ctx context.Context, deviceID, moduleID string, since uint64, limit int, wait time.Duration) ([]*Message, error) {
	deadline := h.clk.NewTimer(wait)
	defer deadline.Stop()
	for {
		h.msgMu.Lock()
		ch := h.msgNotify
		h.msgMu.Unlock()
		ms, err := h.Telemetry(deviceID, moduleID, since, limit)
		if err != nil || len(ms) > 0 || wait <= 0 {
			return ms, err
		}
		select {
		case <-ch:
		case <-deadline.C:
			return ms, nil
		case <-ctx.Done():
			return ms, ctx.Err()
		}
	}
}
