// SPDX-License-Identifier: MIT

package hub

import (
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/huberr"
	"github.com/iothubemulator/iothub/emulator/internal/store"
	"github.com/iothubemulator/iothub/internal/sas"
)

// ClockSkew is how long after its expiry a token is still accepted: the
// hub's validator allows five minutes (iothub-protocol.md §2.2).
const ClockSkew = 5 * time.Minute

// ErrAuth is wrapped by every authentication failure, so adapters can map it
// to their "not authorized" answer without looking inside.
var ErrAuth = errors.New("not authorized")

func authErr(format string, args ...any) error {
	return denied(huberr.Unauthorized(format, args...))
}

// denied marks e, the hub's answer, as an authentication failure. The
// message stays on one line ("not authorized: ..."), since adapters log it.
func denied(e error) error { return fmt.Errorf("%w: %w", ErrAuth, e) }

// ServiceCaller is who made a service request.
type ServiceCaller struct {
	Policy string
	Rights Rights
}

// hostAccepted reports whether a SAS resource host names this hub.
func (h *Hub) hostAccepted(host string) bool {
	host = strings.ToLower(host)
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.Contains(host[i:], "]") {
		host = host[:i]
	}
	for _, x := range h.hosts {
		if host == x {
			return true
		}
	}
	return false
}

// resourceHost returns the host part of a decoded SAS resource.
func resourceHost(sr string) string {
	if i := strings.IndexByte(sr, '/'); i >= 0 {
		return sr[:i]
	}
	return sr
}

// AuthorizeService checks an Authorization header value for a service
// route that needs the given rights. Failures are 401 with the hub's body
// and say no more than the hub does.
func (h *Hub) AuthorizeService(header string, need Rights) (ServiceCaller, error) {
	c, err := h.authenticateService(header)
	if err != nil {
		return c, err
	}
	if c.Rights&need != need {
		return ServiceCaller{}, lacks(c.Policy, need&^c.Rights)
	}
	return c, nil
}

// AuthorizeServiceAny is AuthorizeService for a route that any one of the
// rights in anyOf opens.
func (h *Hub) AuthorizeServiceAny(header string, anyOf Rights) (ServiceCaller, error) {
	c, err := h.authenticateService(header)
	if err != nil {
		return c, err
	}
	if c.Rights&anyOf == 0 {
		// Name the first right the route accepts, as the hub names one.
		for _, n := range rightNames {
			if anyOf&n.r != 0 {
				return ServiceCaller{}, lacks(c.Policy, n.r)
			}
		}
	}
	return c, nil
}

func lacks(policy string, missing Rights) error {
	return denied(huberr.UnauthorizedAccess("Unauthorized: the policy %s lacks %s.", policy, missing.String()))
}

// authenticateService checks a service token: policy, signature, expiry and
// host. The token is parsed and verified once, whatever rights are asked.
func (h *Hub) authenticateService(header string) (ServiceCaller, error) {
	if header == "" {
		return ServiceCaller{}, denied(huberr.UnauthorizedAccess("Unauthorized"))
	}
	tok, err := sas.ParseToken(header)
	if err != nil {
		return ServiceCaller{}, denied(huberr.UnauthorizedAccess("Unauthorized"))
	}
	if tok.KeyName == "" {
		return ServiceCaller{}, denied(huberr.UnauthorizedAccess("Unauthorized"))
	}
	p, ok := h.policies[tok.KeyName]
	if !ok || !(tok.Verify(p.PrimaryKey) || (p.SecondaryKey != "" && tok.Verify(p.SecondaryKey))) {
		return ServiceCaller{}, denied(huberr.UnauthorizedAccess("Unauthorized"))
	}
	// An expired token gets the same answer as any other bad token: the
	// REST surface reports every credential failure as 401002
	// IotHubUnauthorizedAccess "Unauthorized" (iothub-protocol.md §2.5, §6.1).
	if tok.Expired(h.Now(), ClockSkew) {
		return ServiceCaller{}, denied(huberr.UnauthorizedAccess("Unauthorized"))
	}
	host := resourceHost(tok.Resource)
	if !h.hostAccepted(host) || !tok.Covers(host) {
		return ServiceCaller{}, denied(huberr.UnauthorizedAccess("Unauthorized"))
	}
	return ServiceCaller{Policy: p.Name, Rights: p.Rights}, nil
}

// DeviceAuth is a successful device authentication.
type DeviceAuth struct {
	Method string    // "sas" or "x509"
	Expiry time.Time // token expiry; zero for X.509
}

// AuthenticateDevice checks a device or module's credentials: a SAS token
// (signed with the identity's key, or with a policy that has DeviceConnect),
// or an X.509 client certificate chain. The identity must exist and, for a
// device, be enabled.
func (h *Hub) AuthenticateDevice(id Identity, token string, chain []*x509.Certificate) (DeviceAuth, error) {
	var r, dev *record
	err := h.db.View(func(tx *store.Tx) error {
		var err error
		if r, err = loadRecord(tx, id); err != nil || r == nil {
			return err
		}
		if id.ModuleID != "" {
			dev, err = loadRecord(tx, Identity{DeviceID: id.DeviceID})
		} else {
			dev = r
		}
		return err
	})
	if err != nil {
		return DeviceAuth{}, err
	}
	if r == nil || dev == nil {
		return DeviceAuth{}, authErr("Identity %s is not registered.", id)
	}
	if dev.Device.Status != StatusEnabled {
		return DeviceAuth{}, authErr("Device %s is disabled.", id.DeviceID)
	}
	auth := r.Device.authOrNil()
	if r.Module != nil {
		auth = &r.Module.Authentication
	}
	if token != "" {
		return h.checkDeviceToken(id, token, auth)
	}
	if len(chain) > 0 {
		return DeviceAuth{Method: "x509"}, h.checkCertificate(id, chain, auth)
	}
	return DeviceAuth{}, authErr("No credentials were presented.")
}

func (d *Device) authOrNil() *Authentication {
	if d == nil {
		return nil
	}
	return &d.Authentication
}

func (h *Hub) checkDeviceToken(id Identity, token string, auth *Authentication) (DeviceAuth, error) {
	tok, err := sas.ParseToken(token)
	if err != nil {
		return DeviceAuth{}, authErr("The password is not a SAS token: %v", err)
	}
	host := resourceHost(tok.Resource)
	if !h.hostAccepted(host) {
		return DeviceAuth{}, authErr("The token's resource %s does not name this hub.", tok.Resource)
	}
	if !tok.Covers(sas.ResourceURI(host, id.DeviceID, id.ModuleID)) {
		return DeviceAuth{}, authErr("The token's resource %s does not cover %s.", tok.Resource, id)
	}
	var ok bool
	if tok.KeyName != "" {
		p, found := h.policies[tok.KeyName]
		ok = found && p.Rights&DeviceConnect != 0 &&
			(tok.Verify(p.PrimaryKey) || (p.SecondaryKey != "" && tok.Verify(p.SecondaryKey)))
	} else if auth != nil && auth.Type == AuthSAS && auth.SymmetricKey != nil {
		k := auth.SymmetricKey
		ok = tok.Verify(k.PrimaryKey) || tok.Verify(k.SecondaryKey)
	}
	if !ok {
		return DeviceAuth{}, authErr("The token's signature is not valid for %s.", id)
	}
	if tok.Expired(h.Now(), ClockSkew) {
		return DeviceAuth{}, authErr("The token has expired.")
	}
	return DeviceAuth{Method: "sas", Expiry: tok.Expiry}, nil
}

// checkCertificate authenticates an X.509 identity: a selfSigned identity
// by the leaf certificate's thumbprint (SHA-1 or SHA-256), a
// certificateAuthority identity by a chain to a configured CA whose leaf
// common name is the device id.
func (h *Hub) checkCertificate(id Identity, chain []*x509.Certificate, auth *Authentication) error {
	leaf := chain[0]
	if auth == nil {
		return authErr("Identity %s has no authentication.", id)
	}
	now := h.Now()
	if now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
		return authErr("The client certificate is not valid at this time.")
	}
	switch auth.Type {
	case AuthSelfSigned:
		sum1 := sha1.Sum(leaf.Raw)
		sum256 := sha256.Sum256(leaf.Raw)
		got := []string{strings.ToUpper(hex.EncodeToString(sum1[:])), strings.ToUpper(hex.EncodeToString(sum256[:]))}
		t := auth.X509Thumbprint
		for _, want := range []*string{t.PrimaryThumbprint, t.SecondaryThumbprint} {
			if want == nil || *want == "" {
				continue
			}
			for _, g := range got {
				if strings.EqualFold(*want, g) {
					return nil
				}
			}
		}
		return authErr("The client certificate's thumbprint is not registered for %s.", id)
	case AuthCA:
		if h.cfg.DeviceCAs == nil {
			return authErr("No certificate authority is configured.")
		}
		inter := x509.NewCertPool()
		for _, c := range chain[1:] {
			inter.AddCert(c)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: h.cfg.DeviceCAs, Intermediates: inter,
			CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			return authErr("The client certificate does not chain to a registered CA: %v", err)
		}
		want := id.DeviceID
		if id.ModuleID != "" {
			want = id.DeviceID + "/" + id.ModuleID
		}
		if leaf.Subject.CommonName != want && leaf.Subject.CommonName != id.DeviceID {
			return authErr("The client certificate's common name %q is not %q.", leaf.Subject.CommonName, want)
		}
		return nil
	}
	return authErr("Identity %s does not use X.509 authentication.", id)
}

// PolicyToken is a verified shared access policy token.
type PolicyToken struct {
	ServiceCaller
	Expiry time.Time // the token's se
}

// AuthenticatePolicyToken checks a shared access policy's token for a
// resource of this hub: host[/path], optionally with a scheme and a port,
// as AMQP clients write the audiences they put on $cbs ("amqps://host/
// {eventhub}/ConsumerGroups/..."); the token's own resource may be written
// the same way. The token must cover the resource: its path is a prefix of
// the resource's by whole segments, compared without regard to case,
// because the Event Hubs SDKs lower-case the resources they sign. The
// signature may use the key's text as the HMAC key, as Event Hubs clients
// do. Rights are the caller's to check.
func (h *Hub) AuthenticatePolicyToken(token, resource string) (PolicyToken, error) {
	tok, err := sas.ParseToken(token)
	if err != nil {
		return PolicyToken{}, authErr("The token is not a shared access signature: %v", err)
	}
	p, ok := h.policies[tok.KeyName]
	if tok.KeyName == "" || !ok {
		return PolicyToken{}, authErr("The token names no shared access policy of this hub.")
	}
	signed := false
	for _, k := range []string{p.PrimaryKey, p.SecondaryKey} {
		// IoT Hub clients sign with the decoded key, Event Hubs clients
		// with its text: the Event Hub-compatible endpoint takes both.
		if k != "" && (tok.Verify(k) || tok.VerifyKeyText(k)) {
			signed = true
		}
	}
	if !signed {
		return PolicyToken{}, authErr("The token's signature is not valid for policy %s.", p.Name)
	}
	if tok.Expired(h.Now(), ClockSkew) {
		return PolicyToken{}, authErr("The token has expired.")
	}
	tHost, tPath := SplitResource(tok.Resource)
	rHost, rPath := SplitResource(resource)
	if !h.hostAccepted(tHost) || !strings.EqualFold(tHost, rHost) {
		return PolicyToken{}, authErr("The token's resource %s does not name this hub.", tok.Resource)
	}
	tPath, rPath = strings.ToLower(tPath), strings.ToLower(rPath)
	if tPath != "" && rPath != tPath && !strings.HasPrefix(rPath, tPath+"/") {
		return PolicyToken{}, authErr("The token's resource %s does not cover %s.", tok.Resource, resource)
	}
	return PolicyToken{ServiceCaller: ServiceCaller{Policy: p.Name, Rights: p.Rights}, Expiry: tok.Expiry}, nil
}

// SplitResource splits a resource URI as clients write it (host[:port]
// [/path], optionally after "scheme://") into the host without its port
// and the path without leading or trailing slashes.
func SplitResource(uri string) (host, path string) {
	if i := strings.Index(uri, "://"); i >= 0 {
		uri = uri[i+3:]
	}
	host, path, _ = strings.Cut(uri, "/")
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.Contains(host[i:], "]") {
		host = host[:i]
	}
	return strings.ToLower(host), strings.Trim(path, "/")
}
