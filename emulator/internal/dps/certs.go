// SPDX-License-Identifier: MIT

package dps

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"strings"
)

// parseCertificate reads a certificate as the service clients send it:
// PEM text (Node reads the file), base64 of PEM text (the C SDK), or
// base64 of DER (the C# SDK's X509Certificate2 export).
func parseCertificate(s string) (*x509.Certificate, error) {
	s = strings.TrimSpace(s)
	raw := []byte(s)
	if !strings.HasPrefix(s, "-----BEGIN") {
		dec, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, BadRequest("The certificate is neither PEM nor base64.")
		}
		raw = dec
	}
	if bytes.HasPrefix(bytes.TrimSpace(raw), []byte("-----BEGIN")) {
		block, _ := pem.Decode(bytes.TrimSpace(raw))
		if block == nil || block.Type != "CERTIFICATE" {
			return nil, BadRequest("The PEM text holds no CERTIFICATE block.")
		}
		raw = block.Bytes
	}
	c, err := x509.ParseCertificate(raw)
	if err != nil {
		return nil, BadRequest("The certificate cannot be parsed: %v", err)
	}
	return c, nil
}

// certificateInfo is the description the service returns in place of a
// certificate.
func certificateInfo(c *x509.Certificate) *X509CertificateInfo {
	s1 := sha1.Sum(c.Raw)
	s256 := sha256.Sum256(c.Raw)
	return &X509CertificateInfo{
		SubjectName:      c.Subject.String(),
		SHA1Thumbprint:   strings.ToUpper(hex.EncodeToString(s1[:])),
		SHA256Thumbprint: strings.ToUpper(hex.EncodeToString(s256[:])),
		IssuerName:       c.Issuer.String(),
		NotBeforeUTC:     c.NotBefore.UTC().Format(timeLayout),
		NotAfterUTC:      c.NotAfter.UTC().Format(timeLayout),
		SerialNumber:     strings.ToUpper(c.SerialNumber.Text(16)),
		Version:          c.Version,
	}
}

// prepareSlot parses the certificate of one slot and fills in its info;
// the certificate text is kept for attestation and never returned.
func prepareSlot(slot *X509CertificateWithInfo, which string) (*x509.Certificate, error) {
	if slot == nil {
		return nil, nil
	}
	if strings.TrimSpace(slot.Certificate) == "" {
		return nil, BadRequest("The %s certificate is empty.", which)
	}
	c, err := parseCertificate(slot.Certificate)
	if err != nil {
		e := AsError(err)
		return nil, BadRequest("The %s certificate: %s", which, e.Message)
	}
	slot.Info = certificateInfo(c)
	return c, nil
}

// slotCertificate returns the stored certificate of a slot, nil if none.
func slotCertificate(slot *X509CertificateWithInfo) *x509.Certificate {
	if slot == nil || slot.Certificate == "" {
		return nil
	}
	c, err := parseCertificate(slot.Certificate)
	if err != nil {
		return nil
	}
	return c
}

// hideCertificates drops the certificate texts from an attestation, as the
// service does in what it returns.
func hideCertificates(a *AttestationMechanism) {
	if a.X509 == nil {
		return
	}
	x := *a.X509
	for _, set := range []**X509Certificates{&x.ClientCertificates, &x.SigningCertificates} {
		if *set == nil {
			continue
		}
		cp := **set
		for _, slot := range []**X509CertificateWithInfo{&cp.Primary, &cp.Secondary} {
			if *slot != nil {
				s := **slot
				s.Certificate = ""
				*slot = &s
			}
		}
		*set = &cp
	}
	a.X509 = &x
}
