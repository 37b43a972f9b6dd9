// SPDX-License-Identifier: MIT

package certs

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// File names Ensure uses inside its directory.
const (
	CAFileName        = "ca.pem"
	CAKeyFileName     = "ca-key.pem"
	ServerFileName    = "server.pem"
	ServerKeyFileName = "server-key.pem"
)

// Material is the TLS material the emulator serves with.
type Material struct {
	Server tls.Certificate // server certificate chain and key, Leaf set
	CAPEM  []byte          // PEM of the CA certificate; nil when unknown
	CAFile string          // absolute path of ca.pem; empty when not from Ensure
	Pool   *x509.CertPool  // trusts the CA; nil when unknown (use system roots)
}

// Ensure loads or creates TLS material in dir: a CA (ca.pem, ca-key.pem) and
// a server certificate signed by it (server.pem, server-key.pem) whose SANs
// are hosts plus localhost, 127.0.0.1 and ::1.
//
// The CA is created once and then always reused, so clients that trust
// ca.pem keep working; a damaged or expired CA is an error, never silently
// replaced. The server certificate is reused while it is intact, signed by
// the CA, covers exactly the requested SANs and has more than 30 days left;
// otherwise it is re-issued. Private keys are written with mode 0600.
// Ensure is not safe for concurrent use by several processes on one dir.
func Ensure(dir string, hosts []string, now time.Time) (*Material, error) {
	sans, err := newSANSet(hosts)
	if err != nil {
		return nil, err
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return nil, fmt.Errorf("certs: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("certs: %w", err)
	}
	ca, caPEM, err := loadOrCreateCA(dir, now)
	if err != nil {
		return nil, err
	}
	server, err := loadOrIssueServer(dir, ca, sans, now)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	return &Material{Server: server, CAPEM: caPEM, CAFile: filepath.Join(dir, CAFileName), Pool: pool}, nil
}

func loadOrCreateCA(dir string, now time.Time) (*CA, []byte, error) {
	certPath, keyPath := filepath.Join(dir, CAFileName), filepath.Join(dir, CAKeyFileName)
	certPEM, certErr := os.ReadFile(certPath)
	keyPEM, keyErr := os.ReadFile(keyPath)
	switch {
	case errors.Is(certErr, fs.ErrNotExist) && errors.Is(keyErr, fs.ErrNotExist):
		ca, err := NewCA(defaultCAName, now)
		if err != nil {
			return nil, nil, err
		}
		keyPEM, err := encodeKey(ca.key)
		if err != nil {
			return nil, nil, err
		}
		certPEM := ca.CertPEM()
		// Key first: a crash in between leaves no ca.pem, and the next run
		// then fails loudly on the lone key instead of trusting a keyless CA.
		if err := writeFile(keyPath, keyPEM, 0o600); err != nil {
			return nil, nil, err
		}
		if err := writeFile(certPath, certPEM, 0o644); err != nil {
			return nil, nil, err
		}
		return ca, certPEM, nil
	case errors.Is(keyErr, fs.ErrNotExist) && certErr == nil:
		return nil, nil, fmt.Errorf("certs: the CA key %s is missing beside %s: restore it, or %s", keyPath, certPath, newCAHint(dir))
	case errors.Is(certErr, fs.ErrNotExist) && keyErr == nil:
		return nil, nil, fmt.Errorf("certs: the CA certificate %s is missing beside %s: restore it, or %s", certPath, keyPath, newCAHint(dir))
	case certErr != nil:
		return nil, nil, fmt.Errorf("certs: cannot read the CA certificate: %w", certErr)
	case keyErr != nil:
		return nil, nil, fmt.Errorf("certs: cannot read the CA key: %w", keyErr)
	}

	// A damaged CA is never replaced silently: clients trust it.
	chain, err := parseCertificates(certPath, certPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("%w; the CA certificate is damaged: restore it, or %s", err, newCAHint(dir))
	}
	key, err := parsePrivateKey(keyPath, keyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("%w; the CA key is damaged: restore it, or %s", err, newCAHint(dir))
	}
	cert := chain[0]
	ecKey, ok := key.(*ecdsa.PrivateKey)
	if !ok || !ecKey.PublicKey.Equal(cert.PublicKey) {
		return nil, nil, fmt.Errorf("certs: %s does not match the certificate in %s: restore the pair, or %s", keyPath, certPath, newCAHint(dir))
	}
	if !cert.IsCA {
		return nil, nil, fmt.Errorf("certs: %s is not a CA certificate: restore it, or %s", certPath, newCAHint(dir))
	}
	if now.After(cert.NotAfter) {
		return nil, nil, fmt.Errorf("certs: CA certificate %s expired on %s; delete %s and %s to create a new CA",
			certPath, cert.NotAfter.Format(time.DateOnly), CAFileName, CAKeyFileName)
	}
	return &CA{cert: cert, key: ecKey}, certPEM, nil
}

// newCAHint says how to start over with a new CA, and what that costs.
func newCAHint(dir string) string {
	return fmt.Sprintf("delete %s and %s from %s to generate a new CA (clients must then trust the new ca.pem)", CAFileName, CAKeyFileName, dir)
}

func loadOrIssueServer(dir string, ca *CA, sans sanSet, now time.Time) (tls.Certificate, error) {
	certPath, keyPath := filepath.Join(dir, ServerFileName), filepath.Join(dir, ServerKeyFileName)
	if c, ok := loadServer(certPath, keyPath, ca, sans, now); ok {
		return c, nil
	}
	leaf, key, err := ca.issueServer(sans, now)
	if err != nil {
		return tls.Certificate{}, err
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return tls.Certificate{}, err
	}
	if err := writeFile(keyPath, keyPEM, 0o600); err != nil {
		return tls.Certificate{}, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: pemCertificate, Bytes: leaf.Raw})
	if err := writeFile(certPath, certPEM, 0o644); err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf}, nil
}

// loadServer returns the stored server certificate when it can be reused.
// Any defect just means "issue a new one": these files are ours.
func loadServer(certPath, keyPath string, ca *CA, want sanSet, now time.Time) (tls.Certificate, bool) {
	m, err := LoadFiles(certPath, keyPath)
	if err != nil {
		return tls.Certificate{}, false
	}
	leaf := m.Server.Leaf
	reusable := leaf.CheckSignatureFrom(ca.cert) == nil &&
		bytes.Equal(leaf.RawIssuer, ca.cert.RawSubject) &&
		sanSetOf(leaf).equal(want) &&
		leaf.NotAfter.Sub(now) > renewBefore
	return m.Server, reusable
}

// writeFile replaces path atomically so readers never see a partial file.
func writeFile(path string, data []byte, perm fs.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	defer os.Remove(f.Name()) // no-op after a successful rename
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return fmt.Errorf("certs: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("certs: write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("certs: write %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	return nil
}

// IssueServerFiles writes a server certificate for hosts (plus localhost,
// 127.0.0.1 and ::1), signed by the CA in caDir, to certFile and keyFile
// (PEM; the key mode keyMode). The CA is created when caDir has none, the
// same CA Ensure uses, so clients that trust the emulator trust this
// certificate too: it is meant for a storage emulator (Azurite) beside the
// hub. The certificate is issued anew on every call.
func IssueServerFiles(caDir string, hosts []string, certFile, keyFile string, keyMode fs.FileMode, now time.Time) error {
	sans, err := newSANSet(hosts)
	if err != nil {
		return err
	}
	if caDir, err = filepath.Abs(caDir); err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	if err := os.MkdirAll(caDir, 0o700); err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	ca, _, err := loadOrCreateCA(caDir, now)
	if err != nil {
		return err
	}
	leaf, key, err := ca.issueServer(sans, now)
	if err != nil {
		return err
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return err
	}
	if err := writeFile(keyFile, keyPEM, keyMode); err != nil {
		return err
	}
	return writeFile(certFile, pem.EncodeToMemory(&pem.Block{Type: pemCertificate, Bytes: leaf.Raw}), 0o644)
}
