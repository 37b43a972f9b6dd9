// SPDX-License-Identifier: MIT

package hub

import (
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
type Message struct {
	SequenceNumber  uint64            `json:"sequenceNumber"`
	EnqueuedTime    time.Time         `json:"enqueuedTime"`
	DeviceID        string            `json:"deviceId"`
	ModuleID        string            `json:"moduleId,omitempty"`
	AuthMethod      string            `json:"connectionAuthMethod,omitempty"`
	Transport       string            `json:"transport,omitempty"` // mqtt, mqtt-ws, https
	MessageID       string            `json:"messageId,omitempty"`
	CorrelationID   string            `json:"correlationId,omitempty"`
	UserID          string            `json:"userId,omitempty"`
	To              string            `json:"to,omitempty"`
	ContentType     string            `json:"contentType,omitempty"`
	ContentEncoding string            `json:"contentEncoding,omitempty"`
	CreationTime    string            `json:"creationTimeUtc,omitempty"`
	ExpiryTime      string            `json:"expiryTimeUtc,omitempty"`
	OutputName      string            `json:"outputName,omitempty"`
	MessageSchema   string            `json:"messageSchema,omitempty"`
	ComponentName   string            `json:"componentName,omitempty"`
	InterfaceID     string            `json:"interfaceId,omitempty"`
	Properties      map[string]string `json:"properties"`
	Body            []byte            `json:"body"`
}

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
	if m.size() > MaxD2CSize {
		return huberr.MessageTooLarge("The message is %d bytes; the maximum is %d.", m.size(), MaxD2CSize)
	}
	m.DeviceID, m.ModuleID, m.AuthMethod, m.Transport = id.DeviceID, id.ModuleID, authMethod, transport
	if m.Properties == nil {
		m.Properties = map[string]string{}
	}
	if err := h.react(ctx, OpTelemetry, id); err != nil {
		return err
	}
	defer h.msgWake()
	ret := h.cfg.Retention
	return h.db.Update(func(tx *store.Tx) error {
		seq, err := tx.NextSequence(store.Messages)
		if err != nil {
			return err
		}
		m.SequenceNumber = seq
		m.EnqueuedTime = h.Now().UTC()
		b, err := json.Marshal(m)
		if err != nil {
			return err
		}
		if err := tx.Put(store.Messages, seqKey(seq), b); err != nil {
			return err
		}
		return prune(tx, seq, ret, m.EnqueuedTime)
	})
}

// RetentionConfig bounds the recorded telemetry log.
type RetentionConfig struct {
	MaxMessages int           // keep at most this many; default 100,000
	MaxAge      time.Duration // drop older messages; default 24h (the hub's default retention is one day)
}

func (r RetentionConfig) withDefaults() RetentionConfig {
	if r.MaxMessages <= 0 {
		r.MaxMessages = 100000
	}
	if r.MaxAge <= 0 {
		r.MaxAge = 24 * time.Hour
	}
	return r
}

// prune keeps the log within its bounds: one deletion per insert holds the
// count, and every 64th insert sweeps what has aged out.
func prune(tx *store.Tx, seq uint64, r RetentionConfig, now time.Time) error {
	r = r.withDefaults()
	if seq > uint64(r.MaxMessages) {
		if err := tx.Delete(store.Messages, seqKey(seq-uint64(r.MaxMessages))); err != nil {
			return err
		}
	}
	if seq%64 != 0 {
		return nil
	}
	cutoff := now.Add(-r.MaxAge)
	var old []string
	err := tx.ForEach(store.Messages, "", "", func(k string, v []byte) error {
		var m struct {
			EnqueuedTime time.Time `json:"enqueuedTime"`
		}
		if err := json.Unmarshal(v, &m); err != nil {
			return err
		}
		if !m.EnqueuedTime.Before(cutoff) {
			return store.ErrStop
		}
		old = append(old, k)
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range old {
		if err := tx.Delete(store.Messages, k); err != nil {
			return err
		}
	}
	return nil
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
	err := h.db.View(func(tx *store.Tx) error {
		return tx.ForEach(store.Messages, "", seqKey(since+1), func(k string, v []byte) error {
			var m Message
			if err := json.Unmarshal(v, &m); err != nil {
				return err
			}
			if (deviceID != "" && m.DeviceID != deviceID) || (moduleID != "" && m.ModuleID != moduleID) {
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
	deadline := time.NewTimer(wait)
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
