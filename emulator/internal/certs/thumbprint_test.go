// SPDX-License-Identifier: MIT

package certs

import (
	"crypto/x509"
	"encoding/pem"
	"testing"
)

// thumbCert was made with openssl; the expected values are
// `openssl x509 -noout -fingerprint -sha1|-sha256` without the colons.
const thumbCert = `-----BEGIN CERTIFICATE-----
MIIBgzCCASmgAwIBAgIUB+k8KMXQg6Lpe+RVnDy6Psis1UcwCgYIKoZIzj0EAwIw
FzEVMBMGA1UEAwwMdGh1bWItZGV2aWNlMB4XDTI2MTEzMDEyMjkyOFoXDTM2MTEy
NzEyMjkyOFowFzEVMBMGA1UEAwwMdGh1bWItZGV2aWNlMFkwEwYHKoZIzj0CAQYI
KoZIzj0DAQcDQgAEITcZIyNuCLkMUJ9jVJAA01N5QmALovnxr8NP2cCW87CQaUF4
CZsZP4yYZNXbBEqeycDrSlX4c6jufXPrP/bJuqNTMFEwHQYDVR0OBBYEFBi1o89M
Ap4A8eIEv98xJHMxqWqJMB8GA1UdIwQYMBaAFBi1o89MAp4A8eIEv98xJHMxqWqJ
MA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDSAAwRQIgKOl4C+Cdvfd7PTR1
bAGNdVbWpptYd2BR63spBAXiV8QCIQDL5cNherMs9JuoWyvwQ5WAcdIxlYOflAs/
LiCUEOHvwA==
-----END CERTIFICATE-----
`

func TestThumbprint(t *testing.T) {
	b, _ := pem.Decode([]byte(thumbCert))
	if b == nil {
		t.Fatal("thumbCert is not PEM")
	}
	cert, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatalf("ParseCertificate: %v", err)
	}
	tests := []struct {
		name string
		fn   func(*x509.Certificate) string
		want string
	}{
		{"sha1", Thumbprint, "93E36296FC0A8EEB783D20DD1D10BF2647164B40"},
		{"sha256", ThumbprintSHA256, "7636DC81F25A4911698DB5A093D427F8B21D9FE16C4D5ED3BCA01AF9DECFF15E"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.fn(cert); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}
