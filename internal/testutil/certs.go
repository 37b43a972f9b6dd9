// SPDX-License-Identifier: MIT

package testutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	_ "embed"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"strings"
	"sync"
	"time"
)

// The fixed test CA: the same certificate and key on every run, so that a
// failure can be reproduced and CA files can be compared across tests. It
// is valid from 2020 to 2120. Regenerate with
// `go test ./internal/testutil -run TestFixedCA -update`.
var (
	//go:embed testdata/ca.pem
	fixedCAPEM []byte
	//go:embed testdata/ca.key
	fixedCAKey []byte
)

// CA is a certificate authority for tests: it signs device (client) and
// server certificates.
type CA struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
	PEM  []byte         // the CA certificate, PEM-encoded
	Pool *x509.CertPool // a pool holding only this CA
}

var fixed = sync.OnceValue(func() *CA {
	ca, err := parseCA(fixedCAPEM, fixedCAKey)
	if err != nil {
		panic("testutil: the fixed CA in testdata is unusable: " + err.Error())
	}
	return ca
})

// FixedCA returns the fixed test CA kept in testdata.
func FixedCA() *CA { return fixed() }

func parseCA(certPEM, keyPEM []byte) (*CA, error) {
	cb, _ := pem.Decode(certPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || kb == nil {
		return nil, fmt.Errorf("no PEM block")
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, err
	}
	key, err := x509.ParseECPrivateKey(kb.Bytes)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &CA{Cert: cert, Key: key, PEM: certPEM, Pool: pool}, nil
}

// NewCA makes a fresh CA, valid for a day: for a CA the code under test
// must not trust.
func NewCA(commonName string) (*CA, error) {
	now := time.Now()
	return newCA(commonName, now.Add(-time.Hour), now.Add(24*time.Hour))
}

func newCA(commonName string, notBefore, notAfter time.Time) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	return parseCA(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), mustKeyPEM(key))
}

func mustKeyPEM(key *ecdsa.PrivateKey) []byte {
	b, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		panic(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: b})
}

// Issue returns a leaf certificate for commonName signed by ca, valid from
// an hour ago for a day. With hosts (DNS names or IP addresses) it is a
// server certificate; without, a client certificate as a device presents.
func (ca *CA) Issue(commonName string, hosts ...string) (tls.Certificate, error) {
	now := time.Now()
	return ca.IssueAt(commonName, now.Add(-time.Hour), now.Add(24*time.Hour), hosts...)
}

// IssueAt is Issue with an explicit validity, for code whose clock is not
// the wall clock.
func (ca *CA) IssueAt(commonName string, notBefore, notAfter time.Time, hosts ...string) (tls.Certificate, error) {
	return issue(commonName, notBefore, notAfter, ca.Cert, ca.Key, hosts)
}

// IssueCA returns an intermediate CA signed by ca.
func (ca *CA) IssueCA(commonName string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: commonName},
		NotBefore: now.Add(-time.Hour), NotAfter: ca.Cert.NotAfter,
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return nil, err
	}
	return parseCA(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), mustKeyPEM(key))
}

// SelfSigned returns a self-signed client certificate for commonName, as
// an X.509 device registered by thumbprint presents.
func SelfSigned(commonName string) (tls.Certificate, error) {
	now := time.Now()
	return issue(commonName, now.Add(-time.Hour), now.Add(24*time.Hour), nil, nil, nil)
}

func issue(commonName string, notBefore, notAfter time.Time, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, hosts []string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: commonName},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if len(hosts) > 0 {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	signer, signerKey := tmpl, key
	if parent != nil {
		signer, signerKey = parent, parentKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("testutil: issue %s: %w", commonName, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// Thumbprint is a certificate's SHA-1 thumbprint as the registry stores
// it: upper-case hex.
func Thumbprint(c tls.Certificate) string {
	sum := sha1.Sum(c.Certificate[0])
	return strings.ToUpper(hex.EncodeToString(sum[:]))
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	return n
}

// SelfSignedAt is SelfSigned with an explicit validity.
func SelfSignedAt(commonName string, notBefore, notAfter time.Time) (tls.Certificate, error) {
	return issue(commonName, notBefore, notAfter, nil, nil, nil)
}
