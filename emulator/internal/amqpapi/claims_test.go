// SPDX-License-Identifier: MIT

package amqpapi

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	goamqp "github.com/Azure/go-amqp"

	"github.com/iothubemulator/iothub/emulator/internal/amqp/codec"
	"github.com/iothubemulator/iothub/emulator/internal/clock"
	"github.com/iothubemulator/iothub/emulator/internal/hub"
)

const fileNotifications = "/messages/serviceBound/filenotifications"

// attachOK attaches a receiver that must be accepted and stay attached.
func attachOK(tb testing.TB, s *goamqp.Session, source string) *goamqp.Receiver {
	tb.Helper()
	r, err := s.NewReceiver(ctxT(tb), source, nil)
	if err != nil {
		tb.Fatalf("attach %s: %v", source, err)
	}
	stillAttached(tb, r)
	return r
}

// stillAttached checks that no detach is pending for r. The detach of a
// refused or expired link is on the wire before anything the test does
// next, so a short look suffices.
func stillAttached(tb testing.TB, r *goamqp.Receiver) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := r.Receive(ctx, nil); !errors.Is(err, context.DeadlineExceeded) {
		tb.Fatalf("receiver %s: got %v, want it attached and idle", r.LinkName(), err)
	}
}

func TestSASLMechanisms(t *testing.T) {
	e := newEnv(t)
	key := e.addDevice(t, "d1")
	d1 := hub.Identity{DeviceID: "d1"}
	svc := e.policyToken(t, "service", hostName, later())
	plain := func(user, pass string) *goamqp.ConnOptions {
		return &goamqp.ConnOptions{SASLType: goamqp.SASLTypePlain(user, pass)}
	}
	t.Run("PLAIN with a policy token authorizes service nodes", func(t *testing.T) {
		c := e.dial(t, viaTLS, plain("service@sas.root."+hostName, svc))
		attachOK(t, newSession(t, c), fileNotifications)
	})
	t.Run("PLAIN with a path-scoped policy token, as the redirect samples use", func(t *testing.T) {
		c := e.dial(t, viaPlain, plain("service@sas.root."+hostName, e.policyToken(t, "service", hostName+"/messages/servicebound", later())))
		attachOK(t, newSession(t, c), fileNotifications)
	})
	t.Run("PLAIN with a device token authorizes that device only", func(t *testing.T) {
		c := e.dial(t, viaPlain, plain("d1@sas."+hostName, deviceToken(t, d1, key, later())))
		s := newSession(t, c)
		wantCondition(t, "service node", attachErr(t, s, fileNotifications, nil), goamqp.ErrCondUnauthorizedAccess, "no claim")
		attachOK(t, s, "/devices/d1/messages/devicebound")
		wantCondition(t, "another device", attachErr(t, s, "/devices/d2/messages/devicebound", nil), goamqp.ErrCondUnauthorizedAccess, "device d2")
	})
	for _, tc := range []struct{ name, user, pass string }{
		{"PLAIN with a bad token", "service@sas.root." + hostName, svc[:len(svc)-3] + "abc"},
		{"PLAIN naming another hub", "service@sas.root.otherhub", svc},
		{"PLAIN naming another policy than the token's", "iothubowner@sas.root." + hostName, svc},
		{"PLAIN without the @sas. form", "service", svc},
		{"PLAIN with a device token for another device", "d2@sas." + hostName, deviceToken(t, d1, key, later())},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if c, err := e.tryDial(viaPlain, plain(tc.user, tc.pass)); err == nil {
				c.Close()
				t.Fatal("connected; want the SASL exchange to fail")
			}
		})
	}
	t.Run("ANONYMOUS authorizes nothing by itself", func(t *testing.T) {
		c := e.dial(t, viaPlain, nil)
		wantCondition(t, "service node", attachErr(t, newSession(t, c), fileNotifications, nil), goamqp.ErrCondUnauthorizedAccess, "put a token")
	})
	t.Run("MSSBCBS (the C SDK's) is offered and accepted", func(t *testing.T) {
		mechs, code := rawSASL(t, e.srv.PlainAddr().String(), "MSSBCBS")
		if len(mechs) == 0 || mechs[0] != "MSSBCBS" || code != 0 {
			t.Fatalf("mechanisms %v, outcome %d; want MSSBCBS offered first and outcome ok", mechs, code)
		}
		if _, code := rawSASL(t, e.srv.PlainAddr().String(), "SCRAM-SHA-1"); code != 1 {
			t.Fatalf("a mechanism not offered: outcome %d, want 1 (auth)", code)
		}
	})
	t.Run("no SASL layer (rhea without a user name) then CBS", func(t *testing.T) {
		c := e.dial(t, viaTLS, &goamqp.ConnOptions{})
		newCBS(t, c).mustPut(t, hostName, svc)
		attachOK(t, newSession(t, c), fileNotifications)
	})
	t.Run("EXTERNAL without a client certificate", func(t *testing.T) {
		if c, err := e.tryDial(viaTLS, &goamqp.ConnOptions{SASLType: goamqp.SASLTypeExternal("")}); err == nil {
			c.Close()
			t.Fatal("connected; want EXTERNAL refused without a certificate")
		}
	})
}

// rawSASL runs a SASL exchange by hand (go-amqp cannot name MSSBCBS): it
// returns the mechanisms offered and the outcome code.
func rawSASL(tb testing.TB, addr, mechanism string) ([]string, byte) {
	tb.Helper()
	nc, err := net.DialTimeout("tcp", addr, waitTime)
	if err != nil {
		tb.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(waitTime))
	readFrame := func() *codec.Described {
		var hdr [8]byte
		if _, err := io.ReadFull(nc, hdr[:]); err != nil {
			tb.Fatalf("read frame: %v", err)
		}
		body := make([]byte, binary.BigEndian.Uint32(hdr[:4])-8)
		if _, err := io.ReadFull(nc, body); err != nil {
			tb.Fatalf("read frame: %v", err)
		}
		v, err := codec.Unmarshal(body, codec.DefaultLimits())
		d, ok := v.(*codec.Described)
		if err != nil || !ok {
			tb.Fatalf("SASL frame %x: %v", body, err)
		}
		return d
	}
	if _, err := nc.Write([]byte("AMQP\x03\x01\x00\x00")); err != nil {
		tb.Fatal(err)
	}
	var hdr [8]byte
	if _, err := io.ReadFull(nc, hdr[:]); err != nil || string(hdr[:]) != "AMQP\x03\x01\x00\x00" {
		tb.Fatalf("protocol header %q, %v", hdr, err)
	}
	var mechs []string
	if fields, _ := readFrame().Value.([]any); len(fields) > 0 {
		switch v := fields[0].(type) {
		case codec.Symbol:
			mechs = append(mechs, string(v))
		case codec.Array:
			for _, m := range v {
				mechs = append(mechs, fmt.Sprint(m))
			}
		case []codec.Symbol:
			for _, m := range v {
				mechs = append(mechs, string(m))
			}
		}
	}
	body, err := codec.AppendDescribedList(nil, 0x41, codec.Symbol(mechanism), []byte{})
	if err != nil {
		tb.Fatal(err)
	}
	frame := binary.BigEndian.AppendUint32(nil, uint32(8+len(body)))
	frame = append(append(frame, 2, 1, 0, 0), body...)
	if _, err := nc.Write(frame); err != nil {
		tb.Fatal(err)
	}
	fields, _ := readFrame().Value.([]any)
	if len(fields) == 0 {
		tb.Fatal("sasl-outcome without a code")
	}
	code, _ := fields[0].(uint8)
	return mechs, code
}

func TestX509DeviceClaimFromTheCertificate(t *testing.T) {
	e := newEnv(t)
	tlsCfg := e.addX509Device(t, "x1")
	for _, sasl := range x509SASL {
		t.Run(sasl.name, func(t *testing.T) {
			c := e.dial(t, viaTLS, &goamqp.ConnOptions{SASLType: sasl.typ, TLSConfig: tlsCfg})
			s := newSession(t, c)
			attachOK(t, s, "/devices/x1/messages/devicebound")
			wantCondition(t, "another device", attachErr(t, s, "/devices/x2/messages/devicebound", nil), goamqp.ErrCondUnauthorizedAccess, "")
			wantCondition(t, "a service node", attachErr(t, s, fileNotifications, nil), goamqp.ErrCondUnauthorizedAccess, "")
		})
	}
}

// TestIsolation: what each kind of claim may attach.
func TestIsolation(t *testing.T) {
	e := newEnv(t)
	key := e.addDevice(t, "d1")
	e.addDevice(t, "d2")
	tests := []struct {
		name, audience, token, source string
		cond                          goamqp.ErrCond // "" when attached
	}{
		{"a device token cannot attach service nodes", hostName + "/devices/d1", deviceToken(t, hub.Identity{DeviceID: "d1"}, key, later()), fileNotifications, goamqp.ErrCondUnauthorizedAccess},
		{"a policy without ServiceConnect cannot", hostName, e.policyToken(t, "registryReadWrite", hostName, later()), fileNotifications, goamqp.ErrCondUnauthorizedAccess},
		{"a DeviceConnect policy cannot attach service nodes", hostName, e.policyToken(t, "device", hostName, later()), fileNotifications, goamqp.ErrCondUnauthorizedAccess},
		{"a token scoped elsewhere cannot", hostName + "/messages/events", e.policyToken(t, "service", hostName+"/messages/events", later()), fileNotifications, goamqp.ErrCondUnauthorizedAccess},
		{"the owner can", hostName, e.policyToken(t, "iothubowner", hostName, later()), fileNotifications, ""},
		{"a DeviceConnect policy acts for a registered device", hostName, e.policyToken(t, "device", hostName, later()), "/devices/d2/messages/devicebound", ""},
		{"but not for an unregistered one", hostName, e.policyToken(t, "device", hostName, later()), "/devices/ghost/messages/devicebound", goamqp.ErrCondUnauthorizedAccess},
		{"a ServiceConnect policy does not act for devices", hostName, e.policyToken(t, "service", hostName, later()), "/devices/d2/messages/devicebound", goamqp.ErrCondUnauthorizedAccess},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := e.dial(t, viaPlain, nil)
			newCBS(t, c).mustPut(t, tc.audience, tc.token)
			s := newSession(t, c)
			if tc.cond == "" {
				attachOK(t, s, tc.source)
				return
			}
			wantCondition(t, tc.source, attachErr(t, s, tc.source, nil), tc.cond, "")
		})
	}
}

// TestClaimExpiry: a link lives as long as a claim grants it; renewal on
// the same connection extends it; another live claim takes over.
func TestClaimExpiry(t *testing.T) {
	start := time.Now().Truncate(time.Second)
	clk := clock.At(start)
	e := newEnv(t, withClock(clk))
	expiry := start.Add(time.Hour)
	c := e.dial(t, viaPlain, nil)
	cbs := newCBS(t, c)
	cbs.mustPut(t, hostName, e.policyToken(t, "service", hostName, expiry))
	s := newSession(t, c)
	r := attachOK(t, s, fileNotifications)

	// Renewed before it lapses: the first deadline passes harmlessly.
	cbs.mustPut(t, hostName, e.policyToken(t, "service", hostName, expiry.Add(time.Hour)))
	clk.Set(expiry.Add(hub.ClockSkew + time.Minute))
	stillAttached(t, r)

	// A second claim (the owner's) keeps the link when the first lapses.
	cbs.mustPut(t, hostName, e.policyToken(t, "iothubowner", hostName, expiry.Add(3*time.Hour)))
	clk.Set(expiry.Add(time.Hour + hub.ClockSkew + time.Minute))
	stillAttached(t, r)

	// When the last claim lapses, the link goes, and the connection stays.
	clk.Set(expiry.Add(3*time.Hour + hub.ClockSkew + time.Minute))
	ctx, cancel := context.WithTimeout(context.Background(), waitTime)
	defer cancel()
	_, err := r.Receive(ctx, nil)
	wantCondition(t, "after expiry", linkError(t, err), goamqp.ErrCondUnauthorizedAccess, "expired")
	cbs.mustPut(t, hostName, e.policyToken(t, "service", hostName, clk.Now().Add(time.Hour)))
	attachOK(t, s, fileNotifications)
}
