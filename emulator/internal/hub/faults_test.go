// SPDX-License-Identifier: MIT

package hub

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/huberr"
	"github.com/iothubemulator/iothub/internal/testutil"
)

// faultSession is a session whose transport knows some fault kinds and
// records the faults it is asked for.
type faultSession struct {
	knows  map[FaultKind]bool
	mu     sync.Mutex
	faults []string // kind + "/" + reason
}

func (s *faultSession) SendMethod(string, string, []byte) error { return nil }
func (s *faultSession) SendDesired(int64, []byte) error         { return nil }
func (s *faultSession) Close()                                  {}

func (s *faultSession) Fault(kind FaultKind, reason string) bool {
	if !s.knows[kind] {
		return false
	}
	s.mu.Lock()
	s.faults = append(s.faults, string(kind)+"/"+reason)
	s.mu.Unlock()
	return true
}

func (s *faultSession) got() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.faults...)
}

// plainSession implements no Faulter at all.
type plainSession struct{}

func (plainSession) SendMethod(string, string, []byte) error { return nil }
func (plainSession) SendDesired(int64, []byte) error         { return nil }
func (plainSession) Close()                                  {}

// waitFault waits for the newest fault of deviceID to leave pending.
func waitFault(t *testing.T, h *Hub, deviceID string) FaultRecord {
	t.Helper()
	var r FaultRecord
	testutil.Eventually(t, "the fault to be applied", func() bool {
		fs := h.Faults(deviceID)
		if len(fs) == 0 {
			return false
		}
		r = fs[len(fs)-1]
		return r.Outcome != FaultPending
	})
	return r
}

func TestFaultPropertiesParsed(t *testing.T) {
	id := Identity{DeviceID: "d"}
	tests := []struct {
		name          string
		props         map[string]string
		found, ok     bool
		delay, within time.Duration
	}{
		{"no fault", map[string]string{"a": "b"}, false, true, 0, 0},
		{"type only", map[string]string{PropFaultType: "KillTcp"}, true, true, 0, 0},
		{"whole seconds", map[string]string{PropFaultType: "KillTcp", PropFaultDelay: "2", PropFaultDuration: "5"}, true, true, 2 * time.Second, 5 * time.Second},
		{"fractions (C# TotalSeconds)", map[string]string{PropFaultType: "KillTcp", PropFaultDelay: "0.25", PropFaultDuration: "1.5"}, true, true, 250 * time.Millisecond, 1500 * time.Millisecond},
		{"empty values", map[string]string{PropFaultType: "ShutDownMqtt", PropFaultDelay: "", PropFaultDuration: ""}, true, true, 0, 0},
		{"Java's unrecoverable 100000 s", map[string]string{PropFaultType: "KillTcp", PropFaultDelay: "1", PropFaultDuration: "100000"}, true, true, time.Second, 100000 * time.Second},
		{"unknown kind", map[string]string{PropFaultType: "killtcp"}, true, false, 0, 0},
		{"negative delay", map[string]string{PropFaultType: "KillTcp", PropFaultDelay: "-1"}, true, false, 0, 0},
		{"words", map[string]string{PropFaultType: "KillTcp", PropFaultDuration: "five"}, true, false, 0, 0},
		{"NaN", map[string]string{PropFaultType: "KillTcp", PropFaultDelay: "NaN"}, true, false, 0, 0},
		{"infinite", map[string]string{PropFaultType: "KillTcp", PropFaultDuration: "Inf"}, true, false, 0, 0},
		{"beyond 30 days", map[string]string{PropFaultType: "KillTcp", PropFaultDuration: "2592001"}, true, false, 0, 0},
		{"would overflow a Duration", map[string]string{PropFaultType: "KillTcp", PropFaultDelay: "1e20"}, true, false, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec, found, err := faultOf(id, tt.props)
			if found != tt.found || (err == nil) != tt.ok {
				t.Fatalf("found %v, err %v; want found %v, ok %v", found, err, tt.found, tt.ok)
			}
			if tt.ok && (spec.Delay != tt.delay || spec.Duration != tt.within) {
				t.Fatalf("delay %v duration %v, want %v %v", spec.Delay, spec.Duration, tt.delay, tt.within)
			}
		})
	}
}

// TestFaultKindsClassified: every kind is known, the Invoke* ones refuse
// with their error, the others are for the transport to break.
func TestFaultKindsClassified(t *testing.T) {
	want := map[FaultKind]int{FaultInvokeThrottling: 429001, FaultInvokeMaxMessageQuota: 403002, FaultInvokeAuthError: 401003}
	for _, k := range FaultKinds() {
		if !k.Known() {
			t.Errorf("%s is not known", k)
		}
		code, invoke := want[k]
		if k.Breaks() == invoke {
			t.Errorf("%s: Breaks() = %v", k, k.Breaks())
		}
		if invoke && k.refusal().Code != code {
			t.Errorf("%s refuses with %d, want %d", k, k.refusal().Code, code)
		}
	}
	if len(FaultKinds()) != len(faultKinds) {
		t.Errorf("FaultKinds lists %d kinds, the table has %d", len(FaultKinds()), len(faultKinds))
	}
}

// TestFaultAppliedThroughFaulter: the hub asks the session of the
// identity's connection to break, with the kind and reason, after the
// delay on its clock; a session that does not know the kind (or no
// Faulter at all) leaves the fault not applicable, without a duration.
func TestFaultAppliedThroughFaulter(t *testing.T) {
	h := newRegHub(t)
	ctx := context.Background()
	regDevice(t, h, Device{DeviceID: "mq"})
	regDevice(t, h, Device{DeviceID: "plain"})
	mq := &faultSession{knows: map[FaultKind]bool{FaultKillTcp: true}}
	c := h.Connect(Identity{DeviceID: "mq"}, mq, ConnectInfo{Transport: "mqtt", RemoteAddr: "10.0.0.1:5000"})
	h.Connect(Identity{DeviceID: "plain"}, plainSession{}, ConnectInfo{Transport: "x"})

	if _, err := h.InjectFault(ctx, FaultSpec{Identity: Identity{DeviceID: "mq"}, Kind: FaultKillTcp, CloseReason: "boom", Delay: 3 * time.Second, Duration: time.Minute}); err != nil {
		t.Fatal(err)
	}
	h.Clock().FastForward(2 * time.Second)
	if got := mq.got(); len(got) != 0 {
		t.Fatalf("faulted before the delay: %v", got)
	}
	h.Clock().FastForward(time.Second)
	r := waitFault(t, h, "mq")
	if got := mq.got(); len(got) != 1 || got[0] != "KillTcp/boom" {
		t.Fatalf("session asked for %v, want [KillTcp/boom]", got)
	}
	if r.Outcome != FaultApplied || r.Connection == nil || r.Connection.ID != c.seq || r.Connection.Transport != "mqtt" || r.Connection.RemoteAddress != "10.0.0.1:5000" ||
		!r.AppliedTime.Equal(regNow.Add(3*time.Second)) || !r.EndTime.Equal(regNow.Add(63*time.Second)) {
		t.Fatalf("record: %+v connection %+v", r, r.Connection)
	}

	// Not applicable: the session does not know the kind; no duration.
	if _, err := h.InjectFault(ctx, FaultSpec{Identity: Identity{DeviceID: "mq"}, Kind: FaultKillAmqpD2CLink, Duration: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if r := waitFault(t, h, "mq"); r.Outcome != FaultNotApplicable || r.EndTime != nil || r.Detail == "" {
		t.Fatalf("record: %+v", r)
	}
	if err := h.AdmitConnection(ctx, Identity{DeviceID: "mq"}); huberr.As(err).Code != 503001 {
		t.Fatalf("connect after a fault that did not apply: %v; the earlier fault's duration must still refuse it", err)
	}
	if _, err := h.InjectFault(ctx, FaultSpec{Identity: Identity{DeviceID: "plain"}, Kind: FaultKillTcp, Duration: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if r := waitFault(t, h, "plain"); r.Outcome != FaultNotApplicable {
		t.Fatalf("record: %+v", r)
	}
	if err := h.AdmitConnection(ctx, Identity{DeviceID: "plain"}); err != nil {
		t.Fatalf("a not applicable fault refused a connection: %v", err)
	}
}

// TestFaultDurationRefusesOnlyTheIdentity: during a connection fault's
// duration, the identity's connects are refused with 503 and counted;
// another device, the device's module and the device's other operations
// are not; at the end of the duration connects are admitted again.
func TestFaultDurationRefusesOnlyTheIdentity(t *testing.T) {
	h := newRegHub(t)
	ctx := context.Background()
	regDevice(t, h, Device{DeviceID: "a"})
	regDevice(t, h, Device{DeviceID: "b"})
	if _, err := h.PutModule(ctx, &Module{DeviceID: "a", ModuleID: "m"}, ""); err != nil {
		t.Fatal(err)
	}
	a := Identity{DeviceID: "a"}
	if _, err := h.InjectFault(ctx, FaultSpec{Identity: a, Kind: FaultKillTcp, Duration: 10 * time.Second}); err != nil {
		t.Fatal(err)
	}
	if r := waitFault(t, h, "a"); r.Outcome != FaultNotConnected {
		t.Fatalf("record: %+v", r)
	}
	for range 3 {
		if err := h.AdmitConnection(ctx, a); huberr.As(err).Code != 503001 {
			t.Fatalf("connect during the duration: %v, want 503001", err)
		}
	}
	for _, other := range []Identity{{DeviceID: "b"}, {DeviceID: "a", ModuleID: "m"}} {
		if err := h.AdmitConnection(ctx, other); err != nil {
			t.Fatalf("%s refused: %v", other, err)
		}
	}
	// A connection fault refuses connects only.
	if err := h.RecordTelemetry(ctx, a, "sas", "mqtt", &Message{Body: []byte("x")}); err != nil {
		t.Fatalf("telemetry during a connection fault's duration: %v", err)
	}
	if r := h.Faults("a")[0]; r.Refused != 3 {
		t.Fatalf("refused %d, want 3", r.Refused)
	}
	h.Clock().FastForward(9 * time.Second)
	if err := h.AdmitConnection(ctx, a); err == nil {
		t.Fatal("admitted before the duration ended")
	}
	h.Clock().FastForward(time.Second)
	if err := h.AdmitConnection(ctx, a); err != nil {
		t.Fatalf("refused after the duration: %v", err)
	}
}

// TestFaultInvokeRefusesDeviceOperations: an Invoke* fault refuses the
// device's own operations with its error for the duration; the service's
// operations on the same device go on.
func TestFaultInvokeRefusesDeviceOperations(t *testing.T) {
	h := newRegHub(t)
	ctx := context.Background()
	regDevice(t, h, Device{DeviceID: "d"})
	id := Identity{DeviceID: "d"}
	if _, err := h.InjectFault(ctx, FaultSpec{Identity: id, Kind: FaultInvokeMaxMessageQuota, Delay: time.Second, Duration: 5 * time.Second}); err != nil {
		t.Fatal(err)
	}
	if err := h.RecordTelemetry(ctx, id, "sas", "mqtt", &Message{Body: []byte("before")}); err != nil {
		t.Fatalf("telemetry before the delay: %v", err)
	}
	h.Clock().FastForward(time.Second)
	waitFault(t, h, "d")
	wantCode := func(what string, err error) {
		t.Helper()
		if huberr.As(err).Code != 403002 {
			t.Fatalf("%s: %v, want 403002", what, err)
		}
	}
	wantCode("telemetry", h.RecordTelemetry(ctx, id, "sas", "mqtt", &Message{Body: []byte("x")}))
	_, err := h.DeviceTwin(id)
	wantCode("twin GET", err)
	_, err = h.PatchReported(id, []byte(`{"a":1}`), 0)
	wantCode("reported patch", err)
	wantCode("connect", h.AdmitConnection(ctx, id))
	if _, err := h.GetTwin(ctx, id); err != nil {
		t.Fatalf("service twin read during the fault: %v", err)
	}
	h.Clock().FastForward(5 * time.Second)
	if err := h.RecordTelemetry(ctx, id, "sas", "mqtt", &Message{Body: []byte("after")}); err != nil {
		t.Fatalf("telemetry after the duration: %v", err)
	}
	if r := h.Faults("d")[0]; r.Refused != 4 {
		t.Fatalf("refused %d, want 4", r.Refused)
	}
}

// TestFaultMessageOverHTTPS: HTTPS holds no connection. An Invoke* fault
// is answered on the request that carries it, which is not recorded, and
// has no duration; a connection fault is recorded as plain telemetry.
func TestFaultMessageOverHTTPS(t *testing.T) {
	h := newRegHub(t)
	ctx := context.Background()
	regDevice(t, h, Device{DeviceID: "d"})
	id := Identity{DeviceID: "d"}
	props := map[string]string{PropFaultType: string(FaultInvokeThrottling), PropFaultDelay: "0", PropFaultDuration: "60"}
	err := h.RecordTelemetryBatch(ctx, id, "sas", TransportHTTPS, []*Message{{Body: []byte("plain")}, {Body: []byte("fault"), Properties: props}})
	if huberr.As(err).Code != 429001 {
		t.Fatalf("HTTPS throttling fault: %v, want 429001", err)
	}
	if ms, _ := h.Telemetry("d", "", 0, 0); len(ms) != 0 {
		t.Fatalf("recorded %d messages of the refused batch", len(ms))
	}
	if r := h.Faults("d")[0]; r.Outcome != FaultApplied || r.Refused != 1 || r.EndTime != nil {
		t.Fatalf("record: %+v", r)
	}
	if err := h.RecordTelemetry(ctx, id, "sas", TransportHTTPS, &Message{Body: []byte("next")}); err != nil {
		t.Fatalf("the next HTTPS message: %v", err)
	}

	m := &Message{Body: []byte("kill"), Properties: map[string]string{PropFaultType: string(FaultKillTcp)}}
	if err := h.RecordTelemetry(ctx, id, "sas", TransportHTTPS, m); err != nil {
		t.Fatal(err)
	}
	if m.Fault != "" {
		t.Fatalf("a fault was scheduled for an HTTPS message: %s", m.Fault)
	}
	if fs := h.Faults("d"); len(fs) != 2 || fs[1].Outcome != FaultNotApplicable {
		t.Fatalf("records: %+v", fs)
	}
	if ms, _ := h.Telemetry("d", "", 0, 0); len(ms) != 2 {
		t.Fatalf("recorded %d messages, want 2", len(ms))
	}
}

// TestFaultMessageScheduledOnceDurable: over a connection, the fault
// message is recorded, marked with the fault it scheduled, and carries its
// properties as any telemetry.
func TestFaultMessageScheduledOnceDurable(t *testing.T) {
	h := newRegHub(t)
	ctx := context.Background()
	regDevice(t, h, Device{DeviceID: "d"})
	m := &Message{Body: []byte("f"), Properties: map[string]string{PropFaultType: "ShutDownMqtt", PropFaultDelay: "1"}}
	if err := h.RecordTelemetry(ctx, Identity{DeviceID: "d"}, "sas", "mqtt", m); err != nil {
		t.Fatal(err)
	}
	if m.Fault != FaultShutDownMqtt {
		t.Fatalf("Fault = %q", m.Fault)
	}
	ms, _ := h.Telemetry("d", "", 0, 0)
	if len(ms) != 1 || ms[0].Properties[PropFaultType] != "ShutDownMqtt" || ms[0].Fault != "" {
		t.Fatalf("recorded %+v", ms)
	}
	if r := h.Faults("")[0]; r.Source != FaultSourceMessage || r.Outcome != FaultPending {
		t.Fatalf("record: %+v", r)
	}
}

// TestInjectFaultRefusesBadRequests answers with the hub's errors.
func TestInjectFaultRefusesBadRequests(t *testing.T) {
	h := newRegHub(t)
	ctx := context.Background()
	regDevice(t, h, Device{DeviceID: "d"})
	tests := []struct {
		name string
		spec FaultSpec
		code int
	}{
		{"unknown kind", FaultSpec{Identity: Identity{DeviceID: "d"}, Kind: "Boom"}, 400004},
		{"negative delay", FaultSpec{Identity: Identity{DeviceID: "d"}, Kind: FaultKillTcp, Delay: -time.Second}, 400004},
		{"duration too long", FaultSpec{Identity: Identity{DeviceID: "d"}, Kind: FaultKillTcp, Duration: MaxFaultTime + time.Second}, 400004},
		{"no device", FaultSpec{Kind: FaultKillTcp}, 400005},
		{"unknown device", FaultSpec{Identity: Identity{DeviceID: "nope"}, Kind: FaultKillTcp}, 404001},
		{"unknown module", FaultSpec{Identity: Identity{DeviceID: "d", ModuleID: "nope"}, Kind: FaultKillTcp}, 404010},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := h.InjectFault(ctx, tt.spec)
			if huberr.As(err).Code != tt.code {
				t.Fatalf("got %v, want %d", err, tt.code)
			}
		})
	}
	if fs := h.Faults(""); len(fs) != 0 {
		t.Fatalf("refused requests were recorded: %+v", fs)
	}
}

// TestFaultResetCancels: Reset cancels pending faults and durations and
// forgets the records; Close marks pending faults cancelled.
func TestFaultResetCancels(t *testing.T) {
	h := newRegHub(t)
	ctx := context.Background()
	regDevice(t, h, Device{DeviceID: "d"})
	s := &faultSession{knows: map[FaultKind]bool{FaultKillTcp: true}}
	h.Connect(Identity{DeviceID: "d"}, s, ConnectInfo{})
	if _, err := h.InjectFault(ctx, FaultSpec{Identity: Identity{DeviceID: "d"}, Kind: FaultKillTcp, Delay: time.Second}); err != nil {
		t.Fatal(err)
	}
	if err := h.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	h.Clock().FastForward(time.Hour)
	if fs := h.Faults(""); len(fs) != 0 {
		t.Fatalf("records after Reset: %+v", fs)
	}
	if got := s.got(); len(got) != 0 {
		t.Fatalf("a fault cancelled by Reset was applied: %v", got)
	}

	regDevice(t, h, Device{DeviceID: "d"})
	if _, err := h.InjectFault(ctx, FaultSpec{Identity: Identity{DeviceID: "d"}, Kind: FaultKillTcp, Duration: time.Minute}); err != nil {
		t.Fatal(err)
	}
	waitFault(t, h, "d")
	if err := h.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	if err := h.AdmitConnection(ctx, Identity{DeviceID: "d"}); err != nil {
		t.Fatalf("a duration outlived Reset: %v", err)
	}

	regDevice(t, h, Device{DeviceID: "d"})
	if _, err := h.InjectFault(ctx, FaultSpec{Identity: Identity{DeviceID: "d"}, Kind: FaultKillTcp, Delay: time.Second}); err != nil {
		t.Fatal(err)
	}
	h.Close()
	if r := h.Faults("d")[0]; r.Outcome != FaultCancelled {
		t.Fatalf("after Close: %+v", r)
	}
}

// TestFaultRecordsBounded keeps the newest records.
func TestFaultRecordsBounded(t *testing.T) {
	h := newRegHub(t)
	ctx := context.Background()
	regDevice(t, h, Device{DeviceID: "d"})
	for range maxFaultRecords + 5 {
		if _, err := h.InjectFault(ctx, FaultSpec{Identity: Identity{DeviceID: "d"}, Kind: FaultInvokeThrottling, Delay: time.Hour}); err != nil {
			t.Fatal(err)
		}
	}
	fs := h.Faults("")
	if len(fs) != maxFaultRecords || fs[0].ID != "6" {
		t.Fatalf("kept %d records from id %s, want %d from 6", len(fs), fs[0].ID, maxFaultRecords)
	}
}

// FuzzFaultProperties feeds the hook's properties as a device may send
// them: whatever they hold, a fault is found exactly when the type is
// there, and a readable one has a known kind and a delay and duration
// within the bounds.
func FuzzFaultProperties(f *testing.F) {
	for _, seed := range [][3]string{
		{"KillTcp", "2", "5"}, {"ShutDownMqtt", "0.5", ""}, {"InvokeThrottling", "0", "100000"},
		{"KillTcp", "-1", "1"}, {"KillTcp", "1e300", "1"}, {"KillTcp", "NaN", "Inf"}, {"", "", ""},
		{"KillAmqpD2CLink", "2592000", "2592000.0001"}, {"killtcp", "1", "1"}, {"KillTcp", "0x10", "1_0"},
	} {
		f.Add(seed[0], seed[1], seed[2])
	}
	id := Identity{DeviceID: "d"}
	f.Fuzz(func(t *testing.T, kind, delay, duration string) {
		props := map[string]string{PropFaultType: kind, PropFaultDelay: delay, PropFaultDuration: duration}
		spec, found, err := faultOf(id, props)
		if !found {
			t.Fatal("a message with a fault type was not found to ask for a fault")
		}
		if err != nil {
			return
		}
		if !spec.Kind.Known() || spec.Delay < 0 || spec.Delay > MaxFaultTime || spec.Duration < 0 || spec.Duration > MaxFaultTime {
			t.Fatalf("accepted %q %q %q as %+v", kind, delay, duration, spec)
		}
		delete(props, PropFaultType)
		if _, found, _ := faultOf(id, props); found {
			t.Fatal("a message without a fault type was found to ask for one")
		}
	})
}
