// SPDX-License-Identifier: MIT

package mqttapi

import (
	"bufio"
	"context"
	"io"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/iothubemulator/iothub/emulator/internal/hub"
)

// connectPersistent connects id with CleanSession=0 over a raw connection
// and returns it with the CONNACK's session-present flag.
func (e *env) connectPersistent(t *testing.T, id hub.Identity, key string, ws bool) (*rawDevice, bool) {
	t.Helper()
	d := e.dialRaw(t, ws)
	c := rawConnect{flags: flagUsername | flagPassword, clientID: id.String(), user: username(id.String()), pass: token(t, id, "", key, farFuture())}
	if _, err := d.Write(c.bytes()); err != nil {
		t.Fatal(err)
	}
	ack := d.readPacket(t, "CONNACK")
	if len(ack) != 4 || ack[0] != 0x20 || ack[3] != 0 {
		t.Fatalf("CONNACK: got % x, want 20 02 0? 00", ack)
	}
	return d, ack[2] == 1
}

// TestForgottenIdentitiesLeaveNoSession checks that a deleted or disabled
// device (or a deleted module) leaves nothing in the broker: not its
// CleanSession=0 session, nor its subscriptions. A re-created identity
// starts without a session.
func TestForgottenIdentitiesLeaveNoSession(t *testing.T) {
	ctx := context.Background()
	type action struct {
		name    string
		module  bool
		offline bool // the device disconnected before the action
		act     func(e *env, id hub.Identity) error
		restore func(e *env, id hub.Identity) string // brings the identity back; returns its key
	}
	recreate := func(e *env, id hub.Identity) string {
		if id.ModuleID != "" {
			return e.addModule(t, id.DeviceID, id.ModuleID)
		}
		return e.addDevice(t, id.DeviceID)
	}
	del := func(e *env, id hub.Identity) error {
		if id.ModuleID != "" {
			return e.hub.DeleteModule(ctx, id.DeviceID, id.ModuleID, "*")
		}
		return e.hub.DeleteDevice(ctx, id.DeviceID, "*")
	}
	setStatus := func(e *env, id hub.Identity, status string) (string, error) {
		d, err := e.hub.GetDevice(ctx, id.DeviceID)
		if err != nil {
			return "", err
		}
		d.Status = status
		d, err = e.hub.PutDevice(ctx, d, "*")
		if err != nil {
			return "", err
		}
		return d.Authentication.SymmetricKey.PrimaryKey, nil
	}
	disable := func(e *env, id hub.Identity) error { _, err := setStatus(e, id, hub.StatusDisabled); return err }
	enable := func(e *env, id hub.Identity) string {
		k, err := setStatus(e, id, hub.StatusEnabled)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	reset := func(e *env, _ hub.Identity) error { return e.hub.Reset(ctx) }
	actions := []action{
		{"delete offline device", false, true, del, recreate},
		{"delete connected device", false, false, del, recreate},
		{"disable offline device", false, true, disable, enable},
		{"disable connected device", false, false, disable, enable},
		{"delete offline module", true, true, del, recreate},
		{"delete device of a connected module", true, false, func(e *env, id hub.Identity) error {
			return e.hub.DeleteDevice(ctx, id.DeviceID, "*")
		}, func(e *env, id hub.Identity) string {
			e.addDevice(t, id.DeviceID)
			return recreate(e, id)
		}},
		{"reset", false, true, reset, recreate},
	}
	for _, a := range actions {
		for _, ws := range []bool{false, true} {
			t.Run(a.name+map[bool]string{false: "/tls", true: "/wss"}[ws], func(t *testing.T) {
				e := newEnv(t)
				id := hub.Identity{DeviceID: "dev"}
				key := e.addDevice(t, id.DeviceID)
				if a.module {
					id.ModuleID = "mod"
					key = e.addModule(t, id.DeviceID, id.ModuleID)
				}
				d, present := e.connectPersistent(t, id, key, ws)
				if present {
					t.Fatal("a new identity's first connection has a session")
				}
				d.subscribeAll(t, filterMethods, filterDesired, filterTwinResponses)
				if a.offline {
					if _, err := d.Write([]byte{0xe0, 0}); err != nil { // DISCONNECT
						t.Fatal(err)
					}
					eventually(t, "disconnected", func() bool { return !e.hub.IsConnected(id) })
				}
				if _, ok := e.srv.mochi.Clients.Get(id.String()); !ok {
					t.Fatal("mochi does not hold the CleanSession=0 client before the action; the test proves nothing")
				}
				if err := a.act(e, id); err != nil {
					t.Fatal(err)
				}
				if !a.offline {
					readUntilClosed(t, d)
				}
				eventually(t, "the session freed in the broker", func() bool {
					_, ok := e.srv.mochi.Clients.Get(id.String())
					return !ok
				})
				if subs := e.srv.mochi.Topics.Subscribers("$iothub/methods/POST/m/?$rid=1").Subscriptions; len(subs) != 0 {
					t.Fatalf("subscriptions left in the topic tree: %v", subs)
				}
				key = a.restore(e, id)
				if _, present := e.connectPersistent(t, id, key, ws); present {
					t.Error("CONNACK of the identity's next connection: session present; want a fresh session")
				}
			})
		}
	}
}

// readPacket reads one whole packet.
func (d *rawDevice) readPacket(t *testing.T, what string) []byte {
	t.Helper()
	_ = d.SetReadDeadline(time.Now().Add(waitTime))
	defer func() { _ = d.SetReadDeadline(time.Time{}) }()
	r := bufio.NewReader(io.LimitReader(d, 1<<20))
	head, err := r.ReadByte()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	n, _, err := packets.DecodeLength(r)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	out := append([]byte{head}, appendLength(nil, n)...)
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if r.Buffered() > 0 {
		t.Fatalf("%s: more than one packet arrived at once; read them one at a time", what)
	}
	return append(out, body...)
}

// subscribeAll subscribes to filters at QoS 0 and waits for the SUBACK.
func (d *rawDevice) subscribeAll(t *testing.T, filters ...string) {
	t.Helper()
	var subs packets.Subscriptions
	for _, f := range filters {
		subs = append(subs, packets.Subscription{Filter: f})
	}
	if err := d.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: 7, Filters: subs}); err != nil {
		t.Fatalf("SUBSCRIBE: %v", err)
	}
	want := append([]byte{0x90, byte(2 + len(filters)), 0, 7}, make([]byte, len(filters))...)
	d.expect(t, "SUBACK", want)
}
