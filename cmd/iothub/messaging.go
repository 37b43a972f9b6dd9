// SPDX-License-Identifier: MIT

package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"github.com/iothubemulator/iothub/internal/uuid"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/iothubemulator/iothub/service"
)

// Emulator-only commands: telemetry and cloud-to-device messages go through
// the service package's emulator-only API, since a real hub offers them
// over AMQP alone.

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

func (c *cli) monitorEvents() command {
	var (
		deviceID, moduleID string
		since              optionalUint
		fromStart          bool
		timeout            time.Duration
	)
	return command{
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&deviceID, "device", "", "only this device's messages")
			fs.StringVar(&moduleID, "module", "", "only this module's messages")
			fs.Var(&since, "since", "start after this sequence number (default: only messages that arrive from now on)")
			fs.BoolVar(&fromStart, "from-start", false, "print every retained message first")
			fs.DurationVar(&timeout, "timeout", 0, "stop after this long (default: run until interrupted)")
		},
		run: func(ctx context.Context, sc *service.Client, args []string) error {
			if len(args) != 0 {
				return usagef("monitor-events takes no arguments")
			}
			if timeout < 0 {
				return usagef("--timeout must not be negative")
			}
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
		},
	}
}

// properties collects repeated --property k=v flags.
type properties map[string]string

func (p properties) String() string { return "" }

func (p properties) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("want NAME=VALUE, got %q", v)
	}
	p[k] = val
	return nil
}

func (c *cli) c2dSend() command {
	var (
		m                 service.C2DMessage
		body              string
		bodySet           bool
		props             = properties{}
		validAcks         = []string{service.AckNone, service.AckPositive, service.AckNegative, service.AckFull}
		messageIDExplicit bool
	)
	return command{
		flags: func(fs *flag.FlagSet) {
			fs.Func("body", "payload: TEXT, @FILE or - for stdin (required; may be empty)", func(v string) error {
				body, bodySet = v, true
				return nil
			})
			fs.StringVar(&m.Ack, "ack", "", "feedback to ask for: none, positive, negative or full (default none)")
			fs.DurationVar(&m.TTL, "ttl", 0, "time to live, whole seconds, at most 48h (default: the hub's, 1h)")
			fs.Var(props, "property", "application property NAME=VALUE (repeatable)")
			fs.Func("message-id", "message id (default: a generated UUID)", func(v string) error {
				m.MessageID, messageIDExplicit = v, true
				return nil
			})
			fs.StringVar(&m.CorrelationID, "correlation-id", "", "correlation id")
			fs.StringVar(&m.UserID, "user-id", "", "user id")
			fs.StringVar(&m.ContentType, "content-type", "", "content type of the body, e.g. application/json")
			fs.StringVar(&m.ContentEncoding, "content-encoding", "", "content encoding of the body, e.g. utf-8")
		},
		run: func(ctx context.Context, sc *service.Client, args []string) error {
			id, err := oneID(args)
			if err != nil {
				return err
			}
			if !bodySet {
				return usagef("c2d send needs --body")
			}
			if m.Ack != "" && !slices.Contains(validAcks, m.Ack) {
				return usagef("--ack must be one of %s", strings.Join(validAcks, ", "))
			}
			if m.TTL < 0 {
				return usagef("--ttl must not be negative")
			}
			if m.Body, err = c.readArg("body", body); err != nil {
				return err
			}
			// Feedback names the message by its id, so a message always
			// gets one, as the Azure CLI does.
			if !messageIDExplicit {
				m.MessageID = uuid.New()
			}
			if len(props) > 0 {
				m.Properties = props
			}
			if err := sc.SendC2D(ctx, id, &m); err != nil {
				return err
			}
			return c.printJSON(struct {
				DeviceID  string `json:"deviceId"`
				MessageID string `json:"messageId"`
			}{id, m.MessageID})
		},
	}
}

func (c *cli) c2dFeedback() command {
	return command{
		flags: func(*flag.FlagSet) {},
		run: func(ctx context.Context, sc *service.Client, args []string) error {
			if len(args) != 0 {
				return usagef("c2d feedback takes no arguments")
			}
			fb, err := sc.C2DFeedback(ctx)
			if err != nil {
				return err
			}
			return c.printJSON(fb)
		},
	}
}

// optionalUint is a uint64 flag that remembers whether it was given.
type optionalUint struct {
	n   uint64
	set bool
}

func (o *optionalUint) String() string { return strconv.FormatUint(o.n, 10) }

func (o *optionalUint) Set(s string) error {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return err
	}
	o.n, o.set = n, true
	return nil
}
