// SPDX-License-Identifier: MIT

package service

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Emulator-only operations. A real hub delivers telemetry through its Event
// Hub-compatible endpoint and takes cloud-to-device messages and feedback
// over AMQP, which this package does not speak; the emulator offers the
// same data over HTTPS under /emulator (README, "Test-control API"). Against
// a real hub these calls fail with ErrEmulatorOnly.
//
// The requests carry api-version like every other call. The emulator does
// not need it on /emulator routes and ignores it; a real hub then has no
// reason to refuse the request before routing it, so it answers 404 for the
// unknown path rather than 400 for a missing api-version.

// ErrEmulatorOnly is wrapped by the error of an emulator-only operation
// (SendC2D, ReadTelemetry, C2DFeedback) when the hub does not have the
// emulator's /emulator routes, as is the case for a real IoT hub.
var ErrEmulatorOnly = errors.New("emulator-only operation: this hub has no /emulator routes (a real IoT hub needs AMQP for telemetry and cloud-to-device messages)")

// MaxTelemetryWait is the longest long poll the emulator grants
// ReadTelemetry; a longer TelemetryFilter.Wait is shortened to it.
const MaxTelemetryWait = 60 * time.Second

// Acknowledgements a cloud-to-device message may ask for (C2DMessage.Ack):
// which delivery outcomes produce a Feedback record.
const (
	AckNone     = "none"     // no feedback (the default)
	AckPositive = "positive" // feedback when the device completes the message
	AckNegative = "negative" // feedback when the message expires, is rejected or exceeds the delivery count
	AckFull     = "full"     // feedback on every outcome
)

// C2DMessage is a cloud-to-device message to queue with SendC2D.
type C2DMessage struct {
	Body            []byte            // payload, sent as is; at most 64 KB
	MessageID       string            // message id; Feedback.OriginalMessageID refers to it
	CorrelationID   string            // correlation id
	UserID          string            // user id
	Ack             string            // AckNone, AckPositive, AckNegative or AckFull; "" means none
	ContentType     string            // content type of Body, e.g. "application/json"
	ContentEncoding string            // content encoding of Body, e.g. "utf-8"
	TTL             time.Duration     // time to live, rounded up to whole seconds, at most 48h; 0 means the hub's default (1h)
	Properties      map[string]string // application properties; names travel as HTTP headers, so the emulator sees them in lower case
}

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

// FeedbackStatus is the outcome a Feedback record reports.
type FeedbackStatus string

// Feedback outcomes, as the hub names them (C# service SDK
// FeedbackStatusCode).
const (
	FeedbackSuccess               FeedbackStatus = "Success"               // the device completed the message
	FeedbackExpired               FeedbackStatus = "Expired"               // the time to live ran out before completion
	FeedbackDeliveryCountExceeded FeedbackStatus = "DeliveryCountExceeded" // delivered the maximum number of times without completion
	FeedbackRejected              FeedbackStatus = "Rejected"              // the device rejected the message
	FeedbackPurged                FeedbackStatus = "Purged"                // the queue was purged (real hub only)
)

// Feedback is a cloud-to-device delivery outcome that the message's Ack
// asked for. The fields are those of a real hub's feedback record.
type Feedback struct {
	OriginalMessageID  string         `json:"originalMessageId"`  // MessageID of the cloud-to-device message
	DeviceGenerationID string         `json:"deviceGenerationId"` // generation of the target device
	DeviceID           string         `json:"deviceId"`           // target device
	EnqueuedTimeUTC    time.Time      `json:"enqueuedTimeUtc"`    // when the outcome happened
	StatusCode         FeedbackStatus `json:"statusCode"`         // outcome
	Description        string         `json:"description"`        // outcome in words
}

// SendC2D queues a cloud-to-device message for device deviceID
// (POST /emulator/devices/{id}/messages/devicebound). It is emulator-only:
// against a real hub it fails with ErrEmulatorOnly. An unknown device gives
// an error matching ErrNotFound, a full queue (50 messages) one matching
// ErrForbidden. It is never retried: a second attempt after a
// lost response would queue the message twice.
func (c *Client) SendC2D(ctx context.Context, deviceID string, m *C2DMessage) error {
	const op = "SendC2D"
	if deviceID == "" {
		return errorf(op, "device id is required")
	}
	if m == nil {
		return errorf(op, "message is required")
	}
	header, err := c2dHeaders(m)
	if err != nil {
		return errorf(op, "%w", err)
	}
	cl := &call{
		op: op, method: http.MethodPost, path: "/emulator" + devicePath(deviceID) + "/messages/devicebound",
		header: header, body: rawBody{data: m.Body, contentType: "application/octet-stream"},
	}
	_, err = c.do(ctx, cl, nil)
	return emulatorOnly(op, c.host, err)
}

// c2dHeaders carries m's properties the way the emulator's send route reads
// them: the header names of the hub's device HTTPS API (iothub-messageid,
// iothub-app-{name}, ...) plus iothub-ttl in seconds.
func c2dHeaders(m *C2DMessage) (http.Header, error) {
	if m.TTL < 0 {
		return nil, fmt.Errorf("negative time to live %v", m.TTL)
	}
	h := http.Header{}
	set := func(name, v string) error {
		if !validHeaderValue(v) {
			return fmt.Errorf("%s %q contains control characters", name, v)
		}
		h.Set(name, v)
		return nil
	}
	for _, p := range []struct{ name, v string }{
		{"iothub-messageid", m.MessageID},
		{"iothub-correlationid", m.CorrelationID},
		{"iothub-userid", m.UserID},
		{"iothub-ack", m.Ack},
		{"iothub-contenttype", m.ContentType},
		{"iothub-contentencoding", m.ContentEncoding},
	} {
		if p.v == "" {
			continue // unset
		}
		if err := set(p.name, p.v); err != nil {
			return nil, err
		}
	}
	if m.TTL > 0 {
		h.Set("iothub-ttl", strconv.FormatInt(ceilSeconds(m.TTL), 10))
	}
	for k, v := range m.Properties {
		if !validHeaderName(k) {
			return nil, fmt.Errorf("property name %q cannot travel as an HTTP header name", k)
		}
		if _, dup := h[http.CanonicalHeaderKey("iothub-app-"+k)]; dup {
			// Header names ignore case: one would silently replace the other.
			return nil, fmt.Errorf("property names differing only in case, such as %q, cannot travel as HTTP headers", k)
		}
		if err := set("iothub-app-"+k, v); err != nil {
			return nil, err
		}
	}
	return h, nil
}

// validHeaderName reports whether s is an HTTP token (RFC 9110 §5.6.2).
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if !('a' <= ch && ch <= 'z' || 'A' <= ch && ch <= 'Z' || '0' <= ch && ch <= '9' ||
			strings.IndexByte("!#$%&'*+-.^_`|~", ch) >= 0) {
			return false
		}
	}
	return true
}

// validHeaderValue reports whether s can be a header value: no control
// characters except tab. Bytes above 0x7f (UTF-8) pass.
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if ch := s[i]; ch < ' ' && ch != '\t' || ch == 0x7f {
			return false
		}
	}
	return true
}

// ReadTelemetry returns the recorded device-to-cloud messages that f
// selects, oldest first (GET /emulator/messages). With f.Wait it long-polls:
// when nothing matches yet it returns as soon as a matching message arrives,
// or an empty slice when the wait ends. Page through the log by passing the
// last SequenceNumber seen as the next Since. It is emulator-only: against
// a real hub, which delivers telemetry through its Event Hub-compatible
// endpoint, it fails with ErrEmulatorOnly.
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
// emulator-only: a real hub sends feedback over AMQP, and there this call
// fails with ErrEmulatorOnly.
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
