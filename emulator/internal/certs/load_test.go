// SPDX-License-Identifier: MIT

package certs

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeTemp writes data to name in dir and returns the path.
func writeTemp(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadFiles(t *testing.T) {
	now := time.Now()
	dir := t.TempDir()
	mustEnsure(t, dir, nil, now)
	files := readFiles(t, dir, allFiles...)
	self, err := SelfSigned("localhost", now)
	if err != nil {
		t.Fatal(err)
	}
	selfCert, selfKey, err := EncodePEM(self)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name      string
		cert, key []byte
		wantChain int
		wantCA    []byte // expected CAPEM, nil for none
	}{
		{"leaf only", files[ServerFileName], files[ServerKeyFileName], 1, nil},
		{"leaf and CA", append(bytes.Clone(files[ServerFileName]), files[CAFileName]...), files[ServerKeyFileName], 2, files[CAFileName]},
		{"self-signed", selfCert, selfKey, 1, selfCert},
		{"key and cert in one file", files[ServerFileName], append(bytes.Clone(files[ServerFileName]), files[ServerKeyFileName]...), 1, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := t.TempDir()
			got, err := LoadFiles(writeTemp(t, d, "c.pem", tt.cert), writeTemp(t, d, "k.pem", tt.key))
			if err != nil {
				t.Fatalf("LoadFiles: %v", err)
			}
			if len(got.Server.Certificate) != tt.wantChain {
				t.Errorf("chain length = %d, want %d", len(got.Server.Certificate), tt.wantChain)
			}
			if got.Server.Leaf == nil || got.CAFile != "" {
				t.Errorf("Leaf = %v, CAFile = %q; want a leaf and no CAFile", got.Server.Leaf, got.CAFile)
			}
			if !bytes.Equal(got.CAPEM, tt.wantCA) {
				t.Errorf("CAPEM = %q, want %q", got.CAPEM, tt.wantCA)
			}
			if (got.Pool != nil) != (tt.wantCA != nil) {
				t.Errorf("Pool set = %v, want %v", got.Pool != nil, tt.wantCA != nil)
			}
			if got.Pool != nil {
				// Chain only: the self-signed case is a client certificate.
				opts := x509.VerifyOptions{Roots: got.Pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}
				if _, err := got.Server.Leaf.Verify(opts); err != nil {
					t.Errorf("leaf does not verify against Pool: %v", err)
				}
			}
		})
	}
}

func TestLoadFilesErrors(t *testing.T) {
	dir := t.TempDir()
	mustEnsure(t, dir, nil, time.Now())
	files := readFiles(t, dir, allFiles...)
	encrypted := pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{1, 2, 3}})
	badDER := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1, 2, 3}})
	badKey := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2, 3}})

	tests := []struct {
		name      string
		cert, key []byte // nil means the file does not exist
		wantErr   []string
	}{
		{"cert missing", nil, files[ServerKeyFileName], []string{"cannot read certificate file", "c.pem"}},
		{"key missing", files[ServerFileName], nil, []string{"cannot read key file", "k.pem"}},
		{"cert not PEM", []byte("hello"), files[ServerKeyFileName], []string{"c.pem", "no PEM CERTIFICATE block"}},
		{"cert file holds only a key", files[ServerKeyFileName], files[ServerKeyFileName], []string{"c.pem", "no PEM CERTIFICATE block"}},
		{"cert DER broken", badDER, files[ServerKeyFileName], []string{"c.pem", "certificate 1"}},
		{"key not PEM", files[ServerFileName], []byte("hello"), []string{"k.pem", "no PEM PRIVATE KEY block"}},
		{"key file holds only a cert", files[ServerFileName], files[ServerFileName], []string{"k.pem", "no PEM PRIVATE KEY block"}},
		{"key DER broken", files[ServerFileName], badKey, []string{"k.pem", "not PKCS #8, PKCS #1 or SEC 1"}},
		{"key encrypted", files[ServerFileName], encrypted, []string{"k.pem", "encrypted"}},
		{"key does not match", files[ServerFileName], files[CAKeyFileName], []string{"k.pem does not match the certificate in", "c.pem"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := t.TempDir()
			certPath, keyPath := filepath.Join(d, "c.pem"), filepath.Join(d, "k.pem")
			if tt.cert != nil {
				writeTemp(t, d, "c.pem", tt.cert)
			}
			if tt.key != nil {
				writeTemp(t, d, "k.pem", tt.key)
			}
			_, err := LoadFiles(certPath, keyPath)
			if err == nil {
				t.Fatalf("LoadFiles succeeded, want error containing %q", tt.wantErr)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error = %q, want it to contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
		})
	}
}
