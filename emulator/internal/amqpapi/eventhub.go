// SPDX-License-Identifier: MIT

package amqpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/amqp"
	"github.com/iothubemulator/iothub/emulator/internal/hub"
)

// The Event Hub-compatible endpoint (amqp.md §2.7): the hub's telemetry
// log read as an event hub named after the hub, on the same listeners.
// {eventhub}/$management answers READ for the event hub and each
// partition; {eventhub}/ConsumerGroups/{group}/Partitions/{n} delivers a
// partition's messages from the position its selector filter names, in
// order, each once, as credit allows. Any consumer group name is served.
// Reading needs a ServiceConnect claim covering the path.

// Management properties and values (Event Hubs' management protocol).
const (
	mgmtOpRead        = "READ"
	mgmtTypeEventHub  = "com.microsoft:eventhub"
	mgmtTypePartition = "com.microsoft:partition"

	linkPropEpoch        amqp.Symbol = "com.microsoft:epoch"
	linkPropReceiverName amqp.Symbol = "com.microsoft:receiver-name"
	capRuntimeMetric     amqp.Symbol = "com.microsoft:enable-receiver-runtime-metric"
)

// maxNonEpochReaders is Event Hubs' limit of concurrent receivers on one
// partition of one consumer group.
const maxNonEpochReaders = 5

// readBatch bounds the messages read from the log at once.
const readBatch = 256

func needManagement(eventHub string) Need {
	return Need{Rights: hub.ServiceConnect, Resource: strings.ToLower(eventHub) + "/$management"}
}

func needPartition(eventHub, group string, p int) Need {
	return Need{Rights: hub.ServiceConnect, Resource: strings.ToLower(fmt.Sprintf("%s/consumergroups/%s/partitions/%d", eventHub, group, p))}
}

// attachManagement serves {eventhub}/$management: requests on the client's
// sender, replies on its receiver.
func (c *conn) attachManagement(l *amqp.Link) error {
	if _, err := c.authorize(l, needManagement(c.srv.eventHub)); err != nil {
		return err
	}
	if l.Role() == amqp.RoleReceiver {
		go c.serveRequests(l, NodeEventHubManagement, c.management)
		return nil
	}
	c.addReplyLink(NodeEventHubManagement, l)
	return nil
}

// management answers one management request.
func (c *conn) management(_ context.Context, req *amqp.Message) *amqp.Message {
	op := stringProp(req, "operation")
	if op != mgmtOpRead {
		return statusReply(501, "operation '"+op+"' is not supported by the Event Hub-compatible endpoint; only READ is", nil)
	}
	eh := c.srv.eventHub
	if name := stringProp(req, "name"); !strings.EqualFold(name, eh) {
		return statusReply(404, fmt.Sprintf("The messaging entity '%s' could not be found; this endpoint serves '%s'.", name, eh), nil)
	}
	h := c.srv.hub
	switch typ := stringProp(req, "type"); typ {
	case mgmtTypeEventHub:
		ids := make([]string, h.PartitionCount())
		for i := range ids {
			ids[i] = strconv.Itoa(i)
		}
		return statusReply(200, "OK", map[string]any{
			"name":                  eh,
			"type":                  mgmtTypeEventHub,
			"created_at":            c.srv.created,
			"partition_count":       int32(len(ids)),
			"partition_ids":         ids,
			"georeplication_factor": int32(1),
		})
	case mgmtTypePartition:
		ps := stringProp(req, "partition")
		p, err := strconv.Atoi(ps)
		if err != nil || p < 0 || p >= h.PartitionCount() || ps != strconv.Itoa(p) {
			return statusReply(404, fmt.Sprintf("Partition '%s' does not exist; the partitions are 0 to %d.", ps, h.PartitionCount()-1), nil)
		}
		info, err := h.Partition(p)
		if err != nil {
			c.log.Error("amqp: partition properties", "partition", p, "err", err)
			return statusReply(500, "An internal error occurred.", nil)
		}
		return statusReply(200, "OK", map[string]any{
			"name":                          eh,
			"type":                          mgmtTypePartition,
			"partition":                     ps,
			"begin_sequence_number":         info.BeginSequence,
			"last_enqueued_sequence_number": info.LastSequence,
			"last_enqueued_offset":          info.LastOffset,
			"last_enqueued_time_utc":        info.LastEnqueuedTime,
			"is_partition_empty":            info.Empty,
		})
	default:
		return statusReply(400, "type '"+typ+"' is not com.microsoft:eventhub or com.microsoft:partition", nil)
	}
}

// attachPartition starts a partition reader.
func (c *conn) attachPartition(l *amqp.Link, a Address, reply *amqp.AttachReply) error {
	h := c.srv.hub
	if l.Role() != amqp.RoleSender {
		return amqp.Errorf(amqp.ErrNotImplemented, "the Event Hub-compatible endpoint is read-only: devices send telemetry to the hub")
	}
	if a.Partition >= h.PartitionCount() {
		return amqp.Errorf(condArgumentRange, "The specified partition is invalid for an EventHub partition sender or receiver. It should be between 0 and %d.", h.PartitionCount()-1)
	}
	if _, err := c.authorize(l, needPartition(c.srv.eventHub, a.ConsumerGroup, a.Partition)); err != nil {
		return err
	}
	pos := hub.Position{Offset: "-1"} // no filter: from the start
	if expr, ok := l.Source().SelectorFilter(); ok {
		var err error
		if pos, err = ParseSelector(expr); err != nil {
			return amqp.Errorf(condArgumentError, "%v", err)
		}
	}
	start, err := h.StartOf(a.Partition, pos)
	if err != nil {
		return amqp.Errorf(condArgumentError, "%v", err)
	}
	epoch, err := linkEpoch(l)
	if err != nil {
		return err
	}
	r := &reader{link: l, epoch: epoch, name: receiverName(l)}
	if err := c.srv.readers.join(readerKey{strings.ToLower(a.ConsumerGroup), a.Partition}, r); err != nil {
		return err
	}
	metric := slices.Contains(l.DesiredCapabilities(), capRuntimeMetric)
	if metric {
		reply.OfferedCapabilities = []amqp.Symbol{capRuntimeMetric}
	}
	// The reader answers a drain itself: it first sends what the log holds.
	reply.ManualDrain = true
	go c.servePartition(l, a.Partition, start, metric)
	return nil
}

func linkEpoch(l *amqp.Link) (*int64, error) {
	v, ok := l.Properties()[linkPropEpoch]
	if !ok || v == nil {
		return nil, nil
	}
	var e int64
	switch x := v.(type) {
	case int64:
		e = x
	case int32:
		e = int64(x)
	case int16:
		e = int64(x)
	case int8:
		e = int64(x)
	case uint32:
		e = int64(x)
	case uint8:
		e = int64(x)
	case uint16:
		e = int64(x)
	default:
		return nil, amqp.Errorf(condArgumentError, "link property %s must be a long, not %T", linkPropEpoch, v)
	}
	return &e, nil
}

func receiverName(l *amqp.Link) string {
	if s, ok := l.Properties()[linkPropReceiverName].(string); ok && s != "" {
		return s
	}
	return l.Name()
}

// servePartition sends partition p's messages from sequence number next
// on, as credit allows, waiting for new ones at the end of the log.
func (c *conn) servePartition(l *amqp.Link, p int, next int64, metric bool) {
	ctx, cancel := c.linkContext(l)
	defer cancel()
	h := c.srv.hub
	for {
		changed := l.CreditChanged()
		credit, drain := l.Credit()
		if credit == 0 {
			select {
			case <-changed:
				continue
			case <-ctx.Done():
				return
			}
		}
		wake := h.TelemetryNotify()
		ms, err := h.ReadPartition(p, next, min(int(credit), readBatch))
		if err != nil {
			c.log.Error("amqp: partition read failed", "partition", p, "err", err)
			l.Detach(amqp.Errorf(amqp.ErrInternal, "the partition could not be read"))
			return
		}
		if len(ms) == 0 {
			if drain {
				l.CompleteDrain()
				continue
			}
			if info, err := h.Partition(p); err == nil && info.LastSequence+1 < next {
				// The hub was reset: its partitions count from 0 again.
				next = info.BeginSequence
				continue
			}
			select {
			case <-wake:
			case <-changed:
			case <-ctx.Done():
				return
			}
			continue
		}
		var last *hub.PartitionInfo
		if metric {
			if info, err := h.Partition(p); err == nil {
				last = &info
			}
		}
		for _, m := range ms {
			if _, err := l.Send(ctx, eventMessage(m, last, h.Now()), &amqp.SendOptions{Settled: true}); err != nil {
				return
			}
			next = m.PartitionSequenceNumber + 1
		}
	}
}

// eventMessage is a recorded message as an Event Hubs consumer receives
// it: the device's properties and body as sent, the event hub's x-opt-*
// annotations, and the hub's iothub-* system properties (amqp.md §2.7).
func eventMessage(m *hub.Message, last *hub.PartitionInfo, now time.Time) *amqp.Message {
	ann := amqp.Annotations{
		"x-opt-sequence-number":         m.PartitionSequenceNumber,
		"x-opt-offset":                  strconv.FormatUint(m.SequenceNumber, 10),
		"x-opt-enqueued-time":           m.EnqueuedTime,
		"iothub-connection-device-id":   m.DeviceID,
		"iothub-connection-auth-method": authMethodJSON(m),
		"iothub-enqueuedtime":           m.EnqueuedTime,
		"iothub-message-source":         "Telemetry",
	}
	if m.ModuleID != "" {
		ann["iothub-connection-module-id"] = m.ModuleID
	}
	if m.GenerationID != "" {
		ann["iothub-connection-auth-generation-id"] = m.GenerationID
	}
	if m.ComponentName != "" {
		ann["dt-subject"] = m.ComponentName
	}
	props := &amqp.Properties{
		To:              m.To,
		ContentType:     amqp.Symbol(m.ContentType),
		ContentEncoding: amqp.Symbol(m.ContentEncoding),
	}
	setIDs(props, m.MessageID, m.CorrelationID, m.UserID)
	if t, err := time.Parse(time.RFC3339Nano, m.CreationTime); err == nil {
		props.CreationTime = t
	}
	if t, err := time.Parse(time.RFC3339Nano, m.ExpiryTime); err == nil {
		props.AbsoluteExpiryTime = t
	}
	app := make(map[string]any, len(m.Properties))
	for k, v := range m.Properties {
		app[k] = v
	}
	out := &amqp.Message{Annotations: ann, Properties: props, ApplicationProperties: app, Data: [][]byte{m.Body}}
	if last != nil {
		out.DeliveryAnnotations = amqp.Annotations{
			"last_enqueued_sequence_number":   last.LastSequence,
			"last_enqueued_offset":            last.LastOffset,
			"last_enqueued_time_utc":          last.LastEnqueuedTime,
			"runtime_info_retrieval_time_utc": now,
		}
	}
	return out
}

// authMethodJSON is iothub-connection-auth-method as the hub writes it.
func authMethodJSON(m *hub.Message) string {
	scope, typ := "device", m.AuthMethod
	if m.ModuleID != "" {
		scope = "module"
	}
	if typ == "x509" {
		typ = "x509Certificate"
	}
	b, _ := json.Marshal(struct {
		Scope  string  `json:"scope"`
		Type   string  `json:"type"`
		Issuer string  `json:"issuer"`
		Rule   *string `json:"acceptingIpFilterRule"`
	}{scope, typ, "iothub", nil})
	return string(b)
}
