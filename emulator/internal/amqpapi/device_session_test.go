// SPDX-License-Identifier: MIT

package amqpapi

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	goamqp "github.com/Azure/go-amqp"

	"github.com/iothubemulator/iothub/emulator/internal/clock"
	"github.com/iothubemulator/iothub/emulator/internal/hub"
	"github.com/iothubemulator/iothub/internal/testutil"
)

// connState returns the registry's connection state of a device.
func (e *env) connState(tb testing.TB, deviceID string) *hub.Device {
	tb.Helper()
	d, err := e.hub.GetDevice(context.Background(), deviceID)
	if err != nil {
		tb.Fatal(err)
	}
	return d
}

// TestDeviceConnectionState: a device is connected from its put-token on,
// as an MQTT device is from its CONNECT; activity moves lastActivityTime;
// closing the connection disconnects it.
func TestDeviceConnectionState(t *testing.T) {
	clk := clock.At(time.Now().Truncate(time.Second))
	e := newEnv(t, withClock(clk))
	id := hub.Identity{DeviceID: "state"}
	key := e.addDevice(t, id.DeviceID)
	c := e.dial(t, viaTLS, nil)
	cbs := newCBS(t, c)
	if e.hub.IsConnected(id) {
		t.Fatal("connected before any token")
	}
	cbs.mustPut(t, audience(id), deviceToken(t, id, key, later()))
	d := e.connState(t, id.DeviceID)
	if d.ConnectionState != "Connected" {
		t.Fatalf("after put-token: %s, want Connected", d.ConnectionState)
	}
	connectedAt := d.LastActivityTime.Time
	clk.FastForward(time.Minute)
	dev := &devClient{e: e, id: id, conn: c, sess: newSession(t, c)}
	if err := dev.sender(t, "messages/events", nil).Send(ctxT(t), &goamqp.Message{Data: [][]byte{[]byte("x")}}, nil); err != nil {
		t.Fatal(err)
	}
	if got := e.connState(t, id.DeviceID).LastActivityTime.Time; !got.Equal(connectedAt.Add(time.Minute)) {
		t.Errorf("lastActivityTime %v after a message a minute later, want %v", got, connectedAt.Add(time.Minute))
	}
	c.Close()
	testutil.Eventually(t, "the device to be disconnected", func() bool { return e.connState(t, id.DeviceID).ConnectionState == "Disconnected" })
}

// TestDeviceIsolation: two devices multiplexed on one connection (as the
// C# SDK pools them), each with its own claim: each reaches only its own
// nodes; C2D, methods and pushes go to the right one; one device closing
// its links, expiring or being taken over leaves the other alone.
func TestDeviceIsolation(t *testing.T) {
	clk := clock.At(time.Now().Truncate(time.Second))
	e := newEnv(t, withClock(clk))
	a, b := hub.Identity{DeviceID: "pool-a"}, hub.Identity{DeviceID: "pool-b"}
	keyA, keyB := e.addDevice(t, a.DeviceID), e.addDevice(t, b.DeviceID)
	c := e.dial(t, viaTLS, nil)
	cbs := newCBS(t, c)
	cbs.mustPut(t, audience(a), deviceToken(t, a, keyA, clk.Now().Add(time.Hour)))
	cbs.mustPut(t, audience(b), deviceToken(t, b, keyB, clk.Now().Add(2*time.Hour)))
	devA := &devClient{e: e, id: a, conn: c, sess: newSession(t, c)}
	devB := &devClient{e: e, id: b, conn: c, sess: newSession(t, c)}

	// Claims belong to the connection (the pooled SDKs give each device an
	// AMQP session of its own, a client's choice): a device without a
	// claim on it cannot be reached through either session.
	e.addDevice(t, "pool-c")
	wantCondition(t, "a device without a claim", attachErr(t, devA.sess, "/devices/pool-c/messages/devicebound", nil), goamqp.ErrCondUnauthorizedAccess, "pool-c")
	c2dA := devA.receiver(t, "messages/devicebound", nil)
	c2dB := devB.receiver(t, "messages/devicebound", nil)
	mSndA, mRcvA := devA.methodLinks(t)
	_, mRcvB := devB.methodLinks(t)
	twA := e.twinClient(t, devA)
	twB := e.twinClient(t, devB)
	twA.do(t, "PUT", "/notifications/twin/properties/desired", nil, nil)
	twB.do(t, "PUT", "/notifications/twin/properties/desired", nil, nil)

	e.sendC2D(t, b.DeviceID, "for-b", "none", nil)
	if m := receive(t, c2dB); m.Properties.MessageID != "for-b" {
		t.Fatalf("b got %v", m.Properties.MessageID)
	} else if err := c2dB.AcceptMessage(ctxT(t), m); err != nil {
		t.Fatal(err)
	}
	nothingOn(t, c2dA, "a's C2D link after a message for b")

	call := e.invoke(a, "onlyA", "{}", 0)
	req := receive(t, mRcvA)
	_ = mRcvA.AcceptMessage(ctxT(t), req)
	nothingOn(t, mRcvB, "b's method link after a call to a")
	// b cannot answer a's request, even knowing its id: b's answers resolve
	// only b's requests.
	sndB := devB.sender(t, "methods/devicebound", nil)
	_ = sndB.Send(ctxT(t), &goamqp.Message{Properties: &goamqp.MessageProperties{CorrelationID: req.Properties.CorrelationID},
		ApplicationProperties: map[string]any{"IoThub-status": int32(666)}}, nil)
	if err := mSndA.Send(ctxT(t), &goamqp.Message{Properties: &goamqp.MessageProperties{CorrelationID: req.Properties.CorrelationID},
		ApplicationProperties: map[string]any{"IoThub-status": int32(200)}}, nil); err != nil {
		t.Fatal(err)
	}
	if o := waitOutcome(t, call); o.err != nil || o.res.Status != 200 {
		t.Fatalf("a's call: %+v, %v; want a's own answer", o.res, o.err)
	}

	if _, err := e.hub.UpdateTwin(context.Background(), a, []byte(`{"properties":{"desired":{"x":1}}}`), "*", false); err != nil {
		t.Fatal(err)
	}
	receive(t, twA.rcv)
	nothingOn(t, twB.rcv, "b's twin link after a desired change of a")

	// b taken over by another connection: b's links go; the shared
	// connection stays open for a.
	otherConn := e.dial(t, viaPlain, nil)
	newCBS(t, otherConn).mustPut(t, audience(b), deviceToken(t, b, keyB, clk.Now().Add(2*time.Hour)))
	wantCondition(t, "b's C2D link after a takeover", linkError(t, func() error { _, err := c2dB.Receive(ctxT(t), nil); return err }()), goamqp.ErrCondDetachForced, "400027")
	if !e.hub.IsConnected(b) {
		t.Fatal("b is not connected through its new connection")
	}
	e.sendC2D(t, a.DeviceID, "still-a", "none", nil)
	if m := receive(t, c2dA); m.Properties.MessageID != "still-a" {
		t.Fatalf("a after b's takeover: %v", m.Properties.MessageID)
	} else if err := c2dA.AcceptMessage(ctxT(t), m); err != nil {
		t.Fatal(err)
	}

	// a's token expires: a's links go and a is disconnected, b (now on
	// its other connection) is not; a new token on the shared connection
	// connects a again.
	clk.FastForward(time.Hour + hub.ClockSkew + time.Second)
	wantCondition(t, "a's C2D link after its token expired", linkError(t, func() error { _, err := c2dA.Receive(ctxT(t), nil); return err }()), goamqp.ErrCondUnauthorizedAccess, "expired")
	testutil.Eventually(t, "a to be disconnected", func() bool { return !e.hub.IsConnected(a) })
	if !e.hub.IsConnected(b) {
		t.Fatal("b was disconnected with a")
	}
	cbs.mustPut(t, audience(a), deviceToken(t, a, keyA, clk.Now().Add(time.Hour)))
	if !e.hub.IsConnected(a) {
		t.Fatal("a did not reconnect on the shared connection")
	}
}

// TestDeviceTakeover: the hub keeps one connection per identity, whatever
// the transport: a second connection's put-token closes the first one,
// which served only that device, with amqp:connection:forced; disabling
// or deleting the device does the same.
func TestDeviceTakeover(t *testing.T) {
	e := newEnv(t)
	id := hub.Identity{DeviceID: "twice"}
	key := e.addDevice(t, id.DeviceID)
	first := e.connectDevice(t, viaTLS, id, key)
	rcv := first.receiver(t, "messages/devicebound", nil)
	second := e.connectDevice(t, viaWebSocket, id, key)
	_, err := rcv.Receive(ctxT(t), nil)
	var ce *goamqp.ConnError
	var le *goamqp.LinkError
	switch {
	case errors.As(err, &ce) && ce.RemoteErr != nil:
		wantCondition(t, "the first connection", ce.RemoteErr, goamqp.ErrCondConnectionForced, "400027")
	case errors.As(err, &le) && le.RemoteErr != nil:
		wantCondition(t, "the first connection's link", le.RemoteErr, goamqp.ErrCondDetachForced, "400027")
	default:
		t.Fatalf("the first connection: got %v, want it closed by the hub", err)
	}
	e.sendC2D(t, id.DeviceID, "to-second", "none", nil)
	if m := receive(t, second.receiver(t, "messages/devicebound", nil)); m.Properties.MessageID != "to-second" {
		t.Fatalf("second connection got %v", m.Properties.MessageID)
	}

	t.Run("disabled", func(t *testing.T) {
		d, _ := e.hub.GetDevice(context.Background(), id.DeviceID)
		d.Status = "disabled"
		if _, err := e.hub.PutDevice(context.Background(), d, "*"); err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, "the disabled device's connection to close", func() bool {
			_, err := second.conn.NewSession(ctxT(t), nil)
			return err != nil
		})
		if e.hub.IsConnected(id) {
			t.Error("still connected after being disabled")
		}
		c := e.dial(t, viaTLS, nil)
		if r := newCBS(t, c).put(t, audience(id), deviceToken(t, id, key, later())); r.status != 401 {
			t.Errorf("put-token of a disabled device: %d, want 401", r.status)
		}
	})
}

// TestDeviceTokenRenewal: a put-token before expiry on the same connection
// keeps the links and the session; after expiry the links are detached
// with amqp:unauthorized-access and the device disconnected, yet the
// connection stays open for a new token.
func TestDeviceTokenRenewal(t *testing.T) {
	start := time.Now().Truncate(time.Second)
	clk := clock.At(start)
	e := newEnv(t, withClock(clk))
	id := hub.Identity{DeviceID: "renew"}
	key := e.addDevice(t, id.DeviceID)
	c := e.dial(t, viaTLS, nil)
	cbs := newCBS(t, c)
	cbs.mustPut(t, audience(id), deviceToken(t, id, key, start.Add(time.Minute)))
	dev := &devClient{e: e, id: id, conn: c, sess: newSession(t, c)}
	snd := dev.sender(t, "messages/events", nil)
	rcv := dev.receiver(t, "messages/devicebound", nil)

	clk.FastForward(50 * time.Second)
	cbs.mustPut(t, audience(id), deviceToken(t, id, key, start.Add(10*time.Minute)))
	clk.FastForward(time.Minute + hub.ClockSkew)
	stillAttached(t, rcv)
	if err := snd.Send(ctxT(t), &goamqp.Message{Data: [][]byte{[]byte("after renewal")}}, nil); err != nil {
		t.Fatalf("send after renewal: %v", err)
	}
	if !e.hub.IsConnected(id) {
		t.Fatal("disconnected although the token was renewed")
	}

	clk.FastForward(10 * time.Minute)
	wantCondition(t, "after expiry", linkError(t, func() error { _, err := rcv.Receive(ctxT(t), nil); return err }()), goamqp.ErrCondUnauthorizedAccess, "expired")
	testutil.Eventually(t, "the device to be disconnected", func() bool { return !e.hub.IsConnected(id) })
	cbs.mustPut(t, audience(id), deviceToken(t, id, key, clk.Now().Add(time.Hour)))
	if !e.hub.IsConnected(id) {
		t.Fatal("a new token on the same connection did not connect the device")
	}
	if err := dev.sender(t, "messages/events", nil).Send(ctxT(t), &goamqp.Message{Data: [][]byte{[]byte("new token")}}, nil); err != nil {
		t.Fatal(err)
	}
}

// TestDeviceX509: an X.509 device authenticates by its TLS client
// certificate, with SASL EXTERNAL or with no SASL (Node sends the bare
// AMQP header), and puts no token; it is connected from its first link,
// and its telemetry is recorded with the x509 method.
func TestDeviceX509(t *testing.T) {
	e := newEnv(t)
	id := hub.Identity{DeviceID: "x509dev"}
	tlsCfg := e.addX509Device(t, id.DeviceID)
	for _, sasl := range x509SASL {
		t.Run(sasl.name, func(t *testing.T) {
			c := e.dial(t, viaTLS, &goamqp.ConnOptions{SASLType: sasl.typ, TLSConfig: tlsCfg})
			dev := &devClient{e: e, id: id, conn: c, sess: newSession(t, c)}
			before := len(e.telemetry(t, id))
			if err := dev.sender(t, "messages/events", nil).Send(ctxT(t), &goamqp.Message{Data: [][]byte{[]byte("cert")}}, nil); err != nil {
				t.Fatal(err)
			}
			ms := e.telemetry(t, id)
			if len(ms) != before+1 || ms[len(ms)-1].AuthMethod != "x509" {
				t.Fatalf("recorded %+v, want a message with auth method x509", ms[len(ms)-1])
			}
			if !e.hub.IsConnected(id) {
				t.Error("not connected")
			}
			tc := e.twinClient(t, dev)
			if a := tc.do(t, "PATCH", "/properties/reported", nil, []byte(`{"via":"`+sasl.name+`"}`)); a.status != 204 {
				t.Errorf("PATCH: %d", a.status)
			}
		})
	}
}

// TestDeviceLinkRefusals: links a claim does not cover, or that name no
// node, are refused with the conditions the SDKs map (Node: amqp:
// unauthorized-access is UnauthorizedError, amqp:not-found
// DeviceNotFoundError, amqp:not-allowed InvalidOperationError), and the
// connection serves on.
func TestDeviceLinkRefusals(t *testing.T) {
	e := newEnv(t)
	e.addDevice(t, "d")
	e.addDevice(t, "other")
	mkey := e.addModule(t, "d", "m1")
	e.addModule(t, "d", "m2")
	dkey := e.addDevice(t, "d2")
	e.addModule(t, "d2", "m")
	dev := e.connectDevice(t, viaTLS, hub.Identity{DeviceID: "d2"}, dkey)
	wantCondition(t, "a device's token for its module", attachErr(t, dev.sess, "/devices/d2/modules/m/twin", nil), goamqp.ErrCondUnauthorizedAccess, "d2/m")
	mod := e.connectDevice(t, viaTLS, hub.Identity{DeviceID: "d", ModuleID: "m1"}, mkey)
	for _, tc := range []struct {
		name, source string
		cond         goamqp.ErrCond
	}{
		{"a module's token for another module", "/devices/d/modules/m2/twin", goamqp.ErrCondUnauthorizedAccess},
		{"a module's token for its device", "/devices/d/twin", goamqp.ErrCondUnauthorizedAccess},
		{"a module's token for another device", "/devices/other/modules/m1/twin", goamqp.ErrCondUnauthorizedAccess},
		{"a node the hub does not have", "/devices/d/modules/m1/unknown", goamqp.ErrCondNotFound},
		{"a service node", fileNotifications, goamqp.ErrCondUnauthorizedAccess},
	} {
		wantCondition(t, tc.name, attachErr(t, mod.sess, tc.source, nil), tc.cond, "")
	}
	// The module's own links work after the refusals; its input link
	// attaches (by both addresses the SDKs use) and stays quiet.
	for _, in := range []string{"inputs", "messages/events"} {
		r := mod.receiver(t, in, nil)
		stillAttached(t, r)
	}
	if a := e.twinClient(t, mod).do(t, "GET", "", nil, nil); a.status != 200 {
		t.Errorf("the module's twin after the refusals: %d", a.status)
	}
}

// TestDeviceNodeAudience: the Node device SDK puts its token's sr as the
// audience: the whole resource URI encoded once (localhost%2Fdevices%2F
// dev%2Bx%2541). Decoded once, it names the device, whose id may itself
// hold characters that look encoded.
func TestDeviceNodeAudience(t *testing.T) {
	e := newEnv(t)
	for _, id := range []hub.Identity{{DeviceID: "dev+x%41"}, {DeviceID: "dev+x%41", ModuleID: "m%2F1"}} {
		key := e.addIdentity(t, id)
		resource := hostName + "/devices/" + id.DeviceID
		if id.ModuleID != "" {
			resource += "/modules/" + id.ModuleID
		}
		c := e.dial(t, viaTLS, nil)
		newCBS(t, c).mustPut(t, strings.ReplaceAll(url.QueryEscape(resource), "+", "%20"), deviceToken(t, id, key, later()))
		if !e.hub.IsConnected(id) {
			t.Errorf("%s: not connected after its Node-style put-token", id)
		}
	}
}

// TestDeviceModelID: the model id the C# SDK announces on its links
// (com.microsoft:model-id) is recorded as an MQTT device's CONNECT
// username announces it.
func TestDeviceModelID(t *testing.T) {
	e := newEnv(t)
	id := hub.Identity{DeviceID: "pnp"}
	dev := e.connectDevice(t, viaTLS, id, e.addDevice(t, id.DeviceID))
	dev.sender(t, "messages/events", &goamqp.SenderOptions{Properties: map[string]any{"com.microsoft:model-id": "dtmi:com:example:Thermostat;1"}})
	testutil.Eventually(t, "the model id to be recorded", func() bool {
		tw, err := e.hub.GetTwin(context.Background(), id)
		return err == nil && tw.ModelID == "dtmi:com:example:Thermostat;1"
	})
}

// TestDeviceAdmission: the hub admits an AMQP device as it admits an MQTT
// CONNECT. During a fault's duration a device's put-token is still answered
// 200 (Node takes any other status for bad credentials and stops retrying)
// and its first link is refused with com.microsoft:timeout, which Node reads
// as ServiceUnavailableError and retries; an X.509 device's first link is
// refused alike; neither is connected. Once the duration is over both
// connect.
func TestDeviceAdmission(t *testing.T) {
	clk := clock.At(time.Now().Truncate(time.Second))
	e := newEnv(t, withClock(clk))
	ctx := context.Background()
	sas := hub.Identity{DeviceID: "admit-sas"}
	key := e.addDevice(t, sas.DeviceID)
	x := hub.Identity{DeviceID: "admit-x509"}
	tlsCfg := e.addX509Device(t, x.DeviceID)
	for _, id := range []hub.Identity{sas, x} {
		if _, err := e.hub.InjectFault(ctx, hub.FaultSpec{Identity: id, Kind: hub.FaultKillTcp, Duration: time.Minute}); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Eventually(t, "both faults to open their duration", func() bool {
		n := 0
		for _, f := range e.hub.Faults("") {
			if f.Outcome == hub.FaultNotConnected {
				n++
			}
		}
		return n == 2
	})

	c := e.dial(t, viaTLS, nil)
	cbs := newCBS(t, c)
	cbs.mustPut(t, audience(sas), deviceToken(t, sas, key, clk.Now().Add(time.Hour)))
	wantCondition(t, "a link during the duration", attachErr(t, newSession(t, c), devicePath(sas, "messages/devicebound"), nil),
		"com.microsoft:timeout", "fault injection")
	if e.hub.IsConnected(sas) {
		t.Fatal("connected during the duration")
	}
	xs := newSession(t, e.dial(t, viaTLS, &goamqp.ConnOptions{SASLType: goamqp.SASLTypeExternal(""), TLSConfig: tlsCfg}))
	wantCondition(t, "an X.509 device's first link", attachErr(t, xs, devicePath(x, "messages/devicebound"), nil), "com.microsoft:timeout", "fault injection")
	if e.hub.IsConnected(x) {
		t.Fatal("the X.509 device is connected during the duration")
	}

	clk.FastForward(time.Minute + time.Second)
	attachOK(t, newSession(t, c), devicePath(sas, "messages/devicebound"))
	attachOK(t, xs, devicePath(x, "messages/devicebound"))
	for _, id := range []hub.Identity{sas, x} {
		if !e.hub.IsConnected(id) {
			t.Errorf("%s is not connected after the duration", id)
		}
	}
}

// TestDeviceInvokeFaults: during an Invoke* fault's duration the hub
// refuses an AMQP device's operations as it refuses an MQTT device's, and
// the connection stays: telemetry is rejected with the condition the SDKs
// map to ThrottlingError, IotHubQuotaExceededError or UnauthorizedError,
// and a twin request is answered with the hub's status.
func TestDeviceInvokeFaults(t *testing.T) {
	clk := clock.At(time.Now().Truncate(time.Second))
	e := newEnv(t, withClock(clk))
	for _, tc := range []struct {
		kind   hub.FaultKind
		cond   goamqp.ErrCond
		status int32
	}{
		{hub.FaultInvokeThrottling, "com.microsoft:device-container-throttled", 429},
		{hub.FaultInvokeMaxMessageQuota, "com.microsoft:quota-exceeded", 403},
		{hub.FaultInvokeAuthError, goamqp.ErrCondUnauthorizedAccess, 401},
	} {
		t.Run(string(tc.kind), func(t *testing.T) {
			id := hub.Identity{DeviceID: "invoke-" + strings.ToLower(string(tc.kind))}
			dev := e.connectDevice(t, viaTLS, id, e.addDevice(t, id.DeviceID))
			snd := dev.sender(t, "messages/events", nil)
			tw := e.twinClient(t, dev)
			if _, err := e.hub.InjectFault(context.Background(), hub.FaultSpec{Identity: id, Kind: tc.kind, Duration: time.Minute}); err != nil {
				t.Fatal(err)
			}
			testutil.Eventually(t, "the fault to apply", func() bool {
				fs := e.hub.Faults(id.DeviceID)
				return len(fs) == 1 && fs[0].Outcome == hub.FaultApplied
			})
			wantCondition(t, "telemetry", linkError(t, snd.Send(ctxT(t), &goamqp.Message{Data: [][]byte{[]byte("refused")}}, nil)), tc.cond, "")
			if a := tw.do(t, "PATCH", "/properties/reported", nil, []byte(`{"n":1}`)); a.status != tc.status {
				t.Errorf("reported PATCH: status %d, want %d", a.status, tc.status)
			}
			clk.FastForward(time.Minute + time.Second)
			if err := snd.Send(ctxT(t), &goamqp.Message{Data: [][]byte{[]byte("after")}}, nil); err != nil {
				t.Fatalf("telemetry after the duration: %v", err)
			}
			if got := e.telemetry(t, id); len(got) != 1 || string(got[0].Body) != "after" {
				t.Errorf("recorded %d messages, want only the one after the duration", len(got))
			}
			if !e.hub.IsConnected(id) {
				t.Error("the device was disconnected")
			}
		})
	}
}
