// SPDX-License-Identifier: MIT

package emulator

import (
	"encoding/json"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/hub"
)

// The types of direct state access. They are the emulator's own, small
// and documented, converted at this package's edge: a change inside the
// hub does not change them, and the hub's bookkeeping (store sequence
// numbers, lock tokens) stays out of them.

// Identity names a device (ModuleID "") or a module.
type Identity struct {
	DeviceID string
	ModuleID string
}

func identityOf(i hub.Identity) Identity { return Identity{DeviceID: i.DeviceID, ModuleID: i.ModuleID} }

// Authentication types, as the registry names them.
const (
	AuthSAS        = hub.AuthSAS        // symmetric keys: SAS tokens
	AuthSelfSigned = hub.AuthSelfSigned // X.509, checked by thumbprint
	AuthCA         = hub.AuthCA         // X.509, checked against the configured device CAs
	AuthNone       = hub.AuthNone       // modules managed by IoT Edge
)

// Authentication is an identity's credentials. For AuthSAS, empty keys are
// generated; for AuthSelfSigned, thumbprints are hex SHA-1 or SHA-256 of
// the device certificate.
type Authentication struct {
	Type                string // AuthSAS when empty
	PrimaryKey          string // base64
	SecondaryKey        string // base64
	PrimaryThumbprint   string
	SecondaryThumbprint string
}

// Device is a device identity.
type Device struct {
	DeviceID       string
	Disabled       bool   // status "disabled": the device cannot connect
	StatusReason   string // free text kept with the status
	Auth           Authentication
	IoTEdge        bool     // an IoT Edge device
	DeviceScope    string   // edge scope; set by the hub for edge devices
	ParentScopes   []string // the scope of the edge device this device sits behind
	GenerationID   string   // read only
	ETag           string   // read only; see PutDevice
	Connected      bool     // read only: a live connection now
	LastActivity   time.Time
	StateUpdated   time.Time // when the connection state last changed
	C2DQueueLength int       // read only: cloud-to-device messages waiting
}

// Module is a module identity.
type Module struct {
	DeviceID       string
	ModuleID       string
	ManagedBy      string // "iotEdge" for modules an edge runtime manages
	Auth           Authentication
	GenerationID   string // read only
	ETag           string // read only
	Connected      bool   // read only
	LastActivity   time.Time
	StateUpdated   time.Time
	C2DQueueLength int
}

func deviceOf(d *hub.Device) *Device {
	return &Device{
		DeviceID: d.DeviceID, Disabled: d.Status == hub.StatusDisabled, StatusReason: deref(d.StatusReason),
		Auth: authOf(d.Authentication), IoTEdge: d.Capabilities.IotEdge, DeviceScope: d.DeviceScope,
		ParentScopes: d.ParentScopes, GenerationID: d.GenerationID, ETag: d.ETag,
		Connected: d.ConnectionState == hub.Connected, LastActivity: d.LastActivityTime.Time,
		StateUpdated: d.ConnectionStateUpdatedTime.Time, C2DQueueLength: d.CloudToDeviceMessageCount,
	}
}

func (d *Device) hub() *hub.Device {
	out := &hub.Device{
		DeviceID: d.DeviceID, Status: hub.StatusEnabled, Authentication: d.Auth.hub(),
		Capabilities: hub.Capabilities{IotEdge: d.IoTEdge}, DeviceScope: d.DeviceScope, ParentScopes: d.ParentScopes,
	}
	if d.Disabled {
		out.Status = hub.StatusDisabled
	}
	if d.StatusReason != "" {
		out.StatusReason = &d.StatusReason
	}
	return out
}

func moduleOf(m *hub.Module) *Module {
	return &Module{
		DeviceID: m.DeviceID, ModuleID: m.ModuleID, ManagedBy: m.ManagedBy, Auth: authOf(m.Authentication),
		GenerationID: m.GenerationID, ETag: m.ETag, Connected: m.ConnectionState == hub.Connected,
		LastActivity: m.LastActivityTime.Time, StateUpdated: m.ConnectionStateUpdatedTime.Time,
		C2DQueueLength: m.CloudToDeviceMessageCount,
	}
}

func (m *Module) hub() *hub.Module {
	return &hub.Module{DeviceID: m.DeviceID, ModuleID: m.ModuleID, ManagedBy: m.ManagedBy, Authentication: m.Auth.hub()}
}

func authOf(a hub.Authentication) Authentication {
	out := Authentication{Type: a.Type}
	if k := a.SymmetricKey; k != nil {
		out.PrimaryKey, out.SecondaryKey = k.PrimaryKey, k.SecondaryKey
	}
	if t := a.X509Thumbprint; t != nil {
		out.PrimaryThumbprint, out.SecondaryThumbprint = deref(t.PrimaryThumbprint), deref(t.SecondaryThumbprint)
	}
	return out
}

func (a Authentication) hub() hub.Authentication {
	out := hub.Authentication{Type: a.Type}
	if out.Type == "" {
		out.Type = AuthSAS
	}
	switch out.Type {
	case AuthSAS:
		out.SymmetricKey = &hub.SymmetricKey{PrimaryKey: a.PrimaryKey, SecondaryKey: a.SecondaryKey}
	case AuthSelfSigned:
		out.X509Thumbprint = &hub.X509Thumbprint{PrimaryThumbprint: ptr(a.PrimaryThumbprint), SecondaryThumbprint: ptr(a.SecondaryThumbprint)}
	}
	return out
}

// Message is a device-to-cloud (telemetry) message as the hub recorded it.
type Message struct {
	SequenceNumber  uint64    // position in the emulator's telemetry log, from 1
	EnqueuedTime    time.Time // when the hub accepted it
	DeviceID        string
	ModuleID        string
	Transport       string // mqtt, mqtt-ws, https, amqp, amqp-ws
	AuthMethod      string // sas, x509
	MessageID       string
	CorrelationID   string
	UserID          string
	ContentType     string
	ContentEncoding string
	CreationTime    string // as the device wrote it
	ExpiryTime      string // as the device wrote it
	OutputName      string // modules: the output it was sent to
	ComponentName   string // IoT Plug and Play component
	InterfaceID     string // IoT Plug and Play interface
	Partition       int    // partition of the Event Hub-compatible endpoint
	Properties      map[string]string
	Body            []byte
}

func messageOf(m *hub.Message) *Message {
	return &Message{
		SequenceNumber: m.SequenceNumber, EnqueuedTime: m.EnqueuedTime, DeviceID: m.DeviceID, ModuleID: m.ModuleID,
		Transport: m.Transport, AuthMethod: m.AuthMethod, MessageID: m.MessageID, CorrelationID: m.CorrelationID,
		UserID: m.UserID, ContentType: m.ContentType, ContentEncoding: m.ContentEncoding, CreationTime: m.CreationTime,
		ExpiryTime: m.ExpiryTime, OutputName: m.OutputName, ComponentName: m.ComponentName, InterfaceID: m.InterfaceID,
		Partition:  m.Partition,
		Properties: m.Properties, Body: m.Body,
	}
}

func messagesOf(ms []*hub.Message) []*Message {
	out := make([]*Message, len(ms))
	for i, m := range ms {
		out[i] = messageOf(m)
	}
	return out
}

// Acknowledgements a cloud-to-device message may ask for.
const (
	AckNone     = hub.AckNone     // no feedback (the default)
	AckPositive = hub.AckPositive // feedback when the device completes it
	AckNegative = hub.AckNegative // feedback when it expires, is rejected or dead-lettered
	AckFull     = hub.AckFull     // both
)

// C2DMessage is a cloud-to-device message: what SendC2D queues, and what
// PendingC2D shows of a queue.
type C2DMessage struct {
	MessageID       string
	CorrelationID   string
	UserID          string
	Ack             string // AckNone when empty
	ContentType     string
	ContentEncoding string
	Properties      map[string]string
	Body            []byte

	// Set by the hub.
	DeviceID      string
	EnqueuedTime  time.Time
	ExpiryTime    time.Time
	DeliveryCount int // times it was delivered without being completed
}

func (m *C2DMessage) hub() *hub.C2DMessage {
	return &hub.C2DMessage{
		MessageID: m.MessageID, CorrelationID: m.CorrelationID, UserID: m.UserID, Ack: m.Ack,
		ContentType: m.ContentType, ContentEncoding: m.ContentEncoding, Properties: m.Properties, Body: m.Body,
	}
}

func c2dOf(m *hub.C2DMessage) *C2DMessage {
	return &C2DMessage{
		MessageID: m.MessageID, CorrelationID: m.CorrelationID, UserID: m.UserID, Ack: m.Ack,
		ContentType: m.ContentType, ContentEncoding: m.ContentEncoding, Properties: m.Properties, Body: m.Body,
		DeviceID: m.DeviceID, EnqueuedTime: m.EnqueuedTime, ExpiryTime: m.ExpiryTime, DeliveryCount: m.DeliveryCount,
	}
}

// Feedback statuses.
const (
	FeedbackSuccess               = hub.FeedbackSuccess
	FeedbackExpired               = hub.FeedbackExpired
	FeedbackDeliveryCountExceeded = hub.FeedbackDeliveryCountExceeded
	FeedbackRejected              = hub.FeedbackRejected
	FeedbackPurged                = hub.FeedbackPurged
)

// Feedback is the outcome of a cloud-to-device message that asked for an
// acknowledgement.
type Feedback struct {
	OriginalMessageID  string
	DeviceID           string
	DeviceGenerationID string
	EnqueuedTime       time.Time
	StatusCode         string // one of the Feedback* statuses
	Description        string
}

func feedbackOf(f hub.Feedback) Feedback {
	return Feedback{OriginalMessageID: f.OriginalMessageID, DeviceID: f.DeviceID, DeviceGenerationID: f.DeviceGenerationID,
		EnqueuedTime: f.EnqueuedTimeUTC, StatusCode: f.StatusCode, Description: f.Description}
}

// MethodCall is a recorded direct-method invocation.
type MethodCall struct {
	DeviceID        string
	ModuleID        string
	MethodName      string
	Payload         json.RawMessage // as the service sent it ("null" when omitted)
	Status          int             // the device's status, when it answered
	ResponsePayload json.RawMessage // the device's answer, when it answered
	ErrorCode       int             // the hub's error code, when it did not (404103, 504101, ...)
	StartTime       time.Time
	Duration        time.Duration
}

func methodCallOf(c hub.MethodCall) MethodCall {
	return MethodCall{DeviceID: c.DeviceID, ModuleID: c.ModuleID, MethodName: c.MethodName, Payload: c.Payload,
		Status: c.Status, ResponsePayload: c.ResponsePayload, ErrorCode: c.ErrorCode, StartTime: c.StartTime,
		Duration: time.Duration(c.DurationMs) * time.Millisecond}
}

// Twin sections a TwinChange names.
const (
	SectionTags     = "tags"
	SectionDesired  = "desired"
	SectionReported = "reported"
)

// TwinChange is a recorded write to a twin.
type TwinChange struct {
	DeviceID string
	ModuleID string
	Section  string          // SectionTags, SectionDesired or SectionReported
	Replace  bool            // the section was replaced, not patched
	Patch    json.RawMessage // what was written
	Version  int64           // the twin's version after the change
	Time     time.Time
}

func twinChangeOf(c hub.TwinChange) TwinChange {
	return TwinChange{DeviceID: c.DeviceID, ModuleID: c.ModuleID, Section: c.Section, Replace: c.Replace,
		Patch: c.Patch, Version: c.Version, Time: c.Time}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func ptr(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
