// SPDX-License-Identifier: MIT

package amqpapi

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/amqp"
	"github.com/iothubemulator/iothub/emulator/internal/hub"
	"github.com/iothubemulator/iothub/emulator/internal/huberr"
	"github.com/iothubemulator/iothub/internal/sas"
)

// SASL (iot-hub-amqp-support): PLAIN carries a SAS token as the password
// and says whose it is in the user name, {policy}@sas.root.{hub} for a
// shared access policy or {deviceId}@sas.{hub} for a device
// ({deviceId}/modules/{moduleId} or {deviceId}/{moduleId} for a module).
// ANONYMOUS and MSSBCBS (the C SDK's) authorize nothing by themselves:
// the client puts tokens on $cbs. EXTERNAL names the TLS client
// certificate, which is checked per device when a link needs it, as it is
// for a client that skips SASL altogether (the Node SDKs send the bare
// AMQP header).

// authenticate decides a SASL exchange for this connection.
func (c *conn) authenticate(_ context.Context, req *amqp.SASLRequest) (any, error) {
	c.setAMQP(req.Conn)
	switch req.Mechanism {
	case amqp.SASLPlain:
		cl, err := c.plainClaim(req.AuthcID, req.Password)
		if err != nil {
			c.log.Info("amqp: SASL PLAIN refused", "user", req.AuthcID, "err", oneLine(err))
			return nil, err
		}
		if err := c.addClaim(cl); err != nil {
			return nil, err
		}
		if !cl.Service() {
			// A refusal other than of the credentials leaves SASL to
			// succeed and the device's links to be refused (faults.go).
			if _, err := c.ensureDevice(cl.Identity, claimMethod(cl)); err != nil && huberr.As(err).Status == 401 {
				c.dropDeviceClaims(cl.Identity)
				return nil, err
			}
		}
	case amqp.SASLExternal:
		c.mu.Lock()
		n := len(c.peerCerts)
		c.mu.Unlock()
		if n == 0 {
			c.log.Info("amqp: SASL EXTERNAL without a client certificate")
			return nil, errors.New("EXTERNAL needs a TLS client certificate")
		}
	}
	return nil, nil
}

// plainClaim checks a SASL PLAIN user name and token.
func (c *conn) plainClaim(user, password string) (*Claim, error) {
	who, hubName, ok := strings.Cut(user, "@sas.")
	if !ok || who == "" {
		return nil, fmt.Errorf("user name %q is neither {policy}@sas.root.{hub} nor {deviceId}@sas.{hub}", user)
	}
	service := false
	if rest, ok := strings.CutPrefix(hubName, "root."); ok {
		service, hubName = true, rest
	}
	if !strings.EqualFold(hubName, c.srv.eventHub) {
		return nil, fmt.Errorf("user name %q names hub %q; this hub is %q", user, hubName, c.srv.eventHub)
	}
	h := c.srv.hub
	if service {
		tok, err := sas.ParseToken(password)
		if err != nil {
			return nil, fmt.Errorf("the password is not a shared access signature: %w", err)
		}
		if tok.KeyName != who {
			return nil, fmt.Errorf("the token is signed by policy %q, not %q", tok.KeyName, who)
		}
		pt, err := h.AuthenticatePolicyToken(password, tok.Resource)
		if err != nil {
			return nil, err
		}
		_, scope := hub.SplitResource(tok.Resource)
		return &Claim{Policy: pt.Policy, Rights: pt.Rights, Scope: strings.ToLower(scope), Method: "sas",
			Audience: user, token: password, deadline: deadline(pt.Expiry)}, nil
	}
	id := hub.Identity{DeviceID: who}
	if d, m, ok := strings.Cut(who, "/modules/"); ok {
		id = hub.Identity{DeviceID: d, ModuleID: m}
	} else if d, m, ok := strings.Cut(who, "/"); ok {
		id = hub.Identity{DeviceID: d, ModuleID: m}
	}
	auth, err := h.AuthenticateDevice(id, password, nil)
	if err != nil {
		return nil, err
	}
	return &Claim{Identity: id, Method: auth.Method, Audience: user, token: password, deadline: deadline(auth.Expiry)}, nil
}

// deadline is when a claim on a token expiring at expiry lapses: the hub
// accepts a token up to ClockSkew after its expiry.
func deadline(expiry time.Time) time.Time {
	if expiry.IsZero() {
		return expiry
	}
	return expiry.Add(hub.ClockSkew)
}

// oneLine keeps a log attribute on one line.
func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", "; ") }
