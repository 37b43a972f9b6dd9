// SPDX-License-Identifier: MIT

package certs

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var allFiles = []string{CAFileName, CAKeyFileName, ServerFileName, ServerKeyFileName}

func TestEnsureCreatesThenReuses(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	now := time.Now()
	m1 := mustEnsure(t, dir, []string{"MyHub.Local", "10.1.2.3"}, now)
	before := readFiles(t, dir, allFiles...)

	for name, want := range map[string]os.FileMode{CAKeyFileName: 0o600, ServerKeyFileName: 0o600, CAFileName: 0o644, ServerFileName: 0o644} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s mode = %v, want %v", name, got, want)
		}
	}
	if want := filepath.Join(dir, CAFileName); m1.CAFile != want {
		t.Errorf("CAFile = %q, want %q", m1.CAFile, want)
	}
	if !bytes.Equal(m1.CAPEM, before[CAFileName]) {
		t.Errorf("CAPEM differs from %s", CAFileName)
	}

	leaf := m1.Server.Leaf
	if diff := cmp.Diff([]string{"localhost", "myhub.local"}, leaf.DNSNames); diff != "" {
		t.Errorf("DNS SANs (-want +got):\n%s", diff)
	}
	var ips []string
	for _, ip := range leaf.IPAddresses {
		ips = append(ips, ip.String())
	}
	if diff := cmp.Diff([]string{"10.1.2.3", "127.0.0.1", "::1"}, ips); diff != "" {
		t.Errorf("IP SANs (-want +got):\n%s", diff)
	}
	if got := leaf.Subject.CommonName; got != "myhub.local" {
		t.Errorf("server CN = %q, want %q", got, "myhub.local")
	}
	if got, want := leaf.NotAfter.Sub(now).Round(time.Hour), 365*24*time.Hour; got != want {
		t.Errorf("server validity = %v, want %v", got, want)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: m1.Pool, DNSName: "myhub.local", CurrentTime: now}); err != nil {
		t.Errorf("server certificate does not verify against Pool: %v", err)
	}

	m2 := mustEnsure(t, dir, []string{"10.1.2.3", "myhub.local", "localhost"}, now.Add(24*time.Hour))
	if diff := cmp.Diff(before, readFiles(t, dir, allFiles...)); diff != "" {
		t.Errorf("second Ensure rewrote files (-before +after):\n%s", diff)
	}
	if !bytes.Equal(m1.Server.Certificate[0], m2.Server.Certificate[0]) {
		t.Errorf("second Ensure returned a different server certificate")
	}
	if !bytes.Equal(m1.CAPEM, m2.CAPEM) {
		t.Errorf("second Ensure returned a different CA")
	}
}

func TestEnsureReissuesServer(t *testing.T) {
	now := time.Now()
	hosts := []string{"hub.local"}
	tests := []struct {
		name      string
		modify    func(t *testing.T, dir string) // damage the stored files
		hosts     []string
		now       time.Time
		wantReuse bool
	}{
		{name: "same request", hosts: hosts, now: now, wantReuse: true},
		{name: "31 days left", hosts: hosts, now: now.Add(334 * 24 * time.Hour), wantReuse: true},
		{name: "29 days left", hosts: hosts, now: now.Add(336 * 24 * time.Hour)},
		{name: "expired", hosts: hosts, now: now.Add(400 * 24 * time.Hour)},
		{name: "host added", hosts: []string{"hub.local", "other.local"}, now: now},
		{name: "host removed", hosts: nil, now: now},
		{name: "same set different spelling", hosts: []string{"HUB.local.", " hub.local", "127.0.0.1", "[::1]"}, now: now, wantReuse: true},
		{name: "server key deleted", hosts: hosts, now: now, modify: func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, ServerKeyFileName)); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "server cert garbage", hosts: hosts, now: now, modify: func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, ServerFileName), []byte("junk"), 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "server signed by another CA", hosts: hosts, now: now, modify: func(t *testing.T, dir string) {
			other := mustEnsure(t, t.TempDir(), hosts, now)
			for _, n := range []string{ServerFileName, ServerKeyFileName} {
				b, err := os.ReadFile(filepath.Join(filepath.Dir(other.CAFile), n))
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, n), b, 0o600); err != nil {
					t.Fatal(err)
				}
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			first := mustEnsure(t, dir, hosts, now)
			if tt.modify != nil {
				tt.modify(t, dir)
			}
			m := mustEnsure(t, dir, tt.hosts, tt.now)

			if !bytes.Equal(first.CAPEM, m.CAPEM) {
				t.Fatalf("CA changed; want the CA kept")
			}
			reused := bytes.Equal(first.Server.Certificate[0], m.Server.Certificate[0])
			if reused != tt.wantReuse {
				t.Fatalf("server certificate reused = %v, want %v", reused, tt.wantReuse)
			}
			if _, err := m.Server.Leaf.Verify(x509.VerifyOptions{Roots: m.Pool, DNSName: "localhost", CurrentTime: tt.now}); err != nil {
				t.Errorf("server certificate does not verify at %v: %v", tt.now, err)
			}
			// What Ensure returns must be what the next call finds on disk.
			again := mustEnsure(t, dir, tt.hosts, tt.now)
			if !bytes.Equal(again.Server.Certificate[0], m.Server.Certificate[0]) {
				t.Errorf("third Ensure issued yet another server certificate")
			}
		})
	}
}

func TestEnsureCAErrors(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name    string
		modify  func(t *testing.T, dir string)
		now     time.Time
		wantErr string
	}{
		{"CA key missing", func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, CAKeyFileName)); err != nil {
				t.Fatal(err)
			}
		}, now, "the CA key " + "DIR/ca-key.pem is missing beside DIR/ca.pem: restore it, or delete ca.pem and ca-key.pem from DIR to generate a new CA"},
		{"CA cert missing", func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, CAFileName)); err != nil {
				t.Fatal(err)
			}
		}, now, "the CA certificate DIR/ca.pem is missing beside DIR/ca-key.pem: restore it, or delete"},
		{"CA cert not PEM", func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, CAFileName), []byte("junk"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, now, "DIR/ca.pem: no PEM CERTIFICATE block found; the CA certificate is damaged: restore it, or delete ca.pem and ca-key.pem from DIR to generate a new CA (clients must then trust the new ca.pem)"},
		{"CA key not PEM", func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, CAKeyFileName), []byte("junk"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, now, "the CA key is damaged: restore it, or delete"},
		{"CA key from elsewhere", func(t *testing.T, dir string) {
			other := t.TempDir()
			mustEnsure(t, other, nil, now)
			b, err := os.ReadFile(filepath.Join(other, CAKeyFileName))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, CAKeyFileName), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}, now, "does not match the certificate"},
		{"CA file holds a leaf", func(t *testing.T, dir string) {
			for from, to := range map[string]string{ServerFileName: CAFileName, ServerKeyFileName: CAKeyFileName} {
				b, err := os.ReadFile(filepath.Join(dir, from))
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, to), b, 0o600); err != nil {
					t.Fatal(err)
				}
			}
		}, now, "is not a CA certificate"},
		{"CA expired", nil, now.Add(11 * 365 * 24 * time.Hour), "expired"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			mustEnsure(t, dir, nil, now)
			if tt.modify != nil {
				tt.modify(t, dir)
			}
			_, err := Ensure(dir, nil, tt.now)
			if want := strings.ReplaceAll(tt.wantErr, "DIR", dir); err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("Ensure error = %v, want it to contain %q", err, want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
		})
	}
}

func TestEnsureRejectsBadHost(t *testing.T) {
	for _, h := range []string{"localhost:8883", "https://hub", "a b"} {
		t.Run(h, func(t *testing.T) {
			dir := t.TempDir()
			if _, err := Ensure(dir, []string{h}, time.Now()); err == nil || !strings.Contains(err.Error(), "not a DNS name or IP") {
				t.Errorf("Ensure(%q) error = %v, want a host error", h, err)
			}
		})
	}
}

func TestIssueServerFilesChainsToTheHubCA(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	m, err := Ensure(dir, []string{"hub"}, now)
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	cf, kf := filepath.Join(out, "cert.pem"), filepath.Join(out, "key.pem")
	if err := IssueServerFiles(dir, []string{"azurite"}, cf, kf, 0o640, now); err != nil {
		t.Fatal(err)
	}
	pair, err := tls.LoadX509KeyPair(cf, kf)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"azurite", "localhost", "127.0.0.1"} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: m.Pool, DNSName: name, CurrentTime: now}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if st, _ := os.Stat(kf); st.Mode().Perm() != 0o640 {
		t.Errorf("key mode %v", st.Mode().Perm())
	}
	if err := IssueServerFiles(dir, []string{"bad name"}, cf, kf, 0o600, now); err == nil {
		t.Error("a host with a space was accepted")
	}
}
