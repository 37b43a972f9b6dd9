// SPDX-License-Identifier: MIT

package emulator

import (
	"context"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/hub"
)

// Connection faults: the hub's own fault-injection hook, which devices
// reach by sending telemetry with the AzIoTHub_FaultOperation* properties
// (see the README), and the same faults from test control.

// FaultType is a fault of the hub's hook, as AzIoTHub_FaultOperationType
// names it.
type FaultType = hub.FaultKind

// The fault types. The MQTT adapter serves KillTcp and ShutDownMqtt; the
// AMQP ones apply to AMQP connections, and the hub ignores them for a
// device connected otherwise. The Invoke* types break nothing: for the
// duration, the device's operations and connects are refused with the
// named error.
const (
	FaultKillTcp                = hub.FaultKillTcp                // the TCP connection is reset
	FaultShutDownMqtt           = hub.FaultShutDownMqtt           // the MQTT connection is closed cleanly
	FaultShutDownAmqp           = hub.FaultShutDownAmqp           // the AMQP connection is closed cleanly
	FaultKillAmqpConnection     = hub.FaultKillAmqpConnection     // the AMQP connection is closed with an error
	FaultKillAmqpSession        = hub.FaultKillAmqpSession        // the device's AMQP session is ended
	FaultKillAmqpCBSLinkReq     = hub.FaultKillAmqpCBSLinkReq     // the $cbs request link is detached
	FaultKillAmqpCBSLinkResp    = hub.FaultKillAmqpCBSLinkResp    // the $cbs response link is detached
	FaultKillAmqpD2CLink        = hub.FaultKillAmqpD2CLink        // the telemetry link is detached
	FaultKillAmqpC2DLink        = hub.FaultKillAmqpC2DLink        // the cloud-to-device link is detached
	FaultKillAmqpMethodReqLink  = hub.FaultKillAmqpMethodReqLink  // the method request link is detached
	FaultKillAmqpMethodRespLink = hub.FaultKillAmqpMethodRespLink // the method response link is detached
	FaultKillAmqpTwinLinkReq    = hub.FaultKillAmqpTwinLinkReq    // the twin request link is detached
	FaultKillAmqpTwinLinkResp   = hub.FaultKillAmqpTwinLinkResp   // the twin response link is detached
	FaultInvokeThrottling       = hub.FaultInvokeThrottling       // refused with 429 ThrottlingException
	FaultInvokeMaxMessageQuota  = hub.FaultInvokeMaxMessageQuota  // refused with 403 IotHubQuotaExceeded
	FaultInvokeAuthError        = hub.FaultInvokeAuthError        // refused with 401 Unauthorized
)

// FaultSpec is a fault to inject into a device's or module's connection.
type FaultSpec struct {
	DeviceID    string
	ModuleID    string // "" for the device itself
	Type        FaultType
	CloseReason string        // carried where the transport can (a WebSocket close frame)
	Delay       time.Duration // emulator time (see FastForward) until the fault
	Duration    time.Duration // after the fault, how long reconnects (Invoke*: operations) are refused
}

// Outcomes of a fault (FaultRecord.Outcome).
const (
	FaultPending       = hub.FaultPending       // waiting for its delay
	FaultApplied       = hub.FaultApplied       // the connection was broken (Invoke*: refusals began)
	FaultNotConnected  = hub.FaultNotConnected  // no connection when the delay ended; reconnects are refused for the duration all the same
	FaultNotApplicable = hub.FaultNotApplicable // the connection's transport has no such thing to break: ignored
	FaultCancelled     = hub.FaultCancelled     // Reset or Close came first
	FaultInvalid       = hub.FaultInvalid       // the message's fault properties could not be read: it was plain telemetry
)

// Where a fault came from (FaultRecord.Source).
const (
	FaultFromMessage = hub.FaultSourceMessage // the device sent the hook's properties
	FaultFromControl = hub.FaultSourceControl // InjectFault or POST /emulator/faults
)

// FaultRecord is a fault as the emulator recorded it: when it was asked
// for and applied, to which connection, and what came of it.
type FaultRecord struct {
	ID            string
	DeviceID      string
	ModuleID      string
	Type          FaultType
	CloseReason   string
	Delay         time.Duration
	Duration      time.Duration
	Source        string    // FaultFromMessage or FaultFromControl
	RequestedTime time.Time // when the message or request came
	AppliedTime   time.Time // when the delay ended; zero while pending
	EndTime       time.Time // when the duration ends; zero without one
	// Connection is the connection the fault hit: the hub's number for
	// it, its transport and remote address, and when it connected. Zero
	// when there was none.
	Connection FaultConnection
	Outcome    string // one of the Fault* outcomes
	Detail     string // why, for the outcomes that need a reason
	Refused    int    // reconnects (Invoke*: operations) refused during the duration
}

// FaultConnection describes the connection a fault hit.
type FaultConnection struct {
	ID            uint64 // counts the emulator's connections from 1
	Transport     string // mqtt, mqtt-ws
	RemoteAddress string
	ConnectedTime time.Time
}

func faultRecordOf(r hub.FaultRecord) FaultRecord {
	out := FaultRecord{
		ID: r.ID, DeviceID: r.DeviceID, ModuleID: r.ModuleID, Type: r.Kind, CloseReason: r.CloseReason,
		Delay:    time.Duration(r.DelaySeconds * float64(time.Second)),
		Duration: time.Duration(r.DurationSeconds * float64(time.Second)),
		Source:   r.Source, RequestedTime: r.RequestedTime, Outcome: r.Outcome, Detail: r.Detail, Refused: r.Refused,
	}
	if r.AppliedTime != nil {
		out.AppliedTime = *r.AppliedTime
	}
	if r.EndTime != nil {
		out.EndTime = *r.EndTime
	}
	if c := r.Connection; c != nil {
		out.Connection = FaultConnection{ID: c.ID, Transport: c.Transport, RemoteAddress: c.RemoteAddress, ConnectedTime: c.ConnectedTime}
	}
	return out
}

// InjectFault schedules a fault on a registered device's or module's
// connection, as if it had sent the hook's properties: after Delay of
// emulator time the connection is broken the named way, and for Duration
// its reconnects are refused (MQTT: CONNACK 3). It returns the fault's
// record, pending. Use it for tests that cannot make the device send the
// fault message; it is what POST /emulator/faults does.
func (s *Server) InjectFault(f FaultSpec) (FaultRecord, error) {
	r, err := s.hub.InjectFault(context.Background(), hub.FaultSpec{
		Identity: hub.Identity{DeviceID: f.DeviceID, ModuleID: f.ModuleID},
		Kind:     f.Type, CloseReason: f.CloseReason, Delay: f.Delay, Duration: f.Duration,
	})
	if err != nil {
		return FaultRecord{}, err
	}
	return faultRecordOf(r), nil
}

// Faults returns the recorded faults of a device and its modules (all
// devices when deviceID is ""), oldest first, whether a device sent them
// or test control injected them. The newest 1000 are kept.
func (s *Server) Faults(deviceID string) []FaultRecord {
	rs := s.hub.Faults(deviceID)
	out := make([]FaultRecord, len(rs))
	for i, r := range rs {
		out[i] = faultRecordOf(r)
	}
	return out
}
