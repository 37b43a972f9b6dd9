// SPDX-License-Identifier: MIT

package main

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/iothubemulator/iothub/service"
)

// monitor-events reads telemetry from the hub's Event Hub-compatible
// endpoint, like az iot hub monitor-events: through the service package's
// EventReceiver, found by the hub's redirect or given by its connection
// string.

// event is the line monitor-events prints for one message.
type event struct {
	DeviceID         string            `json:"deviceId"`
	ModuleID         string            `json:"moduleId,omitempty"`
	Partition        string            `json:"partition"`
	SequenceNumber   int64             `json:"sequenceNumber"`
	Offset           string            `json:"offset"`
	EnqueuedTime     time.Time         `json:"enqueuedTime"`
	Properties       map[string]string `json:"properties"`
	SystemProperties systemProperties  `json:"systemProperties"`
	Body             string            `json:"body"`
	BodyEncoding     string            `json:"bodyEncoding,omitempty"` // "base64" when the body is not valid UTF-8
}

// systemProperties are the message's system properties that are set.
type systemProperties struct {
	MessageID            string `json:"messageId,omitempty"`
	CorrelationID        string `json:"correlationId,omitempty"`
	UserID               string `json:"userId,omitempty"`
	To                   string `json:"to,omitempty"`
	ContentType          string `json:"contentType,omitempty"`
	ContentEncoding      string `json:"contentEncoding,omitempty"`
	CreationTime         string `json:"creationTimeUtc,omitempty"`
	ExpiryTime           string `json:"expiryTimeUtc,omitempty"`
	ComponentName        string `json:"componentName,omitempty"`
	MessageSource        string `json:"messageSource,omitempty"`
	ConnectionAuthMethod string `json:"connectionAuthMethod,omitempty"` // the hub's JSON, as it sends it
	AuthGenerationID     string `json:"connectionAuthGenerationId,omitempty"`
}

func timeText(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func eventOf(m *service.Event) event {
	e := event{
		DeviceID: m.DeviceID, ModuleID: m.ModuleID, Partition: m.Partition, SequenceNumber: m.SequenceNumber,
		Offset: m.Offset, EnqueuedTime: m.EnqueuedTime, Properties: m.Properties,
		SystemProperties: systemProperties{
			MessageID: m.MessageID, CorrelationID: m.CorrelationID, UserID: m.UserID, To: m.To,
			ContentType: m.ContentType, ContentEncoding: m.ContentEncoding,
			CreationTime: timeText(m.CreationTime), ExpiryTime: timeText(m.ExpiryTime),
			ComponentName: m.ComponentName, MessageSource: m.MessageSource,
			ConnectionAuthMethod: m.AuthMethod, AuthGenerationID: m.AuthGenerationID,
		},
	}
	if e.Properties == nil {
		e.Properties = map[string]string{}
	}
	if utf8.Valid(m.Body) {
		e.Body = string(m.Body)
	} else {
		e.Body, e.BodyEncoding = base64.StdEncoding.EncodeToString(m.Body), "base64"
	}
	return e
}

func init() { addGroup((*cli).monitorEvents) }

func (c *cli) monitorEvents() *cobra.Command {
	var (
		deviceID, moduleID string
		consumerGroup      string
		partitions         []string
		fromStart          bool
		enqueuedAfter      string
		ehConnString       string
		rf                 receiveFlags
	)
	cmd := &cobra.Command{
		Use:   "monitor-events",
		Short: "Print device-to-cloud messages as they arrive",
		Long: `Print the telemetry that arrives from now on (every retained message with
--from-start, or those enqueued after --enqueued-after), one JSON object per
line (deviceId, moduleId, partition, sequenceNumber, offset, enqueuedTime,
properties, systemProperties, body; bodyEncoding "base64" when the body is
not UTF-8 text), until --count messages, --timeout or Ctrl-C.

It reads the hub's Event Hub-compatible endpoint, as az iot hub
monitor-events and the Event Hubs SDKs do: found by the hub's redirect
from the service connection string, or named by
--eventhub-connection-string (IOTHUB_EVENTHUB_CONNECTION_STRING), the
"Event Hub-compatible endpoint" string of the portal or the emulator's
banner (UseDevelopmentEmulator=true: plain AMQP). Within a partition the
messages come in order; across partitions, as they arrive.
` + amqpLong,
		Example: `  iothub monitor-events --device myDevice --timeout 1m
  iothub monitor-events --from-start --count 10 --consumer-group backend`,
		Args: noArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			if err := rf.check(false); err != nil {
				return err
			}
			if err := c.checkAMQPFlags(); err != nil {
				return err
			}
			var start service.EventPosition
			switch {
			case fromStart && enqueuedAfter != "":
				return usagef("give --from-start or --enqueued-after, not both")
			case fromStart:
				start.Earliest = true
			case enqueuedAfter != "":
				t, err := parseWhen(enqueuedAfter, time.Now())
				if err != nil {
					return usagef("--enqueued-after: %v", err)
				}
				start.EnqueuedTime = t
			}
			opts := service.EventReceiverOptions{ConsumerGroup: consumerGroup, Partitions: partitions, Start: start}
			ctx, cancel := rf.context(cmd.Context())
			defer cancel()
			if ehConnString == "" {
				ehConnString = c.getenv("IOTHUB_EVENTHUB_CONNECTION_STRING")
			}
			var r *service.EventReceiver
			var err error
			if ehConnString != "" {
				pool, perr := c.rootCAs()
				if perr != nil {
					return perr
				}
				so := c.amqpOptions()
				if pool != nil {
					so = append(so, service.WithRootCAs(pool))
				}
				r, err = service.NewEventReceiverFromConnectionString(ctx, ehConnString, opts, so...)
			} else {
				sc, serr := c.service()
				if serr != nil {
					return serr
				}
				defer sc.Close()
				r, err = sc.NewEventReceiver(ctx, opts)
			}
			if stopped(ctx, err) {
				return nil
			}
			if err != nil {
				return err
			}
			defer r.Close()
			out := c.lines()
			for n := 0; !rf.done(n); {
				ev, err := r.Receive(ctx)
				if stopped(ctx, err) {
					// --timeout or Ctrl-C: the way monitoring ends.
					return nil
				}
				if err != nil {
					return err
				}
				if (deviceID != "" && ev.DeviceID != deviceID) || (moduleID != "" && ev.ModuleID != moduleID) {
					continue
				}
				if err := out.write(eventOf(ev)); err != nil {
					return err
				}
				n++
			}
			return nil
		}),
	}
	f := cmd.Flags()
	f.StringVar(&deviceID, "device", "", "only this device's messages")
	f.StringVar(&moduleID, "module", "", "only this module's messages")
	f.StringVar(&consumerGroup, "consumer-group", service.DefaultConsumerGroup, "the consumer group to read as")
	f.StringSliceVar(&partitions, "partition", nil, "read only this partition (repeatable; default all)")
	f.BoolVar(&fromStart, "from-start", false, "print every retained message first")
	f.StringVar(&enqueuedAfter, "enqueued-after", "", "start with messages enqueued after this time: RFC 3339 (2024-05-02T09:00:00Z) or a duration ago (10m)")
	f.StringVar(&ehConnString, "eventhub-connection-string", "", "the Event Hub-compatible endpoint's connection string (default $IOTHUB_EVENTHUB_CONNECTION_STRING; without it the endpoint is found from the service connection string)")
	rf.register(f, "messages", false)
	c.amqpFlags(f)
	return cmd
}

// parseWhen reads a time as RFC 3339 or as a duration before now.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil && n >= 0 && !strings.HasPrefix(s, "+") {
		// Milliseconds since the epoch, as az's --enqueued-time takes it.
		return time.UnixMilli(n), nil
	}
	return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time, a duration nor milliseconds since 1970", s)
}
