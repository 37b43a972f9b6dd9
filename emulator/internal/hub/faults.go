// SPDX-License-Identifier: MIT

package hub

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/clock"
	"github.com/iothubemulator/iothub/emulator/internal/huberr"
	"github.com/iothubemulator/iothub/emulator/internal/store"
)

// Fault injection as the hub serves it to Microsoft's own SDK test suites:
// a device sends telemetry carrying the application properties
// AzIoTHub_FaultOperationType, ...CloseReason, ...DelayInSecs and
// ...DurationInSecs, and once the delay has passed the hub breaks that
// device's connection, or one of its AMQP links, in the named way, then
// refuses the device's reconnects for the duration. The Invoke* kinds
// break nothing: for the duration, the hub answers the device's
// operations with the named error instead. Test control (InjectFault)
// schedules the same faults without a message.
//
// The hub decides what happens and when, on its one clock (FastForward
// moves delays and durations); the transport does the breaking, through
// Faulter, so nothing here knows a socket or a link.

// FaultKind is a fault as the hook names it (AzIoTHub_FaultOperationType).
type FaultKind string

// The fault kinds of the hub's hook: the values the SDKs' e2e suites send.
const (
	FaultKillTcp                FaultKind = "KillTcp"                // the TCP connection is cut
	FaultShutDownMqtt           FaultKind = "ShutDownMqtt"           // the MQTT connection is closed cleanly
	FaultShutDownAmqp           FaultKind = "ShutDownAmqp"           // the AMQP connection is closed cleanly
	FaultKillAmqpConnection     FaultKind = "KillAmqpConnection"     // the AMQP connection is closed with an error
	FaultKillAmqpSession        FaultKind = "KillAmqpSession"        // the device's AMQP session is ended with an error
	FaultKillAmqpCBSLinkReq     FaultKind = "KillAmqpCBSLinkReq"     // the $cbs request link is detached
	FaultKillAmqpCBSLinkResp    FaultKind = "KillAmqpCBSLinkResp"    // the $cbs response link is detached
	FaultKillAmqpD2CLink        FaultKind = "KillAmqpD2CLink"        // the telemetry sender link is detached
	FaultKillAmqpC2DLink        FaultKind = "KillAmqpC2DLink"        // the cloud-to-device receiver link is detached
	FaultKillAmqpMethodReqLink  FaultKind = "KillAmqpMethodReqLink"  // the method request link is detached
	FaultKillAmqpMethodRespLink FaultKind = "KillAmqpMethodRespLink" // the method response link is detached
	FaultKillAmqpTwinLinkReq    FaultKind = "KillAmqpTwinLinkReq"    // the twin request link is detached
	FaultKillAmqpTwinLinkResp   FaultKind = "KillAmqpTwinLinkResp"   // the twin response link is detached
	FaultInvokeThrottling       FaultKind = "InvokeThrottling"       // operations fail with 429 ThrottlingException
	FaultInvokeMaxMessageQuota  FaultKind = "InvokeMaxMessageQuota"  // operations fail with 403 IotHubQuotaExceeded
	FaultInvokeAuthError        FaultKind = "InvokeAuthError"        // operations fail with 401 Unauthorized
)

// faultKinds tells each known kind whether the transport breaks something
// (true) or the hub refuses operations (false).
var faultKinds = map[FaultKind]bool{
	FaultKillTcp: true, FaultShutDownMqtt: true, FaultShutDownAmqp: true,
	FaultKillAmqpConnection: true, FaultKillAmqpSession: true,
	FaultKillAmqpCBSLinkReq: true, FaultKillAmqpCBSLinkResp: true,
	FaultKillAmqpD2CLink: true, FaultKillAmqpC2DLink: true,
	FaultKillAmqpMethodReqLink: true, FaultKillAmqpMethodRespLink: true,
	FaultKillAmqpTwinLinkReq: true, FaultKillAmqpTwinLinkResp: true,
	FaultInvokeThrottling: false, FaultInvokeMaxMessageQuota: false, FaultInvokeAuthError: false,
}

// FaultKinds lists every kind the hub knows, connection faults first.
func FaultKinds() []FaultKind {
	return []FaultKind{
		FaultKillTcp, FaultShutDownMqtt, FaultShutDownAmqp, FaultKillAmqpConnection, FaultKillAmqpSession,
		FaultKillAmqpCBSLinkReq, FaultKillAmqpCBSLinkResp, FaultKillAmqpD2CLink, FaultKillAmqpC2DLink,
		FaultKillAmqpMethodReqLink, FaultKillAmqpMethodRespLink, FaultKillAmqpTwinLinkReq, FaultKillAmqpTwinLinkResp,
		FaultInvokeThrottling, FaultInvokeMaxMessageQuota, FaultInvokeAuthError,
	}
}

// Known reports whether the hub knows the kind.
func (k FaultKind) Known() bool { _, ok := faultKinds[k]; return ok }

// Breaks reports whether the kind breaks a connection or a link, which
// only the transport can do; the other kinds make the hub refuse.
func (k FaultKind) Breaks() bool { return faultKinds[k] }

// refusal is the error an Invoke* kind answers operations with.
func (k FaultKind) refusal() *huberr.Error {
	switch k {
	case FaultInvokeThrottling:
		return huberr.Throttled()
	case FaultInvokeMaxMessageQuota:
		return huberr.IotHubQuotaExceeded()
	case FaultInvokeAuthError:
		return huberr.Unauthorized("The device's credentials are refused (fault injection).")
	}
	return nil
}

// The application properties of the hook, as the SDKs' e2e suites spell
// them. Delay and duration are in seconds (C# writes TimeSpan.TotalSeconds,
// so a fraction may come).
const (
	PropFaultType        = "AzIoTHub_FaultOperationType"
	PropFaultCloseReason = "AzIoTHub_FaultOperationCloseReason"
	PropFaultDelay       = "AzIoTHub_FaultOperationDelayInSecs"
	PropFaultDuration    = "AzIoTHub_FaultOperationDurationInSecs"
)

// MaxFaultTime bounds a fault's delay and its duration: 30 days. The Java
// suite asks for 100,000 s to make a connection loss unrecoverable.
const MaxFaultTime = 30 * 24 * time.Hour

// Faulter is implemented by a Session whose transport can break its
// connection, or one of its links, in the ways FaultKind names. The hub
// calls Fault once the fault's delay has passed, without holding a lock.
// Fault must not wait on the peer: it starts the break and returns. It
// reports whether the transport knows kind (an MQTT connection has no AMQP
// link to detach); when it does not, the connection must stay untouched,
// and the hub records the fault as not applicable, as the hub ignores a
// fault that does not apply to the device's transport. reason is the
// hook's close reason, for transports that can carry one (a WebSocket
// close frame, an AMQP error description).
type Faulter interface {
	Fault(kind FaultKind, reason string) bool
}

// FaultSpec is a fault to inject into one identity's connection.
type FaultSpec struct {
	Identity    Identity
	Kind        FaultKind
	CloseReason string
	Delay       time.Duration // from the request until the fault
	Duration    time.Duration // after the fault, how long the identity's reconnects (Invoke*: operations) are refused
}

// Where a fault came from.
const (
	FaultSourceMessage = "message" // the device sent the hook's properties
	FaultSourceControl = "control" // InjectFault (POST /emulator/faults)
)

// Outcomes of a fault.
const (
	FaultPending       = "pending"       // waiting for its delay
	FaultApplied       = "applied"       // the connection was broken (Invoke*: the hub refuses for the duration)
	FaultNotConnected  = "notConnected"  // the identity had no connection when the delay ended; reconnects are still refused for the duration
	FaultNotApplicable = "notApplicable" // the connection's transport has no such thing to break; nothing happened
	FaultCancelled     = "cancelled"     // the hub was reset or closed first
	FaultInvalid       = "invalid"       // the message's fault properties could not be read; it was recorded as plain telemetry
)

// FaultConnection describes the connection a fault hit.
type FaultConnection struct {
	ID            uint64    `json:"id"` // the hub's number for the connection, counting from 1 since the start
	Transport     string    `json:"transport,omitempty"`
	RemoteAddress string    `json:"remoteAddress,omitempty"`
	ConnectedTime time.Time `json:"connectedTime"`
}

// FaultRecord is one fault as the hub recorded it (GET /emulator/faults).
type FaultRecord struct {
	ID              string           `json:"id"`
	DeviceID        string           `json:"deviceId"`
	ModuleID        string           `json:"moduleId,omitempty"`
	Kind            FaultKind        `json:"faultType"`
	CloseReason     string           `json:"closeReason,omitempty"`
	DelaySeconds    float64          `json:"delayInSecs"`
	DurationSeconds float64          `json:"durationInSecs"`
	Source          string           `json:"source"`
	RequestedTime   time.Time        `json:"requestedTime"`
	AppliedTime     *time.Time       `json:"appliedTime,omitempty"` // when the delay ended
	EndTime         *time.Time       `json:"endTime,omitempty"`     // when the duration ends
	Connection      *FaultConnection `json:"connection,omitempty"`  // the connection hit, if there was one
	Outcome         string           `json:"outcome"`
	Detail          string           `json:"detail,omitempty"`
	Refused         int              `json:"refused"` // reconnects (Invoke*: operations) refused during the duration
}

// faultEntry is a recorded fault and its timer. rec is guarded by
// faultState.mu.
type faultEntry struct {
	rec   FaultRecord
	spec  FaultSpec
	timer *clock.Timer
}

// faultWindow is an identity's duration after a fault.
type faultWindow struct {
	entry *faultEntry
	until time.Time
}

// maxFaultRecords bounds the fault log; the oldest records go first.
const maxFaultRecords = 1000

type faultState struct {
	mu      sync.Mutex
	seq     uint64
	log     recording[*faultEntry]
	pending map[*faultEntry]struct{}
	windows map[Identity]*faultWindow
}

// InjectFault schedules a fault on a registered identity, as if the
// device had sent the hook's properties, and returns its record.
func (h *Hub) InjectFault(ctx context.Context, spec FaultSpec) (FaultRecord, error) {
	if !spec.Kind.Known() {
		return FaultRecord{}, huberr.ArgumentInvalid("faultType '%s' is not one the hub knows; use one of %v.", spec.Kind, FaultKinds())
	}
	if spec.Delay < 0 || spec.Delay > MaxFaultTime || spec.Duration < 0 || spec.Duration > MaxFaultTime {
		return FaultRecord{}, huberr.ArgumentInvalid("delay and duration must be between 0 and %d seconds.", int64(MaxFaultTime/time.Second))
	}
	if spec.Identity.DeviceID == "" {
		return FaultRecord{}, huberr.ArgumentNull("deviceId is required.")
	}
	var found bool
	err := h.db.View(func(tx *store.Tx) error {
		r, err := loadRecord(tx, spec.Identity)
		found = r != nil
		return err
	})
	if err != nil {
		return FaultRecord{}, err
	}
	if !found {
		if spec.Identity.ModuleID != "" {
			return FaultRecord{}, huberr.ModuleNotFound(spec.Identity.DeviceID, spec.Identity.ModuleID)
		}
		return FaultRecord{}, huberr.DeviceNotFound(spec.Identity.DeviceID)
	}
	if err := ctx.Err(); err != nil {
		return FaultRecord{}, err
	}
	return h.scheduleFault(spec, FaultSourceControl), nil
}

// Faults returns the recorded faults of a device and its modules (all
// when deviceID is ""), oldest first.
func (h *Hub) Faults(deviceID string) []FaultRecord {
	h.faults.mu.Lock()
	defer h.faults.mu.Unlock()
	out := []FaultRecord{}
	for _, e := range h.faults.log.all() {
		if deviceID == "" || e.rec.DeviceID == deviceID {
			out = append(out, e.rec)
		}
	}
	return out
}

// faultOf reads the hook's properties of a message from id. found is
// false when the message carries no fault type; err says why a fault it
// asks for cannot be read.
func faultOf(id Identity, props map[string]string) (spec FaultSpec, found bool, err error) {
	v, ok := props[PropFaultType]
	if !ok {
		return FaultSpec{}, false, nil
	}
	spec = FaultSpec{Identity: id, Kind: FaultKind(v), CloseReason: props[PropFaultCloseReason]}
	if !spec.Kind.Known() {
		return spec, true, fmt.Errorf("%s '%s' is not a fault type the hub knows", PropFaultType, v)
	}
	if spec.Delay, err = faultSeconds(props, PropFaultDelay); err != nil {
		return spec, true, err
	}
	if spec.Duration, err = faultSeconds(props, PropFaultDuration); err != nil {
		return spec, true, err
	}
	return spec, true, nil
}

// faultSeconds reads a property of the hook as seconds; absent is 0.
func faultSeconds(props map[string]string, name string) (time.Duration, error) {
	v, ok := props[name]
	if !ok || v == "" {
		return 0, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	// Checked as a number first: a huge one wraps around when converted.
	if err != nil || math.IsNaN(f) || f < 0 || f > MaxFaultTime.Seconds() {
		return 0, fmt.Errorf("%s '%s' is not a number of seconds between 0 and %d", name, v, int64(MaxFaultTime/time.Second))
	}
	return time.Duration(f * float64(time.Second)), nil
}

// newFaultEntry adds a record of spec to the log, with the given outcome.
func (h *Hub) newFaultEntry(spec FaultSpec, source, outcome, detail string) *faultEntry {
	e := &faultEntry{spec: spec, rec: FaultRecord{
		DeviceID: spec.Identity.DeviceID, ModuleID: spec.Identity.ModuleID,
		Kind: spec.Kind, CloseReason: spec.CloseReason,
		DelaySeconds: spec.Delay.Seconds(), DurationSeconds: spec.Duration.Seconds(),
		Source: source, RequestedTime: h.stamp(), Outcome: outcome, Detail: detail,
	}}
	f := &h.faults
	f.mu.Lock()
	f.seq++
	e.rec.ID = strconv.FormatUint(f.seq, 10)
	if f.log.maxItems == 0 {
		f.log.maxItems = maxFaultRecords
	}
	f.log.add(e, 0)
	if outcome == FaultPending {
		if f.pending == nil {
			f.pending = map[*faultEntry]struct{}{}
		}
		f.pending[e] = struct{}{}
	}
	f.mu.Unlock()
	return e
}

// scheduleFault records spec and arms its delay on the hub's clock.
func (h *Hub) scheduleFault(spec FaultSpec, source string) FaultRecord {
	e := h.newFaultEntry(spec, source, FaultPending, "")
	h.log.Info("fault scheduled", "identity", spec.Identity.String(), "faultType", spec.Kind, "delay", spec.Delay, "duration", spec.Duration, "source", source)
	t := h.clk.AfterFunc(spec.Delay, func() { h.applyFault(e) })
	h.faults.mu.Lock()
	defer h.faults.mu.Unlock()
	if e.rec.Outcome == FaultPending {
		e.timer = t
	}
	return e.rec
}

// applyFault runs once a fault's delay has passed. The duration starts
// before the break, so a device that reconnects at once is refused too.
func (h *Hub) applyFault(e *faultEntry) {
	f := &h.faults
	f.mu.Lock()
	if e.rec.Outcome != FaultPending {
		f.mu.Unlock()
		return // cancelled by Reset or Close
	}
	delete(f.pending, e)
	f.mu.Unlock()

	id, kind := e.spec.Identity, e.spec.Kind
	c := h.conn(id)
	var conn *FaultConnection
	if c != nil {
		conn = &FaultConnection{ID: c.seq, Transport: c.info.Transport, RemoteAddress: c.info.RemoteAddr, ConnectedTime: c.since}
	}
	now := h.stamp()
	w, prev := h.openFaultWindow(e, now)

	outcome, detail := FaultApplied, ""
	switch {
	case !kind.Breaks():
	case c == nil:
		outcome, detail = FaultNotConnected, id.String()+" had no connection when the delay ended"
	default:
		fl, ok := c.session.(Faulter)
		if !ok || !fl.Fault(kind, e.spec.CloseReason) {
			outcome, detail = FaultNotApplicable, fmt.Sprintf("a %s connection has nothing that %s breaks; the hub ignores it", c.info.Transport, kind)
		}
	}

	f.mu.Lock()
	if outcome == FaultNotApplicable && w != nil {
		// A fault that does not apply leaves any earlier duration as it was.
		if f.windows[id] == w {
			if prev != nil {
				f.windows[id] = prev
			} else {
				delete(f.windows, id)
			}
		}
		e.rec.EndTime = nil
	}
	e.rec.AppliedTime, e.rec.Outcome, e.rec.Detail, e.rec.Connection = &now, outcome, detail, conn
	f.mu.Unlock()
	h.log.Info("fault applied", "identity", id.String(), "faultType", kind, "outcome", outcome)
}

// openFaultWindow starts e's duration at now, if it has one, in place of
// the identity's earlier one (prev), which it returns too.
func (h *Hub) openFaultWindow(e *faultEntry, now time.Time) (w, prev *faultWindow) {
	if e.spec.Duration <= 0 {
		return nil, nil
	}
	until := now.Add(e.spec.Duration)
	w = &faultWindow{entry: e, until: until}
	f := &h.faults
	f.mu.Lock()
	if f.windows == nil {
		f.windows = map[Identity]*faultWindow{}
	}
	prev = f.windows[e.spec.Identity]
	f.windows[e.spec.Identity] = w
	e.rec.EndTime = &until
	f.mu.Unlock()
	return w, prev
}

// faultRefusal is the hub's answer to op by id while a fault's duration
// lasts: a connection fault refuses reconnects, as a hub that is not
// serving the device; an Invoke* fault refuses the device's operations
// and connects with its own error. Service-side operations are untouched.
func (h *Hub) faultRefusal(op string, id Identity) error {
	switch op {
	case OpConnect, OpTelemetry, OpDeviceTwin, OpPatchReported, OpFileUpload:
	default:
		return nil
	}
	f := &h.faults
	f.mu.Lock()
	defer f.mu.Unlock()
	w := f.windows[id]
	if w == nil {
		return nil
	}
	if !h.Now().Before(w.until) {
		delete(f.windows, id)
		return nil
	}
	kind := w.entry.spec.Kind
	if kind.Breaks() {
		if op != OpConnect {
			return nil
		}
		w.entry.rec.Refused++
		return huberr.ServiceUnavailable("Connections of %s are refused until %s (fault injection: %s).", id, w.until.Format(time.RFC3339), kind)
	}
	w.entry.rec.Refused++
	return kind.refusal()
}

// resetFaults cancels pending faults and forgets every fault; with keep,
// the records stay (Close), marked cancelled.
func (h *Hub) resetFaults(keep bool) {
	f := &h.faults
	f.mu.Lock()
	defer f.mu.Unlock()
	for e := range f.pending {
		if e.timer != nil {
			e.timer.Stop()
		}
		e.rec.Outcome = FaultCancelled
	}
	f.pending = nil
	f.windows = nil
	if !keep {
		f.log = recording[*faultEntry]{maxItems: f.log.maxItems}
	}
}

// AdmitConnection is asked by a transport before it accepts an
// authenticated connection of id: during a fault's duration the hub
// refuses it (huberr ServiceUnavailable, or the Invoke* fault's error),
// and reactors may refuse it too (OpConnect: throttling).
func (h *Hub) AdmitConnection(ctx context.Context, id Identity) error {
	return h.react(ctx, OpConnect, id)
}
