// SPDX-License-Identifier: MIT

package amqp

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/iothubemulator/iothub/emulator/internal/amqp/codec"
)

// SASL outcome codes (part 5, section 5.3.3.6).
const (
	saslOK      = 0
	saslAuth    = 1
	saslSys     = 2
	saslSysPerm = 3
)

// sasl runs the server side of the SASL layer (part 5, section 5.3.2):
// mechanisms, init, outcome. No mechanism we offer needs a challenge.
func (c *Conn) sasl() error {
	if err := c.writeSASL(&saslMechanisms{Mechanisms: c.cfg.SASLMechanisms}); err != nil {
		return err
	}
	fr, err := readFrame(c.br, c.cfg.MaxFrameSize)
	if err != nil {
		return c.readFailed(err)
	}
	if fr.typ != frameSASL {
		_ = c.writeSASL(&saslOutcome{Code: saslSysPerm})
		return fmt.Errorf("amqp: frame type %d during SASL", fr.typ)
	}
	p, err := decodeFrameBody(fr.body, c.cfg.Limits)
	if err != nil {
		_ = c.writeSASL(&saslOutcome{Code: saslSysPerm})
		return err
	}
	init, ok := p.(*saslInit)
	if !ok {
		_ = c.writeSASL(&saslOutcome{Code: saslSysPerm})
		return fmt.Errorf("amqp: %s where sasl-init belongs", perfName(p))
	}
	c.tracef("rx", 0, "sasl-init mechanism=%s hostname=%q", init.Mechanism, init.Hostname)
	if !slices.Contains(c.cfg.SASLMechanisms, init.Mechanism) {
		_ = c.writeSASL(&saslOutcome{Code: saslAuth})
		return fmt.Errorf("amqp: SASL mechanism %q is not offered", init.Mechanism)
	}
	req := &SASLRequest{Conn: c, Mechanism: init.Mechanism, Hostname: init.Hostname, Response: init.InitialResponse, TLS: c.tls}
	if init.Mechanism == SASLPlain {
		// RFC 4616: authzid NUL authcid NUL passwd.
		parts := bytes.Split(init.InitialResponse, []byte{0})
		if len(parts) != 3 || len(parts[1]) == 0 {
			_ = c.writeSASL(&saslOutcome{Code: saslAuth})
			return fmt.Errorf("amqp: malformed SASL PLAIN response")
		}
		req.AuthzID, req.AuthcID, req.Password = string(parts[0]), string(parts[1]), string(parts[2])
	}
	if c.cfg.Authenticate != nil {
		id, err := c.cfg.Authenticate(c.ctx, req)
		if err != nil {
			_ = c.writeSASL(&saslOutcome{Code: saslAuth})
			c.log.Debug("amqp: SASL authentication failed", "mechanism", init.Mechanism, "err", err)
			return fmt.Errorf("amqp: SASL %s: %w", init.Mechanism, err)
		}
		c.identity = id
	}
	return c.writeSASL(&saslOutcome{Code: saslOK})
}

func (c *Conn) writeSASL(p codec.Marshaler) error {
	b, err := appendFrame(nil, frameSASL, 0, p, nil)
	if err != nil {
		return err
	}
	if c.trace {
		c.traceFrame("tx", 0, p)
	}
	_, err = c.nc.Write(b)
	return err
}
