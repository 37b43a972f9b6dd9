// SPDX-License-Identifier: MIT

package amqpapi

import (
	"crypto/x509"
	"fmt"
	"strings"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/amqp"
	"github.com/iothubemulator/iothub/emulator/internal/clock"
	"github.com/iothubemulator/iothub/emulator/internal/hub"
)

// Claims. An AMQP connection is authorized piece by piece: SASL PLAIN, each
// put-token on $cbs and each device a TLS client certificate is checked for
// adds a Claim to the connection. Attaching a link needs a claim that
// covers it (Need); the link is then bound to that claim. A claim lasts
// until its token expires (plus the hub's clock skew, by the hub's clock);
// a put-token for the same subject on the same connection renews it in
// place. When a claim expires, each link bound to it is rebound to another
// live claim that covers it, or detached with amqp:unauthorized-access.
// The connection itself stays open, so the client can put a new token.

// maxClaims bounds the claims one connection may hold (each put-token for a
// new audience adds one).
const maxClaims = 1000

// Claim is one authorization a connection holds. A service claim comes
// from a shared access policy's token; a device claim from a device's or
// module's own token, or from its certificate.
type Claim struct {
	Policy   string       // service claims: the shared access policy; "" for a device claim
	Rights   hub.Rights   // service claims: the policy's rights
	Scope    string       // service claims: the path the token covers, lower case ("" is the whole hub)
	Identity hub.Identity // device claims: the device or module
	Method   string       // "sas" or "x509"
	Audience string       // as the client put it (the SASL user name for PLAIN)

	token    string    // the token; a DeviceConnect policy's claim authorizes devices with it
	deadline time.Time // when the claim lapses (token expiry plus clock skew); zero: never
	timer    *clock.Timer
}

// Service reports whether c is a service (policy) claim.
func (c *Claim) Service() bool { return c.Policy != "" }

// Deadline is when the claim lapses; zero for one that never does (X.509).
func (c *Claim) Deadline() time.Time { return c.deadline }

func (c *Claim) String() string {
	if c.Service() {
		return fmt.Sprintf("policy %s on /%s", c.Policy, c.Scope)
	}
	return fmt.Sprintf("%s %s", c.Method, c.Identity)
}

// sameSubject reports whether o renews c.
func (c *Claim) sameSubject(o *Claim) bool {
	if c.Service() != o.Service() {
		return false
	}
	if c.Service() {
		return c.Policy == o.Policy && c.Scope == o.Scope
	}
	return c.Identity == o.Identity && c.Method == o.Method
}

func (c *Claim) stopTimer() {
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
}

// Need is what attaching a link requires: a service claim with Rights whose
// scope covers Resource, or, when Device is set, a claim for that device or
// module (its own token or certificate, or a token of a policy with
// DeviceConnect that covers it).
type Need struct {
	Rights   hub.Rights
	Resource string // lower case, no leading slash: "messages/devicebound", "{eventhub}/consumergroups/{cg}/partitions/{p}"
	Device   *hub.Identity
}

func (n Need) String() string {
	if n.Device != nil {
		return "device " + n.Device.String()
	}
	return fmt.Sprintf("%s on /%s", n.Rights, n.Resource)
}

// binding is a link and what it needs, bound to the claim that grants it.
type binding struct {
	need  Need
	claim *Claim
}

// covers reports whether scope covers resource by whole path segments.
func covers(scope, resource string) bool {
	return scope == "" || resource == scope || strings.HasPrefix(resource, scope+"/")
}

// grants reports whether c grants need without asking the hub: a device's
// or module's own claim, or a policy claim with the rights and scope.
func (c *Claim) grants(need Need) bool {
	if need.Device != nil {
		return !c.Service() && c.Identity == *need.Device
	}
	return c.Service() && c.Rights&need.Rights == need.Rights && covers(c.Scope, need.Resource)
}

// addClaim adds cl to the connection, or renews the claim for the same
// subject, and arms its expiry on the hub's clock.
func (c *conn) addClaim(cl *Claim) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gone {
		return nil
	}
	for _, old := range c.claims {
		if old.sameSubject(cl) {
			old.stopTimer()
			old.Rights, old.Audience, old.token, old.deadline = cl.Rights, cl.Audience, cl.token, cl.deadline
			c.armLocked(old)
			c.log.Debug("amqp: claim renewed", "claim", old.String(), "until", old.deadline)
			return nil
		}
	}
	if len(c.claims) >= maxClaims {
		return fmt.Errorf("the connection already holds %d claims; close it and start another", maxClaims)
	}
	c.claims = append(c.claims, cl)
	c.armLocked(cl)
	c.log.Debug("amqp: claim added", "claim", cl.String(), "until", cl.deadline)
	return nil
}

func (c *conn) armLocked(cl *Claim) {
	if cl.deadline.IsZero() {
		return
	}
	clk := c.srv.hub.Clock()
	cl.timer = clk.AfterFunc(cl.deadline.Sub(clk.Now()), func() { c.expire(cl) })
}

// expire drops a lapsed claim and rebinds or detaches its links.
func (c *conn) expire(cl *Claim) {
	c.mu.Lock()
	if c.gone || c.srv.hub.Now().Before(cl.deadline) {
		c.mu.Unlock() // renewed meanwhile: its new timer is armed
		return
	}
	for i, x := range c.claims {
		if x == cl {
			c.claims = append(c.claims[:i], c.claims[i+1:]...)
			break
		}
	}
	var orphans []*amqp.Link
	for l, b := range c.bound {
		if b.claim == cl {
			orphans = append(orphans, l)
		}
	}
	c.mu.Unlock()
	c.log.Debug("amqp: claim expired", "claim", cl.String(), "links", len(orphans))
	for _, l := range orphans {
		c.mu.Lock()
		need := c.bound[l].need
		c.mu.Unlock()
		if _, err := c.authorize(l, need); err != nil {
			l.Detach(amqp.Errorf(amqp.ErrUnauthorizedAccess, "the token that authorized this link (%s) has expired; put a new one on $cbs", cl))
		}
	}
	if !cl.Service() {
		c.deviceClaimLapsed(cl)
	}
}

// authorize finds a live claim that grants need and binds l to it, so that
// l is detached when no claim grants it any more. Without one it returns
// amqp:unauthorized-access. A device need may be granted on the spot by
// the connection's TLS client certificate (an X.509 device sends no token)
// or by a DeviceConnect policy's claim, both checked by the hub.
func (c *conn) authorize(l *amqp.Link, need Need) (*Claim, error) {
	c.mu.Lock()
	var found *Claim
	var policies []*Claim
	for _, cl := range c.claims {
		if cl.grants(need) {
			found = cl
			break
		}
		if need.Device != nil && cl.Service() && cl.Rights&hub.DeviceConnect != 0 {
			policies = append(policies, cl)
		}
	}
	certs := c.peerCerts
	c.mu.Unlock()
	if found == nil && need.Device != nil {
		found = c.deviceClaim(*need.Device, policies, certs)
	}
	if found == nil {
		return nil, amqp.Errorf(amqp.ErrUnauthorizedAccess, "this connection holds no claim for %s: put a token for it on $cbs first", need)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gone {
		return nil, amqp.Errorf(amqp.ErrUnauthorizedAccess, "the connection has ended")
	}
	_, known := c.bound[l]
	c.bound[l] = &binding{need: need, claim: found}
	if !known {
		go func() {
			<-l.Done()
			c.mu.Lock()
			delete(c.bound, l)
			c.mu.Unlock()
		}()
	}
	return found, nil
}

// deviceClaim asks the hub whether a policy claim's token, or the client
// certificate, authenticates id, and records the claim that does.
func (c *conn) deviceClaim(id hub.Identity, policies []*Claim, certs []*x509.Certificate) *Claim {
	for _, p := range policies {
		auth, err := c.srv.hub.AuthenticateDevice(id, p.token, nil)
		if err == nil && auth.Method != "" {
			return p
		}
	}
	if len(certs) == 0 {
		return nil
	}
	if _, err := c.srv.hub.AuthenticateDevice(id, "", certs); err != nil {
		c.log.Info("amqp: client certificate refused", "identity", id.String(), "err", err)
		return nil
	}
	cl := &Claim{Identity: id, Method: "x509", Audience: id.String()}
	if err := c.addClaim(cl); err != nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, x := range c.claims { // addClaim may have renewed an older one
		if x.sameSubject(cl) {
			return x
		}
	}
	return nil
}

// Claims returns a copy of the connection's live claims.
func (c *conn) Claims() []Claim {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Claim, 0, len(c.claims))
	for _, cl := range c.claims {
		cp := *cl
		cp.timer = nil
		out = append(out, cp)
	}
	return out
}
