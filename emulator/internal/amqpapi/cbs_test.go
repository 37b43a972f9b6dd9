// SPDX-License-Identifier: MIT

package amqpapi

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	goamqp "github.com/Azure/go-amqp"

	"github.com/iothubemulator/iothub/emulator/internal/hub"
)

// TestCBSOnEveryTransport puts a token over each listener and then uses
// the claim it made.
func TestCBSOnEveryTransport(t *testing.T) {
	e := newEnv(t)
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			c := e.dial(t, tr.via, nil)
			cbs := newCBS(t, c)
			r := cbs.put(t, hostName, e.policyToken(t, "service", hostName, later()))
			if r.status != 200 || r.description != "OK" {
				t.Fatalf("put-token: %d %q, want 200 OK", r.status, r.description)
			}
			s := newSession(t, c)
			rcv, err := s.NewReceiver(ctxT(t), "/messages/serviceBound/filenotifications", nil)
			if err != nil {
				t.Fatalf("attach after put-token: %v", err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			if _, err := rcv.Receive(ctx, nil); err != context.DeadlineExceeded {
				t.Fatalf("an empty file-notification node: got %v, want nothing", err)
			}
		})
	}
}

// TestCBSReplyRouting answers on the link each SDK family expects: the
// receiver whose target is reply-to (@azure/core-amqp, azeventhubs), or the
// only receiver when it has no target and reply-to is "cbs" (Node's IoT
// SDKs); with several, the one reply-to names. The correlation-id keeps
// the message-id's type.
func TestCBSReplyRouting(t *testing.T) {
	e := newEnv(t)
	tok := e.policyToken(t, "service", hostName, later())
	c := e.dial(t, viaPlain, nil)
	s := newSession(t, c)
	snd, err := s.NewSender(ctxT(t), "$cbs", nil)
	if err != nil {
		t.Fatal(err)
	}
	// Node IoT: a receiver without a target, reply-to "cbs".
	bare, err := s.NewReceiver(ctxT(t), "$cbs", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []any{"a-string-id", goamqp.UUID{1, 2, 3}, uint64(42), []byte{9, 8, 7}} {
		r := call(t, snd, bare, "cbs", &goamqp.Message{Value: tok, Properties: &goamqp.MessageProperties{MessageID: id},
			ApplicationProperties: putTokenRequest(hostName, tok).ApplicationProperties})
		if r.status != 200 {
			t.Errorf("message-id %T: status %d %s", id, r.status, r.description)
		}
	}
	// Two more receivers with targets: each reply goes where reply-to says.
	a, err := s.NewReceiver(ctxT(t), "$cbs", &goamqp.ReceiverOptions{TargetAddress: "cbs-a"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.NewReceiver(ctxT(t), "$cbs", &goamqp.ReceiverOptions{TargetAddress: "cbs-b"})
	if err != nil {
		t.Fatal(err)
	}
	for _, rcv := range []struct {
		r  *goamqp.Receiver
		to string
	}{{a, "cbs-a"}, {b, "cbs-b"}, {a, "cbs-a"}} {
		if r := call(t, snd, rcv.r, rcv.to, putTokenRequest(hostName, tok)); r.status != 200 {
			t.Errorf("reply-to %s: %d %s", rcv.to, r.status, r.description)
		}
	}
}

func TestCBSRefusals(t *testing.T) {
	e := newEnv(t)
	key := e.addDevice(t, "d1")
	d1 := hub.Identity{DeviceID: "d1"}
	c := e.dial(t, viaPlain, nil)
	cbs := newCBS(t, c)
	good := e.policyToken(t, "service", hostName, later())
	withProps := func(props map[string]any, value any) *goamqp.Message {
		m := putTokenRequest(hostName, good)
		for k, v := range props {
			if v == nil {
				delete(m.ApplicationProperties, k)
			} else {
				m.ApplicationProperties[k] = v
			}
		}
		m.Value = value
		return m
	}
	tests := []struct {
		name   string
		req    *goamqp.Message
		status int32
		desc   string
	}{
		{"another operation", withProps(map[string]any{"operation": "delete-token"}, good), 400, "put-token"},
		{"no audience", withProps(map[string]any{"name": nil}, good), 400, "audience"},
		{"azure ad token type", withProps(map[string]any{"type": "jwt"}, good), 401, "Active Directory"},
		{"bearer token", withProps(nil, "Bearer eyJhbGciOi"), 401, "Active Directory"},
		{"unknown token type", withProps(map[string]any{"type": "x509"}, good), 400, "token type"},
		{"no token", withProps(nil, nil), 400, "no token"},
		{"token is not a SAS", withProps(nil, "hello"), 401, "shared access signature"},
		{"bad signature", withProps(nil, strings.Replace(good, "sig=", "sig=x", 1)), 401, "signature"},
		{"expired", withProps(nil, e.policyToken(t, "service", hostName, time.Now().Add(-time.Hour))), 401, "expired"},
		{"another hub", putTokenRequest("otherhub", e.policyToken(t, "service", "otherhub", later())), 401, "does not name this hub"},
		{"token narrower than the audience", putTokenRequest(hostName, e.policyToken(t, "service", hostName+"/messages/events", later())), 401, "does not cover"},
		{"device token for another device", putTokenRequest(hostName+"/devices/d2", deviceToken(t, d1, key, later())), 401, ""},
		{"unregistered device", putTokenRequest(hostName+"/devices/ghost", deviceToken(t, hub.Identity{DeviceID: "ghost"}, key, later())), 401, "not registered"},
		{"malformed device audience", putTokenRequest(hostName+"/devices/d1/twin", deviceToken(t, d1, key, later())), 400, "device audience"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := call(t, cbs.snd, cbs.rcv, cbs.replyTo, tc.req)
			if r.status != tc.status || !strings.Contains(r.description, tc.desc) {
				t.Errorf("got %d %q, want %d mentioning %q", r.status, r.description, tc.status, tc.desc)
			}
		})
	}
	// The connection is still good for a valid token.
	cbs.mustPut(t, hostName+"/devices/d1", deviceToken(t, d1, key, later()))
}

// TestCBSTokenRequestsOnFreshLinks: azeventhubs negotiates every claim on
// a new session with its own $cbs link pair and closes them afterwards.
func TestCBSTokenRequestsOnFreshLinks(t *testing.T) {
	e := newEnv(t)
	c := e.dial(t, viaTLS, nil)
	for i := range 20 {
		s := newSession(t, c)
		snd, err := s.NewSender(ctxT(t), "$cbs", nil)
		if err != nil {
			t.Fatal(err)
		}
		reply := fmt.Sprintf("%s-reply-to-%d", "azeh", i)
		rcv, err := s.NewReceiver(ctxT(t), "$cbs", &goamqp.ReceiverOptions{TargetAddress: reply})
		if err != nil {
			t.Fatal(err)
		}
		aud := fmt.Sprintf("amqps://%s/%s/ConsumerGroups/$Default/Partitions/%d", hostName, hostName, i%4)
		if r := call(t, snd, rcv, reply, putTokenRequest(aud, e.policyToken(t, "service", strings.ToLower(aud), later()))); r.status != 200 {
			t.Fatalf("round %d: %d %s", i, r.status, r.description)
		}
		if err := s.Close(ctxT(t)); err != nil {
			t.Fatalf("round %d: close session: %v", i, err)
		}
	}
}
