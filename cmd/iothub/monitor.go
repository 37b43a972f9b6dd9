// SPDX-License-Identifier: MIT

package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/iothubemulator/iothub/service"
)

// monitor-events, emulator only: telemetry goes through the service
// package's emulator-only API, since a real hub offers it over AMQP alone.

// monitorBatch bounds one poll's answer so that a long backlog is printed
// in steps rather than loaded at once.
const monitorBatch = 1000

// event is the line monitor-events prints for one message.
type event struct {
	DeviceID         string            `json:"deviceId"`
	ModuleID         string            `json:"moduleId,omitempty"`
	SequenceNumber   uint64            `json:"sequenceNumber"`
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
	OutputName           string `json:"outputName,omitempty"`
	MessageSchema        string `json:"messageSchema,omitempty"`
	ComponentName        string `json:"componentName,omitempty"`
	InterfaceID          string `json:"interfaceId,omitempty"`
	ConnectionAuthMethod string `json:"connectionAuthMethod,omitempty"`
	Transport            string `json:"transport,omitempty"`
}

func eventOf(m *service.TelemetryMessage) event {
	e := event{
		DeviceID: m.DeviceID, ModuleID: m.ModuleID, SequenceNumber: m.SequenceNumber,
		EnqueuedTime: m.EnqueuedTime, Properties: m.Properties,
		SystemProperties: systemProperties{
			MessageID: m.MessageID, CorrelationID: m.CorrelationID, UserID: m.UserID, To: m.To,
			ContentType: m.ContentType, ContentEncoding: m.ContentEncoding,
			CreationTime: m.CreationTime, ExpiryTime: m.ExpiryTime, OutputName: m.OutputName,
			MessageSchema: m.MessageSchema, ComponentName: m.ComponentName, InterfaceID: m.InterfaceID,
			ConnectionAuthMethod: m.ConnectionAuthMethod, Transport: m.Transport,
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
		since              optionalUint
		fromStart          bool
		timeout            time.Duration
	)
	cmd := &cobra.Command{
		Use:   "monitor-events",
		Short: "Print device-to-cloud messages as they arrive (emulator only)",
		Long: `Print the telemetry that arrives from now on (after sequence number
--since, or every retained message with --from-start), one JSON object per
line (deviceId, moduleId, sequenceNumber, enqueuedTime, properties,
systemProperties, body; bodyEncoding "base64" when the body is not UTF-8
text), until --timeout or Ctrl-C.

Emulator only: it reads the emulator's recorded telemetry, since a real hub
offers its Event Hub-compatible endpoint over AMQP alone.`,
		Example: `  iothub monitor-events --device myDevice --timeout 1m`,
		Args:    noArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			if timeout < 0 {
				return usagef("--timeout must not be negative")
			}
			if since.set && fromStart {
				return usagef("give --since or --from-start, not both")
			}
			sc, err := c.service()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, timeout)
				defer cancel()
			}
			next := since.n
			if !since.set && !fromStart {
				// Like az iot hub monitor-events: start from now.
				head, err := sc.TelemetryHead(ctx)
				if err != nil {
					return err
				}
				next = head
			}
			enc := json.NewEncoder(c.stdout)
			enc.SetEscapeHTML(false)
			for {
				ms, err := sc.ReadTelemetry(ctx, service.TelemetryFilter{
					DeviceID: deviceID, ModuleID: moduleID, Since: next,
					Limit: monitorBatch, Wait: service.MaxTelemetryWait,
				})
				if err != nil {
					if ctx.Err() != nil {
						// --timeout or Ctrl-C: the way monitoring ends.
						return nil
					}
					return err
				}
				for _, m := range ms {
					if err := enc.Encode(eventOf(m)); err != nil {
						return err
					}
					next = m.SequenceNumber
				}
			}
		}),
	}
	f := cmd.Flags()
	f.StringVar(&deviceID, "device", "", "only this device's messages")
	f.StringVar(&moduleID, "module", "", "only this module's messages")
	f.Var(&since, "since", "start after this sequence number (default: only messages that arrive from now on)")
	f.BoolVar(&fromStart, "from-start", false, "print every retained message first")
	f.DurationVar(&timeout, "timeout", 0, "stop after this long (default: run until interrupted)")
	return cmd
}

// optionalUint is a uint64 flag that remembers whether it was given.
type optionalUint struct {
	n   uint64
	set bool
}

func (o *optionalUint) String() string { return strconv.FormatUint(o.n, 10) }

func (o *optionalUint) Type() string { return "N" }

func (o *optionalUint) Set(s string) error {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return err
	}
	o.n, o.set = n, true
	return nil
}
