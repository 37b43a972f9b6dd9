// SPDX-License-Identifier: MIT

package dps

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"strings"

	"github.com/iothubemulator/iothub/emulator/internal/store"
	"github.com/iothubemulator/iothub/internal/sas"
)

// Credentials are what a device presents to the device API: the ID scope
// and registration id it names (in the MQTT username or the URL path), and
// a SAS token or the client certificate chain of its TLS connection.
type Credentials struct {
	IDScope        string
	RegistrationID string
	Token          string              // "SharedAccessSignature sr=...&skn=registration..."; "" for X.509
	Chain          []*x509.Certificate // leaf first
}

// Attestation is a device that proved who it is, and the enrollment that
// vouched for it.
type Attestation struct {
	RegistrationID string
	Type           string                // AttestationSymmetricKey or AttestationX509
	Individual     *IndividualEnrollment // the enrollment, or nil for a group
	Group          *EnrollmentGroup      // the group, or nil for an individual enrollment

	keys        [2]string            // symmetric keys the hub identity gets (derived for a group)
	thumbprints []string             // X.509: thumbprints the hub identity gets
	leafInfo    *X509CertificateInfo // X.509: the device's certificate
	signingInfo *X509CertificateInfo // X.509 group: the enrolled CA it chains to
}

// GroupID is the enrollment group's id, "" for an individual enrollment.
func (a *Attestation) GroupID() string {
	if a.Group != nil {
		return a.Group.EnrollmentGroupID
	}
	return ""
}

// Authenticate attests a device. An individual enrollment for the
// registration id decides alone, even when disabled (that is how the
// service lets one device of a group be refused); otherwise the first
// enabled group, in id order, whose key or CA attests the device does.
// Every failure is 401002; an id that is not well formed is 400.
func (s *Service) Authenticate(c Credentials) (*Attestation, error) {
	if err := ValidateID("registration id", c.RegistrationID); err != nil {
		return nil, err
	}
	if c.IDScope != s.cfg.IDScope {
		return nil, Unauthorized("Unauthorized: the ID scope '%s' is not this provisioning service's (%s).", c.IDScope, s.cfg.IDScope)
	}
	var ind *IndividualEnrollment
	var groups []*EnrollmentGroup
	err := s.db.View(func(tx *store.Tx) error {
		var e IndividualEnrollment
		ok, err := load(tx, store.DPSEnrollments, c.RegistrationID, &e)
		if err != nil {
			return err
		}
		if ok {
			ind = &e
			return nil
		}
		return tx.ForEach(store.DPSGroups, "", "", func(_ string, v []byte) error {
			var g EnrollmentGroup
			if err := json.Unmarshal(v, &g); err != nil {
				return err
			}
			groups = append(groups, &g)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	switch {
	case c.Token != "":
		return s.attestKey(c, ind, groups)
	case len(c.Chain) > 0:
		return s.attestCertificate(c, ind, groups)
	}
	return nil, Unauthorized("Unauthorized: no credentials; sign a SAS token with the enrollment's key or present a client certificate.")
}

// attestKey checks a registration SAS token: resource
// {idScope}/registrations/{registrationId}, key name "registration",
// signed with the individual enrollment's key or the key derived from a
// group's.
func (s *Service) attestKey(c Credentials, ind *IndividualEnrollment, groups []*EnrollmentGroup) (*Attestation, error) {
	tok, err := sas.ParseToken(c.Token)
	if err != nil {
		return nil, Unauthorized("Unauthorized: %v", err)
	}
	if want := sas.RegistrationResource(c.IDScope, c.RegistrationID); !strings.EqualFold(tok.Resource, want) {
		return nil, Unauthorized("Unauthorized: the token's resource is '%s', not '%s'.", tok.Resource, want)
	}
	if tok.KeyName != sas.RegistrationKeyName {
		return nil, Unauthorized("Unauthorized: the token's key name is '%s'; registration tokens use '%s'.", tok.KeyName, sas.RegistrationKeyName)
	}
	if tok.Expired(s.Now(), sas.DefaultSkew) {
		return nil, Unauthorized("Unauthorized: the token expired at %s.", tok.Expiry.Format(timeLayout))
	}
	if ind != nil {
		if ind.Attestation.Type != AttestationSymmetricKey {
			return nil, Unauthorized("Unauthorized: enrollment %s attests with %s, not a symmetric key.", ind.RegistrationID, ind.Attestation.Type)
		}
		k := ind.Attestation.SymmetricKey
		if !tok.Verify(k.PrimaryKey) && !tok.Verify(k.SecondaryKey) {
			return nil, Unauthorized("Unauthorized: the token is not signed with enrollment %s's key.", ind.RegistrationID)
		}
		if ind.ProvisioningStatus == StatusDisabled {
			return nil, Unauthorized("Unauthorized: enrollment %s is disabled.", ind.RegistrationID)
		}
		return &Attestation{RegistrationID: c.RegistrationID, Type: AttestationSymmetricKey, Individual: ind,
			keys: [2]string{k.PrimaryKey, k.SecondaryKey}}, nil
	}
	for _, g := range groups {
		if g.Attestation.Type != AttestationSymmetricKey {
			continue
		}
		p, err1 := sas.DeriveDeviceKey(g.Attestation.SymmetricKey.PrimaryKey, c.RegistrationID)
		q, err2 := sas.DeriveDeviceKey(g.Attestation.SymmetricKey.SecondaryKey, c.RegistrationID)
		if err1 != nil || err2 != nil || (!tok.Verify(p) && !tok.Verify(q)) {
			continue
		}
		if g.ProvisioningStatus == StatusDisabled {
			return nil, Unauthorized("Unauthorized: enrollment group %s is disabled.", g.EnrollmentGroupID)
		}
		return &Attestation{RegistrationID: c.RegistrationID, Type: AttestationSymmetricKey, Group: g, keys: [2]string{p, q}}, nil
	}
	return nil, Unauthorized("Unauthorized: no enrollment of ID scope %s attests registration %s with this key.", c.IDScope, c.RegistrationID)
}

// attestCertificate checks the TLS client certificate: its subject common
// name is the registration id, and it is an individual enrollment's
// certificate or chains to an enrollment group's CA.
func (s *Service) attestCertificate(c Credentials, ind *IndividualEnrollment, groups []*EnrollmentGroup) (*Attestation, error) {
	leaf := c.Chain[0]
	now := s.Now()
	if now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
		return nil, Unauthorized("Invalid certificate: it is valid from %s to %s.", leaf.NotBefore.UTC().Format(timeLayout), leaf.NotAfter.UTC().Format(timeLayout))
	}
	if !strings.EqualFold(leaf.Subject.CommonName, c.RegistrationID) {
		return nil, Unauthorized("Invalid certificate: its subject common name '%s' is not the registration id '%s'.", leaf.Subject.CommonName, c.RegistrationID)
	}
	if ind != nil {
		x := ind.Attestation.X509
		if ind.Attestation.Type != AttestationX509 || x == nil || x.ClientCertificates == nil {
			return nil, Unauthorized("Unauthorized: enrollment %s attests with %s, not a client certificate.", ind.RegistrationID, ind.Attestation.Type)
		}
		var match bool
		var tps []string
		for _, slot := range []*X509CertificateWithInfo{x.ClientCertificates.Primary, x.ClientCertificates.Secondary} {
			if enrolled := slotCertificate(slot); enrolled != nil {
				tps = append(tps, thumbprint(enrolled))
				match = match || bytes.Equal(enrolled.Raw, leaf.Raw)
			}
		}
		if !match {
			return nil, Unauthorized("Invalid certificate: it is not enrollment %s's certificate.", ind.RegistrationID)
		}
		if ind.ProvisioningStatus == StatusDisabled {
			return nil, Unauthorized("Unauthorized: enrollment %s is disabled.", ind.RegistrationID)
		}
		return &Attestation{RegistrationID: c.RegistrationID, Type: AttestationX509, Individual: ind, thumbprints: tps,
			leafInfo: certificateInfo(leaf)}, nil
	}
	inter := x509.NewCertPool()
	for _, ic := range c.Chain[1:] {
		inter.AddCert(ic)
	}
	for _, g := range groups {
		x := g.Attestation.X509
		if g.Attestation.Type != AttestationX509 || x == nil || x.SigningCertificates == nil {
			continue
		}
		for _, slot := range []*X509CertificateWithInfo{x.SigningCertificates.Primary, x.SigningCertificates.Secondary} {
			ca := slotCertificate(slot)
			if ca == nil {
				continue
			}
			roots := x509.NewCertPool()
			roots.AddCert(ca)
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now,
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
				continue
			}
			if g.ProvisioningStatus == StatusDisabled {
				return nil, Unauthorized("Unauthorized: enrollment group %s is disabled.", g.EnrollmentGroupID)
			}
			return &Attestation{RegistrationID: c.RegistrationID, Type: AttestationX509, Group: g,
				thumbprints: []string{thumbprint(leaf)}, leafInfo: certificateInfo(leaf), signingInfo: certificateInfo(ca)}, nil
		}
	}
	return nil, Unauthorized("Invalid certificate: it is not enrolled and chains to no enrolled CA of ID scope %s.", c.IDScope)
}

// thumbprint is the SHA-256 thumbprint the hub identity is given; the hub
// accepts SHA-1 or SHA-256.
func thumbprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return strings.ToUpper(hex.EncodeToString(sum[:]))
}
