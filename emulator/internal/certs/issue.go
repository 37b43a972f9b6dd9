// SPDX-License-Identifier: MIT

package certs

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"time"
)

const (
	caValidity     = 10 * 365 * 24 * time.Hour
	leafValidity   = 365 * 24 * time.Hour
	renewBefore    = 30 * 24 * time.Hour
	backdate       = time.Hour // tolerate client clocks a little behind ours
	organization   = "IoT Hub Emulator"
	defaultCAName  = "IoT Hub Emulator Local CA"
	pemCertificate = "CERTIFICATE"
	pemPrivateKey  = "PRIVATE KEY"
)

// CA is a certificate authority that issues certificates. Ensure uses one for
// the server certificate; tests use NewCA to issue X.509 device certificates.
type CA struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	parents [][]byte // DER of the CAs above an intermediate, nearest first
}

// NewCA creates a self-signed CA named commonName, valid for ten years from
// now (backdated by an hour).
func NewCA(commonName string, now time.Time) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("certs: generate CA key: %w", err)
	}
	tmpl, err := template(commonName, now, caValidity)
	if err != nil {
		return nil, err
	}
	tmpl.IsCA = true
	tmpl.BasicConstraintsValid = true
	tmpl.MaxPathLenZero = true // issues leaves only
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
	cert, err := create(tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	return &CA{cert: cert, key: key}, nil
}

// NewRootCA creates a self-signed CA that may sign intermediate CAs (see
// IssueCA), for tests of certificate chains.
func NewRootCA(commonName string, now time.Time) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("certs: generate CA key: %w", err)
	}
	tmpl, err := template(commonName, now, caValidity)
	if err != nil {
		return nil, err
	}
	tmpl.IsCA = true
	tmpl.BasicConstraintsValid = true
	tmpl.MaxPathLen = 2
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
	cert, err := create(tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	return &CA{cert: cert, key: key}, nil
}

// IssueCA returns an intermediate CA signed by ca, which must come from
// NewRootCA. Certificates the intermediate issues carry the whole chain
// (leaf, intermediate, root), as devices of a CA-signed fleet present it.
func (ca *CA) IssueCA(commonName string, now time.Time) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("certs: generate CA key: %w", err)
	}
	tmpl, err := template(commonName, now, caValidity)
	if err != nil {
		return nil, err
	}
	ca.capValidity(tmpl)
	tmpl.IsCA = true
	tmpl.BasicConstraintsValid = true
	tmpl.MaxPathLenZero = true
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
	cert, err := create(tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		return nil, err
	}
	return &CA{cert: cert, key: key, parents: append([][]byte{ca.cert.Raw}, ca.parents...)}, nil
}

// Certificate returns the CA certificate.
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// CertPEM returns the CA certificate in PEM form, for trust stores and for
// registering the CA with the emulator.
func (ca *CA) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: pemCertificate, Bytes: ca.cert.Raw})
}

// Issue returns a client certificate for X.509 device authentication:
// subject CN=commonName (the device id), extended key usage client auth,
// valid for a year, signed by ca. The chain holds the leaf and then the CA
// certificate (and, for an intermediate, the CAs above it), so a verifier
// that only knows the root can build the path.
func (ca *CA) Issue(commonName string, now time.Time) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("certs: generate key: %w", err)
	}
	tmpl, err := clientTemplate(commonName, now)
	if err != nil {
		return tls.Certificate{}, err
	}
	ca.capValidity(tmpl)
	leaf, err := create(tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		return tls.Certificate{}, err
	}
	chain := append([][]byte{leaf.Raw, ca.cert.Raw}, ca.parents...)
	return tls.Certificate{Certificate: chain, PrivateKey: key, Leaf: leaf}, nil
}

// capValidity keeps a certificate from outliving its issuer, which
// verifiers would reject.
func (ca *CA) capValidity(tmpl *x509.Certificate) {
	if tmpl.NotAfter.After(ca.cert.NotAfter) {
		tmpl.NotAfter = ca.cert.NotAfter
	}
}

// issueServer returns a server certificate for sans signed by ca.
func (ca *CA) issueServer(sans sanSet, now time.Time) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: generate server key: %w", err)
	}
	tmpl, err := template(sans.commonName(), now, leafValidity)
	if err != nil {
		return nil, nil, err
	}
	ca.capValidity(tmpl)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	tmpl.BasicConstraintsValid = true
	tmpl.DNSNames = sans.dns
	for _, ip := range sans.ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(ip))
	}
	cert, err := create(tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		return nil, nil, err
	}
	return cert, key, nil
}

// SelfSigned returns a self-signed client certificate with subject
// CN=commonName, for devices registered with x509 thumbprints.
func SelfSigned(commonName string, now time.Time) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("certs: generate key: %w", err)
	}
	tmpl, err := clientTemplate(commonName, now)
	if err != nil {
		return tls.Certificate{}, err
	}
	leaf, err := create(tmpl, tmpl, key.Public(), key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf}, nil
}

// EncodePEM returns the certificate chain and the private key of cert in PEM
// form (PKCS #8 key), as Node.js and Python clients load them from files.
func EncodePEM(cert tls.Certificate) (certPEM, keyPEM []byte, err error) {
	for _, der := range cert.Certificate {
		certPEM = append(certPEM, pem.EncodeToMemory(&pem.Block{Type: pemCertificate, Bytes: der})...)
	}
	if keyPEM, err = encodeKey(cert.PrivateKey); err != nil {
		return nil, nil, err
	}
	return certPEM, keyPEM, nil
}

func encodeKey(key crypto.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("certs: encode private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPrivateKey, Bytes: der}), nil
}

func clientTemplate(commonName string, now time.Time) (*x509.Certificate, error) {
	tmpl, err := template(commonName, now, leafValidity)
	if err != nil {
		return nil, err
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	tmpl.BasicConstraintsValid = true
	return tmpl, nil
}

// template returns the fields every certificate here shares.
func template(commonName string, now time.Time, validity time.Duration) (*x509.Certificate, error) {
	// RFC 5280 §4.1.2.2: positive, at most 20 octets; 128 random bits is ample.
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("certs: serial number: %w", err)
	}
	serial.Add(serial, big.NewInt(1))
	return &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: commonName, Organization: []string{organization}},
		NotBefore:    now.Add(-backdate).UTC(),
		NotAfter:     now.Add(validity).UTC(),
	}, nil
}

func create(tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) (*x509.Certificate, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		return nil, fmt.Errorf("certs: create certificate %q: %w", tmpl.Subject.CommonName, err)
	}
	return x509.ParseCertificate(der)
}
