// SPDX-License-Identifier: MIT

package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// provisioningEnv is the environment of the Node SDK provisioning tests
// (e2e/node/tests/provisioning.test.js): the provisioning host, ID scope
// and service connection string the emulator printed, and X.509 material
// written to a temporary directory, since Node cannot make certificates:
//
//	X509_SELF_CERT, X509_SELF_KEY  a self-signed device certificate, CN node-x509-self (amqp-device.test.js registers a device by its thumbprint too)
//	X509_CA_CERT                   a CA for an enrollment group
//	X509_GROUP_CERT, X509_GROUP_KEY a device certificate the CA issued, CN node-x509-member, chain included
func provisioningEnv(t *testing.T, host, idScope, connString string) []string {
	t.Helper()
	if host == "" || idScope == "" || connString == "" {
		t.Fatalf("the banner did not name the provisioning host (%q), ID scope (%q) and connection string (%q)", host, idScope, connString)
	}
	dir := t.TempDir()
	write := func(name string, blocks ...*pem.Block) string {
		var b []byte
		for _, bl := range blocks {
			b = append(b, pem.EncodeToMemory(bl)...)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	keyBlock := func(k *ecdsa.PrivateKey) *pem.Block {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return &pem.Block{Type: "PRIVATE KEY", Bytes: der}
	}
	certBlock := func(der []byte) *pem.Block { return &pem.Block{Type: "CERTIFICATE", Bytes: der} }

	selfDER, selfKey := makeCert(t, "node-x509-self", nil, nil, false)
	caDER, caKey := makeCert(t, "node e2e fleet CA", nil, nil, true)
	ca, _ := x509.ParseCertificate(caDER)
	memberDER, memberKey := makeCert(t, "node-x509-member", ca, caKey, false)
	return []string{
		"PROVISIONING_HOST=" + host,
		"ID_SCOPE=" + idScope,
		"DPS_CONNECTION_STRING=" + connString,
		"X509_SELF_CERT=" + write("self.pem", certBlock(selfDER)),
		"X509_SELF_KEY=" + write("self-key.pem", keyBlock(selfKey)),
		"X509_CA_CERT=" + write("ca.pem", certBlock(caDER)),
		"X509_GROUP_CERT=" + write("member.pem", certBlock(memberDER), certBlock(caDER)),
		"X509_GROUP_KEY=" + write("member-key.pem", keyBlock(memberKey)),
	}
}

// makeCert returns a certificate for cn (a CA when isCA), signed by
// parent or self-signed, and its key.
func makeCert(t *testing.T, cn string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, isCA bool) ([]byte, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		BasicConstraintsValid: true,
	}
	if isCA {
		tmpl.IsCA = true
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature
	} else {
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	signer, signerKey := tmpl, key
	if parent != nil {
		signer, signerKey = parent, parentKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, key.Public(), signerKey)
	if err != nil {
		t.Fatal(err)
	}
	return der, key
}
