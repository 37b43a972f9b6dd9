// SPDX-License-Identifier: MIT

package amqpapi

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	goamqp "github.com/Azure/go-amqp"

	"github.com/iothubemulator/iothub/emulator/internal/hub"
)

// faultDev is a device on its own go-amqp connection with every link the
// SDKs attach: $cbs (on its own session), telemetry, C2D, the method pair
// and the twin pair (on another).
type faultDev struct {
	*devClient
	key      string
	cbs      *cbsClient
	events   *goamqp.Sender
	c2d      *goamqp.Receiver
	methSnd  *goamqp.Sender
	methRcv  *goamqp.Receiver
	twinSnd  *goamqp.Sender
	twinRcv  *goamqp.Receiver
	allLinks map[string]func(context.Context) error // waits for the link to end, by name
}

func (e *env) faultDevice(t *testing.T, via transport, id hub.Identity, key string) *faultDev {
	t.Helper()
	c := e.dial(t, via, nil)
	cbs := newCBS(t, c)
	cbs.mustPut(t, audience(id), deviceToken(t, id, key, later()))
	d := &faultDev{devClient: &devClient{e: e, id: id, conn: c, sess: newSession(t, c)}, key: key, cbs: cbs}
	d.events = d.sender(t, "messages/events", nil)
	d.c2d = d.receiver(t, "messages/devicebound", nil)
	d.methSnd, d.methRcv = d.methodLinks(t)
	d.twinSnd, d.twinRcv = d.twinLinks(t)
	recv := func(r *goamqp.Receiver) func(context.Context) error {
		// A message is the link working, not its end: a put-token probe
		// whose deadline came before its reply leaves that reply for the
		// $cbs reply link's next probe.
		return func(ctx context.Context) error {
			for {
				m, err := r.Receive(ctx, nil)
				if err != nil {
					return err
				}
				_ = r.AcceptMessage(ctx, m)
			}
		}
	}
	send := func(s *goamqp.Sender) func(context.Context) error {
		// A sender learns of a detach when it sends; the hub's links take
		// anything, so a send fails only on an ended link.
		return func(ctx context.Context) error {
			for {
				// A rejected probe (a method response without its request)
				// is the link working.
				err := s.Send(ctx, &goamqp.Message{Value: "probe"}, nil)
				if ctx.Err() != nil {
					return ctx.Err() // go-amqp reports a deadline while waiting for credit as transfer-limit-exceeded
				}
				var rejected *goamqp.Error
				if err != nil && !(errors.As(err, &rejected) && rejected.Condition == "com.microsoft:argument-error") {
					return err
				}
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(20 * time.Millisecond):
				}
			}
		}
	}
	d.allLinks = map[string]func(context.Context) error{
		"cbs-req": func(ctx context.Context) error {
			// A put-token probe: the request link's detach fails it.
			for {
				err := d.cbs.snd.Send(ctx, putTokenRequest(audience(id), deviceToken(t, id, key, later())), nil)
				if ctx.Err() != nil {
					return ctx.Err()
				}
				if err != nil {
					return err
				}
				if _, err := d.cbs.rcv.Receive(ctx, nil); err != nil {
					return err
				}
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(20 * time.Millisecond):
				}
			}
		},
		"cbs-resp":  recv(d.cbs.rcv),
		"c2d":       recv(d.c2d),
		"meth-req":  recv(d.methRcv),
		"meth-resp": send(d.methSnd),
		"twin-resp": recv(d.twinRcv),
	}
	return d
}

// faultMessage carries the hook's properties, as the SDKs' suites send them.
func faultMessage(kind hub.FaultKind, reason, delay, duration string) *goamqp.Message {
	props := map[string]any{hub.PropFaultType: string(kind), hub.PropFaultCloseReason: reason, hub.PropFaultDelay: delay}
	if duration != "" {
		props[hub.PropFaultDuration] = duration
	}
	return &goamqp.Message{Data: [][]byte{[]byte("fault")}, ApplicationProperties: props}
}

func (e *env) lastFault(t *testing.T, deviceID string) hub.FaultRecord {
	t.Helper()
	fs := e.hub.Faults(deviceID)
	if len(fs) == 0 {
		t.Fatalf("no fault recorded for %s", deviceID)
	}
	return fs[len(fs)-1]
}

func (e *env) waitOutcome(t *testing.T, deviceID string) hub.FaultRecord {
	t.Helper()
	deadline := time.Now().Add(waitTime)
	for {
		r := e.lastFault(t, deviceID)
		if r.Outcome != hub.FaultPending {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("fault still pending: %+v", r)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// ended waits for probe to fail and returns its error.
func ended(t *testing.T, what string, probe func(context.Context) error) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTime)
	defer cancel()
	err := probe(ctx)
	if err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("%s: still up (%v)", what, err)
	}
	return err
}

// standing checks that probe does not fail for a short while.
func standing(t *testing.T, what string, probe func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	if err := probe(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("%s: ended: %v", what, err)
	}
}

func remoteLinkErr(err error) *goamqp.Error {
	var le *goamqp.LinkError
	if errors.As(err, &le) && le.RemoteErr != nil {
		return le.RemoteErr
	}
	var se *goamqp.SessionError
	if errors.As(err, &se) && se.RemoteErr != nil {
		return se.RemoteErr
	}
	var ce *goamqp.ConnError
	if errors.As(err, &ce) && ce.RemoteErr != nil {
		return ce.RemoteErr
	}
	// A send on a link the peer detached fails with the detach's error.
	var ae *goamqp.Error
	if errors.As(err, &ae) && ae.Condition != goamqp.ErrCondTransferLimitExceeded {
		return ae
	}
	return nil
}

func wantInternal(t *testing.T, what string, err error, reason string) {
	t.Helper()
	re := remoteLinkErr(err)
	if re == nil || re.Condition != goamqp.ErrCondInternalError || re.Description != reason {
		t.Fatalf("%s: %v, want amqp:internal-error %q", what, err, reason)
	}
}

// connEnd waits for the connection to end and returns its error.
func connEnd(t *testing.T, c *goamqp.Conn) error {
	t.Helper()
	select {
	case <-c.Done():
	case <-time.After(waitTime):
		t.Fatal("the connection is still up")
	}
	return c.Err()
}

// TestFaultKinds is the hook over AMQP for every AMQP kind: the device's
// message is accepted and recorded; nothing breaks before the delay; then
// exactly what the kind names breaks, with the close reason; for the
// duration a new connection of the device gets its put-token (200) but its
// links are refused with com.microsoft:timeout; afterwards it connects again.
func TestFaultKinds(t *testing.T) {
	const reason = " severs it "
	linkKinds := map[hub.FaultKind]string{
		hub.FaultKillAmqpCBSLinkReq: "cbs-req", hub.FaultKillAmqpCBSLinkResp: "cbs-resp",
		hub.FaultKillAmqpC2DLink: "c2d", hub.FaultKillAmqpMethodReqLink: "meth-req", hub.FaultKillAmqpMethodRespLink: "meth-resp",
		hub.FaultKillAmqpTwinLinkResp: "twin-resp",
	}
	kinds := []hub.FaultKind{
		hub.FaultKillTcp, hub.FaultShutDownAmqp, hub.FaultKillAmqpConnection, hub.FaultKillAmqpSession,
		hub.FaultKillAmqpCBSLinkReq, hub.FaultKillAmqpCBSLinkResp, hub.FaultKillAmqpD2CLink, hub.FaultKillAmqpC2DLink,
		hub.FaultKillAmqpMethodReqLink, hub.FaultKillAmqpMethodRespLink, hub.FaultKillAmqpTwinLinkReq, hub.FaultKillAmqpTwinLinkResp,
	}
	e := newEnv(t)
	e.clock.Set(time.Now())
	for i, kind := range kinds {
		via := []transport{viaTLS, viaWebSocket, viaPlain}[i%3]
		t.Run(string(kind), func(t *testing.T) {
			id := hub.Identity{DeviceID: "fault-" + strings.ToLower(string(kind))}
			d := e.faultDevice(t, via, id, e.addDevice(t, id.DeviceID))
			if err := d.events.Send(ctxT(t), faultMessage(kind, reason, "2", "5"), nil); err != nil {
				t.Fatalf("the fault message: %v, want it accepted", err)
			}
			ms := e.telemetry(t, id)
			if len(ms) != 1 || ms[0].Properties[hub.PropFaultType] != string(kind) {
				t.Fatalf("recorded %+v, want the fault message", ms)
			}
			if r := e.lastFault(t, id.DeviceID); r.Outcome != hub.FaultPending || r.Source != hub.FaultSourceMessage || r.CloseReason != reason {
				t.Fatalf("fault before its delay: %+v", r)
			}
			e.clock.FastForward(1999 * time.Millisecond)
			standing(t, "the C2D link before the delay", d.allLinks["c2d"])
			if r := e.lastFault(t, id.DeviceID); r.Outcome != hub.FaultPending {
				t.Fatalf("applied before its delay: %+v", r)
			}
			e.clock.FastForward(time.Millisecond)
			r := e.waitOutcome(t, id.DeviceID)
			if r.Outcome != hub.FaultApplied || r.Connection == nil || r.Connection.Transport != via.recorded() || r.Connection.RemoteAddress == "" ||
				r.EndTime == nil || !r.EndTime.Equal(r.AppliedTime.Add(5*time.Second)) {
				t.Fatalf("applied fault: %+v (connection %+v)", r, r.Connection)
			}

			connLevel := false
			switch kind {
			case hub.FaultKillTcp:
				connLevel = true
				err := connEnd(t, d.conn)
				// The client learns of the RST on its next read or write.
				if err == nil || remoteLinkErr(err) != nil || !strings.Contains(err.Error(), "reset") && !strings.Contains(err.Error(), "broken pipe") {
					t.Fatalf("connection ended with %v, want a TCP reset", err)
				}
			case hub.FaultShutDownAmqp:
				connLevel = true
				// go-amqp reports a close without an error as no error.
				if err := connEnd(t, d.conn); err != nil {
					t.Fatalf("connection ended with %v, want a clean close", err)
				}
			case hub.FaultKillAmqpConnection:
				connLevel = true
				wantInternal(t, "the connection", connEnd(t, d.conn), reason)
			case hub.FaultKillAmqpSession:
				// The device links' session ends; the $cbs session stays.
				wantInternal(t, "the C2D link", ended(t, "the C2D link", d.allLinks["c2d"]), reason)
				standing(t, "the $cbs session", d.allLinks["cbs-resp"])
			case hub.FaultKillAmqpD2CLink, hub.FaultKillAmqpTwinLinkReq:
				snd := d.events
				if kind == hub.FaultKillAmqpTwinLinkReq {
					snd = d.twinSnd
				}
				wantInternal(t, "the sender", ended(t, "the sender", func(ctx context.Context) error {
					for {
						if err := snd.Send(ctx, &goamqp.Message{Value: "after"}, nil); err != nil {
							return err
						}
						time.Sleep(10 * time.Millisecond)
					}
				}), reason)
				standing(t, "the C2D link", d.allLinks["c2d"])
			default:
				name := linkKinds[kind]
				wantInternal(t, name, ended(t, name, d.allLinks[name]), reason)
				for other, probe := range d.allLinks {
					if other != name {
						standing(t, other+" beside "+name, probe)
					}
				}
			}
			if connLevel {
				waitFor(t, "the hub to see the device gone", func() bool { return !e.hub.IsConnected(id) })
			}

			// A new connection during the duration: the put-token is taken,
			// the first link refused, as often as the device tries.
			for range 2 {
				c := e.dial(t, via, nil)
				newCBS(t, c).mustPut(t, audience(id), deviceToken(t, id, d.key, later()))
				wantRefused(t, "a link during the duration", c, id)
			}
			// Each refusal counts: a reconnect's put-token and its link.
			if r := e.lastFault(t, id.DeviceID); r.Refused != 4 {
				t.Fatalf("refused %d times, want 4", r.Refused)
			}
			e.clock.FastForward(5 * time.Second)
			again := e.faultDevice(t, via, id, d.key)
			if err := again.events.Send(ctxT(t), &goamqp.Message{Value: "back"}, nil); err != nil {
				t.Fatalf("telemetry after the duration: %v", err)
			}
			if !e.hub.IsConnected(id) {
				t.Fatal("the device is not connected after the duration")
			}
		})
	}
}

func (v transport) recorded() string {
	switch v {
	case viaWebSocket, viaServiceBusSocket:
		return "amqp-ws"
	case viaPlain:
		return "amqp-plain"
	}
	return "amqp"
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTime)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestFaultLeavesOthersAlone: on a connection two devices share (the C#
// SDK pools them, each on its own session), a fault aimed at one breaks
// only its session or link; a device on another connection sees nothing;
// the duration refuses only the faulted device.
func TestFaultLeavesOthersAlone(t *testing.T) {
	e := newEnv(t)
	e.clock.Set(time.Now())
	a, b, other := hub.Identity{DeviceID: "pooled-a"}, hub.Identity{DeviceID: "pooled-b"}, hub.Identity{DeviceID: "alone"}
	c := e.dial(t, viaTLS, nil)
	cbs := newCBS(t, c)
	pooled := func(id hub.Identity) (*devClient, *goamqp.Sender, *goamqp.Receiver) {
		cbs.mustPut(t, audience(id), deviceToken(t, id, e.addDevice(t, id.DeviceID), later()))
		d := &devClient{e: e, id: id, conn: c, sess: newSession(t, c)}
		return d, d.sender(t, "messages/events", nil), d.receiver(t, "messages/devicebound", nil)
	}
	_, aEvents, aC2D := pooled(a)
	_, bEvents, bC2D := pooled(b)
	o := e.faultDevice(t, viaWebSocket, other, e.addDevice(t, other.DeviceID))
	works := func(what string, snd *goamqp.Sender, rcv *goamqp.Receiver) {
		t.Helper()
		if err := snd.Send(ctxT(t), &goamqp.Message{Value: what}, nil); err != nil {
			t.Fatalf("%s: telemetry: %v", what, err)
		}
		standing(t, what+": C2D", func(ctx context.Context) error { _, err := rcv.Receive(ctx, nil); return err })
	}

	if _, err := e.hub.InjectFault(context.Background(), hub.FaultSpec{Identity: a, Kind: hub.FaultKillAmqpSession, CloseReason: "a only", Duration: 5 * time.Second}); err != nil {
		t.Fatal(err)
	}
	if r := e.waitOutcome(t, a.DeviceID); r.Outcome != hub.FaultApplied || r.Source != hub.FaultSourceControl {
		t.Fatalf("fault: %+v", r)
	}
	wantInternal(t, "a's C2D link", ended(t, "a's C2D link", func(ctx context.Context) error { _, err := aC2D.Receive(ctx, nil); return err }), "a only")
	works("b on the same connection", bEvents, bC2D)
	works("a device on another connection", o.events, o.c2d)
	for name, probe := range o.allLinks {
		standing(t, "the other device's "+name, probe)
	}
	waitFor(t, "a to be disconnected", func() bool { return !e.hub.IsConnected(a) })
	if !e.hub.IsConnected(b) || !e.hub.IsConnected(other) {
		t.Fatal("a fault on a disconnected another device")
	}
	// a's duration refuses a, not b: b's new link on the shared connection
	// attaches; a's is refused there too.
	bSess := newSession(t, c)
	if _, err := bSess.NewSender(ctxT(t), devicePath(b, "messages/events"), nil); err != nil {
		t.Fatalf("b's new link: %v", err)
	}
	wantCondition(t, "a's link during the duration", senderAttachErr(t, newSession(t, c), devicePath(a, "messages/events")), "com.microsoft:timeout", "fault injection")

	// A link fault on b leaves a's and the other device's links alone.
	if _, err := e.hub.InjectFault(context.Background(), hub.FaultSpec{Identity: b, Kind: hub.FaultKillAmqpC2DLink}); err != nil {
		t.Fatal(err)
	}
	e.waitOutcome(t, b.DeviceID)
	wantInternal(t, "b's C2D link", ended(t, "b's C2D link", func(ctx context.Context) error { _, err := bC2D.Receive(ctx, nil); return err }), "fault injection: KillAmqpC2DLink")
	if err := bEvents.Send(ctxT(t), &goamqp.Message{Value: "b still sends"}, nil); err != nil {
		t.Fatalf("b's telemetry after its C2D link went: %v", err)
	}
	works("the other device", o.events, o.c2d)
	if err := aEvents.Send(ctxT(t), &goamqp.Message{Value: "x"}, nil); err == nil {
		t.Fatal("a's telemetry link outlived its session")
	}
}

// TestFaultRefusalsWithoutCBS: during the duration a device that brings
// its credentials with the connection (SASL PLAIN with its token, an X.509
// certificate) is let in at SASL and refused at its first link; an
// InvokeAuthError fault refuses the put-token itself (401), as bad
// credentials are refused.
func TestFaultRefusalsWithoutCBS(t *testing.T) {
	e := newEnv(t)
	e.clock.Set(time.Now())
	sasID := hub.Identity{DeviceID: "plain-dev"}
	key := e.addDevice(t, sasID.DeviceID)
	x509ID := hub.Identity{DeviceID: "cert-dev"}
	tlsCfg := e.addX509Device(t, x509ID.DeviceID)
	for _, id := range []hub.Identity{sasID, x509ID} {
		if _, err := e.hub.InjectFault(context.Background(), hub.FaultSpec{Identity: id, Kind: hub.FaultKillTcp, Duration: time.Minute}); err != nil {
			t.Fatal(err)
		}
		if r := e.waitOutcome(t, id.DeviceID); r.Outcome != hub.FaultNotConnected || r.EndTime == nil {
			t.Fatalf("fault on a device with no connection: %+v", r)
		}
	}
	plain := e.dial(t, viaPlain, &goamqp.ConnOptions{SASLType: goamqp.SASLTypePlain(sasID.DeviceID+"@sas."+hostName, deviceToken(t, sasID, key, later()))})
	wantRefused(t, "SASL PLAIN device's link", plain, sasID)
	for _, sasl := range x509SASL {
		c := e.dial(t, viaTLS, &goamqp.ConnOptions{SASLType: sasl.typ, TLSConfig: tlsCfg})
		wantRefused(t, "X.509 device's link ("+sasl.name+")", c, x509ID)
	}
	if e.hub.IsConnected(sasID) || e.hub.IsConnected(x509ID) {
		t.Fatal("a refused device is connected")
	}
	e.clock.FastForward(time.Minute)
	plain = e.dial(t, viaPlain, &goamqp.ConnOptions{SASLType: goamqp.SASLTypePlain(sasID.DeviceID+"@sas."+hostName, deviceToken(t, sasID, key, later()))})
	if err := (&devClient{e: e, id: sasID, conn: plain, sess: newSession(t, plain)}).sender(t, "messages/events", nil).Send(ctxT(t), &goamqp.Message{Value: "back"}, nil); err != nil {
		t.Fatalf("after the duration: %v", err)
	}

	authID := hub.Identity{DeviceID: "auth-dev"}
	authKey := e.addDevice(t, authID.DeviceID)
	if _, err := e.hub.InjectFault(context.Background(), hub.FaultSpec{Identity: authID, Kind: hub.FaultInvokeAuthError, Duration: time.Minute}); err != nil {
		t.Fatal(err)
	}
	e.waitOutcome(t, authID.DeviceID)
	r := newCBS(t, e.dial(t, viaTLS, nil)).put(t, audience(authID), deviceToken(t, authID, authKey, later()))
	if r.status != 401 {
		t.Fatalf("put-token during InvokeAuthError: %d %s, want 401", r.status, r.description)
	}
}

// TestFaultNotForAMQP: ShutDownMqtt does not apply to an AMQP connection,
// nor a link fault to a link the device never attached: the hub ignores
// them, the connection stays and no duration refuses the device.
func TestFaultNotForAMQP(t *testing.T) {
	e := newEnv(t)
	e.clock.Set(time.Now())
	id := hub.Identity{DeviceID: "telemetry-only"}
	key := e.addDevice(t, id.DeviceID)
	d := e.connectDevice(t, viaTLS, id, key)
	events := d.sender(t, "messages/events", nil)
	for _, kind := range []hub.FaultKind{hub.FaultShutDownMqtt, hub.FaultKillAmqpTwinLinkReq, hub.FaultKillAmqpMethodReqLink, hub.FaultKillAmqpC2DLink} {
		if err := events.Send(ctxT(t), faultMessage(kind, "", "0", "60"), nil); err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		if r := e.waitOutcome(t, id.DeviceID); r.Outcome != hub.FaultNotApplicable || r.EndTime != nil {
			t.Fatalf("%s: %+v, want not applicable", kind, r)
		}
	}
	if err := events.Send(ctxT(t), &goamqp.Message{Value: "still here"}, nil); err != nil {
		t.Fatal(err)
	}
	again := e.connectDevice(t, viaTLS, id, key)
	if err := again.sender(t, "messages/events", nil).Send(ctxT(t), &goamqp.Message{Value: "reconnected"}, nil); err != nil {
		t.Fatalf("a new connection after faults that did not apply: %v", err)
	}
}

// wantRefused checks that c gets id's telemetry link refused with
// com.microsoft:timeout (the hub's 503, which Node reads as
// ServiceUnavailableError and retries), and closes c.
func wantRefused(t *testing.T, what string, c *goamqp.Conn, id hub.Identity) {
	t.Helper()
	sess, err := c.NewSession(ctxT(t), nil)
	if err == nil {
		var snd *goamqp.Sender
		if snd, err = sess.NewSender(ctxT(t), devicePath(id, "messages/events"), nil); err == nil {
			err = snd.Send(ctxT(t), &goamqp.Message{Value: "x"}, nil)
		}
	}
	re := remoteLinkErr(err)
	if re == nil || re.Condition != "com.microsoft:timeout" || !strings.Contains(re.Description, "fault injection") {
		t.Fatalf("%s: %v, want com.microsoft:timeout", what, err)
	}
	c.Close()
}
