// SPDX-License-Identifier: MIT

package hub

import (
	"context"
	"encoding/json"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/store"
)

// Emulator-only test control: recordings of method calls and twin changes,
// fault injection, and reset. None of this exists on the real hub.

// MethodCall is a recorded direct-method invocation.
type MethodCall struct {
	DeviceID        string          `json:"deviceId"`
	ModuleID        string          `json:"moduleId,omitempty"`
	MethodName      string          `json:"methodName"`
	Payload         json.RawMessage `json:"payload"`
	Status          int             `json:"status,omitempty"`          // the device's status, when it answered
	ResponsePayload json.RawMessage `json:"responsePayload,omitempty"` // the device's payload, when it answered
	ErrorCode       int             `json:"errorCode,omitempty"`       // the hub's error code, when it did not
	StartTime       time.Time       `json:"startTime"`
	DurationMs      int64           `json:"durationMs"`
}

// TwinChange is a recorded twin write.
type TwinChange struct {
	DeviceID string          `json:"deviceId"`
	ModuleID string          `json:"moduleId,omitempty"`
	Section  string          `json:"section"` // tags, desired or reported
	Replace  bool            `json:"replace,omitempty"`
	Patch    json.RawMessage `json:"patch"`
	Version  int64           `json:"version"` // the twin's version after the change
	Time     time.Time       `json:"time"`
}

// MethodCalls returns recorded invocations, oldest first, for one device
// (all when deviceID is "").
func (h *Hub) MethodCalls(deviceID string) []MethodCall {
	h.rec.mu.Lock()
	defer h.rec.mu.Unlock()
	out := []MethodCall{}
	for _, c := range h.rec.methods.all() {
		if deviceID == "" || c.DeviceID == deviceID {
			out = append(out, c)
		}
	}
	return out
}

// TwinHistory returns recorded twin changes, oldest first, for one device
// or module (all devices when deviceID is "").
func (h *Hub) TwinHistory(deviceID, moduleID string) []TwinChange {
	h.rec.mu.Lock()
	defer h.rec.mu.Unlock()
	out := []TwinChange{}
	for _, c := range h.rec.twins.all() {
		if (deviceID == "" || c.DeviceID == deviceID) && c.ModuleID == moduleID {
			out = append(out, c)
		}
	}
	return out
}

// Operation names that fault injection can target.
const (
	OpInvokeMethod  = "InvokeMethod"
	OpGetTwin       = "GetTwin"       // service GET twin
	OpUpdateTwin    = "UpdateTwin"    // service PATCH/PUT twin
	OpDeviceTwin    = "DeviceTwin"    // device twin GET (MQTT, AMQP)
	OpPatchReported = "PatchReported" // device reported PATCH (MQTT, AMQP)
	OpTelemetry     = "SendTelemetry"
	OpSendC2D       = "SendC2D"
	OpRegistry      = "Registry"   // any registry write
	OpFileUpload    = "FileUpload" // a device starting a file upload
	OpImportExport  = "ImportExportJob"
	OpConnect       = "Connect" // a device or module connects (MQTT CONNECT, AMQP attach)
)

// Ops lists every operation name fault injection can target.
func Ops() []string {
	return []string{OpInvokeMethod, OpGetTwin, OpUpdateTwin, OpDeviceTwin, OpPatchReported, OpTelemetry,
		OpSendC2D, OpRegistry, OpFileUpload, OpImportExport, OpCreateJob, OpConnect}
}

// Fault is what a Reactor asks the hub to do to one operation.
type Fault struct {
	Delay time.Duration // wait this long first
	Err   error         // then fail with this error (a huberr.Error for a hub answer); nil: proceed
}

// Reactor decides, per operation, whether to inject a fault; nil means no
// fault. It is called concurrently.
type Reactor interface {
	React(op string, id Identity) *Fault
}

// ReactorFunc adapts a function to Reactor.
type ReactorFunc func(op string, id Identity) *Fault

// React implements Reactor.
func (f ReactorFunc) React(op string, id Identity) *Fault { return f(op, id) }

// SetReactor installs (or, with nil, removes) fault injection.
func (h *Hub) SetReactor(r Reactor) {
	h.reactorMu.Lock()
	h.reactor = r
	h.reactorMu.Unlock()
}

// react applies any injected fault for op: first the hub's own, from the
// fault-injection hook (faults.go), then the reactor's.
func (h *Hub) react(ctx context.Context, op string, id Identity) error {
	if err := h.faultRefusal(op, id); err != nil {
		return err
	}
	h.reactorMu.RLock()
	r := h.reactor
	h.reactorMu.RUnlock()
	if r == nil {
		return nil
	}
	f := r.React(op, id)
	if f == nil {
		return nil
	}
	if f.Delay > 0 {
		t := h.clk.NewTimer(f.Delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
	return f.Err
}

// Reset empties the hub: every device, module, twin, queued and recorded
// message and recording. Live connections are closed.
func (h *Hub) Reset(ctx context.Context) error {
	h.mu.Lock()
	cs := make([]*Conn, 0, len(h.conns))
	for _, c := range h.conns {
		cs = append(cs, c)
	}
	h.mu.Unlock()
	for _, c := range cs {
		c.kick()
	}
	h.mu.Lock()
	h.runtime = map[Identity]*runtimeInfo{}
	h.mu.Unlock()
	h.stopJobRuns(false)
	// Running import/export jobs find their record gone and stop.
	h.ieJobs.mu.Lock()
	for _, c := range h.ieJobs.cancels {
		c()
	}
	h.ieJobs.mu.Unlock()
	err := h.db.Update(func(tx *store.Tx) error {
		for _, b := range []store.Bucket{store.Devices, store.Modules, store.Messages, store.PartitionIndex, store.C2D, store.Feedback, store.FeedbackQueue, store.Jobs, store.DeviceJobs, store.Configurations,
			store.FileUploads, store.FileNotifications, store.ImportExportJobs} {
			var keys []string
			if err := tx.ForEach(b, "", "", func(k string, _ []byte) error { keys = append(keys, k); return nil }); err != nil {
				return err
			}
			for _, k := range keys {
				if err := tx.Delete(b, k); err != nil {
					return err
				}
			}
		}
		return putTelemetryBytes(tx, 0)
	})
	h.rec.reset()
	h.resetFaults(false)
	h.queries.mu.Lock()
	h.queries.entries = nil
	h.queries.mu.Unlock()
	h.forgetIdentities(func(Identity) bool { return true })
	h.invalidateConfigurations()
	h.msgWake()
	return err
}
