// SPDX-License-Identifier: MIT

package service

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Emulator-only operations: views of the emulator's recordings through its
// test-control routes under /emulator (README, "Test-control API"), for
// tests that want to look without consuming. A real hub has no equivalent:
// there, telemetry is read with an EventReceiver from the Event
// Hub-compatible endpoint and feedback with a FeedbackReceiver, and these
// calls fail with ErrEmulatorOnly.
//
// The requests carry api-version like every other call. The emulator does
// not need it on /emulator routes and ignores it; a real hub then has no
// reason to refuse the request before routing it, so it answers 404 for the
// unknown path rather than 400 for a missing api-version.

// ErrEmulatorOnly is wrapped by the error of an emulator-only operation
// (ReadTelemetry, TelemetryHead, C2DFeedback) when the hub does not have
// the emulator's /emulator routes, as is the case for a real IoT hub.
var ErrEmulatorOnly = errors.New("emulator-only operation: this hub has no /emulator routes (on a real IoT hub read telemetry with an EventReceiver and feedback with a FeedbackReceiver)")

// MaxTelemetryWait is the longest long poll the emulator grants
// ReadTelemetry; a longer TelemetryFilter.Wait is shortened to it.
const MaxTelemetryWait = 60 * time.Second

// TelemetryFilter selects the recorded device-to-cloud messages ReadTelemetry
// returns. The zero value selects every retained message.
type TelemetryFilter struct {
	DeviceID string        // only this device's messages; "" for all devices
	ModuleID string        // only this module's messages; "" for any sender
	Since    uint64        // only messages with a sequence number above this one
	Limit    int           // at most this many messages; 0 for no limit
	Wait     time.Duration // when nothing matches yet, wait up to this long for a message (long poll); capped at MaxTelemetryWait
}

// TelemetryMessage is a device-to-cloud message as the emulator recorded it.
// The system properties are those the device set, plus what the hub adds:
// sequence number, enqueued time, sender identity, authentication method
// and transport.
type TelemetryMessage struct {
	SequenceNumber       uint64            `json:"sequenceNumber"`                 // position in the hub's log, increasing across all devices
	EnqueuedTime         time.Time         `json:"enqueuedTime"`                   // when the hub accepted the message
	DeviceID             string            `json:"deviceId"`                       // sending device
	ModuleID             string            `json:"moduleId,omitempty"`             // sending module, if a module sent it
	ConnectionAuthMethod string            `json:"connectionAuthMethod,omitempty"` // how the sender authenticated, e.g. "sas"
	Transport            string            `json:"transport,omitempty"`            // "mqtt", "mqtt-ws" or "https"
	MessageID            string            `json:"messageId,omitempty"`
	CorrelationID        string            `json:"correlationId,omitempty"`
	UserID               string            `json:"userId,omitempty"`
	To                   string            `json:"to,omitempty"`
	ContentType          string            `json:"contentType,omitempty"`
	ContentEncoding      string            `json:"contentEncoding,omitempty"`
	CreationTime         string            `json:"creationTimeUtc,omitempty"` // as the device sent it
	ExpiryTime           string            `json:"expiryTimeUtc,omitempty"`   // as the device sent it
	OutputName           string            `json:"outputName,omitempty"`      // module output
	MessageSchema        string            `json:"messageSchema,omitempty"`
	ComponentName        string            `json:"componentName,omitempty"` // Plug and Play component
	InterfaceID          string            `json:"interfaceId,omitempty"`
	Properties           map[string]string `json:"properties"` // application properties
	Body                 []byte            `json:"body"`       // payload (base64 in the JSON)
}

// ReadTelemetry returns the recorded device-to-cloud messages that f
// selects, oldest first (GET /emulator/messages). With f.Wait it long-polls:
// when nothing matches yet it returns as soon as a matching message arrives,
// or an empty slice when the wait ends. Page through the log by passing the
// last SequenceNumber seen as the next Since. It is emulator-only, a view
// that consumes nothing: against a real hub it fails with ErrEmulatorOnly;
// there (and here too) an EventReceiver reads the telemetry.
func (c *Client) ReadTelemetry(ctx context.Context, f TelemetryFilter) ([]*TelemetryMessage, error) {
	const op = "ReadTelemetry"
	if f.Limit < 0 || f.Wait < 0 {
		return nil, errorf(op, "limit and wait must not be negative")
	}
	q := url.Values{}
	if f.DeviceID != "" {
		q.Set("deviceId", f.DeviceID)
	}
	if f.ModuleID != "" {
		q.Set("moduleId", f.ModuleID)
	}
	if f.Since > 0 {
		q.Set("since", strconv.FormatUint(f.Since, 10))
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	if f.Wait > 0 {
		q.Set("wait", strconv.FormatFloat(min(f.Wait, MaxTelemetryWait).Seconds(), 'f', -1, 64))
	}
	out := []*TelemetryMessage{}
	_, err := c.do(ctx, &call{op: op, method: http.MethodGet, path: "/emulator/messages", query: q.Encode(), idempotent: true}, &out)
	if err != nil {
		return nil, emulatorOnly(op, c.host, err)
	}
	return out, nil
}

// TelemetryHead returns the sequence number of the newest message the
// emulator has recorded (GET /emulator/messages/head); ReadTelemetry with
// Since set to it returns only messages that arrive later. It is
// emulator-only and fails with ErrEmulatorOnly against a real hub.
func (c *Client) TelemetryHead(ctx context.Context) (uint64, error) {
	const op = "TelemetryHead"
	var out struct {
		SequenceNumber uint64 `json:"sequenceNumber"`
	}
	_, err := c.do(ctx, &call{op: op, method: http.MethodGet, path: "/emulator/messages/head", idempotent: true}, &out)
	if err != nil {
		return 0, emulatorOnly(op, c.host, err)
	}
	return out.SequenceNumber, nil
}

// C2DFeedback returns the cloud-to-device feedback recorded so far, oldest
// first (GET /emulator/feedback). Reading does not consume it. It is
// emulator-only: against a real hub it fails with ErrEmulatorOnly; there
// (and here too) a FeedbackReceiver or ReceiveFeedback takes the feedback
// from its queue.
func (c *Client) C2DFeedback(ctx context.Context) ([]Feedback, error) {
	const op = "C2DFeedback"
	out := []Feedback{}
	_, err := c.do(ctx, &call{op: op, method: http.MethodGet, path: "/emulator/feedback", idempotent: true}, &out)
	if err != nil {
		return nil, emulatorOnly(op, c.host, err)
	}
	return out, nil
}

// emulatorOnly turns a 404 for the /emulator route itself into an error
// wrapping ErrEmulatorOnly. A 404 that names a missing device or module
// comes from the emulator and is passed through unchanged.
//
// The result deliberately does not wrap the hub's *Error: ErrNotFound must
// not match a missing device when the route is what is missing.
func emulatorOnly(op, host string, err error) error {
	e := asError(err)
	if e == nil || e.StatusCode != http.StatusNotFound || e.Code == CodeDeviceNotFound || e.Code == CodeModuleNotFound {
		return err
	}
	return fmt.Errorf("service: %s: %w; %s answered 404: %s", op, ErrEmulatorOnly, host, e.Message)
}
