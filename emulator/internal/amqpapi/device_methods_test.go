// SPDX-License-Identifier: MIT

package amqpapi

import (
	"context"
	"errors"
	"testing"
	"time"

	goamqp "github.com/Azure/go-amqp"

	"github.com/iothubemulator/iothub/emulator/internal/hub"
	"github.com/iothubemulator/iothub/emulator/internal/huberr"
	"github.com/iothubemulator/iothub/internal/testutil"
)

// invoke calls a direct method in the background and returns its outcome.
func (e *env) invoke(id hub.Identity, name, payload string, connectTimeout time.Duration) <-chan methodOutcome {
	out := make(chan methodOutcome, 1)
	go func() {
		res, err := e.hub.InvokeMethod(context.Background(), id, hub.MethodRequest{Name: name, Payload: []byte(payload),
			ResponseTimeout: 5 * time.Second, ConnectTimeout: connectTimeout})
		out <- methodOutcome{res, err}
	}()
	return out
}

type methodOutcome struct {
	res hub.MethodResult
	err error
}

func waitOutcome(tb testing.TB, ch <-chan methodOutcome) methodOutcome {
	tb.Helper()
	select {
	case o := <-ch:
		return o
	case <-time.After(waitTime):
		tb.Fatal("the method call did not end")
	}
	return methodOutcome{}
}

// TestDeviceMethods: a request reaches the device's method receiver with
// a uuid correlation-id, the method name and the payload; the device's
// answer (status as an AMQP int, correlation-id as uuid or text) is what
// the service gets. For devices and modules.
func TestDeviceMethods(t *testing.T) {
	e := newEnv(t)
	e.addDevice(t, "edge")
	for _, id := range []hub.Identity{{DeviceID: "m1"}, {DeviceID: "edge", ModuleID: "mod"}} {
		t.Run(id.String(), func(t *testing.T) {
			key := e.addIdentity(t, id)
			dev := e.connectDevice(t, viaWebSocket, id, key)
			snd, rcv := dev.methodLinks(t)
			for i, asText := range []bool{false, true} {
				call := e.invoke(id, "rebootDevice", `{"delay":5}`, 0)
				req := receive(t, rcv)
				u, ok := req.Properties.CorrelationID.(goamqp.UUID)
				if !ok {
					t.Fatalf("correlation-id %#v, want an AMQP uuid (C# parses it as a Guid)", req.Properties.CorrelationID)
				}
				if req.ApplicationProperties["IoThub-methodname"] != "rebootDevice" || string(req.GetData()) != `{"delay":5}` {
					t.Fatalf("request: %v %q", req.ApplicationProperties, req.GetData())
				}
				if err := rcv.AcceptMessage(ctxT(t), req); err != nil {
					t.Fatal(err)
				}
				var cid any = u
				if asText { // Node turns it into text and back
					cid = u.String()
				}
				resp := &goamqp.Message{Properties: &goamqp.MessageProperties{CorrelationID: cid},
					ApplicationProperties: map[string]any{"IoThub-status": int32(200 + i)},
					Data:                  [][]byte{[]byte(`{"rebooting":true}`)}}
				if err := snd.Send(ctxT(t), resp, nil); err != nil {
					t.Fatalf("send response: %v", err)
				}
				o := waitOutcome(t, call)
				if o.err != nil || o.res.Status != 200+i || string(o.res.Payload) != `{"rebooting":true}` {
					t.Fatalf("method result %+v, %v", o.res, o.err)
				}
			}
		})
	}
}

// TestDeviceMethodsNotLinked: the hub answers 404103 while the device has
// not attached both method links, waits for them within the connect
// timeout, and stops calling a device whose links are gone.
func TestDeviceMethodsNotLinked(t *testing.T) {
	e := newEnv(t)
	id := hub.Identity{DeviceID: "quiet"}
	dev := e.connectDevice(t, viaTLS, id, e.addDevice(t, id.DeviceID))
	notOnline := func(what string) {
		t.Helper()
		o := waitOutcome(t, e.invoke(id, "m", "null", 0))
		if !errors.Is(o.err, huberr.DeviceNotOnline(0)) {
			t.Fatalf("%s: got %+v, %v; want 404103", what, o.res, o.err)
		}
	}
	notOnline("connected without method links")
	rcv := dev.receiver(t, "methods/devicebound", nil)
	notOnline("only the request link attached")

	// The connect timeout waits for the pair.
	call := e.invoke(id, "late", "null", 5*time.Second)
	snd := dev.sender(t, "methods/devicebound", nil)
	req := receive(t, rcv)
	_ = rcv.AcceptMessage(ctxT(t), req)
	if err := snd.Send(ctxT(t), &goamqp.Message{Properties: &goamqp.MessageProperties{CorrelationID: req.Properties.CorrelationID},
		ApplicationProperties: map[string]any{"IoThub-status": "201"}}, nil); err != nil {
		t.Fatal(err)
	}
	if o := waitOutcome(t, call); o.err != nil || o.res.Status != 201 || string(o.res.Payload) != "null" {
		t.Fatalf("after linking: %+v, %v", o.res, o.err)
	}

	if err := snd.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "methods to be withdrawn", func() bool {
		o := waitOutcome(t, e.invoke(id, "m", "null", 0))
		return errors.Is(o.err, huberr.DeviceNotOnline(0))
	})
}

// TestDeviceMethodResponseRefusals: answers the hub cannot use are
// rejected with com.microsoft:argument-error and leave the call waiting;
// an answer to an unknown request is accepted and dropped.
func TestDeviceMethodResponseRefusals(t *testing.T) {
	e := newEnv(t)
	id := hub.Identity{DeviceID: "sloppy"}
	dev := e.connectDevice(t, viaTLS, id, e.addDevice(t, id.DeviceID))
	snd, rcv := dev.methodLinks(t)
	call := e.invoke(id, "m", "{}", 0)
	req := receive(t, rcv)
	_ = rcv.AcceptMessage(ctxT(t), req)
	cid := req.Properties.CorrelationID
	for _, tc := range []struct {
		name string
		msg  *goamqp.Message
	}{
		{"no correlation-id", &goamqp.Message{ApplicationProperties: map[string]any{"IoThub-status": int32(200)}}},
		{"a correlation-id that is no uuid", &goamqp.Message{Properties: &goamqp.MessageProperties{CorrelationID: "1"}, ApplicationProperties: map[string]any{"IoThub-status": int32(200)}}},
		{"no status", &goamqp.Message{Properties: &goamqp.MessageProperties{CorrelationID: cid}}},
		{"a status that is no number", &goamqp.Message{Properties: &goamqp.MessageProperties{CorrelationID: cid}, ApplicationProperties: map[string]any{"IoThub-status": "ok"}}},
	} {
		wantCondition(t, tc.name, linkError(t, snd.Send(ctxT(t), tc.msg, nil)), "com.microsoft:argument-error", "")
	}
	unknown := &goamqp.Message{Properties: &goamqp.MessageProperties{CorrelationID: goamqp.UUID{1}}, ApplicationProperties: map[string]any{"IoThub-status": int32(500)}}
	if err := snd.Send(ctxT(t), unknown, nil); err != nil {
		t.Fatalf("an answer to an unknown request: %v", err)
	}
	good := &goamqp.Message{Properties: &goamqp.MessageProperties{CorrelationID: cid}, ApplicationProperties: map[string]any{"IoThub-status": int32(202)}, Value: "plain text"}
	if err := snd.Send(ctxT(t), good, nil); err != nil {
		t.Fatal(err)
	}
	if o := waitOutcome(t, call); o.err != nil || o.res.Status != 202 || string(o.res.Payload) != `"plain text"` {
		t.Fatalf("the call after the refusals: %+v, %v", o.res, o.err)
	}
}

// TestDeviceMethodLostUnsettled: a request the device detaches its link
// from before settling it (the Node SDK does while it reconnects after a
// fault) never reached it, so the call ends as for a device not online
// (404103, which callers retry) instead of waiting out the response
// timeout (504101).
func TestDeviceMethodLostUnsettled(t *testing.T) {
	e := newEnv(t)
	id := hub.Identity{DeviceID: "detaching"}
	dev := e.connectDevice(t, viaTLS, id, e.addDevice(t, id.DeviceID))
	_, rcv := dev.methodLinks(t)
	call := e.invoke(id, "m", "null", 0)
	receive(t, rcv) // neither accepted nor settled
	if err := rcv.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if o := waitOutcome(t, call); !errors.Is(o.err, huberr.DeviceNotOnline(0)) {
		t.Fatalf("got %+v, %v; want 404103", o.res, o.err)
	}
}
