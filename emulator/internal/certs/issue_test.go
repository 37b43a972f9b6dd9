// SPDX-License-Identifier: MIT

package certs

import (
	"crypto/tls"
	"crypto/x509"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestIssue(t *testing.T) {
	now := time.Now()
	ca, err := NewCA("test CA", now)
	if err != nil {
		t.Fatalf("NewCA: %v", err)
	}
	if c := ca.Certificate(); !c.IsCA || c.Subject.CommonName != "test CA" || c.NotAfter.Sub(now).Round(time.Hour) != 10*365*24*time.Hour {
		t.Errorf("CA: IsCA %v, CN %q, validity %v; want true, %q, 10 years", c.IsCA, c.Subject.CommonName, c.NotAfter.Sub(now), "test CA")
	}
	cert, err := ca.Issue("device-1", now)
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	if got := cert.Leaf.Subject.CommonName; got != "device-1" {
		t.Errorf("CN = %q, want %q", got, "device-1")
	}
	if diff := cmp.Diff([]x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, cert.Leaf.ExtKeyUsage); diff != "" {
		t.Errorf("ExtKeyUsage (-want +got):\n%s", diff)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca.CertPEM()) {
		t.Fatal("CertPEM is not a PEM certificate")
	}
	opts := x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, CurrentTime: now}
	if _, err := cert.Leaf.Verify(opts); err != nil {
		t.Errorf("issued certificate does not verify against its CA: %v", err)
	}
	opts.KeyUsages = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	if _, err := cert.Leaf.Verify(opts); err == nil {
		t.Errorf("client certificate verified for server auth, want failure")
	}
}

func TestIssueCappedByCA(t *testing.T) {
	now := time.Now()
	ca, err := NewCA("old CA", now)
	if err != nil {
		t.Fatalf("NewCA: %v", err)
	}
	cert, err := ca.Issue("late", now.Add(9*365*24*time.Hour+200*24*time.Hour))
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	if got, want := cert.Leaf.NotAfter, ca.Certificate().NotAfter; !got.Equal(want) {
		t.Errorf("NotAfter = %v, want the CA's %v", got, want)
	}
}

func TestSelfSigned(t *testing.T) {
	now := time.Now()
	cert, err := SelfSigned("device-2", now)
	if err != nil {
		t.Fatalf("SelfSigned: %v", err)
	}
	leaf := cert.Leaf
	if !isSelfSigned(leaf) {
		t.Errorf("isSelfSigned = false, want true")
	}
	if leaf.Subject.CommonName != "device-2" || leaf.IsCA {
		t.Errorf("CN %q, IsCA %v; want %q, false", leaf.Subject.CommonName, leaf.IsCA, "device-2")
	}
	if err := leaf.CheckSignature(leaf.SignatureAlgorithm, leaf.RawTBSCertificate, leaf.Signature); err != nil {
		t.Errorf("certificate is not self-signed: %v", err)
	}
	if len(cert.Certificate) != 1 {
		t.Errorf("chain length = %d, want 1", len(cert.Certificate))
	}
}

func TestEncodePEM(t *testing.T) {
	now := time.Now()
	ca, err := NewCA("ca", now)
	if err != nil {
		t.Fatalf("NewCA: %v", err)
	}
	cert, err := ca.Issue("dev", now)
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	certPEM, keyPEM, err := EncodePEM(cert)
	if err != nil {
		t.Fatalf("EncodePEM: %v", err)
	}
	back, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatalf("X509KeyPair(EncodePEM output): %v", err)
	}
	if diff := cmp.Diff(cert.Certificate, back.Certificate); diff != "" {
		t.Errorf("chain changed in PEM round trip (-want +got):\n%s", diff)
	}
}

// TestIntermediateChain issues a leaf from an intermediate CA and checks
// that the chain it carries verifies against the root alone.
func TestIntermediateChain(t *testing.T) {
	now := time.Now()
	root, err := NewRootCA("root", now)
	if err != nil {
		t.Fatal(err)
	}
	inter, err := root.IssueCA("intermediate", now)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := inter.Issue("dev-1", now)
	if err != nil {
		t.Fatal(err)
	}
	if len(leaf.Certificate) != 3 {
		t.Fatalf("chain length: got %d, want 3 (leaf, intermediate, root)", len(leaf.Certificate))
	}
	roots := x509.NewCertPool()
	roots.AddCert(root.Certificate())
	pool := x509.NewCertPool()
	pool.AddCert(inter.Certificate())
	if _, err := leaf.Leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("leaf does not verify against the root: %v", err)
	}
	if _, err := leaf.Leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("leaf does not verify with the intermediate as anchor: %v", err)
	}
}
