// SPDX-License-Identifier: MIT

package certs

import (
	"bytes"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
)

// LoadFiles loads a user-supplied server certificate chain (certFile, PEM,
// leaf first) and its private key (keyFile, PEM: PKCS #8, PKCS #1 or SEC 1).
// When the chain ends in a self-signed certificate (a root, or a self-signed
// leaf), CAPEM and Pool hold it; otherwise they are nil and clients need the
// issuing CA from elsewhere. CAFile is always empty. Errors are one line
// naming the file and the problem.
func LoadFiles(certFile, keyFile string) (*Material, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("certs: cannot read certificate file: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("certs: cannot read key file: %w", err)
	}
	chain, err := parseCertificates(certFile, certPEM)
	if err != nil {
		return nil, err
	}
	key, err := parsePrivateKey(keyFile, keyPEM)
	if err != nil {
		return nil, err
	}
	pub, ok := key.(interface{ Public() crypto.PublicKey })
	if !ok {
		return nil, fmt.Errorf("certs: %s: unsupported private key type %T", keyFile, key)
	}
	if eq, ok := pub.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !eq.Equal(chain[0].PublicKey) {
		return nil, fmt.Errorf("certs: %s does not match the certificate in %s", keyFile, certFile)
	}

	m := &Material{Server: tls.Certificate{PrivateKey: key, Leaf: chain[0]}}
	for _, c := range chain {
		m.Server.Certificate = append(m.Server.Certificate, c.Raw)
	}
	if root := chain[len(chain)-1]; isSelfSigned(root) {
		m.CAPEM = pem.EncodeToMemory(&pem.Block{Type: pemCertificate, Bytes: root.Raw})
		m.Pool = x509.NewCertPool()
		m.Pool.AddCert(root)
	}
	return m, nil
}

// isSelfSigned checks the signature directly: CheckSignatureFrom refuses
// parents that are not CAs, and a self-signed leaf is not one.
func isSelfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawIssuer, c.RawSubject) &&
		c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature) == nil
}

// parseCertificates returns every CERTIFICATE block in data, in order.
func parseCertificates(name string, data []byte) ([]*x509.Certificate, error) {
	var chain []*x509.Certificate
	for rest := data; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if b.Type != pemCertificate {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certs: %s: certificate %d: %w", name, len(chain)+1, err)
		}
		chain = append(chain, c)
	}
	if len(chain) == 0 {
		return nil, fmt.Errorf("certs: %s: no PEM CERTIFICATE block found", name)
	}
	return chain, nil
}

// parsePrivateKey returns the first private key in data.
func parsePrivateKey(name string, data []byte) (crypto.PrivateKey, error) {
	for rest := data; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			return nil, fmt.Errorf("certs: %s: no PEM PRIVATE KEY block found", name)
		}
		switch {
		case b.Type == "ENCRYPTED PRIVATE KEY" || b.Headers["Proc-Type"] != "":
			return nil, fmt.Errorf("certs: %s: encrypted private keys are not supported", name)
		case !strings.HasSuffix(b.Type, "PRIVATE KEY"):
			continue
		}
		key, err := parseKeyDER(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certs: %s: %w", name, err)
		}
		return key, nil
	}
}

func parseKeyDER(der []byte) (crypto.PrivateKey, error) {
	if k, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		return k, nil
	}
	if k, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return k, nil
	}
	if k, err := x509.ParseECPrivateKey(der); err == nil {
		return k, nil
	}
	return nil, errors.New("private key is not PKCS #8, PKCS #1 or SEC 1 DER")
}
