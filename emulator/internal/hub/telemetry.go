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
		return tx.Put(store.Messages, seqKey(seq), b)
	})
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
