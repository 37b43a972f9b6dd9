// SPDX-License-Identifier: MIT

package mqttapi

import (
	"context"
	"errors"
	"io"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/iothubemulator/iothub/emulator/internal/hub"
)

// The hub's fault-injection hook over MQTT (faults.go). Every test freezes
// the hub's clock: delays and durations pass only by FastForward, so
// nothing here sleeps.

// freeze stops the hub's clock at the current time.
func (e *env) freeze() { e.hub.Clock().Set(time.Now()) }

// faultDevice is a registered device connected by hand, so that the test
// sees exactly how the server ends the connection.
type faultDevice struct {
	*rawDevice
	id       hub.Identity
	password string
	ws       bool
}

// connectRaw registers id (a device, or a module of a registered device)
// and connects it with a clean session.
func (e *env) connectRaw(t *testing.T, id hub.Identity, ws bool) *faultDevice {
	t.Helper()
	var key string
	if id.ModuleID == "" {
		key = e.addDevice(t, id.DeviceID)
	} else {
		key = e.addModule(t, id.DeviceID, id.ModuleID)
	}
	d := &faultDevice{id: id, password: token(t, id, "", key, farFuture()), ws: ws}
	d.rawDevice = e.redial(t, d)
	return d
}

// redial connects d again and fails unless it gets CONNACK 0.
func (e *env) redial(t *testing.T, d *faultDevice) *rawDevice {
	t.Helper()
	raw, code := e.tryConnect(t, d)
	if code != 0 {
		t.Fatalf("%s: CONNACK %d, want 0", d.id, code)
	}
	return raw
}

// tryConnect sends d's CONNECT on a new connection and returns the
// connection and the CONNACK return code.
func (e *env) tryConnect(t *testing.T, d *faultDevice) (*rawDevice, byte) {
	t.Helper()
	raw := e.dialRaw(t, d.ws)
	err := raw.send(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Connect},
		Connect: packets.ConnectParams{
			ProtocolName: []byte("MQTT"), Clean: true, ClientIdentifier: d.id.String(), Keepalive: 60,
			UsernameFlag: true, Username: []byte(username(d.id.String())),
			PasswordFlag: true, Password: []byte(d.password),
		},
	})
	if err != nil {
		t.Fatalf("CONNECT: %v", err)
	}
	_ = raw.SetReadDeadline(time.Now().Add(waitTime))
	defer func() { _ = raw.SetReadDeadline(time.Time{}) }()
	ack := make([]byte, 4)
	if _, err := io.ReadFull(raw, ack); err != nil {
		t.Fatalf("%s: no CONNACK: %v", d.id, err)
	}
	if ack[0] != 0x20 || ack[1] != 2 {
		t.Fatalf("%s: got % x, want a CONNACK", d.id, ack)
	}
	return raw, ack[3]
}

// telemetryTopic is id's events topic with props as its property bag.
func telemetryTopic(id hub.Identity, props map[string]string) string {
	topic := "devices/" + id.DeviceID + "/messages/events/"
	if id.ModuleID != "" {
		topic = "devices/" + id.DeviceID + "/modules/" + id.ModuleID + "/messages/events/"
	}
	// Percent-encoded as the SDKs do: url.Values would write a space as
	// '+', a wildcard in a topic name.
	v := url.Values{}
	for k, x := range props {
		v.Set(k, x)
	}
	return topic + strings.ReplaceAll(v.Encode(), "+", "%20")
}

// publish1 sends a QoS 1 telemetry PUBLISH with packet id pid.
func (d *faultDevice) publish1(t *testing.T, pid uint16, props map[string]string, body string) {
	t.Helper()
	err := d.send(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1},
		PacketID:    pid,
		TopicName:   telemetryTopic(d.id, props),
		Payload:     []byte(body),
	})
	if err != nil {
		t.Fatalf("PUBLISH %d: %v", pid, err)
	}
}

// puback is the PUBACK of packet id pid.
func puback(pid uint16) []byte { return []byte{0x40, 2, byte(pid >> 8), byte(pid)} }

// roundTrip proves the connection is alive: a QoS 1 publish is acknowledged.
func (d *faultDevice) roundTrip(t *testing.T, pid uint16) {
	t.Helper()
	d.publish1(t, pid, nil, "alive")
	d.expect(t, "PUBACK", puback(pid))
}

// faultProps are the hook's properties, as the SDKs' suites send them.
func faultProps(kind hub.FaultKind, reason, delay, duration string) map[string]string {
	p := map[string]string{hub.PropFaultType: string(kind), hub.PropFaultCloseReason: reason, hub.PropFaultDelay: delay}
	if duration != "" {
		p[hub.PropFaultDuration] = duration
	}
	return p
}

// readEnd reads until the server ends the connection and returns the
// error the end left; it fails the test if the connection stays open.
func (d *faultDevice) readEnd(t *testing.T) error {
	t.Helper()
	_ = d.SetReadDeadline(time.Now().Add(waitTime))
	_, err := io.Copy(io.Discard, d)
	if err == nil {
		err = io.EOF // io.Copy reports a clean end as no error
	}
	var timeout interface{ Timeout() bool }
	if errors.As(err, &timeout) && timeout.Timeout() {
		t.Fatal("the server kept the connection open")
	}
	return err
}

// wantKilled fails unless the connection was reset: no close_notify, no
// close frame.
func wantKilled(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("connection ended with %v; want a reset (ECONNRESET)", err)
	}
}

// wantShutDown fails unless the connection ended cleanly: over TLS a
// close_notify (io.EOF), over WebSockets a close frame 1000 with reason.
func wantShutDown(t *testing.T, err error, ws bool, reason string) {
	t.Helper()
	if ws {
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.CloseNormalClosure || ce.Text != reason {
			t.Fatalf("connection ended with %v; want a close frame 1000 %q", err, reason)
		}
		return
	}
	if !errors.Is(err, io.EOF) {
		t.Fatalf("connection ended with %v; want a clean TLS close (io.EOF)", err)
	}
}

// lastFault returns the newest fault record of a device.
func (e *env) lastFault(t *testing.T, deviceID string) hub.FaultRecord {
	t.Helper()
	fs := e.hub.Faults(deviceID)
	if len(fs) == 0 {
		t.Fatalf("no fault recorded for %s", deviceID)
	}
	return fs[len(fs)-1]
}

// waitOutcome waits for the newest fault of deviceID to leave pending.
func (e *env) waitOutcome(t *testing.T, deviceID string) hub.FaultRecord {
	t.Helper()
	var r hub.FaultRecord
	eventually(t, "the fault to be applied", func() bool {
		r = e.lastFault(t, deviceID)
		return r.Outcome != hub.FaultPending
	})
	return r
}

// TestFaultMessageBreaksConnection is the hook as the SDKs' suites use it:
// the device sends the fault message, which is recorded and not
// acknowledged; after the delay the connection breaks in the named way;
// for the duration, reconnects get CONNACK 3; then they are accepted.
func TestFaultMessageBreaksConnection(t *testing.T) {
	for _, kind := range []hub.FaultKind{hub.FaultKillTcp, hub.FaultShutDownMqtt} {
		t.Run(string(kind), func(t *testing.T) {
			forEachTransport(t, func(t *testing.T, e *env, ws bool) {
				e.freeze()
				id := hub.Identity{DeviceID: "dev-" + strings.ToLower(string(kind))}
				d := e.connectRaw(t, id, ws)
				head, err := e.hub.TelemetryHead()
				if err != nil {
					t.Fatal(err)
				}
				d.publish1(t, 1, faultProps(kind, " boom ", "2", "5"), "fault")
				// mochi handles a connection's packets in order: the PUBACK
				// of the next publish proves none came for the first.
				d.roundTrip(t, 2)
				ms, err := e.hub.Telemetry(id.DeviceID, "", head, 0)
				if err != nil {
					t.Fatal(err)
				}
				if len(ms) != 2 || string(ms[0].Body) != "fault" || ms[0].Properties[hub.PropFaultType] != string(kind) {
					t.Fatalf("recorded %d messages (first %+v); want the fault message, then the next", len(ms), ms[0])
				}
				if r := e.lastFault(t, id.DeviceID); r.Outcome != hub.FaultPending || r.Source != hub.FaultSourceMessage || r.DelaySeconds != 2 || r.DurationSeconds != 5 || r.CloseReason != " boom " {
					t.Fatalf("fault before its delay: %+v", r)
				}

				e.hub.Clock().FastForward(1999 * time.Millisecond)
				d.roundTrip(t, 3)
				if r := e.lastFault(t, id.DeviceID); r.Outcome != hub.FaultPending {
					t.Fatalf("fault applied before its delay: %+v", r)
				}
				e.hub.Clock().FastForward(time.Millisecond)
				end := d.readEnd(t)
				if kind == hub.FaultKillTcp {
					wantKilled(t, end)
				} else {
					wantShutDown(t, end, ws, " boom ")
				}
				r := e.waitOutcome(t, id.DeviceID)
				wantTransport := transportMQTT
				if ws {
					wantTransport = transportMQTTWS
				}
				if r.Outcome != hub.FaultApplied || r.Connection == nil || r.Connection.Transport != wantTransport || r.EndTime == nil || !r.EndTime.Equal(r.AppliedTime.Add(5*time.Second)) {
					t.Fatalf("applied fault: %+v (connection %+v)", r, r.Connection)
				}
				eventually(t, "the hub to see the device gone", func() bool { return !e.hub.IsConnected(id) })

				for i := range 2 {
					if _, code := e.tryConnect(t, &faultDevice{id: id, password: d.password, ws: ws}); code != 3 {
						t.Fatalf("reconnect %d during the duration: CONNACK %d, want 3", i, code)
					}
				}
				if r := e.lastFault(t, id.DeviceID); r.Refused != 2 {
					t.Fatalf("refused %d reconnects, want 2", r.Refused)
				}
				e.hub.Clock().FastForward(5 * time.Second)
				d.rawDevice = e.redial(t, d)
				d.roundTrip(t, 4)
			})
		})
	}
}

// TestFaultWithoutDurationAllowsReconnect: with no duration the device may
// reconnect at once; a fractional delay (C# sends TotalSeconds) is read.
func TestFaultWithoutDurationAllowsReconnect(t *testing.T) {
	forEachTransport(t, func(t *testing.T, e *env, ws bool) {
		e.freeze()
		id := hub.Identity{DeviceID: "nodur"}
		d := e.connectRaw(t, id, ws)
		d.publish1(t, 1, faultProps(hub.FaultKillTcp, "boom", "0.5", ""), "fault")
		d.roundTrip(t, 2)
		e.hub.Clock().FastForward(500 * time.Millisecond)
		wantKilled(t, d.readEnd(t))
		if r := e.waitOutcome(t, id.DeviceID); r.Outcome != hub.FaultApplied || r.EndTime != nil || r.DelaySeconds != 0.5 {
			t.Fatalf("fault: %+v", r)
		}
		d.rawDevice = e.redial(t, d)
		d.roundTrip(t, 3)
	})
}

// TestFaultNotForMQTT: the AMQP kinds do not apply to an MQTT connection.
// The hub ignores them: the message is acknowledged as plain telemetry,
// the connection stays, and no duration refuses reconnects.
func TestFaultNotForMQTT(t *testing.T) {
	amqpKinds := []hub.FaultKind{
		hub.FaultShutDownAmqp, hub.FaultKillAmqpConnection, hub.FaultKillAmqpSession,
		hub.FaultKillAmqpCBSLinkReq, hub.FaultKillAmqpCBSLinkResp, hub.FaultKillAmqpD2CLink, hub.FaultKillAmqpC2DLink,
		hub.FaultKillAmqpMethodReqLink, hub.FaultKillAmqpMethodRespLink, hub.FaultKillAmqpTwinLinkReq, hub.FaultKillAmqpTwinLinkResp,
	}
	e := newEnv(t)
	e.freeze()
	for i, kind := range amqpKinds {
		t.Run(string(kind), func(t *testing.T) {
			id := hub.Identity{DeviceID: "amqp-kind-" + strings.ToLower(string(kind))}
			d := e.connectRaw(t, id, i%2 == 1)
			d.publish1(t, 1, faultProps(kind, "boom", "1", "60"), "fault")
			d.expect(t, "PUBACK of the fault message", puback(1))
			e.hub.Clock().FastForward(time.Second)
			r := e.waitOutcome(t, id.DeviceID)
			if r.Outcome != hub.FaultNotApplicable || r.EndTime != nil || r.Connection == nil {
				t.Fatalf("fault: %+v", r)
			}
			d.roundTrip(t, 2)
			if !e.hub.IsConnected(id) {
				t.Fatal("the device's connection was dropped")
			}
			// No duration: a second connection (which takes over) is accepted.
			e.redial(t, d)
		})
	}
}

// TestFaultControlDelayAndDuration injects each MQTT fault through the
// hub's Go API (POST /emulator/faults), with and without a connection.
func TestFaultControlDelayAndDuration(t *testing.T) {
	for _, kind := range []hub.FaultKind{hub.FaultKillTcp, hub.FaultShutDownMqtt} {
		t.Run(string(kind), func(t *testing.T) {
			forEachTransport(t, func(t *testing.T, e *env, ws bool) {
				e.freeze()
				id := hub.Identity{DeviceID: "ctl"}
				d := e.connectRaw(t, id, ws)
				r, err := e.hub.InjectFault(context.Background(), hub.FaultSpec{Identity: id, Kind: kind, CloseReason: "bye", Delay: 10 * time.Second, Duration: time.Minute})
				if err != nil {
					t.Fatal(err)
				}
				if r.Source != hub.FaultSourceControl || r.Outcome != hub.FaultPending {
					t.Fatalf("record: %+v", r)
				}
				e.hub.Clock().FastForward(9 * time.Second)
				d.roundTrip(t, 1)
				e.hub.Clock().FastForward(time.Second)
				if kind == hub.FaultKillTcp {
					wantKilled(t, d.readEnd(t))
				} else {
					wantShutDown(t, d.readEnd(t), ws, "bye")
				}
				e.waitOutcome(t, id.DeviceID)
				eventually(t, "the hub to see the device gone", func() bool { return !e.hub.IsConnected(id) })
				e.hub.Clock().FastForward(59 * time.Second)
				if _, code := e.tryConnect(t, d); code != 3 {
					t.Fatalf("CONNACK %d one second before the duration ends, want 3", code)
				}
				e.hub.Clock().FastForward(time.Second)
				d.rawDevice = e.redial(t, d)

				// A fault on a device with no connection still refuses its
				// reconnects for the duration.
				d.rawDevice.Close()
				eventually(t, "the hub to see the device gone", func() bool { return !e.hub.IsConnected(id) })
				if _, err := e.hub.InjectFault(context.Background(), hub.FaultSpec{Identity: id, Kind: kind, Duration: 3 * time.Second}); err != nil {
					t.Fatal(err)
				}
				if r := e.waitOutcome(t, id.DeviceID); r.Outcome != hub.FaultNotConnected || r.Connection != nil || r.EndTime == nil {
					t.Fatalf("fault on a disconnected device: %+v", r)
				}
				if _, code := e.tryConnect(t, d); code != 3 {
					t.Fatalf("CONNACK %d during the duration, want 3", code)
				}
				e.hub.Clock().FastForward(3 * time.Second)
				e.redial(t, d)
			})
		})
	}
}

// TestFaultLeavesOthersAlone: a fault aimed at one identity breaks that
// connection only: another device, and a module of the same device, keep
// theirs and may connect during the duration.
func TestFaultLeavesOthersAlone(t *testing.T) {
	forEachTransport(t, func(t *testing.T, e *env, ws bool) {
		e.freeze()
		target := e.connectRaw(t, hub.Identity{DeviceID: "target"}, ws)
		other := e.connectRaw(t, hub.Identity{DeviceID: "other"}, ws)
		module := e.connectRaw(t, hub.Identity{DeviceID: "target", ModuleID: "m1"}, ws)
		target.publish1(t, 1, faultProps(hub.FaultKillTcp, "boom", "1", "30"), "fault")
		target.roundTrip(t, 2)
		e.hub.Clock().FastForward(time.Second)
		wantKilled(t, target.readEnd(t))
		other.roundTrip(t, 1)
		module.roundTrip(t, 1)
		if !e.hub.IsConnected(other.id) || !e.hub.IsConnected(module.id) {
			t.Fatal("a connection the fault did not aim at was dropped")
		}
		// Only the target's reconnects are refused.
		if _, code := e.tryConnect(t, target); code != 3 {
			t.Fatalf("target reconnect: CONNACK %d, want 3", code)
		}
		other.rawDevice = e.redial(t, other)
		other.roundTrip(t, 2)
		module.rawDevice = e.redial(t, module)
		module.roundTrip(t, 2)
		if fs := e.hub.Faults("other"); len(fs) != 0 {
			t.Fatalf("faults recorded for the other device: %+v", fs)
		}
	})
}

// TestFaultInvokeKinds: the Invoke* kinds break nothing; for the duration
// the hub answers the device's operations with the named error: twin
// requests with its status on the twin response topic, CONNECTs with
// CONNACK 3 (5 for the auth error), telemetry by closing the connection
// (MQTT 3.1.1 has no negative PUBACK).
func TestFaultInvokeKinds(t *testing.T) {
	tests := []struct {
		kind    hub.FaultKind
		status  int
		connack byte
	}{
		{hub.FaultInvokeThrottling, 429, 3},
		{hub.FaultInvokeMaxMessageQuota, 403, 3},
		{hub.FaultInvokeAuthError, 401, 5},
	}
	for _, tt := range tests {
		t.Run(string(tt.kind), func(t *testing.T) {
			e := newEnv(t)
			e.freeze()
			id := hub.Identity{DeviceID: "inv"}
			d := e.connectRaw(t, id, false)
			if err := d.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: 1, Filters: packets.Subscriptions{{Filter: filterTwinResponses}}}); err != nil {
				t.Fatal(err)
			}
			d.expect(t, "SUBACK", []byte{0x90, 3, 0, 1, 0})
			d.publish1(t, 2, faultProps(tt.kind, "boom", "1", "10"), "fault")
			d.expect(t, "PUBACK of the fault message", puback(2))
			e.hub.Clock().FastForward(time.Second)
			if r := e.waitOutcome(t, id.DeviceID); r.Outcome != hub.FaultApplied || r.Connection == nil {
				t.Fatalf("fault: %+v", r)
			}
			if !e.hub.IsConnected(id) {
				t.Fatal("an Invoke fault dropped the connection")
			}
			// Twin GET: answered with the fault's status.
			if err := d.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}, TopicName: "$iothub/twin/GET/?$rid=7"}); err != nil {
				t.Fatal(err)
			}
			m := readPublish(t, d.rawDevice)
			if want := "$iothub/twin/res/" + strconv.Itoa(tt.status) + "/?$rid=7"; m.TopicName != want {
				t.Fatalf("twin answer on %q, want %q", m.TopicName, want)
			}
			// Telemetry: refused by closing the connection.
			d.publish1(t, 3, nil, "refused")
			d.readEnd(t)
			if _, code := e.tryConnect(t, d); code != tt.connack {
				t.Fatalf("CONNECT during the duration: CONNACK %d, want %d", code, tt.connack)
			}
			if r := e.lastFault(t, id.DeviceID); r.Refused != 3 {
				t.Fatalf("refused %d operations, want 3 (twin, telemetry, connect)", r.Refused)
			}
			e.hub.Clock().FastForward(10 * time.Second)
			d.rawDevice = e.redial(t, d)
			d.roundTrip(t, 4)
		})
	}
}

// TestFaultInvalidProperties: a fault message the hub cannot read is plain
// telemetry, acknowledged; the fault is recorded as invalid.
func TestFaultInvalidProperties(t *testing.T) {
	e := newEnv(t)
	e.freeze()
	id := hub.Identity{DeviceID: "bad"}
	d := e.connectRaw(t, id, false)
	for i, props := range []map[string]string{
		faultProps(hub.FaultKillTcp, "", "soon", ""),
		faultProps(hub.FaultKillTcp, "", "1", "-1"),
		faultProps(hub.FaultKillTcp, "", "NaN", ""),
		faultProps(hub.FaultKillTcp, "", "1e300", ""),
		faultProps("KillEverything", "", "1", ""),
	} {
		pid := uint16(i + 1)
		d.publish1(t, pid, props, "x")
		d.expect(t, "PUBACK", puback(pid))
		if r := e.lastFault(t, id.DeviceID); r.Outcome != hub.FaultInvalid || r.Detail == "" {
			t.Fatalf("props %v: record %+v", props, r)
		}
	}
	e.hub.Clock().FastForward(time.Hour)
	d.roundTrip(t, 9)
}

// readPublish reads one PUBLISH from a raw connection.
func readPublish(t *testing.T, d *rawDevice) packets.Packet {
	t.Helper()
	_ = d.SetReadDeadline(time.Now().Add(waitTime))
	defer func() { _ = d.SetReadDeadline(time.Time{}) }()
	var hdr [1]byte
	if _, err := io.ReadFull(d, hdr[:]); err != nil {
		t.Fatal(err)
	}
	n, mult := 0, 1
	for {
		var b [1]byte
		if _, err := io.ReadFull(d, b[:]); err != nil {
			t.Fatal(err)
		}
		n += int(b[0]&0x7f) * mult
		if b[0]&0x80 == 0 {
			break
		}
		mult *= 128
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(d, body); err != nil {
		t.Fatal(err)
	}
	pk := packets.Packet{ProtocolVersion: 4}
	if err := pk.FixedHeader.Decode(hdr[0]); err != nil {
		t.Fatal(err)
	}
	pk.FixedHeader.Remaining = n
	if pk.FixedHeader.Type != packets.Publish {
		t.Fatalf("got packet type %d, want PUBLISH", pk.FixedHeader.Type)
	}
	if err := pk.PublishDecode(body); err != nil {
		t.Fatal(err)
	}
	return pk
}

// TestFaultOnModule: a module's fault message breaks the module's
// connection only; its device keeps its own, may not be refused, and the
// record names the module under the device (Faults(deviceID) lists both).
func TestFaultOnModule(t *testing.T) {
	forEachTransport(t, func(t *testing.T, e *env, ws bool) {
		e.freeze()
		dev := e.connectRaw(t, hub.Identity{DeviceID: "parent"}, ws)
		mod := e.connectRaw(t, hub.Identity{DeviceID: "parent", ModuleID: "m1"}, ws)
		mod.publish1(t, 1, faultProps(hub.FaultShutDownMqtt, "module", "1", "10"), "fault")
		mod.roundTrip(t, 2)
		e.hub.Clock().FastForward(time.Second)
		wantShutDown(t, mod.readEnd(t), ws, "module")
		r := e.waitOutcome(t, "parent")
		if r.Outcome != hub.FaultApplied || r.DeviceID != "parent" || r.ModuleID != "m1" {
			t.Fatalf("module fault: %+v", r)
		}
		dev.roundTrip(t, 1)
		if !e.hub.IsConnected(dev.id) {
			t.Fatal("the module's fault dropped its device")
		}
		if _, code := e.tryConnect(t, mod); code != 3 {
			t.Fatalf("module reconnect during the duration: CONNACK %d, want 3", code)
		}
		dev.rawDevice = e.redial(t, dev)
		dev.roundTrip(t, 2)

		// Test control aims at the device: the module is left alone.
		e.hub.Clock().FastForward(10 * time.Second)
		mod.rawDevice = e.redial(t, mod)
		if _, err := e.hub.InjectFault(context.Background(), hub.FaultSpec{Identity: dev.id, Kind: hub.FaultKillTcp}); err != nil {
			t.Fatal(err)
		}
		wantKilled(t, dev.readEnd(t))
		mod.roundTrip(t, 3)
		if fs := e.hub.Faults("parent"); len(fs) != 2 || fs[1].ModuleID != "" || fs[1].Source != hub.FaultSourceControl {
			t.Fatalf("records of parent: %+v", fs)
		}
	})
}
