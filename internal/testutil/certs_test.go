// SPDX-License-Identifier: MIT

package testutil

import (
	"crypto/x509"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "regenerate the fixed CA in testdata")

func TestFixedCA(t *testing.T) {
	if *update {
		ca, err := newCA("IoT Hub emulator test CA", time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2120, 1, 1, 0, 0, 0, 0, time.UTC))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join("testdata", "ca.pem"), ca.PEM, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join("testdata", "ca.key"), mustKeyPEM(ca.Key), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Skip("regenerated; run again without -update")
	}
	ca := FixedCA()
	if !ca.Cert.IsCA || ca.Cert.NotAfter.Year() != 2120 {
		t.Fatalf("fixed CA: IsCA %v, not after %v", ca.Cert.IsCA, ca.Cert.NotAfter)
	}
	leaf, err := ca.Issue("dev1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := leaf.Leaf.Verify(x509.VerifyOptions{Roots: ca.Pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("a device certificate does not chain to its CA: %v", err)
	}
	srv, err := ca.Issue("hub", "localhost", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Leaf.VerifyHostname("127.0.0.1"); err != nil {
		t.Errorf("server certificate: %v", err)
	}
	mid, err := ca.IssueCA("intermediate")
	if err != nil {
		t.Fatal(err)
	}
	leaf2, _ := mid.Issue("dev2")
	inter := x509.NewCertPool()
	inter.AddCert(mid.Cert)
	if _, err := leaf2.Leaf.Verify(x509.VerifyOptions{Roots: ca.Pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Errorf("a certificate of an intermediate does not chain to the root: %v", err)
	}
	other, err := NewCA("other")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := leaf.Leaf.Verify(x509.VerifyOptions{Roots: other.Pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Error("a certificate verified against an unrelated CA")
	}
	self, err := SelfSigned("selfdev")
	if err != nil {
		t.Fatal(err)
	}
	if tp := Thumbprint(self); len(tp) != 40 {
		t.Errorf("thumbprint %q, want 40 hex digits", tp)
	}
}
